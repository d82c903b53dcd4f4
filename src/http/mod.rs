//! The HTTP layer: one router per resource, nested under `/api/v1`, and one middleware that
//! gives every response its request id, timing, security headers and error body.

pub mod account;
pub mod analytics;
pub mod assets;
pub mod experiments;
pub mod extract;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod tracker;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::error::{AppError, Code};
use crate::service::Services;

#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub limits: Arc<limits::Limits>,
    pub metrics: Arc<Metrics>,
}

#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub client_errors: AtomicU64,
    pub server_errors: AtomicU64,
}

pub type ApiResult<T> = Result<T, AppError>;

impl IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = Response::new(Body::empty());
        *res.status_mut() = status;
        if self.code == Code::RateLimited {
            let wait = self
                .details
                .as_ref()
                .and_then(|d| d.get("retry_after"))
                .and_then(|v| v.as_u64())
                .unwrap_or(1);
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        // The middleware renders the body, because only it knows the mode.
        res.extensions_mut().insert(self);
        res
    }
}

/// A JSON response from text we built ourselves (the tracker's pre-rendered answers).
pub struct RawJson(pub String);

impl IntoResponse for RawJson {
    fn into_response(self) -> axum::response::Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

pub fn app(state: AppState) -> Router {
    let cfg = &state.services.config;
    let tracker_cors = cors(&cfg.server.tracker_cors_origins)
        .unwrap_or_default()
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE, HeaderName::from_static("x-samplit-site-key")])
        .max_age(std::time::Duration::from_secs(86_400));
    let mut api = Router::new()
        .merge(account::router())
        .merge(experiments::router())
        .merge(analytics::router())
        .merge(ops::api_router());
    if let Some(c) = cors(&cfg.server.api_cors_origins) {
        api = api.layer(
            c.allow_methods(Any).allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
        );
    }
    let api = api.merge(tracker::api_router().layer(tracker_cors.clone()));
    let production = cfg.production();
    Router::new()
        .nest("/api/v1", api)
        .merge(tracker::script_router().layer(tracker_cors))
        .merge(ops::router())
        .fallback(assets::serve)
        .method_not_allowed_fallback(|| async {
            AppError::new(Code::MethodNotAllowed, "method not allowed on this path")
        })
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn_with_state((state.metrics.clone(), production), around))
        .with_state(state)
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    if origins.iter().any(|o| o == "*") {
        return Some(CorsLayer::new().allow_origin(Any));
    }
    let list: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    Some(CorsLayer::new().allow_origin(AllowOrigin::list(list)))
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Request id, timing, security headers, the error body, metrics and the log line, in one
/// layer so the hot path pays for one middleware.
async fn around(
    State((metrics, production)): State<(Arc<Metrics>, bool)>,
    req: Request,
    next: Next,
) -> axum::response::Response {
    let start = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!("{:x}-{:x}", std::process::id(), REQUEST_SEQ.fetch_add(1, Ordering::Relaxed))
        });
    let method = req.method().clone();
    let uri = req.uri().clone();
    let path = uri.path();
    let mut res = next.run(req).await;

    metrics.requests.fetch_add(1, Ordering::Relaxed);
    let status = res.status();
    if let Some(err) = res.extensions_mut().remove::<AppError>() {
        let body = serde_json::to_vec(&err.body(production)).unwrap_or_default();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res.headers_mut().remove(header::CONTENT_LENGTH);
        *res.body_mut() = Body::from(body);
        if status.is_server_error() {
            tracing::error!(%method, %path, request_id = %id, code = err.code.as_str(), error = %err.message, "request failed");
        } else {
            tracing::debug!(%method, %path, request_id = %id, code = err.code.as_str(), "request refused");
        }
    } else if status == StatusCode::PAYLOAD_TOO_LARGE
        || status == StatusCode::UNSUPPORTED_MEDIA_TYPE
    {
        // A framework rejection that slipped past our extractors: keep the contract.
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            Code::PayloadTooLarge
        } else {
            Code::UnsupportedMediaType
        };
        let err = AppError::new(code, status.canonical_reason().unwrap_or("error"));
        *res.body_mut() = Body::from(serde_json::to_vec(&err.body(production)).unwrap_or_default());
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res.headers_mut().remove(header::CONTENT_LENGTH);
    }
    if status.is_client_error() {
        metrics.client_errors.fetch_add(1, Ordering::Relaxed);
    } else if status.is_server_error() {
        metrics.server_errors.fetch_add(1, Ordering::Relaxed);
    }
    let elapsed = start.elapsed();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={:.3}", elapsed.as_secs_f64() * 1000.0))
    {
        h.insert("server-timing", v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    tracing::debug!(%method, %path, status = status.as_u16(), request_id = %id, micros = elapsed.as_micros() as u64, "request");
    res
}

/// Starts serving on `listener` until `shutdown` resolves; in-flight requests finish and
/// the writer commits what it has queued before this returns.
pub async fn serve(
    services: Arc<Services>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState {
        limits: Arc::new(limits::Limits::new(&services.config.limits)),
        metrics: Arc::new(Metrics::default()),
        services,
    };
    let app = app(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
