//! The email worker: sends due emails with persisted exponential-backoff retries, as the
//! webhook worker delivers. Sending is at least once: a crash after the mail server took an
//! email and before its record is saved sends it again at the next start.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

use super::Notifications;
use super::smtp::Mailer;
use crate::service::now_ms;
use crate::store::api::{NotificationStore, UserStore};
use crate::store::notifications::{Email, EmailAttempt, EmailState};

/// Attempts before an email is given up: the backoff doubles from 1 s to an hour, so the
/// last attempt comes a little over two hours after the first (a mail server's restart or
/// a short outage is waited out).
pub const MAX_ATTEMPTS: usize = 14;

/// Emails being sent at once: they all go to the one configured mail server.
const MAX_IN_FLIGHT: usize = 4;

/// When to try again after `failed` failed attempts: 1 s, 2 s, 4 s ... at most an hour.
pub fn backoff_ms(failed: usize) -> i64 {
    (1000i64 << failed.saturating_sub(1).min(12)).min(3_600_000)
}

/// An email's place among those in flight, given back (and the worker woken) however the
/// attempt ends.
struct Slot {
    flight: Arc<Mutex<HashSet<Uuid>>>,
    wake: Arc<tokio::sync::Notify>,
    id: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
        self.wake.notify_one();
    }
}

fn take(flight: &Mutex<HashSet<Uuid>>, id: Uuid) -> bool {
    let mut f = flight.lock().unwrap_or_else(|e| e.into_inner());
    if f.contains(&id) || f.len() >= MAX_IN_FLIGHT {
        return false;
    }
    f.insert(id);
    true
}

/// One attempt, then the record saved: sent, skipped (the owner turned it off since),
/// failed for good, or retried later.
async fn attempt(n: &Notifications, mailer: &Mailer, mut e: Email) {
    let wanted = match n.store.user(e.owner) {
        Ok(Some(u)) => !u.disabled && u.notifications.wants(&e.event),
        Ok(None) => false,
        Err(err) => {
            tracing::error!(error = %err, "cannot read an email's owner");
            return;
        }
    };
    let at = now_ms();
    if !wanted {
        e.state = EmailState::Skipped;
        e.next_attempt_at = None;
    } else {
        match mailer
            .send(
                &e.to,
                &super::message::Rendered {
                    subject: e.subject.clone(),
                    text: e.text.clone(),
                    html: e.html.clone(),
                },
            )
            .await
        {
            Ok(()) => {
                e.attempts.push(EmailAttempt { at, error: None });
                e.state = EmailState::Sent;
                e.next_attempt_at = None;
            }
            Err(err) => {
                tracing::warn!(email = %e.id, error = %err.message, "email not sent");
                e.attempts.push(EmailAttempt { at, error: Some(err.message) });
                if err.permanent || e.attempts.len() >= MAX_ATTEMPTS {
                    e.state = EmailState::Failed;
                    e.next_attempt_at = None;
                } else {
                    e.next_attempt_at = Some(at + backoff_ms(e.attempts.len()));
                }
            }
        }
    }
    let id = e.id;
    if let Err(err) = n.store.save_email(e).await {
        tracing::error!(error = %err, email = %id, "cannot save an email");
    }
}

/// Sends due emails for the life of the server; returns at once when email is off.
pub async fn run(n: Notifications) {
    let Some(mailer) = n.mailer.clone() else { return };
    let flight: Arc<Mutex<HashSet<Uuid>>> = Default::default();
    loop {
        match n.store.due_emails(now_ms()) {
            Ok(due) => {
                for e in due {
                    if !take(&flight, e.id) {
                        continue;
                    }
                    let slot = Slot { flight: flight.clone(), wake: n.due.clone(), id: e.id };
                    let (n, mailer) = (n.clone(), mailer.clone());
                    tokio::spawn(async move {
                        attempt(&n, &mailer, e).await;
                        drop(slot);
                    });
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the email queue"),
        }
        tokio::select! {
            _ = n.due.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_an_hour() {
        let steps: Vec<i64> = (1..=14).map(backoff_ms).collect();
        assert_eq!(&steps[..4], &[1000, 2000, 4000, 8000]);
        assert_eq!(steps[13], 3_600_000);
        assert!(steps.windows(2).all(|w| w[0] <= w[1]));
    }
}
