//! Webhooks: subscriptions, signed deliveries with persisted exponential-backoff retries,
//! and the watcher that turns results into one-off events (winner found, SRM detected).

use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use super::auth::Principal;
use super::{Services, now_ms, rfc3339};
use crate::error::{AppError, AppResult, Code};
use crate::store::webhooks::{Attempt, Delivery, Webhook};

pub const EVENTS: &[&str] = &[
    "experiment.started",
    "experiment.paused",
    "experiment.resumed",
    "experiment.completed",
    "experiment.archived",
    "experiment.winner_found",
    "experiment.srm_detected",
];
const MAX_ATTEMPTS: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(10);

/// HMAC-SHA256 of the raw body keyed by the secret, as `sha256=<hex>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                || v.octets()[0] == 100 && (v.octets()[1] & 0xc0) == 64 // CGNAT 100.64/10
        }
        IpAddr::V6(v) => {
            v.is_loopback()
                || v.is_unspecified()
                || (v.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v.to_ipv4_mapped().is_some_and(|m| private(IpAddr::V4(m)))
        }
    }
}

/// `host:port` of an http URL.
fn authority(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?;
    let auth = rest.split(['/', '?', '#']).next()?;
    if auth.is_empty() || auth.contains('@') {
        return None;
    }
    match auth.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?))
        }
        _ => Some((auth.trim_matches(['[', ']']).to_string(), 80)),
    }
}

impl Services {
    /// Refuses URLs that resolve to loopback or private addresses unless allowed; checked
    /// at creation and again before every delivery (DNS can change).
    async fn check_target(&self, url: &str) -> AppResult<()> {
        if url.starts_with("https://") {
            return Err(AppError::validation(
                "url",
                "https webhook URLs are not supported by this build yet; use http:// \
                 (behind a TLS-terminating proxy if the receiver is remote)",
            ));
        }
        let (host, port) = authority(url)
            .filter(|_| url.len() <= 2048)
            .ok_or_else(|| AppError::validation("url", "must be an http:// URL with a host"))?;
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| AppError::validation("url", format!("cannot resolve {host}: {e}")))?
            .collect();
        if addrs.is_empty() {
            return Err(AppError::validation("url", format!("{host} has no address")));
        }
        if !self.config.webhooks.allow_private && addrs.iter().any(|a| private(a.ip())) {
            return Err(AppError::validation(
                "url",
                "resolves to a loopback or private address (set webhooks.allow_private to allow)",
            ));
        }
        Ok(())
    }

    pub async fn create_webhook(
        &self,
        who: &Principal,
        url: String,
        events: Vec<String>,
    ) -> AppResult<Value> {
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
            created_at: now_ms(),
        };
        self.store.insert_webhook(&hook)?;
        Ok(json!({"id": hook.id, "url": hook.url, "events": hook.events, "secret": hook.secret,
                  "created_at": rfc3339(hook.created_at)}))
    }

    pub fn list_webhooks(&self, who: &Principal) -> AppResult<Value> {
        let items: Vec<Value> = self
            .store
            .webhooks(Some(who.id()))?
            .iter()
            .map(|h| json!({"id": h.id, "url": h.url, "events": h.events, "created_at": rfc3339(h.created_at)}))
            .collect();
        Ok(json!({"total": items.len(), "items": items}))
    }

    fn owned_webhook(&self, who: &Principal, id: Uuid) -> AppResult<Webhook> {
        self.store
            .webhook(id)?
            .filter(|h| h.owner == who.id())
            .ok_or_else(|| AppError::new(Code::RouteNotFound, "no such webhook"))
    }

    pub fn delete_webhook(&self, who: &Principal, id: Uuid) -> AppResult<()> {
        self.owned_webhook(who, id)?;
        Ok(self.store.delete_webhook(id)?)
    }

    pub fn webhook_deliveries(&self, who: &Principal, id: Uuid) -> AppResult<Value> {
        self.owned_webhook(who, id)?;
        let items: Vec<Value> = self
            .store
            .deliveries(id)?
            .iter()
            .map(|d| {
                let attempts: Vec<Value> = d
                    .attempts
                    .iter()
                    .map(|a| json!({"at": rfc3339(a.at), "status_code": a.status_code, "error": a.error}))
                    .collect();
                json!({"id": d.id, "event": d.event, "state": d.state, "attempts": attempts,
                       "next_attempt_at": super::opt_rfc3339(d.next_attempt_at),
                       "created_at": rfc3339(d.created_at)})
            })
            .collect();
        Ok(json!({"total": items.len(), "items": items}))
    }

    /// Queues `event` for every webhook of `owner` that subscribes to it. With `once`, the
    /// event is emitted at most once per experiment (winner found, SRM detected).
    pub fn emit(
        &self,
        owner: Uuid,
        event: &'static str,
        exp: Uuid,
        data: Value,
        once: bool,
    ) -> AppResult<()> {
        let hooks: Vec<Webhook> = self
            .store
            .webhooks(Some(owner))?
            .into_iter()
            .filter(|h| h.events.iter().any(|e| e == event))
            .collect();
        let now = now_ms();
        let deliveries: Vec<Delivery> = hooks
            .iter()
            .map(|h| {
                let id = Uuid::new_v4();
                let body = json!({"id": id, "event": event, "at": rfc3339(now), "experiment_id": exp, "data": data});
                Delivery {
                    id,
                    webhook_id: h.id,
                    event: event.to_string(),
                    body: body.to_string(),
                    state: "pending".into(),
                    attempts: vec![],
                    next_attempt_at: Some(now),
                    created_at: now,
                }
            })
            .collect();
        if deliveries.is_empty() && !once {
            return Ok(());
        }
        let queued = self.store.enqueue(&deliveries, once.then_some((exp, event)))?;
        if queued && !deliveries.is_empty() {
            self.deliveries_due.notify_one();
        }
        Ok(())
    }

    /// One pass over the due deliveries.
    async fn deliver_due(&self, client: &Client) {
        let due = match self.store.due_deliveries(now_ms()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhook queue");
                return;
            }
        };
        for mut d in due {
            let hook = match self.store.webhook(d.webhook_id) {
                Ok(Some(h)) => h,
                _ => continue,
            };
            let result = match self.check_target(&hook.url).await {
                Ok(()) => send(client, &hook, &d).await,
                Err(e) => Err(e.message),
            };
            let at = now_ms();
            match result {
                Ok(code) if (200..300).contains(&code) => {
                    d.attempts.push(Attempt { at, status_code: Some(code), error: None });
                    d.state = "delivered".into();
                    d.next_attempt_at = None;
                }
                other => {
                    let (status_code, error) = match other {
                        Ok(code) => (Some(code), None),
                        Err(e) => (None, Some(e)),
                    };
                    d.attempts.push(Attempt { at, status_code, error });
                    if d.attempts.len() >= MAX_ATTEMPTS {
                        d.state = "failed".into();
                        d.next_attempt_at = None;
                    } else {
                        // 1 s, 2 s, 4 s ... doubling, at most an hour.
                        let backoff = 1000i64 << (d.attempts.len() - 1).min(12);
                        d.next_attempt_at = Some(at + backoff.min(3_600_000));
                    }
                }
            }
            if let Err(e) = self.store.save_delivery(&d) {
                tracing::error!(error = %e, delivery = %d.id, "cannot save a webhook delivery");
            }
        }
    }

    /// Emits winner-found and SRM events when an experiment's results turn that way.
    fn watch_results(&self) {
        for e in self.catalog.all().iter().filter(|e| e.serving()) {
            let Some(snap) = self.writer.live().get(e.exp.id) else { continue };
            if snap.state.visitors() == 0 {
                continue;
            }
            let a = self.analyse(&e.exp, &snap.state);
            if a["recommendation"]["decision"] == "declare_winner" {
                let data = json!({"recommendation": a["recommendation"]});
                let _ = self.emit(e.exp.owner, "experiment.winner_found", e.exp.id, data, true);
            }
            if a["srm"]["mismatch"] == true {
                let data = json!({"srm": a["srm"]});
                let _ = self.emit(e.exp.owner, "experiment.srm_detected", e.exp.id, data, true);
            }
        }
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

async fn send(client: &Client, hook: &Webhook, d: &Delivery) -> Result<u16, String> {
    let req = hyper::Request::post(&hook.url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("samplit/", env!("CARGO_PKG_VERSION")))
        .header("x-samplit-event", d.event.as_str())
        .header("x-samplit-delivery", d.id.to_string())
        .header("x-samplit-signature", signature(&hook.secret, d.body.as_bytes()))
        .body(Full::new(Bytes::from(d.body.clone())))
        .map_err(|e| e.to_string())?;
    let res = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    // Read (and drop) a bounded body so the connection can be reused.
    let _ = tokio::time::timeout(
        TIMEOUT,
        http_body_util::Limited::new(res.into_body(), 64 * 1024).collect(),
    )
    .await;
    Ok(status)
}

/// The delivery worker and the results watcher; runs for the life of the server.
pub async fn run(services: Arc<Services>) {
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut watch = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = services.deliveries_due.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = watch.tick() => services.watch_results(),
        }
        services.deliver_due(&client).await;
    }
}
