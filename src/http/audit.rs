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
use crate::service::audit::{AuditPage, AuditVerification, VerifyScope};
use crate::service::blocking;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(audit)).route("/audit/verify", get(verify))
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

#[derive(Deserialize)]
struct VerifyQuery {
    scope: Option<String>,
}

/// GET /audit/verify: the caller's chain recomputed (`?scope=all`: every chain, admins).
async fn verify(
    State(s): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<VerifyQuery>,
) -> ApiResult<Json<AuditVerification>> {
    let scope = match q.scope.as_deref() {
        None | Some("") | Some("own") => VerifyScope::Own,
        Some("all") => VerifyScope::All,
        Some(_) => return Err(AppError::validation("scope", "must be own or all")),
    };
    let svc = s.services.clone();
    Ok(Json(blocking(move || svc.audit.verify(&p, scope)).await?))
}
