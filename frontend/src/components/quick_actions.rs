//! Always-reachable actions: Emergency Stop, Alerts, user menu (global
//! search is `global_search.rs`).

use leptos::prelude::*;

use crate::live::use_live;
use crate::session::{needs, use_session};
use shared_types::auth::Role;

#[component]
pub fn QuickActions() -> impl IntoView {
    view! {
        <div class="quick-actions">
            <crate::components::alert_bell::AlertBell />
            <EmergencyStop />
            <UserMenu />
        </div>
    }
}

#[component]
fn EmergencyStop() -> impl IntoView {
    let open = RwSignal::new(false);
    let session = use_session();
    let allowed = move || session.can(Role::Operator);
    let why = move || if allowed() { "Stop every running operation".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) };
    view! {
        <button
            class="emergency-stop"
            data-testid="emergency-stop"
            disabled=move || !allowed()
            title=why
            aria-label=move || format!("Emergency Stop: {}", why())
            on:click=move |_| open.set(true)
        >
            <svg class="stop-icon" viewBox="0 0 16 16" aria-hidden="true">
                <path d="M5 1h6l4 4v6l-4 4H5l-4-4V5z" />
                <rect x="5" y="5" width="6" height="6" rx="0.5" />
            </svg>
            <span class="label">"EMERGENCY STOP"</span>
        </button>
        <crate::components::job_controls::EmergencyStopDialog open=open />
    }
}

#[component]
fn UserMenu() -> impl IntoView {
    let open = RwSignal::new(false);
    let live = use_live();
    let session = use_session();
    let name = move || session.user.get().map(|u| u.username).unwrap_or_default();
    let role = move || session.role().map(|r| r.as_str()).unwrap_or_default();
    view! {
        <div class="dropdown">
            <button
                class="icon-button user-button"
                data-testid="user-menu"
                aria-label="User menu"
                aria-expanded=move || open.get().to_string()
                on:click=move |_| open.update(|o| *o = !*o)
            >
                <span aria-hidden="true">"◉"</span>
                <span class="label">{name}</span>
            </button>
            <Show when=move || open.get()>
                <div class="dropdown-panel" role="menu" data-testid="user-menu-panel">
                    <p>
                        <strong data-testid="user-menu-name">{name}</strong>
                        " "
                        <span class=move || format!("role-badge {}", role()) data-testid="user-menu-role">{role}</span>
                    </p>
                    <p class="muted small">
                        "Sendense " {move || live.version.get().unwrap_or_else(|| "(version unknown)".into())}
                    </p>
                    <button class="button" data-testid="sign-out" on:click=move |_| session.sign_out()>"Sign out"</button>
                </div>
            </Show>
        </div>
    }
}
