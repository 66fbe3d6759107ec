//! Who is signed in. `None` shows the sign-in screen; any 401 from the API
//! or a WebSocket closed with 4401 sets it back to `None`.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared_types::auth::{Role, User};

use crate::api::{self, ApiError};

#[derive(Clone, Copy)]
pub struct Session {
    pub user: RwSignal<Option<User>>,
    /// False until the first `GET /auth/me` answered.
    pub checked: RwSignal<bool>,
    /// Why the user was sent back to the sign-in screen, if they were.
    pub ended_reason: RwSignal<Option<String>>,
}

impl Session {
    pub fn role(&self) -> Option<Role> {
        self.user.with(|u| u.as_ref().map(|u| u.role))
    }

    /// Whether the signed-in role includes `required`.
    pub fn can(&self, required: Role) -> bool {
        self.role().is_some_and(|r| r.allows(required))
    }

    /// The session is over (expired, revoked): back to the sign-in screen.
    pub fn ended(&self, reason: &str) {
        if self.user.get_untracked().is_some() {
            self.ended_reason.set(Some(reason.to_owned()));
        }
        self.user.set(None);
    }

    /// Passes results through; a 401 ends the session.
    pub fn watch<T>(&self, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(e) = &result {
            if e.unauthorized() {
                self.ended("Your session has ended. Sign in again.");
            }
        }
        result
    }

    pub fn sign_out(&self) {
        let session = *self;
        spawn_local(async move {
            let _ = api::logout().await;
            session.ended_reason.set(None);
            session.user.set(None);
        });
    }
}

pub fn provide_session() -> Session {
    let session = Session { user: RwSignal::new(None), checked: RwSignal::new(false), ended_reason: RwSignal::new(None) };
    provide_context(session);
    spawn_local(async move {
        if let Ok(me) = api::me().await {
            session.user.set(Some(me.user));
        }
        session.checked.set(true);
    });
    session
}

pub fn use_session() -> Session {
    expect_context::<Session>()
}

/// Why `role` cannot do what needs `required`, for tooltips and notes.
pub fn needs(required: Role, user: Option<&User>) -> String {
    match user {
        Some(u) => format!("Needs the {required} role; you are signed in as {} ({}).", u.username, u.role),
        None => format!("Needs the {required} role."),
    }
}
