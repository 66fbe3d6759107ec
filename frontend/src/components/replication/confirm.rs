//! Confirmations of the actions that change what runs where (seed 003's
//! "operational safety"): test failover (choose the point), end of test and
//! cleanup ask plainly; live failover and rollback show what will happen
//! and are only possible once the source VM's name is typed exactly
//! ([`check_confirmation`], the check the server makes too).

use leptos::prelude::*;
use shared_types::replication::{
    check_confirmation, FailoverRequest, ReplicaPoint, ReplicationAction, ReplicationFlow, ReplicationState, RollbackRequest,
    TestFailoverRequest, ISOLATED_NETWORK,
};

use super::details::NetworkProblems;
use crate::api;
use crate::components::act::{Act, ActError};
use crate::format::{format_bytes, when};
use crate::live::use_live;

/// An action waiting for its confirmation, with the flow and its points as
/// they were when it was asked for (typing is not lost when the flow updates).
#[derive(Debug, Clone, PartialEq)]
pub struct Confirming {
    pub action: ReplicationAction,
    pub flow: ReplicationFlow,
    pub points: Vec<ReplicaPoint>,
}

#[component]
pub fn ConfirmDialog(c: Confirming, open: RwSignal<Option<Confirming>>) -> impl IntoView {
    let live = use_live();
    let act = Act::new();
    let close = move || open.set(None);
    let Confirming { action, flow, points } = c;
    let id = flow.id.clone();
    let vm = flow.source_vm.name.clone();
    let target = flow.target_platform.name.clone();
    let source_platform = flow.source_platform.name.clone();
    // Inputs of the dialogs.
    let point = RwSignal::new(points.first().map(|p| p.id.clone()).unwrap_or_default());
    let typed = RwSignal::new(String::new());
    let final_sync = RwSignal::new(true);
    let shutdown_s = RwSignal::new(shared_types::replication::FAILOVER_SHUTDOWN_TIMEOUT_SECONDS.to_string());
    let sync_back = RwSignal::new(true);
    let vm_check = vm.clone();
    let confirmed = Memo::new(move |_| typed.with(|t| check_confirmation(&vm_check, t).is_ok()));
    let needs_typing = action.is_dangerous();
    let title = match action {
        ReplicationAction::TestFailover => "TEST FAILOVER",
        ReplicationAction::EndTest => "END TEST",
        ReplicationAction::Cleanup => "CLEAN UP",
        ReplicationAction::Failover => "LIVE FAILOVER",
        ReplicationAction::Rollback => "ROLL BACK",
        _ => "CONFIRM",
    };
    let submit_label = match action {
        ReplicationAction::TestFailover => "Start test failover".to_string(),
        ReplicationAction::EndTest => "End test".to_string(),
        ReplicationAction::Cleanup => "Clean up".to_string(),
        ReplicationAction::Failover => format!("Fail over to {target}"),
        ReplicationAction::Rollback => format!("Roll back to {source_platform}"),
        a => a.label().to_string(),
    };
    let submit = move |_| {
        let id = id.clone();
        let done = move |a: shared_types::replication::ReplicationAccepted| {
            live.offer_replication(a.flow);
            open.set(None);
        };
        match action {
            ReplicationAction::TestFailover => {
                let point_id = Some(point.get_untracked()).filter(|p| !p.is_empty());
                act.run(api::test_failover(id, TestFailoverRequest { point_id }), done)
            }
            ReplicationAction::EndTest => act.run(api::replication_action(id, "end-test"), done),
            ReplicationAction::Cleanup => act.run(api::replication_action(id, "cleanup"), done),
            ReplicationAction::Failover => {
                let req = FailoverRequest {
                    confirm: typed.get_untracked(),
                    final_sync: Some(final_sync.get_untracked()),
                    // Not a number: the server's default (it refuses what is out of range).
                    shutdown_timeout_seconds: shutdown_s.with_untracked(|s| s.trim().parse().ok()),
                };
                act.run(api::failover(id, req), done)
            }
            ReplicationAction::Rollback => {
                let req = RollbackRequest { confirm: typed.get_untracked(), sync_back: sync_back.get_untracked() };
                act.run(api::rollback(id, req), done)
            }
            _ => close(),
        }
    };
    let body = match action {
        ReplicationAction::TestFailover => view! { <TestBody flow=flow.clone() points=points point=point /> }.into_any(),
        ReplicationAction::EndTest => view! {
            <p data-testid="repl-confirm-text">
                {format!("The test VM {} is powered off and deleted from {target}. ", flow.test_vm_name.clone().unwrap_or_else(|| "of this flow".into()))}
                "The replica and its points stay as they are, and syncs resume at the interval."
            </p>
        }.into_any(),
        ReplicationAction::Cleanup => view! { <p data-testid="repl-confirm-text">{cleanup_text(&flow)}</p> }.into_any(),
        ReplicationAction::Failover => view! { <FailoverBody flow=flow.clone() final_sync=final_sync shutdown_s=shutdown_s /> }.into_any(),
        ReplicationAction::Rollback => view! { <RollbackBody flow=flow.clone() sync_back=sync_back /> }.into_any(),
        _ => ().into_any(),
    };
    let typing = needs_typing.then(|| {
        let vm = vm.clone();
        view! {
            <label class="confirm-name">
                <span>"Type the VM name " <strong class="mono">{vm.clone()}</strong> " to confirm"</span>
                <input type="text" autocomplete="off" spellcheck="false" data-testid="repl-confirm-name" placeholder=vm.clone()
                    prop:value=move || typed.get() on:input=move |ev| typed.set(event_target_value(&ev)) />
                <span class=move || if confirmed.get() { "small ok" } else { "small muted" } data-testid="repl-confirm-check">
                    {move || if confirmed.get() { "Name matches.".to_string() } else { check_confirmation(&vm, &typed.get()).err().unwrap_or_default() }}
                </span>
            </label>
        }
    });
    let danger = matches!(action, ReplicationAction::Failover | ReplicationAction::Rollback);
    view! {
        <div class="modal-backdrop" on:click=move |_| close()>
            <div class=if danger { "modal danger-modal" } else { "modal" } role="dialog" aria-modal="true" aria-label=title
                data-testid="repl-confirm" data-action=action.as_str()
                on:click=|ev| ev.stop_propagation() on:keydown=move |ev| if ev.key() == "Escape" { close() }>
                <header class="modal-head">
                    <h2>{format!("{title} · {}", flow.name)}</h2>
                    <button class="icon-button" aria-label="Close" on:click=move |_| close()>"✕"</button>
                </header>
                <div class="modal-body form-col">
                    {body}
                    {typing}
                    <ActError act=act testid="repl-confirm-error" />
                    <div class="modal-actions">
                        <button class="button" data-testid="repl-confirm-cancel" on:click=move |_| close()>"Cancel"</button>
                        <button class=if danger { "button danger" } else { "button primary" } data-testid="repl-confirm-submit"
                            disabled=move || act.busy.get() || (needs_typing && !confirmed.get()) on:click=submit>
                            {submit_label}
                        </button>
                    </div>
                </div>
            </div>
        </div>
    }
}

fn cleanup_text(flow: &ReplicationFlow) -> String {
    let target = &flow.target_platform.name;
    match flow.state {
        ReplicationState::Testing => format!(
            "Removes the test VM {} and anything the test left on {target}. The replica and its points are not touched.",
            flow.test_vm_name.as_deref().unwrap_or("of this flow")
        ),
        ReplicationState::FailedOver => format!(
            "Removes leftovers of interrupted operations on {target}. Production keeps running on the replica: cleaning up never ends a failover."
        ),
        _ => format!(
            "Removes what failed or interrupted operations left on {target} (test VMs, partial copies). The replica's consistent points are kept."
        ),
    }
}

#[component]
fn TestBody(flow: ReplicationFlow, points: Vec<ReplicaPoint>, point: RwSignal<String>) -> impl IntoView {
    view! {
        <label>"Point to test"
            <select data-testid="repl-test-point" prop:value=move || point.get() on:change=move |ev| point.set(event_target_value(&ev))>
                {points.into_iter().enumerate().map(|(i, p)| view! {
                    <option value=p.id.clone()>{format!("{} · {} · {}{}", p.id, when(p.consistent_at), p.kind.as_str(), if i == 0 { " (newest)" } else { "" })}</option>
                }).collect_view()}
            </select>
        </label>
        <p data-testid="repl-confirm-text">
            {format!(
                "A test VM is started on {} from the chosen point, attached only to the isolated network {ISOLATED_NETWORK} \
                 (no uplink: it never meets production). The replica and its points are untouched, and {} keeps running \
                 where it is. Syncs wait until you end the test.",
                flow.target_platform.name, flow.source_vm.name
            )}
        </p>
    }
}

#[component]
fn FailoverBody(flow: ReplicationFlow, final_sync: RwSignal<bool>, shutdown_s: RwSignal<String>) -> impl IntoView {
    let target = flow.target_platform.name.clone();
    let vm = flow.source_vm.name.clone();
    let last = flow.last_consistent_at.map(when).unwrap_or_else(|| "—".into());
    view! {
        <div class="notice warning failover-warning" data-testid="repl-failover-warning">
            <strong>{format!("⚠ This will switch production to {target}.")}</strong>
            " Ensure all prerequisites are met."
        </div>
        <ul class="plain-list small">
            <li>{move || if final_sync.get() {
                format!("{vm} is shut down on {} and its last changes are copied to the replica (no data lost).", flow.source_platform.name)
            } else {
                format!("{vm} is not synced again: the replica starts from its newest point ({last}); changes made since then are lost.")
            }}</li>
            <li>{format!("The replica {} is powered on on {target} with the failover network mapping.", flow.replica_vm_name)}</li>
            <li>"Syncs stop until you roll back."</li>
        </ul>
        <label class="check">
            <input type="checkbox" data-testid="repl-final-sync" prop:checked=move || final_sync.get()
                on:change=move |ev| final_sync.set(event_target_checked(&ev)) />
            "Final sync first (uncheck only when the source is unreachable)"
        </label>
        <label class="inline-field small">
            "Source shutdown: stop it hard after "
            <input type="text" inputmode="numeric" size="5" data-testid="repl-shutdown-timeout" prop:value=move || shutdown_s.get()
                on:input=move |ev| shutdown_s.set(event_target_value(&ev)) />
            " s"
        </label>
        {(!flow.network_problems.is_empty()).then(|| view! { <NetworkProblems problems=flow.network_problems.clone() /> })}
        {flow.last_sync.as_ref().map(|s| view! {
            <p class="muted small">{format!("Last sync: {} at {}, {} written.", s.kind.as_str(), when(s.finished_at), format_bytes(s.bytes_written))}</p>
        })}
    }
}

#[component]
fn RollbackBody(flow: ReplicationFlow, sync_back: RwSignal<bool>) -> impl IntoView {
    let vm = flow.source_vm.name.clone();
    let source = flow.source_platform.name.clone();
    let target = flow.target_platform.name.clone();
    view! {
        <p>{format!("Production goes back to {vm} on {source}; the replica on {target} is powered off again and syncs resume.")}</p>
        <fieldset class="radio-row" data-testid="repl-rollback-mode">
            <legend>"Changes made on the replica during the failover"</legend>
            <label class="radio">
                <input type="radio" name="sync-back" data-testid="repl-rollback-sync" prop:checked=move || sync_back.get() on:change=move |_| sync_back.set(true) />
                <span><strong>"Sync changes back"</strong>{format!(" — copy what changed on the replica to {vm} before it starts.")}</span>
            </label>
            <label class="radio">
                <input type="radio" name="sync-back" data-testid="repl-rollback-discard" prop:checked=move || !sync_back.get() on:change=move |_| sync_back.set(false) />
                <span><strong>"Discard changes made during failover"</strong>{format!(" — {vm} starts as it was when production left it.")}</span>
            </label>
        </fieldset>
    }
}
