//! Webhooks: subscriptions, signed deliveries with persisted exponential-backoff retries,
//! and the watcher that turns results into one-off events (winner found, SRM detected).

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::Principal;
use super::outbound;
use super::{now_ms, rfc3339};
use crate::config::Config;
use crate::error::{AppError, AppResult, Code};
use crate::store::Store;
use crate::store::api::WebhookStore;
use crate::store::webhooks::{Delivery, DeliveryState, Webhook};
use crate::store::writer::Writer;

pub const EVENTS: &[&str] = &[
    "experiment.started",
    "experiment.paused",
    "experiment.resumed",
    "experiment.completed",
    "experiment.archived",
    "experiment.winner_found",
    "experiment.srm_detected",
];

/// How many webhooks one account may have; one more is refused (422 on `url`).
pub const MAX_WEBHOOKS_PER_OWNER: usize = 20;

/// HMAC-SHA256 of the raw body keyed by the secret, as `sha256=<hex>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A new webhook: `secret` signs its deliveries and is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewWebhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookView>,
    pub total: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub event: String,
    pub state: DeliveryState,
    pub attempts: Vec<AttemptView>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> DeliveryView {
        DeliveryView {
            id: d.id,
            event: d.event,
            state: d.state,
            attempts: d
                .attempts
                .into_iter()
                .map(|a| AttemptView {
                    at: rfc3339(a.at),
                    status_code: a.status_code,
                    error: a.error,
                })
                .collect(),
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            created_at: rfc3339(d.created_at),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
    pub total: usize,
}

/// The body of a delivery, exactly as signed and sent.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookEvent<'a> {
    pub id: Uuid,
    pub event: &'a str,
    pub at: String,
    pub experiment_id: Uuid,
    /// What the event reports, as the audit trail records it.
    #[schema(value_type = Object)]
    pub data: &'a Value,
}

pub mod test_event;
pub mod worker;

/// Webhook subscriptions and the events they receive.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    /// The state key seals the signing secrets at rest, and it lives on the writer thread
    /// (`Ctx::key`): secrets are sealed and opened there, through `exec`. That serialises
    /// every use of the key with `samplit keys rotate`, which re-seals them in the same
    /// transaction as the bandit states, so no secret is ever sealed or opened with a key
    /// that is being replaced (a copy of the key here could be, between commit and swap).
    writer: Writer,
    config: Arc<Config>,
    /// Wakes the delivery worker when deliveries are queued.
    deliveries_due: Arc<tokio::sync::Notify>,
}

impl Webhooks {
    pub fn new(store: Store, writer: Writer, config: Arc<Config>) -> Webhooks {
        Webhooks { store, writer, config, deliveries_due: Default::default() }
    }

    /// Seals the secrets of webhooks stored in plain text by an older version; at start.
    pub async fn seal_plain_secrets(&self) -> AppResult<usize> {
        let n = self.writer.exec(|ctx| Ok(ctx.seal_webhook_secrets()?.into())).await?;
        Ok(n.as_u64().unwrap_or(0) as usize)
    }

    /// The secret that signs `hook`'s deliveries, opened with the state key.
    pub(super) async fn secret(&self, hook: Webhook) -> crate::store::StoreResult<String> {
        let v = self.writer.exec(move |ctx| Ok(ctx.webhook_secret(&hook)?.into())).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Refuses URLs that resolve to loopback or private addresses unless allowed; checked
    /// at creation and again before every delivery (DNS can change).
    pub(super) async fn check_target(&self, url: &str) -> AppResult<()> {
        outbound::check_url(url, self.config.outbound_allows_private())
            .await
            .map_err(|m| AppError::validation("url", m))
    }

    pub async fn create_webhook(
        &self,
        who: &Principal,
        url: String,
        events: Vec<String>,
    ) -> AppResult<NewWebhook> {
        self.check_target(&url).await?;
        if events.is_empty() {
            return Err(AppError::validation("events", "needs at least one event"));
        }
        for (i, e) in events.iter().enumerate() {
            if !EVENTS.contains(&e.as_str()) {
                return Err(AppError::validation(
                    format!("events[{i}]"),
                    format!("must be one of {}", EVENTS.join(", ")),
                ));
            }
        }
        let hook = Webhook {
            id: Uuid::new_v4(),
            owner: who.id(),
            url,
            events,
            secret: format!("whsec_{}", super::secrets::random_hex32()),
            sealed_secret: None,
            created_at: now_ms(),
        };
        let stored = hook.clone();
        let added = self
            .writer
            .exec(move |ctx| Ok(ctx.insert_webhook(stored, MAX_WEBHOOKS_PER_OWNER)?.into()))
            .await?;
        if added != Value::Bool(true) {
            return Err(AppError::validation(
                "url",
                format!(
                    "an account may have at most {MAX_WEBHOOKS_PER_OWNER} webhooks; \
                     delete one before adding another"
                ),
            ));
        }
        Ok(NewWebhook {
            id: hook.id,
            url: hook.url,
            events: hook.events,
            secret: hook.secret,
            created_at: rfc3339(hook.created_at),
        })
    }

    pub fn list_webhooks(&self, who: &Principal) -> AppResult<WebhookList> {
        let items: Vec<WebhookView> = self
            .store
            .webhooks(Some(who.id()))?
            .into_iter()
            .map(|h| WebhookView {
                id: h.id,
                url: h.url,
                events: h.events,
                created_at: rfc3339(h.created_at),
            })
            .collect();
        Ok(WebhookList { total: items.len(), items })
    }

    fn owned_webhook(&self, who: &Principal, id: Uuid) -> AppResult<Webhook> {
        self.store
            .webhook(id)?
            .filter(|h| h.owner == who.id())
            .ok_or_else(|| AppError::new(Code::WebhookNotFound, "no such webhook"))
    }

    pub async fn delete_webhook(&self, who: &Principal, id: Uuid) -> AppResult<()> {
        self.owned_webhook(who, id)?;
        Ok(self.store.delete_webhook(id).await?)
    }

    pub fn webhook_deliveries(&self, who: &Principal, id: Uuid) -> AppResult<DeliveryList> {
        self.owned_webhook(who, id)?;
        let items: Vec<DeliveryView> =
            self.store.deliveries(id)?.into_iter().map(DeliveryView::from).collect();
        Ok(DeliveryList { total: items.len(), items })
    }

    /// The deliveries of `event` to every webhook of `owner` that subscribes to it, for the
    /// caller to store with the change they report (see `Store::put_experiment`).
    pub fn deliveries(
        &self,
        owner: Uuid,
        event: &str,
        exp: Uuid,
        data: &Value,
    ) -> AppResult<Vec<Delivery>> {
        let now = now_ms();
        Ok(self
            .store
            .webhooks(Some(owner))?
            .into_iter()
            .filter(|h| h.events.iter().any(|e| e == event))
            .map(|h| {
                let id = Uuid::new_v4();
                let body = WebhookEvent { id, event, at: rfc3339(now), experiment_id: exp, data };
                Delivery {
                    id,
                    webhook_id: h.id,
                    event: event.to_string(),
                    body: serde_json::to_string(&body).unwrap_or_default(),
                    state: DeliveryState::Pending,
                    attempts: vec![],
                    next_attempt_at: Some(now),
                    created_at: now,
                }
            })
            .collect())
    }

    /// Wakes the delivery worker after deliveries were stored.
    pub fn deliveries_queued(&self, n: usize) {
        if n > 0 {
            self.deliveries_due.notify_one();
        }
    }

    /// Queues a one-off event (winner found, SRM detected): at most once per experiment,
    /// with the owner's `emails` in the same transaction. Answers how many emails were new.
    pub async fn emit_once(
        &self,
        owner: Uuid,
        event: &'static str,
        exp: Uuid,
        data: Value,
        emails: Vec<crate::store::notifications::Email>,
    ) -> AppResult<usize> {
        use crate::store::api::NotificationStore;
        let deliveries = self.deliveries(owner, event, exp, &data)?;
        let n = deliveries.len();
        match self.store.enqueue_event(deliveries, emails, exp, event.to_string()).await? {
            Some(emailed) => {
                self.deliveries_queued(n);
                Ok(emailed)
            }
            None => Ok(0),
        }
    }

    /// Whether a one-off event was emitted already for `exp`.
    pub fn emitted(&self, exp: Uuid, event: &str) -> AppResult<bool> {
        use crate::store::api::NotificationStore;
        Ok(self.store.event_marked(exp, event)?)
    }
}
