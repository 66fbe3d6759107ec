//! ASSETS: every managed VM by platform with its protection (last backup
//! age, restore points, size), Backup Now, Restore… and Replicate… per VM,
//! filters (platform, group, protection, power) and bulk actions on a
//! selection (add to group, back up now, a one-off backup), coverage,
//! + Add VMs, ungrouped VMs and protection groups.

use std::collections::BTreeMap;

use leptos::prelude::*;
use shared_types::platform::PowerState;
use shared_types::vms::{ProtectionStatus, VmContext};

use crate::api;
use crate::components::add_vms::AddVmsModal;
use crate::components::bulk_actions::{BulkBar, BulkDone, BulkResults, VmFilterBar, VmFilters};
use crate::components::create_flow::CreateFlowModal;
use crate::components::flow_details::{FlowDetailsModal, Inspect};
use crate::components::groups::{GroupsPanel, UngroupedPanel};
use crate::components::open_param::{scroll_to_opened, use_open_param};
use crate::components::replication::{use_replication_hub, sorted_flows};
use crate::components::power_control::PowerButton;
use crate::components::restore_points::RestoreVmButton;
use crate::components::start_backup::StartBackupModal;
use crate::components::vm_cells::{LastBackup, Power, ProtectionPill};
use crate::fetch::Fetch;
use crate::format::format_bytes;
use crate::latest::latest;
use crate::live::use_live;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::session::use_session;

#[component]
pub fn AssetsPage() -> impl IntoView {
    let d = nav::for_path("/assets").expect("ASSETS is in the navigation table");
    let live = use_live();
    let session = use_session();
    let version = RwSignal::new(0u64);
    // Read again on every job_update; the tables below change only where
    // what was read changed (crate::latest, keyed rows).
    let vms = latest(Fetch::new(move || {
        version.get();
        live.jobs_version.get();
        live.vms_version.get();
        api::vm_contexts()
    }));
    // The tables show the VMs the filters let through (the server filters);
    // without a filter, the whole list above.
    let filters = VmFilters::new();
    let filtered = latest(Fetch::new(move || {
        version.get();
        live.jobs_version.get();
        live.vms_version.get();
        let q = filters.query();
        async move {
            if q.is_empty() { Ok(None) } else { api::vm_list(format!("{q}&limit=1000")).await.map(Some) }
        }
    }));
    let selected = RwSignal::new(Vec::<String>::new());
    // A changed filter hides VMs: the selection starts again, so a bulk
    // action never reaches a VM that is not shown.
    Effect::new(move |prev: Option<String>| {
        let q = filters.query();
        if prev.is_some_and(|p| p != q) {
            selected.set(Vec::new());
        }
        q
    });
    let backup_vms = RwSignal::new(Vec::<VmContext>::new());
    let add_open = RwSignal::new(false);
    let new_flow = RwSignal::new(None::<String>);
    let inspect = RwSignal::new(None::<Inspect>);
    let started = RwSignal::new(Vec::<String>::new());
    let bulk_done = RwSignal::new(None::<BulkDone>);
    let operator = move || session.can(shared_types::auth::Role::Operator);
    // Global search opens a VM or a group here: its row is marked and shown.
    scroll_to_opened(shared_types::search::route::VM);
    scroll_to_opened(shared_types::search::route::GROUP);
    let all = move || vms.get().and_then(|r| r.ok()).map(|p| p.items).unwrap_or_default();
    let shown = Memo::new(move |_| match filtered.get() {
        None => None,
        Some(Ok(Some(p))) => Some(Ok(p)),
        Some(Err(e)) => Some(Err(e)),
        Some(Ok(None)) => vms.get(),
    });
    // What the tables' place shows, and the platforms' lists.
    let shape = Memo::new(move |_| {
        shown.with(|r| match r {
            None => TablesShape::Loading,
            Some(Err(e)) => TablesShape::Failed(e.clone()),
            Some(Ok(page)) if page.items.is_empty() && !filters.query().is_empty() => TablesShape::NoMatch,
            Some(Ok(page)) if page.items.is_empty() => TablesShape::NoVms,
            Some(Ok(_)) => TablesShape::Tables,
        })
    });
    let by_platform = Memo::new(move |_| {
        let mut by_platform: BTreeMap<String, Vec<VmContext>> = BTreeMap::new();
        if let Some(Ok(page)) = shown.get() {
            for vm in page.items {
                by_platform.entry(vm.platform_name.clone()).or_default().push(vm);
            }
        }
        by_platform
    });
    let counts = Signal::derive(move || {
        let total = vms.get().and_then(|r| r.ok()).map(|p| p.total)?;
        let n = shown.get().and_then(|r| r.ok()).map(|p| p.total)?;
        Some((n, total))
    });
    let one_off = move |_| {
        let chosen = selected.get_untracked();
        backup_vms.set(all().into_iter().filter(|v| chosen.contains(&v.id)).collect());
    };
    let on_new_flow = move |g: Option<String>| new_flow.set(Some(g.unwrap_or_default()));
    let on_started = move |ids: Vec<String>| {
        selected.set(Vec::new());
        started.set(ids);
    };
    let on_bulk = move |done: BulkDone| {
        started.set(Vec::new());
        bulk_done.set(Some(done));
    };
    view! {
        <section class="page" data-testid="page-assets">
            <PageHeader label=d.label purpose=d.purpose />
            <Coverage vms=Signal::derive(all) />
            <div class="toolbar">
                <button class="button primary" data-testid="add-vms-open" disabled=move || !operator() on:click=move |_| add_open.set(true)>"+ Add VMs"</button>
            </div>
            <VmFilterBar filters=filters shown=counts version=version />
            <BulkBar selected=selected version=version on_one_off=one_off on_done=on_bulk />
            <BulkResults done=bulk_done inspect=move |j: String| inspect.set(Some(Inspect::Job(j))) />
            {move || (!started.with(|s| s.is_empty())).then(|| {
                let first = started.with(|s| s.first().cloned()).unwrap_or_default();
                view! {
                    <p class="notice operational" data-testid="backup-started">
                        {format!("Backup queued for {} VM(s). ", started.with(|s| s.len()))}
                        <button class="button small" data-testid="backup-started-inspect" on:click=move |_| inspect.set(Some(Inspect::Job(first.clone())))>"Inspect"</button>
                    </p>
                }
            })}
            {move || match shape.get() {
                TablesShape::Loading => view! { <p class="muted">"Loading the machines…"</p> }.into_any(),
                TablesShape::Failed(message) => view! { <p class="notice warning">{message}</p> }.into_any(),
                TablesShape::NoMatch => view! {
                    <div class="card empty" data-testid="no-vms-match">
                        <p class="muted">"No managed VM matches these filters. Clear filters shows them all."</p>
                    </div>
                }.into_any(),
                TablesShape::NoVms => view! {
                    <div class="card empty" data-testid="no-vms">
                        <p class="muted">"No VM is managed yet. Add a platform and bring its VMs under management with + Add VMs."</p>
                    </div>
                }.into_any(),
                TablesShape::Tables => view! {
                    <For each=move || by_platform.with(|m| m.keys().cloned().collect::<Vec<_>>()) key=|p| p.clone() let:platform>
                        {
                            let name = platform.clone();
                            let list = Signal::derive(move || by_platform.with(|m| m.get(&name).cloned().unwrap_or_default()));
                            view! { <PlatformTable platform=platform list=list selected=selected backup_vms=backup_vms /> }
                        }
                    </For>
                }.into_any(),
            }}
            <div class="panel-grid two">
                <UngroupedPanel version=version />
                <GroupsPanel version=version on_new_flow=on_new_flow />
            </div>
            <AddVmsModal open=add_open on_added=move |_| version.update(|v| *v += 1) />
            <StartBackupModal vms=backup_vms on_started=on_started />
            <CreateFlowModal open=new_flow on_created=move |_| version.update(|v| *v += 1) />
            <FlowDetailsModal target=inspect />
        </section>
    }
}

#[component]
fn Coverage(vms: Signal<Vec<VmContext>>) -> impl IntoView {
    let count = move |p: ProtectionStatus| vms.with(|v| v.iter().filter(|x| x.protection == p).count());
    let total = move || vms.with(|v| v.len());
    let points = move || vms.with(|v| v.iter().map(|x| x.backup_count).sum::<u64>());
    let logical = move || vms.with(|v| v.iter().map(|x| x.backup_logical_bytes).sum::<u64>());
    let written = move || vms.with(|v| v.iter().map(|x| x.backup_written_bytes).sum::<u64>());
    let pct = move || if total() == 0 { 0.0 } else { count(ProtectionStatus::Protected) as f64 * 100.0 / total() as f64 };
    view! {
        <div class="stat-row" data-testid="coverage">
            <div class="stat"><span class="stat-label">"MANAGED VMS"</span><span class="stat-value mono" data-testid="coverage-total">{total}</span></div>
            <div class="stat operational"><span class="stat-label">"PROTECTED"</span><span class="stat-value mono" data-testid="coverage-protected">{move || count(ProtectionStatus::Protected)}</span></div>
            <div class="stat caution"><span class="stat-label">"PARTIAL"</span><span class="stat-value mono" data-testid="coverage-partial">{move || count(ProtectionStatus::Partial)}</span></div>
            <div class="stat warning"><span class="stat-label">"UNPROTECTED"</span><span class="stat-value mono" data-testid="coverage-unprotected">{move || count(ProtectionStatus::Unprotected)}</span></div>
            <div class="stat"><span class="stat-label">"COVERAGE"</span><span class="stat-value mono">{move || format!("{:.0}%", pct())}</span>
                <div class="progress-track"><div class="progress-fill operational" style:width=move || format!("{:.1}%", pct())></div></div></div>
            <div class="stat"><span class="stat-label">"RESTORE POINTS"</span><span class="stat-value mono" data-testid="coverage-points">{points}</span>
                <span class="muted small mono">{move || format!("{} logical · {} written", format_bytes(logical()), format_bytes(written()))}</span></div>
        </div>
    }
}

#[component]
fn PlatformTable(platform: String, list: Signal<Vec<VmContext>>, selected: RwSignal<Vec<String>>, backup_vms: RwSignal<Vec<VmContext>>) -> impl IntoView {
    let live = use_live();
    let session = use_session();
    let operator = move || session.can(shared_types::auth::Role::Operator);
    let opened = use_open_param(shared_types::search::route::VM);
    let ids = Memo::new(move |_| list.with(|l| l.iter().map(|v| v.id.clone()).collect::<Vec<_>>()));
    let all_selected = move || ids.with(|ids| !ids.is_empty() && selected.with(|s| ids.iter().all(|i| s.contains(i))));
    let counts = move || list.with(|l| (l.len(), l.iter().filter(|v| v.protection == ProtectionStatus::Protected).count()));
    let kind = list.with_untracked(|l| l.first().map(|v| v.platform_kind.label()).unwrap_or_default());
    view! {
        <div class="card" data-testid=format!("platform-{platform}")>
            <div class="card-head">
                <h2>{format!("{platform} · {kind}")}</h2>
                <span class="muted small">{move || { let (n, protected) = counts(); format!("{n} VMs · {protected} protected") }}</span>
            </div>
            <div class="table-wrap">
                <table class="table vm-table">
                    <thead><tr>
                        <th><input type="checkbox" aria-label="Select all" prop:checked=all_selected
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                let ids = ids.get_untracked();
                                selected.update(|s| { s.retain(|x| !ids.contains(x)); if on { s.extend(ids.iter().cloned()); } });
                            } /></th>
                        <th>"VM"</th><th>"Power"</th><th class="hide-narrow">"CPU · memory · disk"</th><th>"Group"</th><th>"Protection"</th>
                        <th>"Last backup"</th><th class="hide-narrow">"Restore points"</th><th></th>
                    </tr></thead>
                    <tbody>
                        <For each=move || list.get() key=vm_row_key children=move |vm| {
                            let id = vm.id.clone();
                            let id2 = vm.id.clone();
                            let one = vm.clone();
                            let this = vm.id.clone();
                            view! {
                                <tr data-testid=format!("vm-row-{}", vm.name) data-open-id=vm.id.clone() class:focused=move || opened.with(|o| o.as_ref() == Some(&this))>
                                    <td><input type="checkbox" data-testid=format!("vm-check-{}", vm.name) prop:checked=move || selected.with(|s| s.contains(&id))
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            selected.update(|s| { s.retain(|x| x != &id2); if on { s.push(id2.clone()); } });
                                        } /></td>
                                    <td><span class="vm-name">{vm.name.clone()}</span>
                                        {vm.role.clone().map(|r| view! { <span class="muted small">" " {r}</span> })}</td>
                                    <td><span class="power-cell"><Power p=vm.power since=vm.power_since now=live.now_ms />
                                        <PowerButton vm_id=vm.id.clone() vm_name=vm.name.clone() power=vm.power /></span></td>
                                    <td class="mono hide-narrow">{format!("{} vCPU · {} · {}", vm.vcpus, format_bytes(vm.memory_mib * 1024 * 1024), format_bytes(vm.capacity_bytes))}</td>
                                    <td>{vm.group.as_ref().map(|g| g.name.clone()).unwrap_or_else(|| "—".into())}</td>
                                    <td><ProtectionPill p=vm.protection /></td>
                                    <td data-testid="vm-last-backup"><LastBackup at=vm.last_backup_at now=live.now_ms /></td>
                                    <td class="mono hide-narrow" data-testid="vm-restore-points">{format!("{} · {}", vm.backup_count, format_bytes(vm.backup_logical_bytes))}</td>
                                    <td><span class="action-row">
                                        <button class="button small" data-testid=format!("backup-now-{}", vm.name) disabled=move || !operator()
                                            on:click=move |_| backup_vms.set(vec![one.clone()])>"Backup now"</button>
                                        <RestoreVmButton vm_id=vm.id.clone() vm_name=vm.name.clone() points=vm.backup_count />
                                        <ReplicateButton vm_id=vm.id.clone() vm_name=vm.name.clone() />
                                    </span></td>
                                </tr>
                            }
                        } />
                    </tbody>
                </table>
            </div>
        </div>
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TablesShape {
    Loading,
    Failed(String),
    NoMatch,
    NoVms,
    Tables,
}

/// A VM's row is made again only when something it shows changes.
#[allow(clippy::type_complexity)]
fn vm_row_key(
    vm: &VmContext,
) -> (String, String, Option<String>, PowerState, Option<chrono::DateTime<chrono::Utc>>, (u32, u64, u64), Option<String>, &'static str, Option<chrono::DateTime<chrono::Utc>>, (u64, u64)) {
    (
        vm.id.clone(),
        vm.name.clone(),
        vm.role.clone(),
        vm.power,
        vm.power_since,
        (vm.vcpus, vm.memory_mib, vm.capacity_bytes),
        vm.group.as_ref().map(|g| g.name.clone()),
        vm.protection.as_str(),
        vm.last_backup_at,
        (vm.backup_count, vm.backup_logical_bytes),
    )
}

/// "Replication" opens the VM's replication flow; "Replicate…" the New
/// replication form with the VM chosen.
#[component]
fn ReplicateButton(vm_id: String, vm_name: String) -> impl IntoView {
    let live = use_live();
    let hub = use_replication_hub();
    let id = vm_id.clone();
    let flow = Memo::new(move |_| sorted_flows(&live).into_iter().find(|f| f.source_vm.id == id).map(|f| f.id));
    view! {
        <button class="button small" data-testid=format!("replicate-{vm_name}")
            on:click=move |_| match flow.get_untracked() {
                Some(f) => hub.details.set(Some(f)),
                None => hub.create.set(Some(vm_id.clone())),
            }>
            {move || if flow.with(Option::is_some) { "Replication" } else { "Replicate…" }}
        </button>
    }
}
