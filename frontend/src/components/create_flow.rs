//! New or edited backup flow: a group (or chosen VMs) → a repository, a
//! cron schedule and retention, and a copy target (3-2-1); the server's
//! validation errors shown inline.

use leptos::prelude::*;
use shared_types::flow::{CreateFlowRequest, Flow, FlowKind, FlowSource, RetentionPolicy, UpdateFlowRequest};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::copy_target::{CopyTargetFields, CopyTargetLine, CopyTargetState};
use crate::fetch::Fetch;

/// Open while `open` is `Some(preselected group id or "")`.
#[component]
pub fn CreateFlowModal(open: RwSignal<Option<String>>, #[prop(into)] on_created: Callback<()>) -> impl IntoView {
    view! {
        {move || open.get().map(|group| view! {
            <div class="modal-backdrop" on:click=move |_| open.set(None)>
                <div class="modal" role="dialog" aria-modal="true" aria-label="New backup flow" data-testid="create-flow"
                    on:click=|ev| ev.stop_propagation()>
                    <header class="modal-head">
                        <h2>"NEW BACKUP FLOW"</h2>
                        <button class="icon-button" aria-label="Close" on:click=move |_| open.set(None)>"✕"</button>
                    </header>
                    <div class="modal-body">
                        <FlowForm group=group editing=None
                            on_close=Callback::new(move |_| open.set(None))
                            on_saved=Callback::new(move |_| { open.set(None); on_created.run(()); }) />
                    </div>
                </div>
            </div>
        })}
    }
}

fn number(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

/// The flow form: creates a flow, or with `editing` changes that flow
/// (`PATCH`, only the fields that differ).
#[component]
pub fn FlowForm(group: String, editing: Option<Flow>, on_close: Callback<()>, on_saved: Callback<()>) -> impl IntoView {
    let act = Act::new();
    let groups = Fetch::new(api::groups);
    let repos = Fetch::new(api::repositories);
    let vms = Fetch::new(api::vm_contexts);
    let name = RwSignal::new(editing.as_ref().map(|f| f.name.clone()).unwrap_or_default());
    let (initial_group, initial_vms) = match editing.as_ref().map(|f| &f.source) {
        Some(FlowSource::Group { group_id }) => (group_id.clone(), Vec::new()),
        Some(FlowSource::Vms { vm_ids }) => (String::new(), vm_ids.clone()),
        None => (group, Vec::new()),
    };
    let source_group = RwSignal::new(initial_group);
    let chosen_vms = RwSignal::new(initial_vms);
    let repo = RwSignal::new(editing.as_ref().map(|f| f.repository.id.clone()).unwrap_or_default());
    let schedule = RwSignal::new(match &editing {
        Some(f) => f.schedule.clone().unwrap_or_default(),
        None => "0 2 * * *".to_string(),
    });
    let keep_last = RwSignal::new(match &editing {
        Some(f) => number(f.retention.keep_last),
        None => "7".to_string(),
    });
    let keep_daily = RwSignal::new(editing.as_ref().map(|f| number(f.retention.keep_daily)).unwrap_or_default());
    let immutable = RwSignal::new(editing.as_ref().map(|f| f.immutable_days.to_string()).unwrap_or_else(|| "0".into()));
    // The policy the flow follows ("": its own retention below).
    let policies = Fetch::new(api::policies);
    let policy = RwSignal::new(editing.as_ref().and_then(|f| f.policy.as_ref().map(|p| p.id.clone())).unwrap_or_default());
    let copy = CopyTargetState::new(editing.as_ref().and_then(|f| f.copy_target.as_ref()));
    let is_new = editing.is_none();
    let editing = StoredValue::new(editing);
    // A new flow from a group takes the group's policy (the server gives it too).
    Effect::new(move |_| {
        let g = source_group.get();
        if !is_new {
            return;
        }
        if let Some(Ok(list)) = groups.get() {
            if let Some(p) = list.iter().find(|x| x.id == g).and_then(|x| x.policy.clone()) {
                policy.set(p.id);
            }
        }
    });
    let local_error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if let Some(Ok(r)) = repos.get() {
            if repo.get_untracked().is_empty() {
                // The default repository first (new flows go there unless told otherwise).
                if let Some(first) = r.iter().find(|x| x.is_default).or(r.first()) {
                    repo.set(first.id.clone());
                }
            }
        }
    });
    let count = |s: &str, what: &str| -> Result<Option<u32>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<u32>().map(Some).map_err(|_| format!("{what}: give a whole number, or leave it empty."))
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        local_error.set(None);
        let parsed = (|| -> Result<CreateFlowRequest, String> {
            // Rules the form does not show are kept as they are.
            let kept = editing.with_value(|e| e.as_ref().map(|f| f.retention.clone())).unwrap_or_default();
            let retention = RetentionPolicy {
                keep_last: count(&keep_last.get_untracked(), "Keep last")?,
                keep_daily: count(&keep_daily.get_untracked(), "Keep daily")?,
                ..kept
            };
            let source = match source_group.get_untracked() {
                g if !g.is_empty() => FlowSource::Group { group_id: g },
                _ => FlowSource::Vms { vm_ids: chosen_vms.get_untracked() },
            };
            let schedule = Some(schedule.get_untracked().trim().to_string()).filter(|s| !s.is_empty());
            let policy_id = Some(policy.get_untracked()).filter(|p| !p.is_empty());
            // Following a policy: its retention, immutability and copy target are the flow's.
            let (retention, immutable_days, copy_target) = match &policy_id {
                Some(_) => (RetentionPolicy::default(), 0, None),
                None => (retention, count(&immutable.get_untracked(), "Immutable days")?.unwrap_or(0), copy.read()?),
            };
            Ok(CreateFlowRequest {
                name: name.get_untracked().trim().to_string(),
                kind: FlowKind::Backup,
                source,
                repository_id: repo.get_untracked(),
                schedule,
                retention,
                immutable_days,
                enabled: None,
                policy_id,
                copy_target,
            })
        })();
        match (parsed, editing.get_value()) {
            (Err(e), _) => local_error.set(Some(e)),
            (Ok(req), None) => act.run(api::create_flow(req), move |_| on_saved.run(())),
            (Ok(req), Some(old)) => {
                let update = UpdateFlowRequest {
                    name: (req.name != old.name).then(|| req.name.clone()),
                    source: (req.source != old.source).then(|| req.source.clone()),
                    repository_id: (req.repository_id != old.repository.id).then(|| req.repository_id.clone()),
                    schedule: (req.schedule != old.schedule).then(|| req.schedule.clone()),
                    retention: (req.policy_id.is_none() && req.retention != old.retention).then(|| req.retention.clone()),
                    immutable_days: (req.policy_id.is_none() && req.immutable_days != old.immutable_days).then_some(req.immutable_days),
                    policy_id: (req.policy_id != old.policy.as_ref().map(|p| p.id.clone())).then(|| req.policy_id.clone()),
                    copy_target: (req.policy_id.is_none() && req.copy_target != old.copy_target).then(|| req.copy_target.clone()),
                };
                if update == UpdateFlowRequest::default() {
                    local_error.set(Some("Nothing changed.".into()));
                } else {
                    act.run(api::update_flow(old.id.clone(), update), move |_| on_saved.run(()));
                }
            }
        }
    };
    view! {
        <form class="form-col" on:submit=submit>
            <label>"Name"
                <input type="text" placeholder="nightly-prod" data-testid="flow-name" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
            </label>
            <label>"Source"
                <select data-testid="flow-source" prop:value=move || source_group.get() on:change=move |ev| source_group.set(event_target_value(&ev))>
                    <option value="">"Chosen VMs (below)"</option>
                    {move || groups.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|g| view! {
                        <option value=g.id.clone()>{format!("Group {} ({} VMs)", g.name, g.vm_count)}</option>
                    }).collect_view()}
                </select>
            </label>
            <Show when=move || source_group.with(|g| g.is_empty())>
                <div class="check-grid" data-testid="flow-vms-choice">
                    {move || vms.get().and_then(|r| r.ok()).map(|p| p.items).unwrap_or_default().into_iter().map(|vm| {
                        let id = vm.id.clone();
                        let id2 = vm.id.clone();
                        view! {
                            <label class="check">
                                <input type="checkbox" prop:checked=move || chosen_vms.with(|c| c.contains(&id))
                                    on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        chosen_vms.update(|c| { c.retain(|x| x != &id2); if on { c.push(id2.clone()); } });
                                    } />
                                {vm.name.clone()}
                            </label>
                        }
                    }).collect_view()}
                </div>
            </Show>
            <label>"Repository"
                <select data-testid="flow-repo" prop:value=move || repo.get() on:change=move |ev| repo.set(event_target_value(&ev))>
                    {move || repos.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|r| view! {
                        <option value=r.id.clone()>{r.name.clone()}</option>
                    }).collect_view()}
                </select>
            </label>
            <label>"Schedule (cron, UTC; empty: only when asked)"
                <input type="text" class="mono" data-testid="flow-schedule" prop:value=move || schedule.get() on:input=move |ev| schedule.set(event_target_value(&ev)) />
            </label>
            <label>"Policy"
                <select data-testid="flow-policy" prop:value=move || policy.get() on:change=move |ev| policy.set(event_target_value(&ev))>
                    <option value="">"None: the retention below"</option>
                    {move || policies.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|p| view! {
                        <option value=p.id.clone() selected=policy.get_untracked() == p.id>{p.name.clone()}</option>
                    }).collect_view()}
                </select>
            </label>
            {move || {
                let chosen = policy.get();
                if chosen.is_empty() {
                    return None;
                }
                let found = policies.get().and_then(|r| r.ok()).and_then(|list| list.into_iter().find(|p| p.id == chosen));
                let text = found.as_ref().map(|p| shared_types::policies::summary(&p.retention, p.immutable_days, p.require_encryption));
                let copy = found.map(|p| view! { <CopyTargetLine target=p.copy_target testid="flow-policy-copy" prefix="3-2-1: " /> });
                Some(view! {
                    <p class="muted small" data-testid="flow-policy-keeps">{text.unwrap_or_default()} "; " {copy} " (set by the policy; change it on POLICIES)"</p>
                })
            }}
            <div class="form-row" style:display=move || if policy.get().is_empty() { "" } else { "none" }>
                <label>"Keep last"
                    <input type="text" inputmode="numeric" data-testid="flow-keep-last" prop:value=move || keep_last.get() on:input=move |ev| keep_last.set(event_target_value(&ev)) />
                </label>
                <label>"Keep daily"
                    <input type="text" inputmode="numeric" data-testid="flow-keep-daily" prop:value=move || keep_daily.get() on:input=move |ev| keep_daily.set(event_target_value(&ev)) />
                </label>
                <label>"Immutable days"
                    <input type="text" inputmode="numeric" data-testid="flow-immutable" prop:value=move || immutable.get() on:input=move |ev| immutable.set(event_target_value(&ev)) />
                </label>
            </div>
            <div style:display=move || if policy.get().is_empty() { "" } else { "none" }>
                <CopyTargetFields state=copy exclude=Signal::derive(move || repo.get())
                    error=Signal::derive(move || act.field("copy_target.repository_id").or_else(|| act.field("copy_target"))) />
            </div>
            {move || local_error.get().map(|e| view! { <p class="notice warning" data-testid="flow-form-error">{e}</p> })}
            <ActError act=act testid="flow-error" />
            <div class="modal-actions">
                <button class="button" type="button" data-testid="flow-cancel" on:click=move |_| on_close.run(())>"Cancel"</button>
                <button class="button primary" type="submit" data-testid="flow-create" disabled=move || act.busy.get()>
                    {move || if editing.with_value(Option::is_some) { "Save changes" } else { "Create flow" }}
                </button>
            </div>
        </form>
    }
}
