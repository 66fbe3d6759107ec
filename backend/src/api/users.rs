//! `/api/v1/users` (admin): list, add, change role, disable, reset password,
//! remove. The last enabled admin can be neither demoted, disabled nor removed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use shared_types::auth::{validate_password, validate_username, CreateUserRequest, Role, SetPasswordRequest, UpdateUserRequest, User};
use shared_types::error::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::noted;
use super::{ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::auth::{password, session, AuthUser};
use crate::db::entities::users;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user, delete_user))
        .routes(routes!(set_password))
}

async fn find(state: &AppState, id: &str) -> Result<users::Model, ApiError> {
    users::Entity::find_by_id(id.to_owned())
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found("user_not_found", format!("No user has the id '{id}'.")))
}

/// Enabled admins other than `except`.
async fn other_admins(state: &AppState, except: &str) -> Result<u64, ApiError> {
    Ok(users::Entity::find()
        .filter(users::Column::Role.eq(Role::Admin.as_str()))
        .filter(users::Column::Disabled.eq(false))
        .filter(users::Column::Id.ne(except))
        .count(&state.db)
        .await?)
}

/// Every user, by username.
#[utoipa::path(get, path = "/users", tag = "users", responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)))]
async fn list_users(State(state): State<AppState>) -> Result<ApiJson<Vec<User>>, ApiError> {
    let rows = users::Entity::find().order_by_asc(users::Column::Username).all(&state.db).await?;
    Ok(ApiJson(rows.into_iter().map(User::from).collect()))
}

/// Adds a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = CreateUserRequest, responses(
    (status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(State(state): State<AppState>, ApiJson(req): ApiJson<CreateUserRequest>) -> Result<Response, ApiError> {
    validate_username(&req.username).map_err(|m| ApiError::invalid_field("username", m))?;
    validate_password(&req.password).map_err(|m| ApiError::invalid_field("password", m))?;
    let taken = users::Entity::find().filter(users::Column::Username.eq(req.username.clone())).count(&state.db).await?;
    if taken > 0 {
        return Err(ApiError::conflict("username_taken", format!("A user named '{}' exists already.", req.username)));
    }
    let now = Utc::now();
    let row = users::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        username: Set(req.username.clone()),
        password_hash: Set(password::hash(req.password).await?),
        role: Set(req.role.as_str().to_owned()),
        disabled: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        last_login_at: Set(None),
    }
    .insert(&state.db)
    .await?;
    Ok(noted((StatusCode::CREATED, ApiJson(User::from(row))), AuditNote::new("user.create", req.username)))
}

/// Changes a user's role or enables / disables them. Disabling ends their sessions.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")),
    request_body = UpdateUserRequest, responses(
    (status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<Response, ApiError> {
    let user = find(&state, &id).await?;
    let loses_admin = user.role() == Role::Admin
        && !user.disabled
        && (req.role.is_some_and(|r| r != Role::Admin) || req.disabled == Some(true));
    if loses_admin && other_admins(&state, &id).await? == 0 {
        return Err(ApiError::conflict(
            "last_admin",
            format!("'{}' is the last enabled admin: make another user admin first.", user.username),
        ));
    }
    if req.disabled == Some(true) && user.id == me.user_id {
        return Err(ApiError::conflict("self_disable", "You cannot disable your own account; ask another admin."));
    }
    let mut changes = Vec::new();
    let mut active: users::ActiveModel = user.clone().into();
    if let Some(role) = req.role {
        active.role = Set(role.as_str().to_owned());
        changes.push(format!("role={role}"));
    }
    if let Some(disabled) = req.disabled {
        active.disabled = Set(disabled);
        changes.push(format!("disabled={disabled}"));
    }
    active.updated_at = Set(Utc::now());
    let updated = active.update(&state.db).await?;
    if req.disabled == Some(true) {
        let ended = session::revoke_all_for_user(&state.db, &updated.id).await?;
        state.revoked(ended);
    }
    let target = format!("{} ({})", updated.username, changes.join(", "));
    Ok(noted(ApiJson(User::from(updated)), AuditNote::new("user.update", target)))
}

/// Sets a new password for a user and ends their sessions.
#[utoipa::path(post, path = "/users/{id}/password", tag = "users", params(("id" = String, Path, description = "User id")),
    request_body = SetPasswordRequest, responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_password(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SetPasswordRequest>,
) -> Result<Response, ApiError> {
    validate_password(&req.password).map_err(|m| ApiError::invalid_field("password", m))?;
    let user = find(&state, &id).await?;
    let mut active: users::ActiveModel = user.clone().into();
    active.password_hash = Set(password::hash(req.password).await?);
    active.updated_at = Set(Utc::now());
    active.update(&state.db).await?;
    let ended = session::revoke_all_for_user(&state.db, &user.id).await?;
    state.revoked(ended);
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("user.reset_password", user.username)))
}

/// Removes a user. Not yourself, and not the last enabled admin.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "User id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_user(State(state): State<AppState>, me: AuthUser, Path(id): Path<String>) -> Result<Response, ApiError> {
    let user = find(&state, &id).await?;
    if user.id == me.user_id {
        return Err(ApiError::conflict("self_delete", "You cannot remove your own account; ask another admin."));
    }
    if user.role() == Role::Admin && !user.disabled && other_admins(&state, &id).await? == 0 {
        return Err(ApiError::conflict("last_admin", format!("'{}' is the last enabled admin.", user.username)));
    }
    let ended = session::revoke_all_for_user(&state.db, &user.id).await?;
    state.revoked(ended);
    users::Entity::delete_by_id(user.id.clone()).exec(&state.db).await?;
    Ok(noted(StatusCode::NO_CONTENT, AuditNote::new("user.delete", user.username)))
}
