//! Email to experiment owners: one email per event (winner found, SRM detected, completed)
//! and owner, queued durably with the change or mark that raised the event (the same moment
//! its webhook deliveries are queued), sent by [`worker`] with retries across restarts.
//! Each owner may turn each kind off; a test email checks the settings.

use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::Principal;
use super::analytics::{Analysis, Analytics};
use super::{PublicUrl, now_ms, rfc3339};
use crate::config::Config;
use crate::engine::model::Experiment;
use crate::error::{AppError, AppResult, Code};
use crate::store::Store;
use crate::store::api::UserStore;
use crate::store::audit::Draft;
use crate::store::notifications::{Email, EmailState};
use crate::store::records::NotificationPrefs;

pub mod message;
pub mod smtp;
pub mod worker;

/// The events that are emailed, each behind its own switch in [`NotificationPrefs`].
pub const EVENTS: &[&str] =
    &["experiment.winner_found", "experiment.srm_detected", "experiment.completed"];

/// How many of the caller's emails GET /notifications lists.
const RECENT: usize = 20;

/// PATCH /auth/me's `notifications`: the switches to change.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefsChange {
    #[serde(default)]
    pub winner_found: Option<bool>,
    #[serde(default)]
    pub srm_detected: Option<bool>,
    #[serde(default)]
    pub completed: Option<bool>,
}

/// One of the caller's emails, as GET /notifications lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EmailView {
    pub id: Uuid,
    pub event: String,
    pub experiment_id: Uuid,
    pub to: String,
    pub subject: String,
    pub state: EmailState,
    pub attempts: usize,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
}

/// GET /notifications: whether email is set up, the caller's switches and recent emails.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationStatus {
    /// False while `notifications.smtp_url` is empty: no email is sent at all.
    pub smtp_configured: bool,
    pub preferences: NotificationPrefs,
    /// The caller's newest emails (at most 20), newest first.
    pub emails: Vec<EmailView>,
}

/// POST /notifications/test: the mail server took the test email.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestSent {
    pub sent: bool,
    pub to: String,
}

#[derive(Clone)]
pub struct Notifications {
    store: Store,
    analysis: Analysis,
    public_url: PublicUrl,
    /// None while SMTP is not configured: notifications are off.
    mailer: Option<smtp::Mailer>,
    /// Wakes the worker when emails are queued.
    due: Arc<tokio::sync::Notify>,
}

impl Notifications {
    pub fn new(
        store: Store,
        analysis: Analysis,
        config: &Config,
        public_url: PublicUrl,
    ) -> Result<Notifications, String> {
        let mailer = if config.notifications.enabled() {
            Some(smtp::Mailer::new(&config.notifications)?)
        } else {
            None
        };
        Ok(Notifications { store, analysis, public_url, mailer, due: Default::default() })
    }

    pub fn enabled(&self) -> bool {
        self.mailer.is_some()
    }

    fn results_link(&self, exp: Uuid) -> String {
        format!("{}/#/experiments/{exp}", self.public_url.get())
    }

    /// The email reporting `event` to `exp`'s owner, for the caller to store with the change
    /// or mark that raised it: none when email is off, the event is not emailed, or the owner
    /// turned it off. `analytics` are the numbers of the moment (read now when not given).
    pub fn emails(
        &self,
        event: &str,
        exp: &Experiment,
        analytics: Option<&Analytics>,
    ) -> AppResult<Vec<Email>> {
        if !self.enabled() || !EVENTS.contains(&event) {
            return Ok(vec![]);
        }
        let Some(owner) = self.store.user(exp.owner)? else { return Ok(vec![]) };
        if !owner.notifications.wants(event) || owner.disabled {
            return Ok(vec![]);
        }
        let live;
        let analytics = match analytics {
            Some(a) => Some(a),
            None => {
                live = self.analysis.live(exp);
                live.as_ref()
            }
        };
        let link = self.results_link(exp.id);
        let m = message::render(&message::Subject {
            event,
            experiment: &exp.name,
            analytics,
            declared_winner: exp.winner_variant_id,
            link: &link,
        });
        let now = now_ms();
        Ok(vec![Email {
            id: Uuid::new_v4(),
            owner: owner.id,
            experiment_id: exp.id,
            event: event.to_string(),
            to: owner.email,
            subject: m.subject,
            text: m.text,
            html: m.html,
            state: EmailState::Pending,
            attempts: vec![],
            next_attempt_at: Some(now),
            created_at: now,
        }])
    }

    /// Wakes the worker after emails were stored.
    pub fn queued(&self, n: usize) {
        if n > 0 {
            self.due.notify_one();
        }
    }

    pub fn status(&self, who: &Principal) -> AppResult<NotificationStatus> {
        use crate::store::api::NotificationStore;
        let prefs = self.store.user(who.id())?.map(|u| u.notifications).unwrap_or_default();
        let emails = self
            .store
            .emails_of(who.id())?
            .into_iter()
            .take(RECENT)
            .map(|e| EmailView {
                id: e.id,
                event: e.event,
                experiment_id: e.experiment_id,
                to: e.to,
                subject: e.subject,
                state: e.state,
                attempts: e.attempts.len(),
                last_error: e.attempts.last().and_then(|a| a.error.clone()),
                next_attempt_at: e.next_attempt_at.map(rfc3339),
                created_at: rfc3339(e.created_at),
            })
            .collect();
        Ok(NotificationStatus { smtp_configured: self.enabled(), preferences: prefs, emails })
    }

    /// Turns the caller's emails on or off, per event (audited); answers the switches now.
    pub async fn set_prefs(&self, who: &Principal, c: PrefsChange) -> AppResult<NotificationPrefs> {
        // The stored record, not the one read at authentication: nothing else is undone.
        let mut u = self
            .store
            .user(who.id())?
            .ok_or_else(|| AppError::new(Code::UserNotFound, "no such user"))?;
        let before = u.notifications;
        let p = &mut u.notifications;
        for (switch, to) in [
            (&mut p.winner_found, c.winner_found),
            (&mut p.srm_detected, c.srm_detected),
            (&mut p.completed, c.completed),
        ] {
            if let Some(v) = to {
                *switch = v;
            }
        }
        let after = u.notifications;
        if after != before {
            let d = Draft::new(u.id, &who.user.email, "user.notifications_changed")
                .data(json!({"notifications": after}));
            self.store.update_user(u, d).await?;
        }
        Ok(after)
    }

    /// Sends the test email to the caller now, answering the mail server's refusal if any.
    pub async fn send_test(&self, who: &Principal) -> AppResult<TestSent> {
        let Some(mailer) = &self.mailer else {
            return Err(AppError::new(
                Code::NotificationsOff,
                "SMTP is not configured: set notifications.smtp_url and notifications.from",
            )
            .with_details(json!({"setting": "notifications.smtp_url"})));
        };
        let to = who.user.email.clone();
        let m = message::test_message(&format!("{}/", self.public_url.get()));
        mailer.send(&to, &m).await.map_err(|e| {
            AppError::new(
                Code::SmtpFailed,
                format!("the mail server did not take it: {}", e.message),
            )
        })?;
        tracing::info!(user = %who.id(), "test email sent");
        Ok(TestSent { sent: true, to })
    }
}
