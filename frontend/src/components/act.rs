//! Running an API call from a button: a busy flag while it runs, the
//! server's message when it fails (a 401 ends the session).

use std::future::Future;

use leptos::prelude::*;
use leptos::task::spawn_local;

use shared_types::error::FieldError;

use crate::api::ApiError;
use crate::session::{use_session, Session};

#[derive(Clone, Copy)]
pub struct Act {
    session: Session,
    pub busy: RwSignal<bool>,
    pub error: RwSignal<Option<String>>,
    /// The fields the last failure named, to show each beside its control.
    pub fields: RwSignal<Vec<FieldError>>,
}

impl Act {
    /// Create inside a component (it reads the session from context).
    pub fn new() -> Self {
        Act { session: use_session(), busy: RwSignal::new(false), error: RwSignal::new(None), fields: RwSignal::new(Vec::new()) }
    }

    pub fn run<T: 'static>(self, fut: impl Future<Output = Result<T, ApiError>> + 'static, done: impl FnOnce(T) + 'static) {
        if self.busy.get_untracked() {
            return;
        }
        self.busy.set(true);
        self.error.set(None);
        self.fields.set(Vec::new());
        spawn_local(async move {
            let result = self.session.watch(fut.await);
            self.busy.try_set(false);
            match result {
                Ok(v) => done(v),
                Err(e) => {
                    self.fields.try_set(e.details);
                    self.error.try_set(Some(e.message));
                }
            }
        });
    }

    /// What the last failure said about `field`, if it named it.
    pub fn field(self, field: &str) -> Option<String> {
        self.fields.with(|f| f.iter().find(|e| e.field == field).map(|e| e.message.clone()))
    }
}

/// The error of an [`Act`], shown inline under the form or buttons.
#[component]
pub fn ActError(act: Act, #[prop(into)] testid: String) -> impl IntoView {
    view! {
        <Show when=move || act.error.with(|e| e.is_some())>
            <p class="notice warning" role="alert" data-testid=testid.clone()>{move || act.error.get().unwrap_or_default()}</p>
        </Show>
    }
}
