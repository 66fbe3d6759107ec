//! Pause All and Emergency Stop (with confirmation): operator role; viewers
//! see the buttons disabled with the reason.

use leptos::prelude::*;
use shared_types::auth::Role;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::modal::Modal;
use crate::session::{needs, use_session};

#[component]
pub fn PauseAllButton() -> impl IntoView {
    let session = use_session();
    let act = Act::new();
    let done = RwSignal::new(None::<u64>);
    let allowed = move || session.can(Role::Operator);
    view! {
        <button class="button" data-testid="pause-all" disabled=move || !allowed() || act.busy.get()
            title=move || if allowed() { "Pause every running job".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) }
            on:click=move |_| act.run(api::pause_all(), move |r| done.set(Some(r.count)))>
            "Pause All"
        </button>
        {move || done.get().map(|n| view! { <span class="muted small" data-testid="pause-all-result">{format!("{n} job(s) paused")}</span> })}
        <ActError act=act testid="pause-all-error" />
    }
}

/// The confirmation dialog; `open` shows it.
#[component]
pub fn EmergencyStopDialog(open: RwSignal<bool>) -> impl IntoView {
    let act = Act::new();
    let result = RwSignal::new(None::<u64>);
    Effect::new(move |_| {
        if open.get() {
            result.set(None);
        }
    });
    view! {
        <Modal open=open title="Emergency Stop" testid="emergency-stop-dialog">
            <p>
                "Emergency Stop halts every running backup, restore and replication job at once, at the next "
                "safe point, so no repository or replica is left half written. Queued jobs are cancelled."
            </p>
            {move || match result.get() {
                Some(n) => view! { <p class="notice operational" data-testid="emergency-stop-state">{format!("Stopped {n} job(s).")}</p> }.into_any(),
                None => view! { <p class="notice caution" data-testid="emergency-stop-state">"Every job stops. Are you sure?"</p> }.into_any(),
            }}
            <ActError act=act testid="emergency-stop-error" />
            <div class="modal-actions">
                <button class="button" on:click=move |_| open.set(false)>"Close"</button>
                <button class="button danger" data-testid="emergency-stop-confirm" disabled=move || act.busy.get() || result.get().is_some()
                    on:click=move |_| act.run(api::emergency_stop(), move |r| result.set(Some(r.count)))>
                    "Stop every job"
                </button>
            </div>
        </Modal>
    }
}

#[component]
pub fn EmergencyStopButton(#[prop(into)] testid: String) -> impl IntoView {
    let session = use_session();
    let open = RwSignal::new(false);
    let allowed = move || session.can(Role::Operator);
    view! {
        <button class="button danger" data-testid=testid disabled=move || !allowed()
            title=move || if allowed() { "Stop every running operation".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) }
            on:click=move |_| open.set(true)>
            "Emergency Stop"
        </button>
        <EmergencyStopDialog open=open />
    }
}
