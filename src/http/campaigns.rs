//! Campaign waves (owner, authenticated) and the public open pixel and click redirect.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa::ToSchema;

use super::experiments::exp_id;
use super::extract::{ApiJson, Auth, ClientIp};
use super::{ApiResult, AppState};
use crate::error::{AppError, Code};
use crate::service::campaigns::{WaveAnswer, WaveList};

/// Under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new().route("/experiments/{id}/waves", post(send_wave).get(list_waves))
}

/// At the root, public: the URLs that go into emails and push messages.
pub fn public_router() -> Router<AppState> {
    Router::new().route("/o/{file}", get(open)).route("/c/{token}", get(click))
}

/// The body of POST /experiments/{id}/waves.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveBody {
    /// Recipient ids (1–128 printable characters each), 1 to 10,000, no repeats.
    pub recipients: Vec<String>,
    /// Absolute http(s) URLs, at most 20; each recipient gets them rewritten to click links.
    #[serde(default)]
    pub links: Vec<String>,
}

async fn send_wave(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<WaveBody>,
) -> ApiResult<(StatusCode, Json<WaveAnswer>)> {
    let exp = exp_id(&id)?;
    let answer = s.services.campaigns.send_wave(&p, exp, b.recipients, b.links).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn list_waves(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<WaveList>> {
    Ok(Json(s.services.campaigns.list_waves(&p, exp_id(&id)?)?))
}

/// The smallest transparent GIF: 1×1, one colour.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn limit(s: &AppState, ip: std::net::IpAddr) -> ApiResult<()> {
    s.limits.tracker_ip.check_lazy(|| ip.to_string())?;
    Ok(())
}

async fn open(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    limit(&s, ip)?;
    let token = file
        .strip_suffix(".gif")
        .ok_or_else(|| AppError::new(Code::InvalidToken, "this link is not one Samplit made"))?;
    s.services.campaigns.open(token).await?;
    let mut res = PIXEL.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    // Each load is a signal; a cached pixel would hide later opens of other recipients'
    // copies behind a proxy (and the first one counts anyway).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

async fn click(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    limit(&s, ip)?;
    let link = s.services.campaigns.click(&token).await?;
    // The link was checked when the wave was sent (http(s), no spaces or control
    // characters), so it is a valid header value; refuse rather than guess if not.
    let location = HeaderValue::from_str(&link)
        .map_err(|_| AppError::internal("a stored campaign link is not a valid header"))?;
    let mut res = StatusCode::FOUND.into_response();
    let h = res.headers_mut();
    h.insert(header::LOCATION, location);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(res)
}
