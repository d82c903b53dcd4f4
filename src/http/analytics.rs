//! /analytics: results and their history.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;

use super::experiments::exp_id;
use super::extract::Auth;
use super::{ApiResult, AppState};
use crate::service::analytics::{Analytics, Timeseries};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/analytics/experiments/{id}", get(results))
        .route("/analytics/experiments/{id}/timeseries", get(timeseries))
}

async fn results(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Analytics>> {
    Ok(Json(s.services.analytics.analytics(&p, exp_id(&id)?)?))
}

#[derive(Deserialize)]
struct SeriesQuery {
    bucket: Option<String>,
}

async fn timeseries(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> ApiResult<Json<Timeseries>> {
    let bucket = q.bucket.as_deref().unwrap_or("hour");
    Ok(Json(s.services.analytics.timeseries(&p, exp_id(&id)?, bucket)?))
}
