//! `ApiJson<T>`: axum's JSON extractor with its rejections turned into the
//! shared error shape, naming what was wrong with the body.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ApiError;

/// Request or response body in JSON.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn rejection_to_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonSyntaxError(err) => ApiError::bad_request(
            "invalid_json",
            format!("The request body is not valid JSON: {}", source_text(&err)),
        ),
        JsonRejection::JsonDataError(err) => ApiError::bad_request(
            "invalid_body",
            format!("The request body does not have the expected fields: {}", source_text(&err)),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType {
            message: "Send the request body as JSON with the header 'Content-Type: application/json'.".into(),
        },
        JsonRejection::BytesRejection(err) => ApiError::PayloadTooLarge {
            message: format!("The request body could not be read: {}", err.body_text()),
        },
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// serde's own message (with line and column), without axum's prefix.
fn source_text(err: &dyn std::error::Error) -> String {
    let mut deepest = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        deepest = inner.to_string();
        source = inner.source();
    }
    deepest
}
