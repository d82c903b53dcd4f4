//! /notifications: the caller's email status and the test email.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};

use super::extract::Auth;
use super::{ApiResult, AppState};
use crate::service::notifications::{NotificationStatus, TestSent};

pub fn router() -> Router<AppState> {
    Router::new().route("/notifications", get(status)).route("/notifications/test", post(test))
}

async fn status(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<NotificationStatus>> {
    Ok(Json(s.services.notifications.status(&p)?))
}

/// Sends at once (not queued): the answer says whether the mail server took it.
async fn test(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<TestSent>> {
    Ok(Json(s.services.notifications.send_test(&p).await?))
}
