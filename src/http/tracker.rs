//! The public tracker endpoints and the scripts a site loads.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{Auth, ClientIp, SiteKeyHeader, TrackerJson};
use super::{ApiResult, AppState, RawJson};
use crate::error::{AppError, Code};
use crate::service::tracker::{BatchAssignments, ConvertAnswer};

pub fn api_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tracker/assign", post(assign).options(preflight))
        .route("/api/v1/tracker/assign/batch", post(assign_batch).options(preflight))
        .route("/api/v1/tracker/convert", post(convert).options(preflight))
}

pub fn script_router() -> Router<AppState> {
    Router::new().route("/tracker.js", get(tracker_js)).route("/t/{file}", get(site_script))
}

/// Answered by the CORS layer before it gets here; the route only has to exist.
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

// Tracker bodies ignore unknown fields: a newer tracker.js cached in a browser may send more.
/// The body of POST /tracker/assign: an `experiment_id`, or a page `url` for every running
/// experiment whose target matches it.
#[derive(Deserialize, ToSchema)]
pub struct AssignBody {
    /// Or the `X-Samplit-Site-Key` header.
    #[serde(default)]
    pub site_key: Option<String>,
    #[serde(default)]
    pub experiment_id: Option<String>,
    pub user_id: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub context: Option<Value>,
    /// Answer the control (status `not_running`) instead of 409 when the experiment is not
    /// running.
    #[serde(default)]
    pub fallback: bool,
}

/// The site key from the body, else from `X-Samplit-Site-Key`; also applies the limits.
fn site_key(
    s: &AppState,
    body: Option<String>,
    header: Option<String>,
    ip: std::net::IpAddr,
) -> ApiResult<String> {
    s.limits.tracker_ip.check_lazy(|| ip.to_string())?;
    let key = body.or(header).ok_or_else(|| {
        AppError::new(Code::InvalidSiteKey, "site_key is required (body or X-Samplit-Site-Key)")
    })?;
    s.limits.tracker_site.check(&key)?;
    Ok(key)
}

fn experiment(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| AppError::new(Code::ExpNotFound, "experiment not found"))
}

async fn assign(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    SiteKeyHeader(header_key): SiteKeyHeader,
    TrackerJson(b): TrackerJson<AssignBody>,
) -> ApiResult<RawJson> {
    let key = site_key(&s, b.site_key, header_key, ip)?;
    if let Some(c) = &b.context {
        let max = s.services.config.limits.context_max_bytes;
        if serde_json::to_vec(c).map(|v| v.len()).unwrap_or(usize::MAX) > max {
            return Err(AppError::validation(
                "context",
                format!("must be at most {max} bytes of JSON"),
            ));
        }
    }
    let body = match (&b.experiment_id, &b.url) {
        (Some(id), _) => {
            s.services.tracker.assign(&key, experiment(id)?, &b.user_id, b.fallback).await?
        }
        (None, Some(url)) => s.services.tracker.assign_page(&key, &b.user_id, url).await?,
        (None, None) => {
            return Err(AppError::validation("experiment_id", "experiment_id or url is required"));
        }
    };
    Ok(RawJson(body))
}

/// The body of POST /tracker/assign/batch, sent with the owner's `Authorization`.
#[derive(Deserialize, ToSchema)]
pub struct BatchBody {
    /// Optional: if given (here or in `X-Samplit-Site-Key`), it must be the caller's.
    #[serde(default)]
    pub site_key: Option<String>,
    pub experiment_id: String,
    pub user_ids: Vec<String>,
}

/// Needs the owner's token (JWT or API key): the experiment must be the caller's (404).
async fn assign_batch(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Auth(p): Auth,
    SiteKeyHeader(header_key): SiteKeyHeader,
    TrackerJson(b): TrackerJson<BatchBody>,
) -> ApiResult<Json<BatchAssignments>> {
    s.limits.tracker_ip.check_lazy(|| ip.to_string())?;
    let key = b.site_key.or(header_key);
    if let Some(k) = &key {
        s.limits.tracker_site.check(k)?;
    }
    let exp = experiment(&b.experiment_id)?;
    Ok(Json(s.services.tracker.assign_batch(p.id(), key.as_deref(), exp, &b.user_ids).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct ConvertBody {
    #[serde(default)]
    pub site_key: Option<String>,
    pub experiment_id: String,
    pub user_id: String,
    /// Revenue or any other amount, summed per arm.
    #[serde(default)]
    pub value: Option<f64>,
    /// Another goal than the experiment's own: recorded apart, not in the posterior.
    #[serde(default)]
    pub goal: Option<String>,
}

async fn convert(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    SiteKeyHeader(header_key): SiteKeyHeader,
    TrackerJson(b): TrackerJson<ConvertBody>,
) -> ApiResult<Json<ConvertAnswer>> {
    let key = site_key(&s, b.site_key, header_key, ip)?;
    let exp = experiment(&b.experiment_id)?;
    Ok(Json(s.services.tracker.convert(&key, exp, &b.user_id, b.value, b.goal.as_deref()).await?))
}

fn js(body: String, cache: &'static str, status: StatusCode) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

fn tracker_source() -> String {
    super::assets::text("tracker.js")
        .unwrap_or_else(|| "/* samplit: tracker.js missing from the build */".into())
}

async fn tracker_js() -> Response {
    js(tracker_source(), "public, max-age=3600", StatusCode::OK)
}

/// `/t/{site_key}.js`: the site's settings (with the selectors to hide before first paint)
/// and the tracker in one synchronous response, cached briefly so a newly started
/// experiment reaches pages within a minute.
async fn site_script(State(s): State<AppState>, Path(file): Path<String>) -> Response {
    let key = file.strip_suffix(".js").unwrap_or(&file);
    match s.services.tracker.site_script(key, &tracker_source()) {
        Some(body) => js(body, "public, max-age=60", StatusCode::OK),
        None => js("/* samplit: unknown site key */".into(), "no-store", StatusCode::NOT_FOUND),
    }
}
