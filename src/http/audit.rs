//! /audit: the caller's hash chain.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;
use uuid::Uuid;

use super::experiments::{Page, paging};
use super::extract::Auth;
use super::{ApiResult, AppState};
use crate::error::AppError;
use crate::service::audit::AuditPage;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(audit))
}

#[derive(Deserialize)]
struct AuditQuery {
    experiment_id: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// GET /audit: the caller's chain, oldest first, with the newest hash as `head`.
async fn audit(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let (limit, offset) = paging(&Page { limit: q.limit, offset: q.offset, status: None })?;
    let exp = match q.experiment_id.as_deref() {
        None | Some("") => None,
        Some(e) => Some(
            Uuid::parse_str(e)
                .map_err(|_| AppError::validation("experiment_id", "must be a UUID"))?,
        ),
    };
    Ok(Json(s.services.audit.audit_page(&p, exp, offset, limit)?))
}
