//! /overview: the owner's home page.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::extract::Auth;
use super::{ApiResult, AppState};
use crate::service::blocking;
use crate::service::overview::Overview;

pub fn router() -> Router<AppState> {
    Router::new().route("/overview", get(overview))
}

async fn overview(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Overview>> {
    let svc = s.services.clone();
    Ok(Json(blocking(move || svc.overview.overview(&p)).await?))
}
