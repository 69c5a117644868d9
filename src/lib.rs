//! Trellis, a Matrix homeserver. See `docs/architecture.md` for the map of this crate.

pub mod api;
pub mod cache;
pub mod config;
pub mod ephemeral;
pub mod error;
pub mod federation;
pub mod keys;
pub mod locks;
pub mod push;
pub mod ratelimit;
pub mod rooms;
pub mod server_keys;
pub mod services;
pub mod storage;
pub mod sync;
pub mod uiaa;
pub mod users;

use std::io::Write;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use config::Config;
use services::{Services, StartError};

/// Set up `tracing` from `[logging]` (`RUST_LOG` overrides the level). Logs go to stderr.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.logging.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if config.logging.format == "json" { builder.json().try_init() } else { builder.try_init() };
    if let Err(e) = result {
        eprintln!("trellis: logging already initialised: {e}");
    }
}

/// How long open connections may finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Bind a listener; the error names the config key.
async fn bind(addr: SocketAddr, key: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {key} = \"{addr}\": {e}"))
}

/// Run the server until SIGINT or SIGTERM. Prints one `listening` line per listener to stdout.
pub async fn serve(config: Config) -> Result<(), String> {
    let metrics = config.metrics.clone();
    let client_addr = config.listen.client;
    let federation_tls = federation_tls(&config)?;
    let state = Services::new(config).map_err(|e: StartError| e.to_string())?;
    state.sender.start().map_err(|e| format!("cannot start the federation sender: {e}"))?;
    federation::txn::start_pruning(&state);

    let client = bind(client_addr, "listen.client").await?;
    let bound = client.local_addr().map_err(|e| e.to_string())?;
    if !bound.ip().is_unspecified() {
        // On 0.0.0.0 the public address is unknown: set `well_known.client`.
        let _ = state.client_base_url.set(format!("http://{bound}"));
    }
    announce(&format!("client API listening on http://{bound}"));

    let mut tasks = tokio::task::JoinSet::new();
    if metrics.enabled {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| format!("cannot start metrics: {e}"))?;
        // The exporter keeps every histogram sample until upkeep folds them in (its docs: the
        // caller runs it periodically); without it memory grows between scrapes.
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        let listener = bind(metrics.listen, "metrics.listen").await?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        announce(&format!("metrics listening on http://{addr}/metrics"));
        let router = api::metrics_router(state.clone(), handle);
        tasks.spawn(async move { axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await });
    }
    if let Some(tls) = federation_tls {
        let tcp = bind(state.config.listen.federation, "listen.federation").await?;
        let addr = tcp.local_addr().map_err(|e| e.to_string())?;
        let _ = state.federation_port.set(addr.port());
        let listener = federation::listener::TlsListener::new(tcp, tls).map_err(|e| e.to_string())?;
        announce(&format!("federation API listening on https://{addr}"));
        let router = api::federation_router(state.clone());
        tasks.spawn(async move { axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await });
    }
    let router = api::client_router(state.clone());
    tasks.spawn(async move {
        axum::serve(client, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    // Graceful shutdown waits for open connections; an HTTP/2 peer that never answers the
    // closing GOAWAY/PING (or a long-poll) must not keep the process alive.
    let deadline = async {
        shutdown_signal().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => return Err(format!("listener failed: {e}")),
                Some(Err(e)) => return Err(format!("listener task failed: {e}")),
            },
            () = &mut deadline => {
                tracing::info!("connections still open {SHUTDOWN_GRACE:?} after the signal; closing them");
                break;
            }
        }
    }
    tracing::info!("shut down");
    Ok(())
}

/// The federation listener's TLS configuration, or `None` (with one log line saying why) when
/// federation is off or `[tls]` is not set.
fn federation_tls(config: &Config) -> Result<Option<tokio_rustls::rustls::ServerConfig>, String> {
    if !config.federation.enabled {
        tracing::info!("federation is off: federation.enabled = false");
        return Ok(None);
    }
    match (&config.tls.certificate, &config.tls.private_key) {
        (Some(cert), Some(key)) => federation::listener::server_config(cert, key).map(Some),
        _ => {
            tracing::info!("federation is off: set tls.certificate and tls.private_key to serve listen.federation");
            Ok(None)
        }
    }
}

/// A line on stdout for people and test harnesses ("trellis: ... listening on http://...").
fn announce(line: &str) {
    tracing::info!("{line}");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "trellis: {line}");
    let _ = out.flush();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
