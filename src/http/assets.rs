//! The dashboard and tracker.js, embedded in the binary from `static/`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::{AppError, Code};

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

pub fn text(path: &str) -> Option<String> {
    Assets::get(path).map(|f| String::from_utf8_lossy(&f.data).into_owned())
}

/// Any GET that no route claimed: a file from `static/`, `/` being the dashboard. API paths
/// that match nothing answer our JSON 404.
pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") {
        return AppError::new(Code::RouteNotFound, format!("no route {path}")).into_response();
    }
    let file = match path.trim_start_matches('/') {
        "" => "index.html",
        "api-reference" => "api-reference.html",
        p => p,
    };
    let Some(asset) = Assets::get(file) else {
        return AppError::new(Code::RouteNotFound, format!("no route {path}")).into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&asset.metadata.sha256_hash()[..12]));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mime = asset.metadata.mimetype().to_string();
    let mut res = asset.data.into_owned().into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Unversioned file names: always revalidate (cheap with the ETag) so an upgrade shows at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
