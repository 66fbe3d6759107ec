//! Typed calls to the Sendense REST API, with the shared types. Requests
//! carry the HttpOnly session cookie; a 401 means the session has ended.

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared_types::audit::AuditPage;
use shared_types::auth::{CreateUserRequest, LoginRequest, LoginResponse, Me, SetPasswordRequest, UpdateUserRequest, User};
use shared_types::error::ErrorBody;
use shared_types::health::HealthResponse;

/// A failed call: the server's error body, or a transport problem.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status; 0 when the server could not be reached.
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn unauthorized(&self) -> bool {
        self.status == 401
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn transport(e: gloo_net::Error) -> ApiError {
    ApiError { status: 0, message: format!("The server could not be reached: {e}") }
}

async fn check(resp: Response) -> Result<Response, ApiError> {
    if resp.ok() {
        return Ok(resp);
    }
    let status = resp.status();
    let message = match resp.json::<ErrorBody>().await {
        Ok(body) => body.message,
        Err(_) => format!("The server answered HTTP {status}."),
    };
    Err(ApiError { status, message })
}

async fn json<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ApiError> {
    let resp = check(req.send().await.map_err(transport)?).await?;
    resp.json::<T>().await.map_err(transport)
}

async fn json_with<B: Serialize, T: DeserializeOwned>(req: RequestBuilder, body: &B) -> Result<T, ApiError> {
    let resp = check(req.json(body).map_err(transport)?.send().await.map_err(transport)?).await?;
    resp.json::<T>().await.map_err(transport)
}

async fn unit(req: Request) -> Result<(), ApiError> {
    check(req.send().await.map_err(transport)?).await.map(|_| ())
}

/// `GET /api/v1/health`. A 503 (catalog down) still carries a health body.
pub async fn health() -> Result<HealthResponse, String> {
    let resp = Request::get("/api/v1/health").send().await.map_err(|e| e.to_string())?;
    resp.json::<HealthResponse>().await.map_err(|e| e.to_string())
}

pub async fn login(username: String, password: String) -> Result<LoginResponse, ApiError> {
    json_with(Request::post("/api/v1/auth/login"), &LoginRequest { username, password }).await
}

pub async fn logout() -> Result<(), ApiError> {
    unit(Request::post("/api/v1/auth/logout").build().map_err(transport)?).await
}

pub async fn me() -> Result<Me, ApiError> {
    json(Request::get("/api/v1/auth/me")).await
}

pub async fn users() -> Result<Vec<User>, ApiError> {
    json(Request::get("/api/v1/users")).await
}

pub async fn create_user(req: CreateUserRequest) -> Result<User, ApiError> {
    json_with(Request::post("/api/v1/users"), &req).await
}

pub async fn update_user(id: String, req: UpdateUserRequest) -> Result<User, ApiError> {
    json_with(Request::patch(&format!("/api/v1/users/{id}")), &req).await
}

pub async fn set_password(id: String, password: String) -> Result<(), ApiError> {
    let req = Request::post(&format!("/api/v1/users/{id}/password")).json(&SetPasswordRequest { password }).map_err(transport)?;
    unit(req).await
}

pub async fn delete_user(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/users/{id}")).build().map_err(transport)?).await
}

pub async fn audit(limit: u64, offset: u64) -> Result<AuditPage, ApiError> {
    json(Request::get(&format!("/api/v1/audit?limit={limit}&offset={offset}"))).await
}
