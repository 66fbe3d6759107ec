//! The authentication layer over `/api/v1` and the `AuthUser` extractor.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use shared_types::auth::Role;

use super::audit::{self, AuditNote, NotAudited};
use super::policy::{self, Access};
use super::session;
use crate::api::ApiError;
use crate::state::AppState;

/// The signed-in user of a request. Handlers take it as an argument; the
/// middleware has already refused requests without a valid session.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    pub session_id: String,
    pub session_expires_at: DateTime<Utc>,
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<AuthUser>().cloned().ok_or_else(ApiError::sign_in_required)
    }
}

/// The client's IP address, when the server knows it.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(&parts.extensions)))
    }
}

fn client_addr(ext: &axum::http::Extensions) -> Option<String> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
}

/// Authenticates and authorises every API request by [`policy::access`],
/// then writes mutating requests to the audit log.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let address = client_addr(req.extensions());
    let token = session::token_from_headers(req.headers());

    let user = match &token {
        Some(t) => match session::lookup(&state.db, t).await {
            Ok(found) => found,
            Err(err) => return ApiError::from(err).into_response(),
        },
        None => None,
    };
    let user = user.map(|(s, u)| AuthUser {
        role: u.role(),
        user_id: u.id,
        username: u.username,
        session_id: s.id,
        session_expires_at: s.expires_at,
    });

    match (policy::access(&method, &path), &user) {
        (Access::Public, _) => {}
        (Access::Signed(_), None) => {
            return if token.is_some() { ApiError::session_ended() } else { ApiError::sign_in_required() }
                .into_response();
        }
        (Access::Signed(required), Some(u)) if !u.role.allows(required) => {
            let err = ApiError::role_required(required, u);
            if policy::is_audited(&method, &path) {
                let action = format!("{method} {path}");
                let record = audit::Record {
                    actor: Some(u.username.clone()),
                    action: &action,
                    target: &path,
                    status: 403,
                    address,
                };
                audit::record(&state.db, record).await;
            }
            return err.into_response();
        }
        (Access::Signed(_), Some(_)) => {}
    }
    if let Some(u) = &user {
        req.extensions_mut().insert(u.clone());
    }

    let response = next.run(req).await;
    // A handler that changed nothing says so; only a success may skip the log.
    let unchanged = response.status().is_success() && response.extensions().get::<NotAudited>().is_some();
    if policy::is_audited(&method, &path) && !unchanged {
        let note = response.extensions().get::<AuditNote>().cloned();
        let fallback_action = format!("{method} {path}");
        let (action, target, actor) = match &note {
            Some(n) => (n.action, n.target.as_str(), n.actor.clone()),
            None => (fallback_action.as_str(), path.as_str(), None),
        };
        let actor = actor.or_else(|| user.as_ref().map(|u| u.username.clone()));
        // Anonymous requests refused for lack of a session are not worth a row.
        if actor.is_some() {
            let status = response.status().as_u16();
            audit::record(&state.db, audit::Record { actor, action, target, status, address }).await;
        }
    }
    response
}
