//! The API's error type and its mapping to the shared [`ErrorBody`].
//!
//! Status codes are chosen here and nowhere else. Internal errors are logged
//! with their full chain; the client gets a message it can act on, never a
//! database error's text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use shared_types::error::{ErrorBody, FieldError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    NotFound { code: &'static str, message: String },

    #[error("{message}")]
    BadRequest { code: &'static str, message: String, details: Vec<FieldError> },

    /// Well-formed input that cannot be used: a host that does not answer,
    /// a cron pattern that does not parse, a reference to nothing.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String, details: Vec<FieldError> },

    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },

    #[error("{message}")]
    Forbidden { message: String },

    /// Forbidden for a stated reason (e.g. `license_required`).
    #[error("{message}")]
    ForbiddenCode { code: &'static str, message: String },

    #[error("{message}")]
    Conflict { code: &'static str, message: String },

    /// Something that existed and is gone for good (an expired session).
    #[error("{message}")]
    Gone { code: &'static str, message: String },

    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },

    #[error("{message}")]
    MethodNotAllowed { message: String },

    #[error("{message}")]
    UnsupportedMediaType { message: String },

    #[error("{message}")]
    PayloadTooLarge { message: String },

    #[error("{message}")]
    Unavailable { code: &'static str, message: String },

    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn route_not_found(path: &str) -> Self {
        ApiError::NotFound {
            code: "route_not_found",
            message: format!("No API route matches '{path}'. Check the path and the API version (routes live under /api/v1)."),
        }
    }

    pub fn method_not_allowed(method: &axum::http::Method, path: &str) -> Self {
        ApiError::MethodNotAllowed { message: format!("'{path}' does not accept {method} requests.") }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into(), details: Vec::new() }
    }

    /// A request field that failed validation.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::BadRequest {
            code: "invalid_field",
            message: format!("{field}: {message}"),
            details: vec![FieldError { field: field.to_owned(), message }],
        }
    }

    /// A field whose value is well-formed but unusable (422).
    pub fn invalid_value(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Unprocessable {
            code: "invalid_value",
            message: format!("{field}: {message}"),
            details: vec![FieldError { field: field.to_owned(), message }],
        }
    }

    /// Input that cannot be used, not tied to one field (422).
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable { code, message: message.into(), details: Vec::new() }
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unavailable { code, message: message.into() }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::NotFound { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict { code, message: message.into() }
    }

    pub fn sign_in_required() -> Self {
        ApiError::Unauthorized {
            code: "sign_in_required",
            message: "Sign in first: send the session cookie or an 'Authorization: Bearer <token>' header \
                      (POST /api/v1/auth/login gives one)."
                .into(),
        }
    }

    pub fn session_ended() -> Self {
        ApiError::Unauthorized {
            code: "session_ended",
            message: "Your session has expired or was ended. Sign in again.".into(),
        }
    }

    pub fn role_required(required: shared_types::auth::Role, user: &crate::auth::AuthUser) -> Self {
        ApiError::Forbidden {
            message: format!(
                "This needs the {required} role; you are signed in as '{}' with the {} role. Ask an admin.",
                user.username, user.role
            ),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::ForbiddenCode { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body the client receives.
    pub fn body(&self) -> ErrorBody {
        let status = self.status().as_u16();
        match self {
            ApiError::NotFound { code, message }
            | ApiError::Unavailable { code, message }
            | ApiError::Unauthorized { code, message }
            | ApiError::Conflict { code, message }
            | ApiError::ForbiddenCode { code, message }
            | ApiError::Gone { code, message } => ErrorBody::new(status, *code, message.clone()),
            ApiError::Forbidden { message } => ErrorBody::new(status, "forbidden", message.clone()),
            ApiError::TooManyRequests { message, .. } => ErrorBody::new(status, "too_many_attempts", message.clone()),
            ApiError::BadRequest { code, message, details } | ApiError::Unprocessable { code, message, details } => ErrorBody {
                status,
                code: (*code).to_owned(),
                message: message.clone(),
                details: details.clone(),
            },
            ApiError::MethodNotAllowed { message } => ErrorBody::new(status, "method_not_allowed", message.clone()),
            ApiError::UnsupportedMediaType { message } => {
                ErrorBody::new(status, "unsupported_media_type", message.clone())
            }
            ApiError::PayloadTooLarge { message } => ErrorBody::new(status, "payload_too_large", message.clone()),
            ApiError::Internal(_) => ErrorBody::new(
                status,
                "internal_error",
                "The server failed to handle this request. The details are in the server log; try again, \
                 and report it if it persists.",
            ),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        ApiError::Internal(anyhow::Error::new(err).context("catalog query failed"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let ApiError::TooManyRequests { retry_after_secs, .. } = &self {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, (*retry_after_secs).into());
        }
        response
    }
}
