//! Liveness, readiness, metrics and the OpenAPI document.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

pub fn api_router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Ready when the store answers a read.
async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    match s.services.store.user_count() {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::error!(error = %e, "store not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"})))
        }
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let m = &s.metrics;
    let all = s.services.catalog.all();
    let running = all.iter().filter(|e| e.serving()).count();
    let (mut visitors, mut conversions) = (0u64, 0u64);
    for e in &all {
        if let Some(snap) = s.services.writer.live().get(e.exp.id) {
            visitors += snap.state.visitors();
            conversions += snap.state.conversions();
        }
    }
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    };
    metric(
        "samplit_http_requests_total",
        "counter",
        "HTTP requests answered.",
        m.requests.load(Ordering::Relaxed),
    );
    metric(
        "samplit_http_client_errors_total",
        "counter",
        "4xx answers.",
        m.client_errors.load(Ordering::Relaxed),
    );
    metric(
        "samplit_http_server_errors_total",
        "counter",
        "5xx answers.",
        m.server_errors.load(Ordering::Relaxed),
    );
    metric("samplit_experiments", "gauge", "Experiments stored.", all.len() as u64);
    metric("samplit_experiments_running", "gauge", "Experiments running.", running as u64);
    metric("samplit_visitors_total", "counter", "Visitors assigned to an arm.", visitors);
    metric("samplit_conversions_total", "counter", "Primary-goal conversions.", conversions);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn openapi() -> Json<Value> {
    Json(super::openapi::document())
}
