//! Request extractors that speak our error format: JSON bodies (with the content type
//! checked and the size limited), bearer authentication, and the client address.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};

use super::AppState;
use crate::config::Cidr;
use crate::error::{AppError, Code};
use crate::service::accounts::Principal;

/// A JSON body for the management API: `application/json` only.
pub struct ApiJson<T>(pub T);

/// A JSON body for the tracker: `application/json`, or `text/plain` so that browsers can
/// send it (and `sendBeacon` it) without a CORS preflight.
pub struct TrackerJson<T>(pub T);

fn media_type(req: &Request) -> Option<String> {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Past the limit the rest of the body is still read (and dropped) up to this many times
/// the limit, so the client gets its 413 instead of a reset connection; beyond that the
/// connection is closed.
const DRAIN_FACTOR: usize = 16;

/// Reads a body of at most `server.body_limit_bytes` bytes (larger is a 413) that must
/// arrive within `server.body_timeout_secs` (a client that stops sending is a 408, and its
/// connection is closed: hyper does not reuse one whose body was left unread).
pub async fn read_body(
    body: axum::body::Body,
    server: &crate::config::ServerConfig,
) -> Result<Vec<u8>, AppError> {
    let within = std::time::Duration::from_secs(server.body_timeout_secs);
    tokio::time::timeout(within, read_limited(body, server.body_limit_bytes)).await.map_err(
        |_| {
            AppError::new(
                Code::RequestTimeout,
                format!("the body did not arrive within {} s", server.body_timeout_secs),
            )
        },
    )?
}

async fn read_limited(body: axum::body::Body, limit: usize) -> Result<Vec<u8>, AppError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut out = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| AppError::new(Code::BadRequest, format!("cannot read the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= limit {
                out.extend_from_slice(&data);
            } else if seen > limit.saturating_mul(DRAIN_FACTOR) {
                break;
            }
        }
    }
    if seen > limit {
        return Err(AppError::new(
            Code::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        ));
    }
    Ok(out)
}

async fn read_json<T: DeserializeOwned>(
    req: Request,
    server: &crate::config::ServerConfig,
) -> Result<T, AppError> {
    let bytes = read_body(req.into_body(), server).await?;
    parse_json(&bytes)
}
/// Syntax errors are 400; a well-formed body of the wrong shape is 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    // The fast path; only a failure pays for tracking the path of the offending field.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if path == "." { "body".to_string() } else { path };
            AppError::validation(field, inner.to_string())
        } else {
            AppError::new(Code::BadJson, format!("malformed JSON: {inner}"))
        }
    })
}

fn unsupported(allowed: &str) -> AppError {
    AppError::new(Code::UnsupportedMediaType, format!("the body must be sent as {allowed}"))
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        if media_type(&req).as_deref() != Some("application/json") {
            return Err(unsupported("application/json"));
        }
        read_json(req, &state.services.config.server).await.map(ApiJson)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for TrackerJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        match media_type(&req).as_deref() {
            Some("application/json") | Some("text/plain") => {}
            _ => return Err(unsupported("application/json or text/plain")),
        }
        read_json(req, &state.services.config.server).await.map(TrackerJson)
    }
}

/// The authenticated caller; also applies the per-token rate limit.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header =
            parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
                AppError::new(Code::Unauthorized, "missing Authorization: Bearer <token>")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::new(Code::Unauthorized, "expected Authorization: Bearer <token>")
            })?;
        if token.len() > 4096 {
            return Err(AppError::new(Code::Unauthorized, "invalid or expired token"));
        }
        state.limits.api.check_lazy(|| {
            use sha2::Digest;
            hex::encode(&sha2::Sha256::digest(token.as_bytes())[..12])
        })?;
        let principal = state.services.accounts.authenticate(token).await?;
        Ok(Auth(principal))
    }
}

/// The peer address of the connection.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(client_ip(peer, &parts.headers, &s.trusted_proxies)))
    }
}

/// The visitor behind trusted proxies: `X-Forwarded-For` read from the right (the nearest
/// hop), skipping trusted proxies; the first other address is the visitor. Anything left of
/// it was written by the visitor and is not believed. A garbled entry stops the walk.
pub fn client_ip(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut ip = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(a) => {
                ip = a;
                if !is_trusted(a) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    ip
}

/// `X-Samplit-Site-Key`, read without cloning the whole header map.
pub struct SiteKeyHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for SiteKeyHeader {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        Ok(SiteKeyHeader(
            parts
                .headers
                .get("x-samplit-site-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let mut h = axum::http::HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("1.2.3.4"), "nearest untrusted hop");
        assert_eq!(client_ip(ip("9.9.9.9"), &h, &trusted), ip("9.9.9.9"), "untrusted peer");
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"), "nothing trusted");
        h.insert("x-forwarded-for", "1.2.3.4, garbage".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"), "garbled: the peer");
        h.remove("x-forwarded-for");
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
    }
}
