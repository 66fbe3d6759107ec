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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::post;
    use axum::Router;
    use http_body_util::BodyExt;
    use shared_types::error::ErrorBody;
    use tower::ServiceExt;

    use super::ApiJson;

    #[derive(serde::Deserialize, serde::Serialize)]
    struct Named {
        name: String,
    }

    async fn call(content_type: Option<&str>, body: &'static str) -> (StatusCode, ErrorBody) {
        let app = Router::new().route("/", post(|ApiJson(n): ApiJson<Named>| async move { ApiJson(n) }));
        let mut req = Request::post("/");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = app.oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody::new(0, "ok", "")))
    }

    #[tokio::test]
    async fn malformed_json_is_a_400_naming_the_problem() {
        let (status, err) = call(Some("application/json"), "{\"name\": ").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code, "invalid_json");
        assert!(err.message.contains("line 1"), "{}", err.message);
    }

    #[tokio::test]
    async fn wrong_fields_and_missing_content_type_are_explained() {
        let (status, err) = call(Some("application/json"), "{\"nom\": \"x\"}").await;
        assert_eq!((status, err.code.as_str()), (StatusCode::BAD_REQUEST, "invalid_body"));
        assert!(err.message.contains("name"), "{}", err.message);

        let (status, err) = call(None, "{\"name\": \"x\"}").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(err.message.contains("Content-Type: application/json"), "{}", err.message);

        let (status, err) = call(Some("application/json"), "{\"name\": \"x\"}").await;
        assert_eq!((status, err.code.as_str()), (StatusCode::OK, "ok"));
    }
}
