//! The delivery worker: sends due deliveries, signed, with persisted exponential-backoff
//! retries, and watches results for one-off events (winner found, SRM detected).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

use super::{Webhooks, signature};
use crate::service::analytics::Analysis;
use crate::service::catalog::Catalog;
use crate::service::now_ms;
use crate::service::outbound::{self, Client, describe};
use crate::store::api::WebhookStore;
use crate::store::webhooks::{Attempt, Delivery, DeliveryState, Webhook};

const MAX_ATTEMPTS: usize = 8;

struct Worker {
    hooks: Webhooks,
    catalog: Arc<Catalog>,
    analytics: Analysis,
}

impl Worker {
    /// One pass over the due deliveries.
    async fn deliver_due(&self, client: &Client) {
        let store = &self.hooks.store;
        let due = match store.due_deliveries(now_ms()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhook queue");
                return;
            }
        };
        for mut d in due {
            let hook = match store.webhook(d.webhook_id) {
                Ok(Some(h)) => h,
                _ => continue,
            };
            let result = match self.hooks.check_target(&hook.url).await {
                Ok(()) => send(client, &hook, &d).await,
                Err(e) => Err(e.message),
            };
            let at = now_ms();
            match result {
                Ok(code) if (200..300).contains(&code) => {
                    d.attempts.push(Attempt { at, status_code: Some(code), error: None });
                    d.state = DeliveryState::Delivered;
                    d.next_attempt_at = None;
                }
                other => {
                    let (status_code, error) = match other {
                        Ok(code) => (Some(code), None),
                        Err(e) => (None, Some(e)),
                    };
                    d.attempts.push(Attempt { at, status_code, error });
                    if d.attempts.len() >= MAX_ATTEMPTS {
                        d.state = DeliveryState::Failed;
                        d.next_attempt_at = None;
                    } else {
                        // 1 s, 2 s, 4 s ... doubling, at most an hour.
                        let backoff = 1000i64 << (d.attempts.len() - 1).min(12);
                        d.next_attempt_at = Some(at + backoff.min(3_600_000));
                    }
                }
            }
            let id = d.id;
            if let Err(e) = store.save_delivery(d).await {
                tracing::error!(error = %e, delivery = %id, "cannot save a webhook delivery");
            }
        }
    }

    /// Emits winner-found and SRM events when an experiment's results turn that way.
    async fn watch_results(&self) {
        for e in self.catalog.all().iter().filter(|e| e.serving()) {
            let Some(a) = self.analytics.live(&e.exp) else { continue };
            if a.recommendation.decision == crate::engine::decision::Decision::DeclareWinner {
                let data = json!({"recommendation": a.recommendation});
                let _ = self
                    .hooks
                    .emit_once(e.exp.owner, "experiment.winner_found", e.exp.id, data)
                    .await;
            }
            if a.srm.mismatch {
                let data = json!({"srm": a.srm});
                let _ = self
                    .hooks
                    .emit_once(e.exp.owner, "experiment.srm_detected", e.exp.id, data)
                    .await;
            }
        }
    }
}

async fn send(client: &Client, hook: &Webhook, d: &Delivery) -> Result<u16, String> {
    let req = hyper::Request::post(&hook.url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("samplit/", env!("CARGO_PKG_VERSION")))
        .header("x-samplit-event", d.event.as_str())
        .header("x-samplit-delivery", d.id.to_string())
        .header("x-samplit-signature", signature(&hook.secret, d.body.as_bytes()))
        .body(Full::new(Bytes::from(d.body.clone())))
        .map_err(|e| describe(&e))?;
    let res = tokio::time::timeout(outbound::TIMEOUT, client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| describe(&e))?;
    let status = res.status().as_u16();
    // Read (and drop) a bounded body so the connection can be reused.
    let _ = tokio::time::timeout(
        outbound::TIMEOUT,
        http_body_util::Limited::new(res.into_body(), 64 * 1024).collect(),
    )
    .await;
    Ok(status)
}

/// The delivery worker and the results watcher; runs for the life of the server. `client`
/// comes from [`outbound::client`], built once when the server starts.
pub async fn run(hooks: Webhooks, catalog: Arc<Catalog>, analytics: Analysis, client: Client) {
    let w = Worker { hooks, catalog, analytics };
    let mut watch = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = w.hooks.deliveries_due.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = watch.tick() => w.watch_results().await,
        }
        w.deliver_due(&client).await;
    }
}
