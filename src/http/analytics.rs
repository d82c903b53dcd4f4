//! /analytics: results and their history.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use super::experiments::exp_id;
use super::extract::Auth;
use super::{ApiResult, AppState};
use crate::service::analytics::{Analytics, Timeseries};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/analytics/experiments/{id}", get(results))
        .route("/analytics/experiments/{id}/timeseries", get(timeseries))
        .route("/simulate", axum::routing::post(simulate))
}

async fn results(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Analytics>> {
    Ok(Json(s.services.analytics(&p, exp_id(&id)?)?))
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
    Ok(Json(s.services.timeseries(&p, exp_id(&id)?, bucket)?))
}

static SIMULATIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// POST /simulate: public, rate-limited per IP, CPU work off the async workers.
pub async fn simulate(
    State(s): State<AppState>,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    super::extract::ApiJson(req): super::extract::ApiJson<crate::service::simulate::SimRequest>,
) -> ApiResult<Json<Value>> {
    s.limits.simulate.check(&ip.to_string())?;
    let plan = crate::service::simulate::plan(req, s.services.config.engine.floor)?;
    if plan.refresh_work() > crate::service::simulate::PUBLIC_REFRESH_BUDGET {
        return Err(crate::error::AppError::validation(
            "update_every",
            "too many weight refreshes for one request: raise update_every or lower visitors, \
             repetitions or arms (or run `samplit simulate` locally)",
        ));
    }
    // One simulation at a time, so the public endpoint cannot starve the hot path's cores.
    let _permit =
        SIMULATIONS.acquire().await.map_err(|e| crate::error::AppError::internal(e.to_string()))?;
    let out =
        crate::service::blocking(move || Ok(crate::service::simulate::execute(&plan, &mut |_| {})))
            .await?;
    Ok(Json(out))
}
