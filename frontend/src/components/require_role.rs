//! Shows its children only to users whose role includes `role`; others see
//! why they cannot.

use leptos::prelude::*;
use shared_types::auth::Role;

use crate::session::{needs, use_session};

#[component]
pub fn RequireRole(role: Role, children: ChildrenFn) -> impl IntoView {
    let session = use_session();
    view! {
        <Show
            when=move || session.can(role)
            fallback=move || view! {
                <div class="card"><p class="muted" data-testid="role-required">{needs(role, session.user.get().as_ref())}</p></div>
            }
        >
            {children()}
        </Show>
    }
}
