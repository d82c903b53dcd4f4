//! POST /webhooks/{id}/test: a `webhook.test` delivery, queued, signed and retried like any
//! other, so an owner can check their receiver and its signature check before a real event.

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{DeliveryView, Webhooks};
use crate::error::AppResult;
use crate::service::accounts::Principal;
use crate::service::{now_ms, rfc3339};
use crate::store::api::WebhookStore;
use crate::store::webhooks::{Delivery, DeliveryState};

/// The event name; not one a webhook subscribes to, since it goes to the one webhook asked.
pub const TEST_EVENT: &str = "webhook.test";

/// The body of a test delivery: the shape of every delivery, without an experiment.
#[derive(Serialize)]
struct TestBody<'a> {
    id: Uuid,
    event: &'a str,
    at: String,
    experiment_id: Option<Uuid>,
    data: Value,
}

impl Webhooks {
    /// Queues a signed `webhook.test` delivery to the caller's webhook `id` (another's
    /// answers 404) and wakes the worker; the delivery log shows how it went.
    pub async fn send_test(&self, who: &Principal, id: Uuid) -> AppResult<DeliveryView> {
        let hook = self.owned_webhook(who, id)?;
        let now = now_ms();
        let delivery_id = Uuid::new_v4();
        let body = TestBody {
            id: delivery_id,
            event: TEST_EVENT,
            at: rfc3339(now),
            experiment_id: None,
            data: json!({
                "webhook_id": hook.id,
                "message": "A test event from Samplit: your endpoint is reachable.",
            }),
        };
        let d = Delivery {
            id: delivery_id,
            webhook_id: hook.id,
            event: TEST_EVENT.to_string(),
            body: serde_json::to_string(&body).unwrap_or_default(),
            state: DeliveryState::Pending,
            attempts: vec![],
            next_attempt_at: Some(now),
            created_at: now,
        };
        self.store.enqueue(vec![d.clone()], None).await?;
        self.deliveries_queued(1);
        tracing::info!(webhook = %hook.id, delivery = %delivery_id, "webhook test queued");
        Ok(DeliveryView::from(d))
    }
}
