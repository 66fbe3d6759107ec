//! New backup flow: a group (or chosen VMs) → a repository, a cron
//! schedule and retention; the server's validation errors shown inline.

use leptos::prelude::*;
use shared_types::flow::{CreateFlowRequest, FlowKind, FlowSource, RetentionPolicy};

use crate::api;
use crate::components::act::{Act, ActError};

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
                    <div class="modal-body"><FlowForm group=group open=open on_created=on_created /></div>
                </div>
            </div>
        })}
    }
}

#[component]
fn FlowForm(group: String, open: RwSignal<Option<String>>, on_created: Callback<()>) -> impl IntoView {
    let act = Act::new();
    let groups = LocalResource::new(api::groups);
    let repos = LocalResource::new(api::repositories);
    let vms = LocalResource::new(api::vm_contexts);
    let name = RwSignal::new(String::new());
    let source_group = RwSignal::new(group);
    let chosen_vms = RwSignal::new(Vec::<String>::new());
    let repo = RwSignal::new(String::new());
    let schedule = RwSignal::new("0 2 * * *".to_string());
    let keep_last = RwSignal::new("7".to_string());
    let keep_daily = RwSignal::new(String::new());
    let immutable = RwSignal::new("0".to_string());
    let local_error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if let Some(Ok(r)) = repos.get() {
            if repo.get_untracked().is_empty() {
                if let Some(first) = r.first() {
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
            let retention = RetentionPolicy {
                keep_last: count(&keep_last.get_untracked(), "Keep last")?,
                keep_daily: count(&keep_daily.get_untracked(), "Keep daily")?,
                ..Default::default()
            };
            let source = match source_group.get_untracked() {
                g if !g.is_empty() => FlowSource::Group { group_id: g },
                _ => FlowSource::Vms { vm_ids: chosen_vms.get_untracked() },
            };
            let schedule = Some(schedule.get_untracked().trim().to_string()).filter(|s| !s.is_empty());
            Ok(CreateFlowRequest {
                name: name.get_untracked().trim().to_string(),
                kind: FlowKind::Backup,
                source,
                repository_id: repo.get_untracked(),
                schedule,
                retention,
                immutable_days: count(&immutable.get_untracked(), "Immutable days")?.unwrap_or(0),
                enabled: None,
            })
        })();
        match parsed {
            Err(e) => local_error.set(Some(e)),
            Ok(req) => act.run(api::create_flow(req), move |_| {
                open.set(None);
                on_created.run(());
            }),
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
            <div class="form-row">
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
            {move || local_error.get().map(|e| view! { <p class="notice warning" data-testid="flow-form-error">{e}</p> })}
            <ActError act=act testid="flow-error" />
            <div class="modal-actions">
                <button class="button" type="button" on:click=move |_| open.set(None)>"Cancel"</button>
                <button class="button primary" type="submit" data-testid="flow-create" disabled=move || act.busy.get()>"Create flow"</button>
            </div>
        </form>
    }
}
