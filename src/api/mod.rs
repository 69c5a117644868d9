//! The HTTP layer: axum routers, middleware, and the handlers under `client/` and `admin/`.
//! Handlers parse, authorize, call a service and shape the response; nothing here touches
//! RocksDB directly.

pub mod admin;
pub mod body;
pub mod client;
pub mod federation;
pub mod ops;
pub mod ruma;
pub mod ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

use crate::error::{Error, ErrorKind};
use crate::services::State;

/// Request ids: a per-process random prefix and a counter.
#[derive(Clone)]
struct RequestIds {
    prefix: String,
    next: std::sync::Arc<AtomicU64>,
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix)).ok().map(RequestId::new)
    }
}

/// CORS exactly as the spec's "Web Browser Clients" section asks.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([HeaderName::from_static("x-requested-with"), header::CONTENT_TYPE, header::AUTHORIZATION])
}

/// The client listener's router (Client-Server API, Synapse admin API, `/health`). The
/// Server-Server API is not served here (`/_matrix/federation/*`, `/_matrix/key/*` → 404).
///
/// The WebSocket API runs its clients' requests through the same routes: it is handed a copy of
/// this router without the WebSocket route (so neither the router nor [`State`] owns itself).
pub fn client_router(state: State) -> Router {
    let dev_mode = state.config.server.dev_mode;
    let routes = client::routes(Router::new())
        .route("/_synapse/admin/v1/register", get(admin::register::nonce).post(admin::register::register))
        .route("/health", get(ops::health));
    let dispatch = ws::Dispatch(layers(with_fallbacks(routes.clone()).with_state(state.clone()), dev_mode));
    let router = routes.route(ws::PATH, get(ws::connect).layer(axum::Extension(dispatch)));
    layers(with_fallbacks(router).with_state(state), dev_mode)
}

/// The federation listener's router (Server-Server API), with the same error, fallback and
/// middleware behaviour as the client router.
pub fn federation_router(state: State) -> Router {
    let dev_mode = state.config.server.dev_mode;
    layers(with_fallbacks(federation::routes(Router::new())).with_state(state), dev_mode)
}

/// Unknown paths and methods: 404 / 405 `M_UNRECOGNIZED`.
fn with_fallbacks(router: Router<State>) -> Router<State> {
    router
        .fallback(|| async {
            Error::new(ErrorKind::Unrecognized { method_not_allowed: false }, "Unrecognized request")
        })
        .method_not_allowed_fallback(|| async {
            Error::new(ErrorKind::Unrecognized { method_not_allowed: true }, "Unrecognized request: method not allowed")
        })
}

/// Metrics, panics as 500 `M_UNKNOWN`, CORS, request logs with request ids, a 300 s timeout;
/// with `dev_mode`, internal errors' details in their bodies.
fn layers(router: Router, dev_mode: bool) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let ids = RequestIds { prefix: crate::users::random_string(6), next: Default::default() };
    let router = router
        .layer(axum::middleware::from_fn(ops::track))
        .layer(DefaultBodyLimit::disable())
        .layer(CatchPanicLayer::custom(|_| Error::internal("handler panicked").into_response()))
        .layer(cors())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    // The path only: query strings may carry access tokens.
                    tracing::info_span!("request", id, method = %req.method(), path = req.uri().path())
                })
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, ids))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION]))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(300),
        ));
    if dev_mode { router.layer(axum::middleware::from_fn(crate::error::reveal_internal_details)) } else { router }
}

/// The private metrics listener's router.
pub fn metrics_router(state: State, handle: PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(ops::metrics)).with_state((state, handle))
}
