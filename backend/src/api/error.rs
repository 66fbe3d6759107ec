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

    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
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
            ApiError::NotFound { code, message } | ApiError::Unavailable { code, message } => {
                ErrorBody::new(status, *code, message.clone())
            }
            ApiError::BadRequest { code, message, details } => ErrorBody {
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
        (self.status(), Json(self.body())).into_response()
    }
}
