//! The one error type the service and HTTP layers share: a stable code, a message a person
//! can act on, and optional details (for validation, the offending field).

use serde_json::{Value, json};
use std::fmt;

/// Stable, documented error codes. The HTTP status is a property of the code, so every
/// failure of one kind answers the same way wherever it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadJson,
    BadRequest,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthorized,
    InvalidCredentials,
    InvalidSiteKey,
    Forbidden,
    RegistrationClosed,
    RouteNotFound,
    MethodNotAllowed,
    UserNotFound,
    ExpNotFound,
    ApiKeyNotFound,
    AssignmentNotFound,
    EmailTaken,
    InvalidTransition,
    ExpNotRunning,
    ExpNotDraft,
    ValidationFailed,
    RateLimited,
    StateUnreadable,
    ServerBusy,
    ExportTarget,
    Internal,
}

impl Code {
    pub const ALL: [Code; 25] = [
        Code::BadJson,
        Code::BadRequest,
        Code::UnsupportedMediaType,
        Code::PayloadTooLarge,
        Code::Unauthorized,
        Code::InvalidCredentials,
        Code::InvalidSiteKey,
        Code::Forbidden,
        Code::RegistrationClosed,
        Code::RouteNotFound,
        Code::MethodNotAllowed,
        Code::UserNotFound,
        Code::ExpNotFound,
        Code::ApiKeyNotFound,
        Code::AssignmentNotFound,
        Code::EmailTaken,
        Code::InvalidTransition,
        Code::ExpNotRunning,
        Code::ExpNotDraft,
        Code::ValidationFailed,
        Code::RateLimited,
        Code::StateUnreadable,
        Code::ServerBusy,
        Code::ExportTarget,
        Code::Internal,
    ];

    /// The code with this stable name (as sent over the admin socket).
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadJson => "BAD_JSON",
            Code::BadRequest => "BAD_REQUEST",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::InvalidCredentials => "INVALID_CREDENTIALS",
            Code::InvalidSiteKey => "INVALID_SITE_KEY",
            Code::Forbidden => "FORBIDDEN",
            Code::RegistrationClosed => "REGISTRATION_CLOSED",
            Code::RouteNotFound => "ROUTE_NOT_FOUND",
            Code::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Code::UserNotFound => "USER_NOT_FOUND",
            Code::ExpNotFound => "EXP_NOT_FOUND",
            Code::ApiKeyNotFound => "API_KEY_NOT_FOUND",
            Code::AssignmentNotFound => "ASSIGNMENT_NOT_FOUND",
            Code::EmailTaken => "EMAIL_TAKEN",
            Code::InvalidTransition => "INVALID_TRANSITION",
            Code::ExpNotRunning => "EXP_NOT_RUNNING",
            Code::ExpNotDraft => "EXP_NOT_DRAFT",
            Code::ValidationFailed => "VALIDATION_FAILED",
            Code::RateLimited => "RATE_LIMITED",
            Code::StateUnreadable => "STATE_UNREADABLE",
            Code::ServerBusy => "SERVER_BUSY",
            Code::ExportTarget => "EXPORT_TARGET_FAILED",
            Code::Internal => "INTERNAL",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Code::BadJson | Code::BadRequest => 400,
            Code::Unauthorized | Code::InvalidCredentials | Code::InvalidSiteKey => 401,
            Code::Forbidden | Code::RegistrationClosed => 403,
            Code::RouteNotFound
            | Code::UserNotFound
            | Code::ExpNotFound
            | Code::ApiKeyNotFound
            | Code::AssignmentNotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::EmailTaken
            | Code::InvalidTransition
            | Code::ExpNotRunning
            | Code::ExpNotDraft => 409,
            Code::PayloadTooLarge => 413,
            Code::UnsupportedMediaType => 415,
            Code::ValidationFailed => 422,
            Code::RateLimited => 429,
            Code::Internal => 500,
            // The export target (another server) failed or refused: a bad gateway.
            Code::ExportTarget => 502,
            Code::StateUnreadable | Code::ServerBusy => 503,
        }
    }
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
            && !matches!(self.code, Code::StateUnreadable | Code::ServerBusy);
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
        match e {
            crate::store::StoreError::StateUnreadable { .. } => {
                AppError::new(Code::StateUnreadable, e.to_string())
            }
            crate::store::StoreError::Conflict(m) => AppError::new(Code::ExpNotRunning, m),
            crate::store::StoreError::Locked(_) | crate::store::StoreError::Busy(_) => {
                AppError::new(Code::ServerBusy, e.to_string())
            }
            other => AppError::internal(other.to_string()),
        }
    }
}
