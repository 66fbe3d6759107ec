//! Power actions on a managed VM: a "Power…" button opens a dialog that
//! says what will happen to the guest and asks for confirmation (Start;
//! Shut down with its timeout before a hard stop; Stop; Reboot). The result
//! is the power state the platform reports; the table reloads.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared_types::platform::{PowerAction, PowerRequest, PowerState};

use crate::api;
use crate::components::modal::Modal;
use crate::fetch::Fetch;
use crate::live::use_live;
use crate::session::use_session;

fn label(a: PowerAction) -> &'static str {
    match a {
        PowerAction::Start => "Start",
        PowerAction::Shutdown => "Shut down",
        PowerAction::Stop => "Stop",
        PowerAction::Reboot => "Reboot",
    }
}

fn what_happens(a: PowerAction, timeout: u32) -> String {
    match a {
        PowerAction::Start => "The VM boots on its host.".into(),
        PowerAction::Shutdown => format!("The guest is asked to shut down (ACPI). If it is still running after {timeout} s it is stopped hard."),
        PowerAction::Stop => "The VM stops at once, like pulling the plug: anything the guest has not written is lost.".into(),
        PowerAction::Reboot => "The guest is asked to restart; one that does not answer is reset.".into(),
    }
}

#[component]
pub fn PowerButton(vm_id: String, vm_name: String, power: PowerState) -> impl IntoView {
    let live = use_live();
    let session = use_session();
    let operator = move || session.can(shared_types::auth::Role::Operator);
    let open = RwSignal::new(false);
    let action = RwSignal::new(if power == PowerState::Running { PowerAction::Shutdown } else { PowerAction::Start });
    let timeout = RwSignal::new(60u32);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let choices: Vec<PowerAction> = match power {
        PowerState::Running => vec![PowerAction::Shutdown, PowerAction::Reboot, PowerAction::Stop],
        PowerState::Suspended => vec![PowerAction::Start, PowerAction::Stop],
        PowerState::Stopped => vec![PowerAction::Start],
    };
    let name = vm_name.clone();
    // The console tail, fetched each time the dialog opens.
    let console_id = vm_id.clone();
    let console = Fetch::new(move || {
        let (id, shown) = (console_id.clone(), open.get());
        async move { if shown { Some(api::vm_console(&id, 20).await) } else { None } }
    });
    let confirm = move |_| {
        let (id, req) = (vm_id.clone(), PowerRequest { action: action.get_untracked(), timeout_seconds: Some(timeout.get_untracked()) });
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::vm_power(&id, req).await {
                Ok(_) => {
                    open.set(false);
                    live.vms_version.update(|v| *v += 1);
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <button class="button small" data-testid=format!("power-{vm_name}") disabled=move || !operator() on:click=move |_| { error.set(None); open.set(true) }>
            "Power…"
        </button>
        <Modal open=open title="Power" testid=format!("power-dialog-{vm_name}")>
            <p>{format!("{} is {}.", name.clone(), match power { PowerState::Running => "running", PowerState::Stopped => "stopped", PowerState::Suspended => "paused" })}</p>
            <div class="action-row" role="radiogroup" aria-label="Power action">
                {choices.clone().into_iter().map(|a| view! {
                    <button class="button small" class:primary=move || action.get() == a data-testid=format!("power-choice-{}", label(a).to_lowercase().replace(' ', "-"))
                        role="radio" aria-checked=move || (action.get() == a).to_string() on:click=move |_| action.set(a)>{label(a)}</button>
                }).collect_view()}
            </div>
            <p class="muted small wrap-text" data-testid="power-what">{move || what_happens(action.get(), timeout.get())}</p>
            <Show when=move || action.get() == PowerAction::Shutdown>
                <label>"Hard stop after (seconds)"
                    <input type="number" min="1" max="3600" data-testid="power-timeout" prop:value=move || timeout.get().to_string()
                        on:input=move |ev| {
                            if let Ok(v) = event_target_value(&ev).parse::<u32>() {
                                timeout.set(v);
                            }
                        } />
                </label>
            </Show>
            {move || error.get().map(|e| view! { <p class="error" role="alert" data-testid="power-error">{e}</p> })}
            <h3 class="small muted">"Console"</h3>
            {move || match console.get().flatten() {
                Some(Ok(c)) if !c.lines.is_empty() => view! { <pre class="console-tail mono small" data-testid="console-tail">{c.lines.join("\n")}</pre> }.into_any(),
                Some(Ok(_)) => view! { <p class="muted small" data-testid="console-tail">"The console is silent."</p> }.into_any(),
                Some(Err(e)) => view! { <p class="muted small" data-testid="console-tail">{e.message}</p> }.into_any(),
                None => view! { <p class="muted small">"Loading…"</p> }.into_any(),
            }}
            <div class="modal-actions">
                <button class="button" on:click=move |_| open.set(false)>"Cancel"</button>
                <button class="button primary" data-testid="power-confirm" disabled=move || busy.get() on:click=confirm.clone()>
                    {let n = vm_name.clone(); move || if busy.get() { "Working…".to_string() } else { format!("{} {}", label(action.get()), n) }}
                </button>
            </div>
        </Modal>
    }
}
