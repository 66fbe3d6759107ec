//! New replication: a managed VM → a standby platform, the sync interval
//! (also the RPO), how many points the replica keeps, and whether the
//! initial sync starts now (`POST /replication/start`) or the flow waits
//! paused (`POST /replication` with `enabled: false`).

use leptos::prelude::*;
use shared_types::replication::{CreateReplicationRequest, DEFAULT_INTERVAL_SECONDS, DEFAULT_KEEP_POINTS, KEEP_POINTS_MAX, KEEP_POINTS_MIN};

use super::{interval_text, use_replication_hub};
use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::live::use_live;

/// Intervals offered, in seconds.
const INTERVALS: &[u64] = &[300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86_400];

#[component]
pub fn NewReplicationModal() -> impl IntoView {
    let hub = use_replication_hub();
    view! {
        {move || hub.create.get().map(|vm| view! {
            <div class="modal-backdrop" on:click=move |_| hub.create.set(None)>
                <div class="modal" role="dialog" aria-modal="true" aria-label="New replication" data-testid="repl-new"
                    on:click=|ev| ev.stop_propagation() on:keydown=move |ev| if ev.key() == "Escape" { hub.create.set(None) }>
                    <header class="modal-head">
                        <h2>"NEW REPLICATION"</h2>
                        <button class="icon-button" aria-label="Close" on:click=move |_| hub.create.set(None)>"✕"</button>
                    </header>
                    <div class="modal-body"><ReplicationForm vm=vm /></div>
                </div>
            </div>
        })}
    }
}

#[component]
fn ReplicationForm(vm: String) -> impl IntoView {
    let hub = use_replication_hub();
    let live = use_live();
    let act = Act::new();
    let vms = Fetch::new(api::vm_contexts);
    let platforms = Fetch::new(api::platforms);
    let vm_id = RwSignal::new(vm);
    let target = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let interval = RwSignal::new(DEFAULT_INTERVAL_SECONDS.to_string());
    let keep = RwSignal::new(DEFAULT_KEEP_POINTS.to_string());
    let start_now = RwSignal::new(true);
    let local_error = RwSignal::new(None::<String>);
    let vm_list = move || vms.get().and_then(|r| r.ok()).map(|p| p.items).unwrap_or_default();
    let chosen_vm = Memo::new(move |_| {
        let id = vm_id.get();
        vm_list().into_iter().find(|v| v.id == id)
    });
    // Platforms a replica of the chosen VM can live on: any but its own.
    let targets = Memo::new(move |_| {
        let own = chosen_vm.with(|v| v.as_ref().map(|v| v.platform_id.clone()));
        platforms.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().filter(|p| Some(&p.id) != own.as_ref()).collect::<Vec<_>>()
    });
    Effect::new(move |_| {
        let list = targets.get();
        if !list.iter().any(|p| p.id == target.get_untracked()) {
            target.set(list.first().map(|p| p.id.clone()).unwrap_or_default());
        }
    });
    let replicated = move |id: &str| live.replications.with(|m| m.values().filter(|f| f.source_vm.id == id).count());
    let placeholder = move || {
        let vm = chosen_vm.with(|v| v.as_ref().map(|v| v.name.clone())).unwrap_or_else(|| "<vm>".into());
        let t = targets.with(|l| l.iter().find(|p| p.id == target.get()).map(|p| p.name.clone())).unwrap_or_else(|| "<target>".into());
        format!("{vm} to {t}")
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        local_error.set(None);
        let keep_points = match keep.get_untracked().trim().parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                local_error.set(Some(format!("Keep points: a whole number from {KEEP_POINTS_MIN} to {KEEP_POINTS_MAX}.")));
                return;
            }
        };
        let start = start_now.get_untracked();
        let req = CreateReplicationRequest {
            vm_id: vm_id.get_untracked(),
            target_platform_id: target.get_untracked(),
            name: Some(name.get_untracked().trim().to_string()).filter(|n| !n.is_empty()),
            interval_seconds: interval.get_untracked().parse().ok(),
            keep_points: Some(keep_points),
            network_mapping: Vec::new(),
            enabled: (!start).then_some(false),
        };
        if let Err((_, message)) = req.validate() {
            local_error.set(Some(message));
            return;
        }
        let close = move |flow| {
            live.offer_replication(flow);
            hub.create.set(None);
        };
        if start {
            act.run(api::start_replication(req), move |a| close(a.flow));
        } else {
            act.run(api::create_replication(req), close);
        }
    };
    view! {
        <form class="form-col" on:submit=submit>
            <label>"VM to replicate"
                <select data-testid="repl-new-vm" prop:value=move || vm_id.get() on:change=move |ev| vm_id.set(event_target_value(&ev))>
                    <option value="">"Choose a managed VM…"</option>
                    {move || vm_list().into_iter().map(|v| {
                        let n = replicated(&v.id);
                        let label = format!("{} · {}{}", v.name, v.platform_name, if n > 0 { format!(" (replicated ×{n})") } else { String::new() });
                        view! { <option value=v.id.clone() selected=vm_id.get_untracked() == v.id>{label}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Target platform (the standby site)"
                <select data-testid="repl-new-target" prop:value=move || target.get() on:change=move |ev| target.set(event_target_value(&ev))>
                    {move || targets.get().into_iter().map(|p| {
                        let id = p.id.clone();
                        view! { <option value=p.id.clone() selected=move || target.get() == id>{format!("{} · {}", p.name, p.kind.label())}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Name (optional)"
                <input type="text" data-testid="repl-new-name" placeholder=placeholder prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
            </label>
            <div class="form-row">
                <label>"Sync every (the RPO)"
                    <select data-testid="repl-new-interval" prop:value=move || interval.get() on:change=move |ev| interval.set(event_target_value(&ev))>
                        {INTERVALS.iter().map(|s| view! { <option value=s.to_string() selected=*s == DEFAULT_INTERVAL_SECONDS>{interval_text(*s)}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Keep points"
                    <input type="text" inputmode="numeric" data-testid="repl-new-keep" prop:value=move || keep.get() on:input=move |ev| keep.set(event_target_value(&ev)) />
                </label>
            </div>
            <label class="check">
                <input type="checkbox" data-testid="repl-new-start" prop:checked=move || start_now.get() on:change=move |ev| start_now.set(event_target_checked(&ev)) />
                "Start the initial sync now (otherwise the flow waits, paused)"
            </label>
            <p class="muted small">"Failover networks come from the network mappings of the two platforms; a flow shows what is missing before any failover."</p>
            {move || local_error.get().map(|e| view! { <p class="notice warning" data-testid="repl-new-form-error">{e}</p> })}
            <ActError act=act testid="repl-new-error" />
            <div class="modal-actions">
                <button class="button" type="button" data-testid="repl-new-cancel" on:click=move |_| hub.create.set(None)>"Cancel"</button>
                <button class="button primary" type="submit" data-testid="repl-new-submit" disabled=move || act.busy.get() || vm_id.with(|v| v.is_empty()) || target.with(|t| t.is_empty())>
                    {move || if start_now.get() { "Create and start" } else { "Create paused" }}
                </button>
            </div>
        </form>
    }
}
