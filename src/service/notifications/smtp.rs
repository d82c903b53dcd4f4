//! Sending one email over SMTP with lettre (rustls for `smtps://` and STARTTLS). The mail
//! server is the administrator's choice from `notifications.smtp_url`, so unlike webhook
//! targets it may be on loopback or a private network.

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

use super::message::Rendered;
use crate::config::NotificationsConfig;

/// How long one SMTP conversation may take before it counts as a failed attempt.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a send failed: `permanent` failures (a 5xx reply, an address the server or we
/// cannot use) are not retried.
#[derive(Debug, Clone, PartialEq)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

/// The configured mail server and sender. Cheap to clone: without lettre's `pool`
/// feature each send opens its own connection.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// Builds the client from settings `Config::validate` has checked; `Err` names the
    /// setting that lettre still refuses.
    pub fn new(c: &NotificationsConfig) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&c.smtp_url)
            .map_err(|e| format!("notifications.smtp_url: {e}"))?
            .timeout(Some(TIMEOUT))
            .build();
        let from = c.from.parse().map_err(|e| format!("notifications.from: {e}"))?;
        Ok(Mailer { transport, from })
    }

    pub async fn send(&self, to: &str, m: &Rendered) -> Result<(), SendError> {
        let to: Mailbox = to.parse().map_err(|e| SendError {
            permanent: true,
            message: format!("the address {to:?} cannot receive email: {e}"),
        })?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .multipart(MultiPart::alternative_plain_html(m.text.clone(), m.html.clone()))
            .map_err(|e| SendError { permanent: true, message: e.to_string() })?;
        // lettre's own timeout covers each read and write; this bounds the whole exchange.
        match tokio::time::timeout(TIMEOUT * 3, self.transport.send(msg)).await {
            Err(_) => Err(SendError { permanent: false, message: "timed out".into() }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(SendError { permanent: e.is_permanent(), message: describe(&e) }),
        }
    }
}

/// The error with its causes, which lettre's `Display` leaves out (the refused connection).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_s = c.to_string();
        if !s.contains(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cause = c.source();
    }
    s
}
