//! `/api/v1/auth`: sign in, sign out, who am I.

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use shared_types::auth::{LoginRequest, LoginResponse, Me, User, PASSWORD_MAX, USERNAME_MAX};
use shared_types::error::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::auth::middleware::ClientAddr;
use crate::auth::{password, session, throttle, AuthUser};
use crate::db::entities::users;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(logout)).routes(routes!(me))
}

const BAD_CREDENTIALS: &str = "Unknown username or wrong password.";

/// Sign in. Answers the token and sets it as an HttpOnly session cookie.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = LoginResponse),
    (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Response {
    let tried: String = req.username.chars().take(USERNAME_MAX).collect();
    let mut response = sign_in(&state, address, req).await.unwrap_or_else(IntoResponse::into_response);
    let actor = (!tried.is_empty()).then(|| tried.clone());
    response.extensions_mut().insert(AuditNote { action: "auth.login", target: tried, actor });
    response
}

async fn sign_in(state: &AppState, address: Option<String>, req: LoginRequest) -> Result<Response, ApiError> {
    if req.username.trim().is_empty() {
        return Err(ApiError::invalid_field("username", "Enter your username."));
    }
    if req.password.is_empty() {
        return Err(ApiError::invalid_field("password", "Enter your password."));
    }
    if req.username.chars().count() > USERNAME_MAX || req.password.chars().count() > PASSWORD_MAX {
        return Err(ApiError::invalid_field(
            "username",
            format!("Usernames have at most {USERNAME_MAX} and passwords at most {PASSWORD_MAX} characters."),
        ));
    }
    let keys = throttle::keys(&req.username, address.as_deref());
    let attempt = throttle::begin(&state.throttle, keys, Instant::now()).map_err(|wait| {
        let secs = wait.as_secs().max(1);
        ApiError::TooManyRequests {
            message: format!("Too many failed sign-ins. Try again in {} min.", secs.div_ceil(60)),
            retry_after_secs: secs,
        }
    })?;
    let user = users::Entity::find().filter(users::Column::Username.eq(req.username.clone())).one(&state.db).await?;
    let ok = password::verify(req.password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            attempt.failed();
            return Err(ApiError::Unauthorized { code: "bad_credentials", message: BAD_CREDENTIALS.into() });
        }
    };
    attempt.succeeded();

    let (token, session) = session::create(&state.db, &user.id, state.session_ttl(), address).await?;
    let mut active: users::ActiveModel = user.into();
    active.last_login_at = Set(Some(Utc::now()));
    let user = active.update(&state.db).await?;
    let body = LoginResponse { token: token.clone(), expires_at: session.expires_at, user: User::from(user) };
    Ok(([(header::SET_COOKIE, session::set_cookie(&token, session.expires_at, state.tls))], ApiJson(body)).into_response())
}

/// Sign out: ends this session and clears the cookie.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<Response, ApiError> {
    session::revoke(&state.db, &user.session_id).await?;
    state.revoked(vec![user.session_id.clone()]);
    let mut response = (StatusCode::NO_CONTENT, [(header::SET_COOKIE, session::clear_cookie(state.tls))]).into_response();
    response.extensions_mut().insert(AuditNote::new("auth.logout", user.username));
    Ok(response)
}

/// The signed-in user and when the session ends.
#[utoipa::path(get, path = "/auth/me", tag = "auth", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, user: AuthUser) -> Result<ApiJson<Me>, ApiError> {
    let row = users::Entity::find_by_id(user.user_id.clone()).one(&state.db).await?.ok_or_else(ApiError::session_ended)?;
    Ok(ApiJson(Me { user: row.into(), session_expires_at: user.session_expires_at }))
}
