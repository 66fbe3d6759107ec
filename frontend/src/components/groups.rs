//! Protection groups on ASSETS: the ungrouped-VMs panel (add to a group or
//! create one from them) and the list of groups with their flows.

use leptos::prelude::*;
use shared_types::groups::CreateGroupRequest;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::vm_cells::ProtectionPill;
use crate::fetch::Fetch;
use crate::live::use_live;

/// `version`: bumped by whoever changes groups; bumped here after a change.
#[component]
pub fn UngroupedPanel(version: RwSignal<u64>) -> impl IntoView {
    let live = use_live();
    let vms = Fetch::new(move || {
        version.get();
        live.jobs_version.get();
        api::ungrouped_vms()
    });
    let groups = Fetch::new(move || {
        version.get();
        api::groups()
    });
    let chosen = RwSignal::new(Vec::<String>::new());
    let target = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let act = Act::new();
    let add_to_group = move |_| {
        act.run(api::add_to_group(target.get_untracked(), chosen.get_untracked()), move |_| {
            chosen.set(Vec::new());
            version.update(|v| *v += 1);
        });
    };
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let req = CreateGroupRequest { name: name.get_untracked().trim().to_string(), description: None, vm_ids: chosen.get_untracked() };
        act.run(api::create_group(req), move |_| {
            chosen.set(Vec::new());
            name.set(String::new());
            version.update(|v| *v += 1);
        });
    };
    view! {
        <div class="card" data-testid="ungrouped-panel">
            <h2>"UNGROUPED VMS"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || vms.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(page) if page.items.is_empty() => view! { <p class="muted" data-testid="ungrouped-empty">"Every managed VM is in a group."</p> }.into_any(),
                    Ok(page) => view! {
                        <ul class="check-list">
                            {page.items.into_iter().map(|vm| {
                                let id = vm.id.clone();
                                let id2 = vm.id.clone();
                                view! {
                                    <li>
                                        <label class="check">
                                            <input type="checkbox" data-testid=format!("ungrouped-check-{}", vm.name)
                                                prop:checked=move || chosen.with(|c| c.contains(&id))
                                                on:change=move |ev| {
                                                    let on = event_target_checked(&ev);
                                                    chosen.update(|c| { c.retain(|x| x != &id2); if on { c.push(id2.clone()); } });
                                                } />
                                            <span>{vm.name.clone()}</span>
                                            <span class="muted small">{vm.platform_name.clone()}</span>
                                            <ProtectionPill p=vm.protection />
                                        </label>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                })}
            </Transition>
            <form class="form-row" on:submit=create>
                <label class="grow">"New group from the selected VMs"
                    <input type="text" placeholder="Group name" data-testid="group-name"
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                </label>
                <button class="button primary" type="submit" data-testid="group-create" disabled=move || act.busy.get()>"Create group"</button>
            </form>
            <div class="form-row">
                <label class="grow">"Or add them to"
                    <select data-testid="group-target" on:change=move |ev| target.set(event_target_value(&ev))>
                        <option value="">"Choose a group"</option>
                        {move || groups.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|g| view! {
                            <option value=g.id.clone()>{g.name.clone()}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button class="button" data-testid="group-add" disabled=move || act.busy.get() || target.with(|t| t.is_empty()) || chosen.with(|c| c.is_empty())
                    on:click=add_to_group>"Add to group"</button>
            </div>
            <ActError act=act testid="group-error" />
        </div>
    }
}

/// Groups with their VM and flow counts; "New backup flow" per group.
#[component]
pub fn GroupsPanel(version: RwSignal<u64>, #[prop(into)] on_new_flow: Callback<Option<String>>) -> impl IntoView {
    let groups = Fetch::new(move || {
        version.get();
        api::groups()
    });
    let opened = crate::components::open_param::use_open_param(shared_types::search::route::GROUP);
    view! {
        <div class="card" data-testid="groups-panel">
            <div class="card-head">
                <h2>"PROTECTION GROUPS"</h2>
                <button class="button small" data-testid="new-flow" on:click=move |_| on_new_flow.run(None)>"+ New backup flow"</button>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || groups.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No group yet: create one from ungrouped VMs."</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table">
                            <thead><tr><th>"Group"</th><th>"VMs"</th><th>"Flows"</th><th></th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|g| {
                                    let id = g.id.clone();
                                    let this = g.id.clone();
                                    view! {
                                        <tr data-testid=format!("group-{}", g.name) data-open-id=g.id.clone() class:focused=move || opened.with(|o| o.as_ref() == Some(&this))>
                                            <td>{g.name.clone()}</td>
                                            <td class="mono">{g.vm_count}</td>
                                            <td class="mono">{g.flow_count}</td>
                                            <td><button class="button small" data-testid=format!("group-new-flow-{}", g.name)
                                                on:click=move |_| on_new_flow.run(Some(id.clone()))>"Protect with a flow"</button></td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                })}
            </Transition>
        </div>
    }
}
