//! Operator endpoints: `GET /health` on the client listener; `GET /metrics` (Prometheus text)
//! on the private metrics listener only.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State as AxState};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::services::State;

/// `GET /health`: 200 while the database answers.
pub async fn health(AxState(s): AxState<State>) -> Response {
    if s.db.is_healthy() {
        (StatusCode::OK, "OK").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
    }
}

/// Count every request by route template and status, and time it.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("trellis_http_requests_total", &labels).increment(1);
    metrics::histogram!("trellis_http_request_duration_seconds", &labels[..2]).record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: request counters and latencies, database sizes per table, the keys
/// long-polls wait on, and each in-memory cache's hits, misses, entries and bound.
pub async fn metrics(AxState((s, handle)): AxState<(State, PrometheusHandle)>) -> String {
    for (table, bytes) in s.db.table_sizes() {
        metrics::gauge!("trellis_database_table_bytes", "table" => table).set(bytes as f64);
    }
    metrics::gauge!("trellis_notifier_keys").set(s.db.stream().registry().len() as f64);
    for cache in s.caches.stats() {
        let name = cache.name;
        metrics::counter!("trellis_cache_hits_total", "cache" => name).absolute(cache.hits());
        metrics::counter!("trellis_cache_misses_total", "cache" => name).absolute(cache.misses());
        metrics::gauge!("trellis_cache_entries", "cache" => name).set(cache.entries() as f64);
        metrics::gauge!("trellis_cache_capacity", "cache" => name).set(cache.capacity as f64);
    }
    handle.render()
}
