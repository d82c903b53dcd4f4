//! Webhook subscriptions and deliveries. A delivery is stored before it is attempted and
//! stays in the retry queue until it succeeds or runs out of attempts, so a restart
//! resumes it.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tables::{DELIVERIES, EVENT_MARKS, PENDING, WEBHOOKS};
use super::{Store, StoreResult, corrupt};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Webhook {
    pub id: Uuid,
    pub owner: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub created_at: i64,
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
    pub(in crate::store) fn insert_webhook(&self, hook: &Webhook) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        w.open_table(WEBHOOKS)?.insert(hook.id.as_u128(), json(hook).as_slice())?;
        w.commit()?;
        Ok(())
    }

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
