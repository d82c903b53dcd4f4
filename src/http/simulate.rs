//! /simulate: the public simulator.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    let plan = simulate::plan(req, &s.services.config.engine)?;
    if plan.refresh_work() > simulate::PUBLIC_REFRESH_BUDGET {
        return Err(AppError::validation(
            "update_every",
            "too many weight refreshes for one request: raise update_every or lower visitors, \
             repetitions or arms (or run `samplit simulate` locally)",
        ));
    }
    // One simulation at a time, so the public endpoint cannot starve the hot path's cores.
    // The permit goes with the work into the blocking thread, so it is released when the
    // computation has stopped, not when this future is dropped.
    let permit = SIMULATIONS.acquire().await.map_err(|e| AppError::internal(e.to_string()))?;
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let flag = stop.0.clone();
    let out = crate::service::blocking(move || {
        let _permit = permit;
        simulate::execute(&plan, &mut |_| !flag.load(Ordering::Relaxed))
            .ok_or_else(|| AppError::internal("the simulation was stopped"))
    })
    .await?;
    drop(stop);
    Ok(Json(out))
}

/// Set when the request's future is dropped (the client went away, or shutdown gave up on
/// the connection): the simulation stops at its next progress check.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
