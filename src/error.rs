//! The one error type the service and HTTP layers share: a stable code, a message a person
//! can act on, and optional details (for validation, the offending field).

use serde_json::{Value, json};
use std::fmt;

/// Declares every error code once: `Name => "STABLE_STRING", http_status;`. The enum,
/// `Code::ALL`, `as_str`, `status` and `parse` all come from the one table, so adding a
/// code is one line (Meilisearch's `make_error_codes!` is the model).
macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident => $text:literal, $status:literal;)+) => {
        /// Stable, documented error codes. The HTTP status is a property of the code, so
        /// every failure of one kind answers the same way wherever it happens.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($(#[$doc])* $name,)+
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$name,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $text,)+
                }
            }

            pub fn status(self) -> u16 {
                match self {
                    $(Code::$name => $status,)+
                }
            }

            /// The code with this stable name (as sent over the admin socket).
            pub fn parse(s: &str) -> Option<Code> {
                match s {
                    $($text => Some(Code::$name),)+
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    BadJson => "BAD_JSON", 400;
    BadRequest => "BAD_REQUEST", 400;
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE", 415;
    PayloadTooLarge => "PAYLOAD_TOO_LARGE", 413;
    /// The client stopped sending its request body before `server.body_timeout_secs`.
    RequestTimeout => "REQUEST_TIMEOUT", 408;
    Unauthorized => "UNAUTHORIZED", 401;
    InvalidCredentials => "INVALID_CREDENTIALS", 401;
    InvalidSiteKey => "INVALID_SITE_KEY", 401;
    Forbidden => "FORBIDDEN", 403;
    RegistrationClosed => "REGISTRATION_CLOSED", 403;
    RouteNotFound => "ROUTE_NOT_FOUND", 404;
    MethodNotAllowed => "METHOD_NOT_ALLOWED", 405;
    UserNotFound => "USER_NOT_FOUND", 404;
    ExpNotFound => "EXP_NOT_FOUND", 404;
    ApiKeyNotFound => "API_KEY_NOT_FOUND", 404;
    AssignmentNotFound => "ASSIGNMENT_NOT_FOUND", 404;
    WebhookNotFound => "WEBHOOK_NOT_FOUND", 404;
    EmailTaken => "EMAIL_TAKEN", 409;
    InvalidTransition => "INVALID_TRANSITION", 409;
    ExpNotRunning => "EXP_NOT_RUNNING", 409;
    ExpNotDraft => "EXP_NOT_DRAFT", 409;
    /// Waves are sent for `type: campaign` experiments only.
    ExpNotCampaign => "EXP_NOT_CAMPAIGN", 409;
    /// A campaign open pixel or click link that Samplit did not sign (forged or altered).
    InvalidToken => "INVALID_TOKEN", 404;
    /// Email needs `notifications.smtp_url`, and it is not set.
    NotificationsOff => "NOTIFICATIONS_OFF", 409;
    ValidationFailed => "VALIDATION_FAILED", 422;
    RateLimited => "RATE_LIMITED", 429;
    StateUnreadable => "STATE_UNREADABLE", 503;
    ServerBusy => "SERVER_BUSY", 503;
    /// The export target (another server) failed or refused: a bad gateway.
    ExportTarget => "EXPORT_TARGET_FAILED", 502;
    /// The mail server refused or could not be reached: a bad gateway.
    SmtpFailed => "SMTP_FAILED", 502;
    /// The page an installation check asked for could not be fetched (refused, timed out).
    FetchFailed => "FETCH_FAILED", 502;
    Internal => "INTERNAL", 500;
}

#[derive(Debug, Clone)]
pub struct AppError {
    pub code: Code,
    pub message: String,
    pub details: Option<Value>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        AppError { code, message: message.into(), details: None }
    }

    /// A 422 naming the field that failed, in `details.field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        AppError {
            code: Code::ValidationFailed,
            message: format!("{field}: {message}"),
            details: Some(json!({ "field": field })),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        AppError::new(Code::Internal, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The JSON body of API.md. In production a 5xx keeps its code but not its detail,
    /// since internal messages can name files, keys or queries.
    pub fn body(&self, production: bool) -> Value {
        let hide = production
            && self.status() >= 500
            && !matches!(
                self.code,
                Code::StateUnreadable | Code::ServerBusy | Code::SmtpFailed | Code::FetchFailed
            );
        let message = if hide { "internal server error".to_string() } else { self.message.clone() };
        let mut err = json!({ "code": self.code.as_str(), "message": message });
        if let (Some(d), false) = (&self.details, hide) {
            err["details"] = d.clone();
        }
        json!({ "error": err })
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for AppError {}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as S;
        let code = match &e {
            S::StateUnreadable { .. } => Code::StateUnreadable,
            S::NotRunning { .. } => Code::ExpNotRunning,
            S::EmailTaken { .. } => Code::EmailTaken,
            S::LastAdmin => Code::InvalidTransition,
            // The service refuses an occupied target before it starts (a 422 naming `out`);
            // this is the same refusal found later, by the store.
            S::AlreadyExists(_) => Code::ValidationFailed,
            S::Locked(_) | S::Busy(_) | S::Unavailable(_) => Code::ServerBusy,
            S::Db(_) | S::Damaged { .. } | S::Corrupt { .. } | S::TooNew { .. } | S::WriterGone => {
                Code::Internal
            }
        };
        AppError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_string_and_parses_back() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{} declared twice", c.as_str());
            assert_eq!(Code::parse(c.as_str()), Some(c));
            assert!((400..600).contains(&c.status()));
        }
        assert_eq!(Code::parse("NOPE"), None);
        assert_eq!(
            (Code::ExportTarget.as_str(), Code::ExportTarget.status()),
            ("EXPORT_TARGET_FAILED", 502)
        );
    }
}
