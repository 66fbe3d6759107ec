//! Session tokens: creation, lookup, revocation, and how they travel
//! (`Authorization: Bearer` for scripts, an HttpOnly cookie for browsers).

use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::http::{header, HeaderMap, HeaderValue};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};

use crate::db::entities::{sessions, users};

/// Name of the browser's session cookie.
pub const COOKIE: &str = "sendense_session";

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token a request carries: the bearer token first, else the cookie.
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(token) = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer ")) {
            return Some(token.trim().to_owned());
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The session cookie; `secure` (the server speaks HTTPS) adds `Secure`, so
/// the browser never sends it over plain HTTP.
pub fn set_cookie(token: &str, expires_at: DateTime<Utc>, secure: bool) -> HeaderValue {
    let max_age = (expires_at - Utc::now()).num_seconds().max(0);
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .expect("token is hex")
}

pub fn clear_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static("sendense_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure")
    } else {
        HeaderValue::from_static("sendense_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }
}

/// Creates a session for `user_id`; returns the token (shown once) and the row.
pub async fn create(
    db: &DatabaseConnection,
    user_id: &str,
    ttl: Duration,
    address: Option<String>,
) -> Result<(String, sessions::Model), DbErr> {
    let token = new_token();
    let now = Utc::now();
    let row = sessions::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        token_hash: Set(token_hash(&token)),
        user_id: Set(user_id.to_owned()),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        revoked_at: Set(None),
        address: Set(address),
    }
    .insert(db)
    .await?;
    Ok((token, row))
}

/// The live session and its enabled user for `token`, if any.
pub async fn lookup(db: &DatabaseConnection, token: &str) -> Result<Option<(sessions::Model, users::Model)>, DbErr> {
    let found = sessions::Entity::find()
        .filter(sessions::Column::TokenHash.eq(token_hash(token)))
        .find_also_related(users::Entity)
        .one(db)
        .await?;
    Ok(match found {
        Some((s, Some(u))) if s.revoked_at.is_none() && s.expires_at > Utc::now() && !u.disabled => Some((s, u)),
        _ => None,
    })
}

/// Marks the live sessions matching `which` as revoked now.
async fn revoke_where(db: &DatabaseConnection, which: sea_orm::sea_query::SimpleExpr) -> Result<(), DbErr> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(which)
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Ends one session.
pub async fn revoke(db: &DatabaseConnection, session_id: &str) -> Result<(), DbErr> {
    revoke_where(db, sessions::Column::Id.eq(session_id)).await
}

/// Ends every live session of a user; returns their ids.
pub async fn revoke_all_for_user(db: &DatabaseConnection, user_id: &str) -> Result<Vec<String>, DbErr> {
    let live = sessions::Entity::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .all(db)
        .await?;
    revoke_where(db, sessions::Column::UserId.eq(user_id)).await?;
    Ok(live.into_iter().map(|s| s.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_found_in_headers() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert_ne!(t, new_token());
        assert_eq!(token_hash(&t).len(), 64);

        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; sendense_session=abc; b=2"));
        assert_eq!(token_from_headers(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer xyz"));
        assert_eq!(token_from_headers(&h).as_deref(), Some("xyz"));
        assert_eq!(token_from_headers(&HeaderMap::new()), None);
    }
}
