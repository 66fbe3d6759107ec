//! ASSETS: the filters of the VM list (platform, group, protection, power;
//! applied by the server) and the bar of bulk actions on the selected VMs
//! (add to group, back up now through their flows, a one-off backup). Each
//! bulk action answers per VM; [`BulkResults`] shows every outcome.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::bulk::{BulkOutcome, BulkReport};
use shared_types::platform::PowerState;
use shared_types::vms::ProtectionStatus;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::session::{needs, use_session};

/// The VM list's filters; empty strings mean "any".
#[derive(Clone, Copy)]
pub struct VmFilters {
    /// Platform id.
    pub platform: RwSignal<String>,
    /// Group id, or [`UNGROUPED`].
    pub group: RwSignal<String>,
    /// A `ProtectionStatus` word.
    pub protection: RwSignal<String>,
    /// A `PowerState` word.
    pub power: RwSignal<String>,
}

/// The group filter's value for "in no group".
pub const UNGROUPED: &str = "-";

impl VmFilters {
    pub fn new() -> Self {
        VmFilters { platform: RwSignal::new(String::new()), group: RwSignal::new(String::new()), protection: RwSignal::new(String::new()), power: RwSignal::new(String::new()) }
    }

    /// The `GET /vm-contexts` query of the filters set; empty when none is.
    pub fn query(self) -> String {
        let enc = |s: &str| String::from(js_sys::encode_uri_component(s));
        let mut q = Vec::new();
        let platform = self.platform.get();
        if !platform.is_empty() {
            q.push(format!("platform={}", enc(&platform)));
        }
        match self.group.get().as_str() {
            "" => {}
            UNGROUPED => q.push("ungrouped=true".into()),
            g => q.push(format!("group={}", enc(g))),
        }
        let protection = self.protection.get();
        if !protection.is_empty() {
            q.push(format!("protection={}", enc(&protection)));
        }
        let power = self.power.get();
        if !power.is_empty() {
            q.push(format!("power={}", enc(&power)));
        }
        q.join("&")
    }

    pub fn clear(self) {
        for s in [self.platform, self.group, self.protection, self.power] {
            s.set(String::new());
        }
    }
}

/// Platform, group, protection and power selects; `shown` of `total` VMs match.
#[component]
pub fn VmFilterBar(filters: VmFilters, #[prop(into)] shown: Signal<Option<(u64, u64)>>, version: RwSignal<u64>) -> impl IntoView {
    let platforms = Fetch::new(api::platforms);
    let groups = Fetch::new(move || {
        version.get();
        api::groups()
    });
    let any = move || !filters.query().is_empty();
    view! {
        <div class="filter-bar" data-testid="assets-filters">
            <label>"Platform"
                <select data-testid="filter-platform" prop:value=move || filters.platform.get() on:change=move |ev| filters.platform.set(event_target_value(&ev))>
                    <option value="">"Any platform"</option>
                    {move || platforms.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|p| {
                        let selected = filters.platform.get_untracked() == p.id;
                        view! { <option value=p.id.clone() selected=selected>{p.name}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Group"
                <select data-testid="filter-group" prop:value=move || filters.group.get() on:change=move |ev| filters.group.set(event_target_value(&ev))>
                    <option value="">"Any group"</option>
                    <option value=UNGROUPED>"In no group"</option>
                    {move || groups.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|g| {
                        let selected = filters.group.get_untracked() == g.id;
                        view! { <option value=g.id.clone() selected=selected>{g.name}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label>"Protection"
                <select data-testid="filter-protection" prop:value=move || filters.protection.get() on:change=move |ev| filters.protection.set(event_target_value(&ev))>
                    <option value="">"Any protection"</option>
                    {ProtectionStatus::ALL.iter().map(|p| view! { <option value=p.as_str()>{p.as_str()}</option> }).collect_view()}
                </select>
            </label>
            <label>"Power"
                <select data-testid="filter-power" prop:value=move || filters.power.get() on:change=move |ev| filters.power.set(event_target_value(&ev))>
                    <option value="">"Any power state"</option>
                    {[PowerState::Running, PowerState::Stopped, PowerState::Suspended].into_iter().map(|p| {
                        let w = power_word(p);
                        view! { <option value=w>{w}</option> }
                    }).collect_view()}
                </select>
            </label>
            <span class="filter-count muted small" data-testid="filter-count">
                {move || shown.get().map(|(n, total)| if any() { format!("{n} of {total} VMs match") } else { format!("{total} VMs") })}
            </span>
            <button class="button small" data-testid="filter-clear" disabled=move || !any() on:click=move |_| filters.clear()>"Clear filters"</button>
        </div>
    }
}

pub fn power_word(p: PowerState) -> &'static str {
    match p {
        PowerState::Running => "running",
        PowerState::Stopped => "stopped",
        PowerState::Suspended => "suspended",
    }
}

/// What the last bulk action was and how it went for each VM.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkDone {
    /// "Add to group 'web'", "Back up now".
    pub action: String,
    pub report: BulkReport,
}

/// The bar of bulk actions on `selected` (VM ids). `on_one_off` opens the
/// one-off backup form for the selection; `on_done` receives each report.
#[component]
pub fn BulkBar(
    selected: RwSignal<Vec<String>>,
    version: RwSignal<u64>,
    #[prop(into)] on_one_off: Callback<()>,
    #[prop(into)] on_done: Callback<BulkDone>,
) -> impl IntoView {
    let session = use_session();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let none = move || selected.with(|s| s.is_empty());
    let groups = Fetch::new(move || {
        version.get();
        api::groups()
    });
    let group = RwSignal::new(String::new());
    let act = Act::new();
    let add = move |_| {
        let g = group.get_untracked();
        let name = groups.get_untracked().and_then(|r| r.ok()).and_then(|l| l.into_iter().find(|x| x.id == g)).map(|x| x.name).unwrap_or_default();
        act.run(api::bulk_add_to_group(g, selected.get_untracked()), move |report| {
            version.update(|v| *v += 1);
            on_done.run(BulkDone { action: format!("Add to group '{name}'"), report });
        });
    };
    // Assign policy: a preview of what would change first, then Confirm.
    let policies = Fetch::new(move || {
        version.get();
        api::policies()
    });
    let policy = RwSignal::new(String::new());
    let pending = RwSignal::new(None::<shared_types::policies::AssignVmsReport>);
    let policy_name = move |id: &str| {
        policies.get_untracked().and_then(|r| r.ok()).and_then(|l| l.into_iter().find(|x| x.id == id)).map(|x| x.name).unwrap_or_default()
    };
    let preview_policy = move |_| {
        pending.set(None);
        act.run(api::assign_policy_to_vms(policy.get_untracked(), selected.get_untracked(), true), move |r| pending.set(Some(r)));
    };
    let confirm_policy = move |_| {
        let p = policy.get_untracked();
        let name = policy_name(&p);
        act.run(api::assign_policy_to_vms(p, selected.get_untracked(), false), move |r| {
            pending.set(None);
            version.update(|v| *v += 1);
            on_done.run(BulkDone { action: format!("Assign policy '{name}'"), report: r.report });
        });
    };
    let backup = move |_| {
        act.run(api::bulk_backup_now(selected.get_untracked()), move |report| {
            on_done.run(BulkDone { action: "Back up now".into(), report });
        });
    };
    view! {
        <div class="bulk-bar" data-testid="bulk-bar">
            <span class="bulk-count mono" data-testid="bulk-count">{move || format!("{} selected", selected.with(|s| s.len()))}</span>
            <span class="bulk-group">
                <select data-testid="bulk-group" aria-label="Group to add the selected VMs to" prop:value=move || group.get()
                    on:change=move |ev| group.set(event_target_value(&ev))>
                    <option value="">"Choose a group…"</option>
                    {move || groups.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|g| {
                        let selected = group.get_untracked() == g.id;
                        view! { <option value=g.id.clone() selected=selected>{g.name}</option> }
                    }).collect_view()}
                </select>
                <button class="button small" data-testid="bulk-add-to-group" title=title
                    disabled=move || !operator() || none() || group.with(String::is_empty) || act.busy.get() on:click=add>"Add to group"</button>
            </span>
            <span class="bulk-group">
                <select data-testid="bulk-policy" aria-label="Policy for the flows of the selected VMs" prop:value=move || policy.get()
                    on:change=move |ev| { pending.set(None); policy.set(event_target_value(&ev)) }>
                    <option value="">"Choose a policy…"</option>
                    {move || policies.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|p| {
                        let selected = policy.get_untracked() == p.id;
                        view! { <option value=p.id.clone() selected=selected>{p.name}</option> }
                    }).collect_view()}
                </select>
                <button class="button small" data-testid="bulk-assign-policy"
                    title=move || if operator() { "The backup flows of the selected VMs follow this policy (a preview first)".to_string() } else { title() }
                    disabled=move || !operator() || none() || policy.with(String::is_empty) || act.busy.get() on:click=preview_policy>"Assign policy…"</button>
            </span>
            <button class="button small" data-testid="bulk-backup-now" title=move || if operator() { "Back up each VM now through its backup flow".to_string() } else { title() }
                disabled=move || !operator() || none() || act.busy.get() on:click=backup>"Back up now"</button>
            <button class="button small" data-testid="backup-selected" title=move || if operator() { "A one-off backup to a repository you choose".to_string() } else { title() }
                disabled=move || !operator() || none() on:click=move |_| on_one_off.run(())>"One-off backup…"</button>
            <button class="button small" data-testid="bulk-clear" disabled=none on:click=move |_| selected.set(Vec::new())>"Clear selection"</button>
        </div>
        {move || pending.get().map(|r| {
            let flows = r.flows.iter().map(|f| f.name.clone()).collect::<Vec<_>>().join(", ");
            let text = if r.flows.is_empty() {
                format!("No flow would change ({} unchanged, {} refused): nothing to confirm.", r.report.unchanged, r.report.refused)
            } else {
                format!(
                    "{} flow(s) would follow the policy: {flows}. They cover other VMs too. {} restore point(s) would be deleted at their next retention run{}.{}",
                    r.flows.len(),
                    r.preview.deleted_total,
                    if r.preview.kept_immutable_total > 0 { format!(" ({} more kept: immutable)", r.preview.kept_immutable_total) } else { String::new() },
                    if r.report.refused > 0 { format!(" {} VM(s) refused: see each reason after confirming.", r.report.refused) } else { String::new() },
                )
            };
            let nothing = r.flows.is_empty();
            view! {
                <div class="notice caution bulk-confirm" data-testid="bulk-policy-preview" data-deleted=r.preview.deleted_total.to_string()>
                    <span>{text}</span>
                    <button class="button small primary" data-testid="bulk-policy-confirm" disabled=move || nothing || act.busy.get() on:click=confirm_policy>"Confirm"</button>
                    <button class="button small" data-testid="bulk-policy-cancel" on:click=move |_| pending.set(None)>"Cancel"</button>
                </div>
            }
        })}
        <ActError act=act testid="bulk-error" />
    }
}

/// Every VM's outcome of the last bulk action; `inspect` opens a queued job.
#[component]
pub fn BulkResults(done: RwSignal<Option<BulkDone>>, #[prop(into)] inspect: Callback<String>) -> impl IntoView {
    view! {
        {move || done.get().map(|d| {
            let r = &d.report;
            let class = if r.refused == 0 { "operational" } else if r.done == 0 && r.unchanged == 0 { "warning" } else { "caution" };
            let summary = format!("{}: {} done · {} unchanged · {} refused", d.action, r.done, r.unchanged, r.refused);
            view! {
                <div class=format!("card bulk-results {class}") data-testid="bulk-results" role="status">
                    <div class="card-head">
                        <h2 data-testid="bulk-summary">{summary}</h2>
                        <button class="icon-button" aria-label="Close" data-testid="bulk-results-close" on:click=move |_| done.set(None)>"✕"</button>
                    </div>
                    <ul class="feed">
                        {d.report.items.into_iter().map(|i| {
                            let (dot, word) = match i.outcome {
                                BulkOutcome::Done => ("operational", "done"),
                                BulkOutcome::Unchanged => ("idle", "unchanged"),
                                BulkOutcome::Refused => ("warning", "refused"),
                            };
                            let name = if i.vm_name.is_empty() { i.vm_id.clone() } else { i.vm_name.clone() };
                            let job = i.job_id.clone();
                            let testid = format!("bulk-result-{name}");
                            view! {
                                <li data-testid=testid data-outcome=i.outcome.as_str()>
                                    <span class=format!("status-dot {dot}")></span>
                                    <span class="feed-text">
                                        <span><span class="vm-name">{name}</span>" · "{word}</span>
                                        <span class="muted small">{i.message}</span>
                                    </span>
                                    {job.map(|j| view! {
                                        <button class="button small" on:click=move |_| inspect.run(j.clone())>"Inspect"</button>
                                    })}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </div>
            }
        })}
    }
}
