//! The delivery worker: sends due deliveries, signed, with persisted exponential-backoff
//! retries, and watches results for one-off events (winner found, SRM detected).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

use super::{Webhooks, signature};
use crate::service::analytics::{Analysis, Analytics};
use crate::service::catalog::{Catalog, Entry};
use crate::service::notifications::Notifications;
use crate::service::now_ms;
use crate::service::outbound::{self, Client, describe};
use crate::store::StoreError;
use crate::store::api::WebhookStore;
use crate::store::webhooks::{Attempt, Delivery, DeliveryState, Webhook};

const MAX_ATTEMPTS: usize = 8;

/// Deliveries in flight at once, in all: receivers answer in parallel, so one account's
/// slow receivers delay no one else's deliveries.
pub const MAX_IN_FLIGHT: usize = 32;
/// ... per account, so one account cannot take every slot.
pub const MAX_IN_FLIGHT_PER_OWNER: usize = 8;
/// ... per receiver (scheme, host and port), so one receiver is not flooded.
pub const MAX_IN_FLIGHT_PER_HOST: usize = 4;

/// The deliveries being attempted now, and how many per owner and per receiver. A
/// delivery in here is not picked again by the next pass.
#[derive(Default)]
struct InFlight {
    ids: HashSet<Uuid>,
    owners: HashMap<Uuid, usize>,
    hosts: HashMap<String, usize>,
}

impl InFlight {
    fn try_take(&mut self, id: Uuid, owner: Uuid, host: &str) -> bool {
        if self.ids.contains(&id)
            || self.ids.len() >= MAX_IN_FLIGHT
            || self.owners.get(&owner).copied().unwrap_or(0) >= MAX_IN_FLIGHT_PER_OWNER
            || self.hosts.get(host).copied().unwrap_or(0) >= MAX_IN_FLIGHT_PER_HOST
        {
            return false;
        }
        self.ids.insert(id);
        *self.owners.entry(owner).or_default() += 1;
        *self.hosts.entry(host.to_string()).or_default() += 1;
        true
    }

    fn release(&mut self, id: Uuid, owner: Uuid, host: &str) {
        self.ids.remove(&id);
        if let Some(n) = self.owners.get_mut(&owner) {
            *n -= 1;
            if *n == 0 {
                self.owners.remove(&owner);
            }
        }
        if let Some(n) = self.hosts.get_mut(host) {
            *n -= 1;
            if *n == 0 {
                self.hosts.remove(host);
            }
        }
    }
}

/// A delivery's place in [`InFlight`], given back (and the worker woken for the next
/// pass) when the attempt is over and saved, however its task ends.
struct Slot {
    flight: Arc<Mutex<InFlight>>,
    wake: Arc<tokio::sync::Notify>,
    id: Uuid,
    owner: Uuid,
    host: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(self.id, self.owner, &self.host);
        self.wake.notify_one();
    }
}

/// Where a delivery goes, for the per-receiver bound: scheme, host and port.
fn receiver(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(u) => {
            let scheme = u.scheme_str().unwrap_or("");
            let port = u.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
            format!("{scheme}://{}:{port}", u.host().unwrap_or("").to_ascii_lowercase())
        }
        Err(_) => url.to_string(),
    }
}

struct Worker {
    hooks: Webhooks,
    catalog: Arc<Catalog>,
    analytics: Analysis,
    notices: Notifications,
    flight: Arc<Mutex<InFlight>>,
}

impl Worker {
    /// One pass over the due deliveries: starts an attempt for each one that is not in
    /// flight already, as far as the bounds allow; the rest wait for a later pass (each
    /// attempt that ends wakes the worker).
    async fn deliver_due(&self, client: &Client) {
        let store = &self.hooks.store;
        let due = match store.due_deliveries(now_ms()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhook queue");
                return;
            }
        };
        for d in due {
            if self.flight.lock().unwrap_or_else(|e| e.into_inner()).ids.contains(&d.id) {
                continue;
            }
            let hook = match store.webhook(d.webhook_id) {
                Ok(Some(h)) => h,
                _ => continue,
            };
            let host = receiver(&hook.url);
            if !self
                .flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_take(d.id, hook.owner, &host)
            {
                continue;
            }
            let slot = Slot {
                flight: self.flight.clone(),
                wake: self.hooks.deliveries_due.clone(),
                id: d.id,
                owner: hook.owner,
                host,
            };
            let (hooks, client) = (self.hooks.clone(), client.clone());
            tokio::spawn(async move {
                attempt(&hooks, &client, hook, d).await;
                drop(slot);
            });
        }
    }

    /// Emits winner-found and SRM events when an experiment's results turn that way, each
    /// with its email to the owner.
    async fn watch_results(&self) {
        for e in self.catalog.all().iter().filter(|e| e.serving()) {
            let Some(a) = self.analytics.live(&e.exp) else { continue };
            if a.recommendation.decision == crate::engine::decision::Decision::DeclareWinner {
                let data = json!({"recommendation": a.recommendation});
                self.emit(e, "experiment.winner_found", data, &a).await;
            }
            if a.srm.mismatch {
                let data = json!({"srm": a.srm});
                self.emit(e, "experiment.srm_detected", data, &a).await;
            }
        }
    }

    async fn emit(&self, e: &Entry, event: &'static str, data: serde_json::Value, a: &Analytics) {
        // Most passes find the event emitted long ago: skip rendering its email again.
        if self.hooks.emitted(e.exp.id, event).unwrap_or(false) {
            return;
        }
        let emails = match self.notices.emails(event, &e.exp, Some(a)) {
            Ok(m) => m,
            Err(err) => {
                tracing::error!(error = %err, "cannot prepare a notification email");
                vec![]
            }
        };
        match self.hooks.emit_once(e.exp.owner, event, e.exp.id, data, emails).await {
            Ok(n) => self.notices.queued(n),
            Err(err) => tracing::error!(error = %err, event, "cannot queue an event"),
        }
    }
}

/// One attempt at a delivery, then its record saved: delivered, or retried later with
/// exponential backoff, or failed after [`MAX_ATTEMPTS`].
async fn attempt(hooks: &Webhooks, client: &Client, hook: Webhook, mut d: Delivery) {
    let result = match hooks.check_target(&hook.url).await {
        Ok(()) => match hooks.secret(hook.clone()).await {
            Ok(secret) => send(client, &hook, &secret, &d).await,
            // Shutting down: the delivery stays as it is, for the next start.
            Err(StoreError::WriterGone) => return,
            Err(e) => Err(e.to_string()),
        },
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
    if let Err(e) = hooks.store.save_delivery(d).await {
        tracing::error!(error = %e, delivery = %id, "cannot save a webhook delivery");
    }
}

async fn send(client: &Client, hook: &Webhook, secret: &str, d: &Delivery) -> Result<u16, String> {
    let req = hyper::Request::post(&hook.url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("samplit/", env!("CARGO_PKG_VERSION")))
        .header("x-samplit-event", d.event.as_str())
        .header("x-samplit-delivery", d.id.to_string())
        .header("x-samplit-signature", signature(secret, d.body.as_bytes()))
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
pub async fn run(
    hooks: Webhooks,
    catalog: Arc<Catalog>,
    analytics: Analysis,
    notices: Notifications,
    client: Client,
) {
    let w = Worker { hooks, catalog, analytics, notices, flight: Default::default() };
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
