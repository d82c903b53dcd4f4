//! The HTTP layer: one router per resource, nested under `/api/v1`, and one middleware that
//! gives every response its request id, timing, security headers and error body.

pub mod account;
pub mod analytics;
pub mod assets;
pub mod audit;
pub mod campaigns;
pub mod experiments;
pub mod extract;
pub mod integrations;
pub mod limits;
pub mod meta;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod overview;
pub mod simulate;
pub mod tracker;
pub mod webhooks;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::error::{AppError, Code};
use crate::service::Services;

/// What handlers share, behind one `Arc`: axum clones the state for every extraction, and
/// one reference count (not one per field) is what those clones cost on the hot path.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub services: Arc<Services>,
    pub limits: limits::Limits,
    pub metrics: Arc<Metrics>,
    pub trusted_proxies: Vec<crate::config::Cidr>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
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
        if self.code == Code::ServerBusy {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
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
        .merge(integrations::router())
        .merge(experiments::router())
        .merge(campaigns::router())
        .merge(analytics::router())
        .merge(audit::router())
        .merge(webhooks::router())
        .merge(notifications::router())
        .merge(overview::router())
        .merge(simulate::router())
        .merge(ops::api_router())
        .merge(meta::router());
    if let Some(c) = cors(&cfg.server.api_cors_origins) {
        api = api.layer(
            c.allow_methods(Any).allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
        );
    }
    let production = cfg.production();
    // Tracker routes carry their full path instead of sitting under `nest`, which would
    // rewrite every hot-path request's URI.
    // Tracker answers are a few hundred bytes: not worth gzip's per-request cost.
    let compressed = Router::new()
        .nest("/api/v1", api)
        .merge(tracker::script_router().layer(tracker_cors.clone()))
        .merge(campaigns::public_router())
        .merge(ops::router())
        .fallback(assets::serve)
        // An XLSX (or the plugin zip) is deflated parts already: gzip would only spend CPU on it.
        .layer(
            CompressionLayer::new().compress_when(
                DefaultPredicate::new()
                    .and(NotForContentType::const_new(crate::service::xlsx::CONTENT_TYPE))
                    .and(NotForContentType::const_new(integrations::ZIP)),
            ),
        );
    Router::new()
        .merge(tracker::api_router().layer(tracker_cors))
        .merge(compressed)
        .method_not_allowed_fallback(|| async {
            AppError::new(Code::MethodNotAllowed, "method not allowed on this path")
        })
        // Once, around everything but the outer layer, so a panic (a store bug, a damaged
        // file) still gets its request id, headers and JSON body.
        .layer(CatchPanicLayer::custom(panic_answer))
        .layer(AroundLayer { metrics: state.metrics.clone(), production })
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
/// Distinguishes this process's request ids from a previous run's; computed once, since
/// `getpid` is a system call.
static PROCESS_TAG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), t & 0xffff)
});

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Request id, timing, security headers, the error body, metrics and the log line, in one
/// hand-written layer: `middleware::from_fn` would clone the whole inner router per request,
/// which cost about a fifth of the hot path's throughput.
#[derive(Clone)]
pub struct AroundLayer {
    metrics: Arc<Metrics>,
    production: bool,
}

impl<S> tower::Layer<S> for AroundLayer {
    type Service = Around<S>;

    fn layer(&self, inner: S) -> Around<S> {
        Around { inner, metrics: self.metrics.clone(), production: self.production }
    }
}

#[derive(Clone)]
pub struct Around<S> {
    inner: S,
    metrics: Arc<Metrics>,
    production: bool,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S> tower::Service<Request> for Around<S>
where
    S: tower::Service<Request, Response = axum::response::Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = Instant::now();
        let id = req
            .headers()
            .get("x-request-id")
            .filter(|v| {
                v.len() <= 64
                    && v.as_bytes().iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            })
            .cloned();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let metrics = self.metrics.clone();
        let production = self.production;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            finish(&mut res, id, start, &metrics, production, &method, &uri);
            Ok(res)
        })
    }
}

fn finish(
    res: &mut axum::response::Response,
    id: Option<HeaderValue>,
    start: Instant,
    metrics: &Metrics,
    production: bool,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
) {
    let id = id.unwrap_or_else(|| {
        let n = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", *PROCESS_TAG))
            .unwrap_or(HeaderValue::from_static("-"))
    });
    let path = uri.path();
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    let status = res.status();
    if let Some(err) = res.extensions_mut().remove::<AppError>() {
        set_error_body(res, &err, production);
        let rid = id.to_str().unwrap_or("");
        if status.is_server_error() {
            tracing::error!(%method, %path, request_id = rid, code = err.code.as_str(), error = %err.message, "request failed");
        } else {
            tracing::debug!(%method, %path, request_id = rid, code = err.code.as_str(), "request refused");
        }
    } else if status.is_client_error() && plain_text(res) {
        // A framework rejection (a malformed query string, say): keep the contract's format.
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => Code::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::UnsupportedMediaType,
            StatusCode::NOT_FOUND => Code::RouteNotFound,
            StatusCode::METHOD_NOT_ALLOWED => Code::MethodNotAllowed,
            StatusCode::UNPROCESSABLE_ENTITY => Code::ValidationFailed,
            _ => Code::BadRequest,
        };
        let err = AppError::new(code, status.canonical_reason().unwrap_or("bad request"));
        set_error_body(res, &err, production);
    }
    if status.is_client_error() {
        metrics.client_errors.fetch_add(1, Ordering::Relaxed);
    } else if status.is_server_error() {
        metrics.server_errors.fetch_add(1, Ordering::Relaxed);
    }
    let elapsed = start.elapsed();
    let h = res.headers_mut();
    h.reserve(6);
    h.insert("x-request-id", id);
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={:.3}", elapsed.as_secs_f64() * 1000.0))
    {
        h.insert("server-timing", v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let html = h.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    tracing::trace!(%method, %path, status = status.as_u16(), micros = elapsed.as_micros() as u64, "request");
}

/// The answer to a request whose handler panicked: our 500 `INTERNAL` (the body is
/// rendered by `AroundLayer`), with the panic logged instead of a dropped connection.
fn panic_answer(err: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let what = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(panic = what, "a request handler panicked");
    AppError::internal("internal error").into_response()
}

fn plain_text(res: &axum::response::Response) -> bool {
    res.headers().get(header::CONTENT_TYPE).is_none_or(|v| v.as_bytes().starts_with(b"text/plain"))
}

fn set_error_body(res: &mut axum::response::Response, err: &AppError, production: bool) {
    let body = serde_json::to_vec(&err.body(production)).unwrap_or_default();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().remove(header::CONTENT_LENGTH);
    *res.body_mut() = Body::from(body);
}

/// Starts serving on `listener` until `shutdown` resolves, then drains: the listener is
/// closed, idle connections are closed, and requests in flight get
/// `server.shutdown_grace_secs` to finish before their connections are dropped. A dropped
/// request was never answered, so nothing acknowledged is lost; the caller then stops the
/// writer, which commits what it has queued.
///
/// Connections are served by hyper directly (not `axum::serve`) so that they can be
/// bounded: headers (and the idle time between two requests on a kept-alive connection)
/// must arrive within `server.header_timeout_secs`; bodies are bounded by `read_body`.
pub async fn serve(
    services: Arc<Services>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use std::time::Duration;
    let server = services.config.server.clone();
    let state = AppState(Arc::new(Shared {
        limits: limits::Limits::new(&services.config.limits),
        metrics: Arc::new(Metrics::default()),
        trusted_proxies: services.config.trusted_proxies(),
        services,
    }));
    let app = app(state);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(server.header_timeout_secs));
    // Three signals to the connection tasks: start a graceful close (`drain`), give up on
    // it (`abort`); and `open`, whose receivers the tasks hold, counts them.
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(());
    let (abort_tx, abort_rx) = tokio::sync::watch::channel(());
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::error!(error = %e, "cannot accept a connection");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let router = app.clone();
        let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            tower::Service::call(&mut router.clone(), req)
        });
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let (mut drain, mut abort, open) = (drain_rx.clone(), abort_rx.clone(), open_rx.clone());
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::trace!(error = %e, "connection ended");
                    }
                    return;
                }
                _ = drain.changed() => conn.as_mut().graceful_shutdown(),
            }
            tokio::select! {
                _ = conn => {}
                _ = abort.changed() => tracing::debug!(%peer, "dropping a connection at shutdown"),
            }
            drop(open);
        });
    }
    drop(listener);
    drop((drain_rx, abort_rx, open_rx));
    drain_tx.send_replace(());
    let grace = Duration::from_secs(server.shutdown_grace_secs);
    if tokio::time::timeout(grace, open_tx.closed()).await.is_err() {
        tracing::warn!(
            connections = open_tx.receiver_count(),
            "shutdown: grace period over, dropping the connections still open"
        );
        abort_tx.send_replace(());
        // The tasks only have to drop their connections now; a moment is plenty.
        let _ = tokio::time::timeout(Duration::from_secs(1), open_tx.closed()).await;
    }
    Ok(())
}

/// Accept errors that concern one connection (the peer gave up), not the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_our_json_500() {
        async fn boom() -> &'static str {
            panic!("store exploded")
        }
        let app: Router = Router::new()
            .route("/boom", axum::routing::get(boom))
            .route("/fine", axum::routing::get(|| async { "ok" }))
            .layer(CatchPanicLayer::custom(panic_answer))
            .layer(AroundLayer { metrics: Arc::new(Metrics::default()), production: true });
        let res = app
            .clone()
            .oneshot(Request::builder().uri("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        assert!(res.headers().contains_key("x-request-id"));
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "INTERNAL", "{v}");
        assert!(!v.to_string().contains("exploded"), "the panic message stays in the log: {v}");
        let ok = app.oneshot(Request::builder().uri("/fine").body(Body::empty()).unwrap());
        assert_eq!(ok.await.unwrap().status(), StatusCode::OK, "the server keeps serving");
    }
}
