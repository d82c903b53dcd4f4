//! /webhooks: subscriptions and their delivery log.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{ApiJson, Auth};
use super::{ApiResult, AppState};
use crate::error::{AppError, Code};
use crate::service::webhooks::{DeliveryList, DeliveryView, NewWebhook, WebhookList};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", post(create).get(list))
        .route("/webhooks/{id}", delete(remove))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/test", post(send_test))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    pub url: String,
    /// Any of `crate::service::webhooks::EVENTS`.
    pub events: Vec<String>,
}

fn webhook_id(s: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(s).map_err(|_| AppError::new(Code::RouteNotFound, "no such webhook"))
}

async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<WebhookBody>,
) -> ApiResult<(StatusCode, Json<NewWebhook>)> {
    Ok((StatusCode::CREATED, Json(s.services.webhooks.create_webhook(&p, b.url, b.events).await?)))
}

async fn list(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<WebhookList>> {
    Ok(Json(s.services.webhooks.list_webhooks(&p)?))
}

async fn remove(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.services.webhooks.delete_webhook(&p, webhook_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deliveries(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryList>> {
    Ok(Json(s.services.webhooks.webhook_deliveries(&p, webhook_id(&id)?)?))
}

/// POST /webhooks/{id}/test: queues a signed `webhook.test` delivery (202, the delivery).
async fn send_test(
    State(s): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let d = s.services.webhooks.send_test(&p, webhook_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}
