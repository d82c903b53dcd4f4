//! /simulate: the public simulator.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;

use super::extract::{ApiJson, ClientIp};
use super::{ApiResult, AppState};
use crate::error::AppError;
use crate::service::simulate::{self, SimRequest, Simulation};

pub fn router() -> Router<AppState> {
    Router::new().route("/simulate", post(run))
}

static SIMULATIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// POST /simulate: public, rate-limited per IP, CPU work off the async workers.
async fn run(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<SimRequest>,
) -> ApiResult<Json<Simulation>> {
    s.limits.simulate.check(&ip.to_string())?;
    let plan = simulate::plan(req, s.services.config.engine.floor)?;
    if plan.refresh_work() > simulate::PUBLIC_REFRESH_BUDGET {
        return Err(AppError::validation(
            "update_every",
            "too many weight refreshes for one request: raise update_every or lower visitors, \
             repetitions or arms (or run `samplit simulate` locally)",
        ));
    }
    // One simulation at a time, so the public endpoint cannot starve the hot path's cores.
    let _permit = SIMULATIONS.acquire().await.map_err(|e| AppError::internal(e.to_string()))?;
    let out = crate::service::blocking(move || Ok(simulate::execute(&plan, &mut |_| {}))).await?;
    Ok(Json(out))
}
