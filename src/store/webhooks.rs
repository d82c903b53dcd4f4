//! Webhook subscriptions and deliveries. A delivery is stored before it is attempted and
//! stays in the retry queue until it succeeds or runs out of attempts, so a restart
//! resumes it.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tables::{DELIVERIES, EVENT_MARKS, PENDING, WEBHOOKS};
use super::{Store, StoreResult, corrupt};
use crate::engine::crypto::StateKey;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Webhook {
    pub id: Uuid,
    pub owner: Uuid,
    pub url: String,
    pub events: Vec<String>,
    /// The signing secret in plain text: only in records written before secrets were sealed
    /// (migrated at start, see [`seal_plain_secrets`]) and in a hook not yet stored; empty
    /// once `sealed_secret` holds it.
    #[serde(default)]
    pub secret: String,
    /// The signing secret sealed with the state key (associated data: the webhook id), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
    pub created_at: i64,
}

impl Webhook {
    /// Moves a plain-text secret into `sealed_secret` under `key`.
    pub(crate) fn seal_secret(&mut self, key: &StateKey) {
        if !self.secret.is_empty() {
            let sealed = key.seal(self.id.as_bytes(), self.secret.as_bytes());
            self.sealed_secret = Some(hex::encode(sealed));
            self.secret.clear();
        }
    }

    /// The signing secret: opened with `key`, or a plain-text one as stored before sealing.
    pub fn open_secret(&self, key: &StateKey) -> StoreResult<String> {
        let Some(sealed) = &self.sealed_secret else { return Ok(self.secret.clone()) };
        hex::decode(sealed)
            .ok()
            .and_then(|b| key.open(self.id.as_bytes(), &b).ok())
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or_else(|| {
                corrupt(
                    "webhooks",
                    format!(
                        "the secret of webhook {} cannot be decrypted (wrong state key?)",
                        self.id
                    ),
                )
            })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub at: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

/// Where a delivery stands. Stored as its lowercase name (the records are JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    Delivered,
    /// Ran out of attempts.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event: String,
    /// The exact bytes sent and signed.
    pub body: String,
    pub state: DeliveryState,
    pub attempts: Vec<Attempt>,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

impl Store {
    pub(in crate::store) fn webhooks(&self, owner: Option<Uuid>) -> StoreResult<Vec<Webhook>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(WEBHOOKS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            let h: Webhook =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("webhooks", e))?;
            if owner.is_none_or(|o| o == h.owner) {
                out.push(h);
            }
        }
        out.sort_by_key(|h| h.created_at);
        Ok(out)
    }

    pub(in crate::store) fn webhook(&self, id: Uuid) -> StoreResult<Option<Webhook>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(WEBHOOKS)?;
        t.get(id.as_u128())?
            .map(|v| serde_json::from_slice(v.value()).map_err(|e| corrupt("webhooks", e)))
            .transpose()
    }

    /// Removes a webhook and its queued deliveries (the log stays until then deleted too).
    pub(in crate::store) fn delete_webhook(&self, id: Uuid) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        {
            w.open_table(WEBHOOKS)?.remove(id.as_u128())?;
            let mut deliveries = w.open_table(DELIVERIES)?;
            let mut pending = w.open_table(PENDING)?;
            let mut gone = Vec::new();
            for row in deliveries.iter()? {
                let (k, v) = row?;
                let d: Delivery =
                    serde_json::from_slice(v.value()).map_err(|e| corrupt("deliveries", e))?;
                if d.webhook_id == id {
                    gone.push(k.value());
                }
            }
            for k in gone {
                deliveries.remove(k)?;
                pending.remove(k)?;
            }
        }
        w.commit()?;
        Ok(())
    }

    /// Stores new deliveries and queues them, in one transaction; with `mark`, also records
    /// that a one-off event was emitted (false when it already was: nothing is queued).
    pub(in crate::store) fn enqueue(
        &self,
        ds: &[Delivery],
        mark: Option<(Uuid, &str)>,
    ) -> StoreResult<bool> {
        let w = self.db()?.begin_write()?;
        {
            if let Some((exp, event)) = mark {
                let mut marks = w.open_table(EVENT_MARKS)?;
                if marks.get((exp.as_u128(), event))?.is_some() {
                    return Ok(false);
                }
                marks.insert((exp.as_u128(), event), ())?;
            }
            enqueue_in(&w, ds)?;
        }
        w.commit()?;
        Ok(true)
    }

    /// Deliveries whose next attempt is due.
    pub(in crate::store) fn due_deliveries(&self, now: i64) -> StoreResult<Vec<Delivery>> {
        let r = self.db()?.begin_read()?;
        let pending = r.open_table(PENDING)?;
        let deliveries = r.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        for row in pending.iter()? {
            let (k, at) = row?;
            if at.value() <= now
                && let Some(v) = deliveries.get(k.value())?
            {
                out.push(serde_json::from_slice(v.value()).map_err(|e| corrupt("deliveries", e))?);
            }
        }
        Ok(out)
    }

    /// Saves a delivery after an attempt, keeping it queued while it is pending.
    pub(in crate::store) fn save_delivery(&self, d: &Delivery) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        {
            w.open_table(DELIVERIES)?.insert(d.id.as_u128(), json(d).as_slice())?;
            let mut pending = w.open_table(PENDING)?;
            match (d.state, d.next_attempt_at) {
                (DeliveryState::Pending, Some(at)) => {
                    pending.insert(d.id.as_u128(), at)?;
                }
                _ => {
                    pending.remove(d.id.as_u128())?;
                }
            }
        }
        w.commit()?;
        Ok(())
    }

    pub(in crate::store) fn deliveries(&self, webhook: Uuid) -> StoreResult<Vec<Delivery>> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            let d: Delivery =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("deliveries", e))?;
            if d.webhook_id == webhook {
                out.push(d);
            }
        }
        out.sort_by_key(|d| d.created_at);
        Ok(out)
    }
}

/// Stores and queues deliveries inside `w`, so an event commits with the change it reports.
pub(crate) fn enqueue_in(w: &redb::WriteTransaction, ds: &[Delivery]) -> StoreResult<()> {
    let mut deliveries = w.open_table(DELIVERIES)?;
    let mut pending = w.open_table(PENDING)?;
    for d in ds {
        deliveries.insert(d.id.as_u128(), json(d).as_slice())?;
        pending.insert(d.id.as_u128(), d.next_attempt_at.unwrap_or(d.created_at))?;
    }
    Ok(())
}

/// Stores a new webhook with its secret sealed under `key`, unless its owner has `max`
/// already (false, nothing stored). Runs on the writer thread, so the count and the insert
/// cannot race another creation, nor the seal a key rotation.
pub(crate) fn insert_sealed(
    store: &Store,
    key: &StateKey,
    mut hook: Webhook,
    max: usize,
) -> StoreResult<bool> {
    let w = store.db()?.begin_write()?;
    {
        let mut t = w.open_table(WEBHOOKS)?;
        let mut n = 0;
        for row in t.iter()? {
            let (_, v) = row?;
            let h: Webhook =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("webhooks", e))?;
            n += usize::from(h.owner == hook.owner);
        }
        if n >= max {
            return Ok(false);
        }
        hook.seal_secret(key);
        t.insert(hook.id.as_u128(), json(&hook).as_slice())?;
    }
    w.commit()?;
    Ok(true)
}

/// Re-seals every webhook secret from `old` to `new` inside `w` (a key rotation), sealing
/// plain-text ones too. Fails, changing nothing, if one does not open under `old`.
pub(crate) fn reseal_in(
    w: &redb::WriteTransaction,
    old: &StateKey,
    new: &StateKey,
) -> StoreResult<usize> {
    let mut t = w.open_table(WEBHOOKS)?;
    let mut hooks = Vec::new();
    for row in t.iter()? {
        let (_, v) = row?;
        let h: Webhook = serde_json::from_slice(v.value()).map_err(|e| corrupt("webhooks", e))?;
        hooks.push(h);
    }
    let n = hooks.len();
    for mut h in hooks {
        h.secret = h.open_secret(old)?;
        h.sealed_secret = None;
        h.seal_secret(new);
        t.insert(h.id.as_u128(), json(&h).as_slice())?;
    }
    Ok(n)
}

/// Seals the plain-text secrets of webhooks stored before secrets were sealed; returns how
/// many. Runs at start, on the writer thread.
pub(crate) fn seal_plain_secrets(store: &Store, key: &StateKey) -> StoreResult<usize> {
    let w = store.db()?.begin_write()?;
    let n = {
        let mut t = w.open_table(WEBHOOKS)?;
        let mut plain = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            let h: Webhook =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("webhooks", e))?;
            if h.sealed_secret.is_none() {
                plain.push(h);
            }
        }
        for h in &mut plain {
            h.seal_secret(key);
            t.insert(h.id.as_u128(), json(h).as_slice())?;
        }
        plain.len()
    };
    if n == 0 {
        w.abort()?;
    } else {
        w.commit()?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_secrets_still_open_and_sealed_ones_need_their_key_and_id() {
        // A record written before secrets were sealed.
        let id = Uuid::new_v4();
        let old = json!({"id": id, "owner": Uuid::nil(), "url": "http://x/", "events": [],
            "secret": "whsec_plain", "created_at": 1});
        let mut h: Webhook = serde_json::from_value(old).unwrap();
        let k = StateKey::new(&[1u8; 32]);
        assert_eq!(h.open_secret(&k).unwrap(), "whsec_plain");
        h.seal_secret(&k);
        assert!(h.secret.is_empty() && h.sealed_secret.is_some());
        assert!(!String::from_utf8(json(&h)).unwrap().contains("whsec_plain"));
        assert_eq!(h.open_secret(&k).unwrap(), "whsec_plain");
        assert!(h.open_secret(&StateKey::new(&[2u8; 32])).is_err(), "another key");
        let mut moved = h.clone();
        moved.id = Uuid::new_v4();
        assert!(moved.open_secret(&k).is_err(), "bound to the webhook id");
    }
}
