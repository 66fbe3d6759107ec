//! RECOVERY's emergency action (seed 000): site failover of a protection
//! group. Test mode starts a test VM of every replicated VM of the group on
//! its standby site's isolated network; live mode switches every one of
//! them to its replica and needs the group's name typed. The answer says
//! which flows started, which were refused and why, and which VMs of the
//! group no replication covers. A boot order puts each replicated VM in a
//! stage (databases before web): stage 1 starts at once, each next one
//! once the previous one's guests are up (when asked) and after a delay.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::replication::{BootStage, SiteFailoverMode, SiteFailoverRequest, SiteFailoverResult, BOOT_DELAY_MAX_SECONDS};

use super::{state_class, use_replication_hub};
use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::live::use_live;
use crate::session::{needs, use_session};

/// The RECOVERY card with the button that opens the dialog.
#[component]
pub fn EmergencyActions() -> impl IntoView {
    let session = use_session();
    let open = RwSignal::new(false);
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { "Fail over every replicated VM of a protection group".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) };
    view! {
        <div class="card emergency" data-testid="emergency-actions">
            <h2>"⚡ EMERGENCY ACTIONS"</h2>
            <p class="muted small">"When a whole site is lost, or to rehearse it: fail over every replicated VM of a protection group at once."</p>
            <div class="action-row">
                <button class="button danger" data-testid="site-failover-open" title=title disabled=move || !operator() on:click=move |_| open.set(true)>
                    "🔥 Site failover"
                </button>
            </div>
            <Show when=move || open.get()>
                <SiteFailoverDialog open=open />
            </Show>
        </div>
    }
}

#[component]
fn SiteFailoverDialog(open: RwSignal<bool>) -> impl IntoView {
    let live = use_live();
    let hub = use_replication_hub();
    let act = Act::new();
    let groups = Fetch::new(api::groups);
    let vms = Fetch::new(api::vm_contexts);
    let group = RwSignal::new(String::new());
    let mode = RwSignal::new(SiteFailoverMode::Test);
    let typed = RwSignal::new(String::new());
    let final_sync = RwSignal::new(true);
    let result = RwSignal::new(None::<SiteFailoverResult>);
    // Boot order: the stage (1-based) of each VM by id; between stages.
    let stage_of = RwSignal::new(std::collections::HashMap::<String, usize>::new());
    let wait_boot = RwSignal::new(true);
    let delay = RwSignal::new(String::from("0"));
    let close = move || open.set(false);
    let group_list = move || groups.get().and_then(|r| r.ok()).unwrap_or_default();
    Effect::new(move |_| {
        if group.get_untracked().is_empty() {
            if let Some(g) = group_list().first() {
                group.set(g.id.clone());
            }
        }
    });
    let group_name = Memo::new(move |_| {
        let id = group.get();
        group_list().into_iter().find(|g| g.id == id).map(|g| g.name).unwrap_or_default()
    });
    let confirmed = move || mode.get() == SiteFailoverMode::Test || (!group_name.get().is_empty() && typed.get().trim() == group_name.get());
    // The group's VMs and the flows that replicate them, as the store knows them now.
    let preview = move || {
        let gid = group.get();
        let list = vms.get().and_then(|r| r.ok()).map(|p| p.items).unwrap_or_default();
        list.into_iter()
            .filter(|v| v.group.as_ref().is_some_and(|g| g.id == gid))
            .map(|v| {
                let flows = live.replications.with(|m| m.values().filter(|f| f.source_vm.id == v.id).cloned().collect::<Vec<_>>());
                (v.id, v.name, flows)
            })
            .collect::<Vec<_>>()
    };
    let delay_ok = move || delay.with(|d| d.trim().parse::<u32>().is_ok_and(|n| n <= BOOT_DELAY_MAX_SECONDS));
    let boot_order = move || -> Vec<BootStage> {
        let stages = stage_of.get_untracked();
        let max = stages.values().copied().max().unwrap_or(1);
        if max <= 1 {
            return Vec::new();
        }
        let d = delay.get_untracked().trim().parse().unwrap_or(0);
        (1..=max)
            .filter_map(|n| {
                let mut ids: Vec<String> = stages.iter().filter(|(_, s)| **s == n).map(|(id, _)| id.clone()).collect();
                ids.sort();
                (!ids.is_empty()).then(|| BootStage { vm_ids: ids, wait_for_boot: wait_boot.get_untracked(), delay_seconds: d })
            })
            .collect()
    };
    let submit = move |_| {
        let m = mode.get_untracked();
        let req = SiteFailoverRequest {
            group_id: group.get_untracked(),
            mode: m,
            confirm: if m == SiteFailoverMode::Live { typed.get_untracked() } else { String::new() },
            final_sync: (m == SiteFailoverMode::Live).then(|| final_sync.get_untracked()),
            boot_order: boot_order(),
        };
        act.run(api::site_failover(req), move |r| {
            for a in &r.started {
                live.offer_replication(a.flow.clone());
            }
            result.set(Some(r));
        });
    };
    view! {
        <div class="modal-backdrop" on:click=move |_| close()>
            <div class=move || if mode.get() == SiteFailoverMode::Live { "modal wide danger-modal" } else { "modal wide" } role="dialog" aria-modal="true"
                aria-label="Site failover" data-testid="site-failover" on:click=|ev| ev.stop_propagation()
                on:keydown=move |ev| if ev.key() == "Escape" { close() }>
                <header class="modal-head">
                    <h2>"SITE FAILOVER"</h2>
                    <button class="icon-button" aria-label="Close" data-testid="site-failover-close" on:click=move |_| close()>"✕"</button>
                </header>
                <div class="modal-body form-col">
                    {move || match result.get() {
                        Some(r) => view! { <SiteResult r=r /> }.into_any(),
                        None => view! {
                            <label>"Protection group"
                                <select data-testid="site-group" prop:value=move || group.get() on:change=move |ev| { group.set(event_target_value(&ev)); typed.set(String::new()); }>
                                    {move || group_list().into_iter().map(|g| {
                                        let id = g.id.clone();
                                        view! { <option value=g.id.clone() selected=move || group.get() == id>{format!("{} ({} VMs)", g.name, g.vm_count)}</option> }
                                    }).collect_view()}
                                </select>
                            </label>
                            <fieldset class="radio-row">
                                <legend>"Mode"</legend>
                                <label class="radio">
                                    <input type="radio" name="site-mode" data-testid="site-mode-test" prop:checked=move || mode.get() == SiteFailoverMode::Test
                                        on:change=move |_| mode.set(SiteFailoverMode::Test) />
                                    <span><strong>"Test"</strong>" — a test VM of each replica on its site's isolated network; production and replicas untouched."</span>
                                </label>
                                <label class="radio">
                                    <input type="radio" name="site-mode" data-testid="site-mode-live" prop:checked=move || mode.get() == SiteFailoverMode::Live
                                        on:change=move |_| mode.set(SiteFailoverMode::Live) />
                                    <span><strong>"Live"</strong>" — production of every replicated VM switches to its replica."</span>
                                </label>
                            </fieldset>
                            <div data-testid="site-preview">
                                <h3>"WHAT THE GROUP HOLDS"</h3>
                                {move || {
                                    let rows = preview();
                                    if rows.is_empty() {
                                        return view! { <p class="muted small">"No VM in this group."</p> }.into_any();
                                    }
                                    let replicated = rows.iter().filter(|r| !r.2.is_empty()).count().max(1);
                                    view! {
                                        <ul class="plain-list small">
                                            {rows.into_iter().map(|(vm_id, vm, flows)| view! {
                                                <li data-testid="site-vm">
                                                    {(!flows.is_empty()).then(|| {
                                                        let (id, id2) = (vm_id.clone(), vm_id.clone());
                                                        view! {
                                                            <select class="stage-select" aria-label=format!("Boot stage of {vm}") data-testid=format!("site-stage-{vm}")
                                                                prop:value=move || stage_of.with(|m| m.get(&id).copied().unwrap_or(1).to_string())
                                                                on:change=move |ev| {
                                                                    let n = event_target_value(&ev).parse().unwrap_or(1);
                                                                    stage_of.update(|m| { m.insert(id2.clone(), n); });
                                                                }>
                                                                {(1..=replicated).map(|n| view! { <option value=n.to_string()>{format!("stage {n}")}</option> }).collect_view()}
                                                            </select>
                                                            " "
                                                        }
                                                    })}
                                                    <span class="vm-name">{vm}</span>
                                                    {if flows.is_empty() {
                                                        view! { <span class="muted">" · not replicated"</span> }.into_any()
                                                    } else {
                                                        flows.into_iter().map(|f| {
                                                            let id = f.id.clone();
                                                            view! {
                                                                " · " <button class="link-button" on:click=move |_| hub.details.set(Some(id.clone()))>{format!("→ {}", f.target_platform.name)}</button>
                                                                " " <span class=format!("status-pill {}", state_class(f.state))>{f.state.label()}</span>
                                                            }
                                                        }).collect_view().into_any()
                                                    }}
                                                </li>
                                            }).collect_view()}
                                        </ul>
                                    }.into_any()
                                }}
                            </div>
                            <Show when=move || { preview().iter().filter(|r| !r.2.is_empty()).count() > 1 }>
                                <fieldset class="radio-row" data-testid="site-boot-order">
                                    <legend>"Between boot stages"</legend>
                                    <div class="boot-stage-row">
                                        <label class="check">
                                            <input type="checkbox" data-testid="site-wait-boot" prop:checked=move || wait_boot.get() on:change=move |ev| wait_boot.set(event_target_checked(&ev)) />
                                            "wait until the stage's guests are up, then"
                                        </label>
                                        <input type="number" min="0" max=BOOT_DELAY_MAX_SECONDS.to_string() class="cap-input" data-testid="site-delay" aria-label="Delay between stages in seconds"
                                            prop:value=move || delay.get() on:input=move |ev| delay.set(event_target_value(&ev)) />
                                        <span class="small">"seconds more"</span>
                                    </div>
                                </fieldset>
                            </Show>
                            <Show when=move || !delay_ok()>
                                <p class="notice warning small">{format!("The delay is a whole number of seconds from 0 to {BOOT_DELAY_MAX_SECONDS}.")}</p>
                            </Show>
                            <Show when=move || mode.get() == SiteFailoverMode::Live>
                                <div class="notice warning failover-warning" data-testid="site-live-warning">
                                    <strong>{move || format!("⚠ This will switch production of every replicated VM of {} to its standby site.", group_name.get())}</strong>
                                    " Ensure all prerequisites are met. Flows that cannot fail over now are refused and listed."
                                </div>
                                <label class="check">
                                    <input type="checkbox" data-testid="site-final-sync" prop:checked=move || final_sync.get() on:change=move |ev| final_sync.set(event_target_checked(&ev)) />
                                    "Final sync of each VM first (uncheck only when the site is unreachable)"
                                </label>
                                <label class="confirm-name">
                                    <span>"Type the group name " <strong class="mono">{move || group_name.get()}</strong> " to confirm"</span>
                                    <input type="text" autocomplete="off" spellcheck="false" data-testid="site-confirm-name"
                                        prop:value=move || typed.get() on:input=move |ev| typed.set(event_target_value(&ev)) />
                                </label>
                            </Show>
                            <ActError act=act testid="site-failover-error" />
                            <div class="modal-actions">
                                <button class="button" data-testid="site-failover-cancel" on:click=move |_| close()>"Cancel"</button>
                                <button class=move || if mode.get() == SiteFailoverMode::Live { "button danger" } else { "button primary" } data-testid="site-failover-submit"
                                    disabled=move || act.busy.get() || group.with(|g| g.is_empty()) || !confirmed() || !delay_ok() on:click=submit>
                                    {move || if mode.get() == SiteFailoverMode::Live { "Fail over the site" } else { "Start site test" }}
                                </button>
                            </div>
                        }.into_any(),
                    }}
                </div>
            </div>
        </div>
    }
}

#[component]
fn SiteResult(r: SiteFailoverResult) -> impl IntoView {
    let hub = use_replication_hub();
    let mode = match r.mode {
        SiteFailoverMode::Test => "test failover",
        SiteFailoverMode::Live => "live failover",
    };
    let (started, refused, unreplicated) = (r.started.len(), r.refused.len(), r.unreplicated.len());
    view! {
        <div class="site-result" data-testid="site-result" data-started=started.to_string() data-refused=refused.to_string()
            data-unreplicated=unreplicated.to_string()>
            <p>{format!("Site {mode} of group {}: {started} started, {refused} refused, {unreplicated} VM(s) not replicated.", r.group.name)}</p>
            <h3>"STARTED"</h3>
            {if r.started.is_empty() {
                view! { <p class="muted small">"None."</p> }.into_any()
            } else {
                view! {
                    <ul class="plain-list" data-testid="site-started">
                        {r.started.into_iter().map(|a| {
                            let id = a.flow.id.clone();
                            view! {
                                <li>
                                    <button class="link-button vm-name" on:click=move |_| hub.details.set(Some(id.clone()))>{a.flow.name.clone()}</button>
                                    " " <span class=format!("status-pill {}", state_class(a.flow.state))>{a.flow.state.label()}</span>
                                    {a.job.map(|j| view! { <span class="muted small mono">{format!(" job {}", j.id)}</span> })}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
            {(!r.scheduled.is_empty()).then(|| view! {
                <h3>"LATER BOOT STAGES"</h3>
                <ul class="plain-list" data-testid="site-scheduled">
                    {r.scheduled.iter().map(|s| view! {
                        <li>
                            <strong>{format!("stage {}", s.stage)}</strong>
                            {format!(
                                " · {}{} · {}",
                                if s.wait_for_boot { "after the previous stage's guests are up" } else { "after the previous stage started" },
                                if s.delay_seconds > 0 { format!(" and {} s", s.delay_seconds) } else { String::new() },
                                s.flows.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                            )}
                        </li>
                    }).collect_view()}
                </ul>
            })}
            <h3>"REFUSED"</h3>
            {if r.refused.is_empty() {
                view! { <p class="muted small">"None."</p> }.into_any()
            } else {
                view! {
                    <ul class="plain-list" data-testid="site-refused">
                        {r.refused.into_iter().map(|x| view! { <li><span class="vm-name">{x.flow.name}</span>": " <span class="bad">{x.reason}</span></li> }).collect_view()}
                    </ul>
                }.into_any()
            }}
            <h3>"NOT REPLICATED"</h3>
            {if r.unreplicated.is_empty() {
                view! { <p class="muted small">"Every VM of the group is replicated."</p> }.into_any()
            } else {
                view! {
                    <ul class="plain-list" data-testid="site-unreplicated">
                        {r.unreplicated.into_iter().map(|v| view! { <li>{v.name}</li> }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </div>
    }
}
