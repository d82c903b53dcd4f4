//! Liveness, readiness, metrics and the OpenAPI document.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    pub version: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    Ready,
    Unavailable,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub status: Readiness,
}

async fn health() -> Json<Health> {
    Json(Health { status: HealthStatus::Ok, version: env!("CARGO_PKG_VERSION") })
}

/// Ready when the store answers a read.
async fn ready(State(s): State<AppState>) -> (StatusCode, Json<Ready>) {
    match s.services.ready() {
        Ok(()) => (StatusCode::OK, Json(Ready { status: Readiness::Ready })),
        Err(e) => {
            tracing::error!(error = %e, "store not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(Ready { status: Readiness::Unavailable }))
        }
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let m = &s.metrics;
    let t = s.services.totals();
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
    metric("samplit_experiments", "gauge", "Experiments stored.", t.experiments);
    metric("samplit_experiments_running", "gauge", "Experiments running.", t.running);
    metric("samplit_visitors_total", "counter", "Visitors assigned to an arm.", t.visitors);
    metric("samplit_conversions_total", "counter", "Primary-goal conversions.", t.conversions);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn openapi() -> Json<Value> {
    Json(super::openapi::document())
}
