//! The email outbox: one record per (experiment, event, owner), stored with the change or
//! the one-off mark that raised the event, so an event queues its email exactly once and a
//! restart resumes what is still pending.
//!
//! The tables are created by the first write that needs them, and reads treat a missing
//! table as empty: a data file from before notifications needs no migration.

use redb::{ReadableDatabase, ReadableTable, TableError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::tables::{EMAIL_PENDING, EMAILS, EVENT_MARKS, EXPERIMENTS};
use super::webhooks::{Delivery, enqueue_in};
use super::{Store, StoreResult, audit, corrupt};
use crate::engine::model::Experiment;

/// Where an email stands. Stored as its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmailState {
    /// Waiting for its next attempt.
    Pending,
    Sent,
    /// Refused for good by the mail server, or out of attempts.
    Failed,
    /// Not sent: the owner turned this kind of email off (or was removed) before it went.
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailAttempt {
    pub at: i64,
    /// None: the mail server accepted it.
    pub error: Option<String>,
}

/// An email, rendered when its event happened (the numbers of that moment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Email {
    pub id: Uuid,
    pub owner: Uuid,
    pub experiment_id: Uuid,
    /// `experiment.winner_found`, `experiment.srm_detected` or `experiment.completed`.
    pub event: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub state: EmailState,
    pub attempts: Vec<EmailAttempt>,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
}

type Key<'a> = (u128, &'a str, u128);

impl Email {
    fn key(&self) -> Key<'_> {
        (self.experiment_id.as_u128(), self.event.as_str(), self.owner.as_u128())
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

fn decode(b: &[u8]) -> StoreResult<Email> {
    serde_json::from_slice(b).map_err(|e| corrupt("emails", e))
}

/// Queues each email whose (experiment, event, owner) has none yet, inside `w`; answers how
/// many were new. An event seen twice (a retried request, a restart) queues nothing more.
pub(crate) fn queue_in(w: &redb::WriteTransaction, emails: &[Email]) -> StoreResult<usize> {
    if emails.is_empty() {
        return Ok(0);
    }
    let mut t = w.open_table(EMAILS)?;
    let mut pending = w.open_table(EMAIL_PENDING)?;
    let mut n = 0;
    for e in emails {
        if t.get(e.key())?.is_some() {
            continue;
        }
        t.insert(e.key(), json(e).as_slice())?;
        pending.insert(e.key(), e.next_attempt_at.unwrap_or(e.created_at))?;
        n += 1;
    }
    Ok(n)
}

impl Store {
    /// As `put_experiment`, with the emails that report the change in the same transaction.
    pub(in crate::store) fn put_experiment_notifying(
        &self,
        exp: &Experiment,
        change: &audit::Draft,
        events: &[Delivery],
        emails: &[Email],
    ) -> StoreResult<usize> {
        let w = self.db()?.begin_write()?;
        w.open_table(EXPERIMENTS)?.insert(exp.id.as_u128(), json(exp).as_slice())?;
        audit::append(&w, change, exp.updated_at)?;
        enqueue_in(&w, events)?;
        let n = queue_in(&w, emails)?;
        w.commit()?;
        Ok(n)
    }

    /// Marks a one-off event and queues its webhook deliveries and emails, in one
    /// transaction; nothing (None) when the event was marked already, else how many emails
    /// were queued.
    pub(in crate::store) fn enqueue_event(
        &self,
        ds: &[Delivery],
        emails: &[Email],
        exp: Uuid,
        event: &str,
    ) -> StoreResult<Option<usize>> {
        let w = self.db()?.begin_write()?;
        let n = {
            let mut marks = w.open_table(EVENT_MARKS)?;
            if marks.get((exp.as_u128(), event))?.is_some() {
                return Ok(None);
            }
            marks.insert((exp.as_u128(), event), ())?;
            enqueue_in(&w, ds)?;
            queue_in(&w, emails)?
        };
        w.commit()?;
        Ok(Some(n))
    }

    /// Whether a one-off event was emitted already, so the watcher need not render it again.
    pub(in crate::store) fn event_marked(&self, exp: Uuid, event: &str) -> StoreResult<bool> {
        let r = self.db()?.begin_read()?;
        let t = r.open_table(EVENT_MARKS)?;
        Ok(t.get((exp.as_u128(), event))?.is_some())
    }

    /// Emails whose next attempt is due.
    pub(in crate::store) fn due_emails(&self, now: i64) -> StoreResult<Vec<Email>> {
        let r = self.db()?.begin_read()?;
        let pending = match r.open_table(EMAIL_PENDING) {
            Err(TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            t => t?,
        };
        let emails = r.open_table(EMAILS)?;
        let mut out = Vec::new();
        for row in pending.iter()? {
            let (k, at) = row?;
            if at.value() <= now
                && let Some(v) = emails.get(k.value())?
            {
                out.push(decode(v.value())?);
            }
        }
        Ok(out)
    }

    /// Saves an email after an attempt, keeping it queued while it is pending.
    pub(in crate::store) fn save_email(&self, e: &Email) -> StoreResult<()> {
        let w = self.db()?.begin_write()?;
        {
            w.open_table(EMAILS)?.insert(e.key(), json(e).as_slice())?;
            let mut pending = w.open_table(EMAIL_PENDING)?;
            match (e.state, e.next_attempt_at) {
                (EmailState::Pending, Some(at)) => {
                    pending.insert(e.key(), at)?;
                }
                _ => {
                    pending.remove(e.key())?;
                }
            }
        }
        w.commit()?;
        Ok(())
    }

    /// An owner's emails, newest first.
    pub(in crate::store) fn emails_of(&self, owner: Uuid) -> StoreResult<Vec<Email>> {
        let r = self.db()?.begin_read()?;
        let t = match r.open_table(EMAILS) {
            Err(TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            t => t?,
        };
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if k.value().2 == owner.as_u128() {
                out.push(decode(v.value())?);
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.created_at));
        Ok(out)
    }
}
