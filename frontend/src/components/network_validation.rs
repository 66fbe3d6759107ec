//! Validation before a failover: for chosen VMs (or every VM of the source
//! platform), where each NIC lands on the target for the chosen purpose and
//! scope, with blockers in red and warnings in amber
//! (`POST /api/v1/networks/validate`).

use std::collections::BTreeSet;

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::networks::{MappingScope, ValidateRequest, ValidationReport, VmValidation};
use shared_types::recovery::{CompatibilityNote, NoteSeverity};

use crate::api;
use crate::components::act::ActError;
use crate::components::network_route::NetRoute;
use crate::fetch::Fetch;
use crate::session::{needs, use_session};

#[component]
pub fn ValidationCard(route: NetRoute) -> impl IntoView {
    let session = use_session();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let all_vms = Fetch::new(api::vm_contexts);
    // (id, name) of the managed VMs of the source platform.
    let vms = Memo::new(move |_| {
        let source = route.source.get();
        all_vms
            .get()
            .and_then(|r| r.ok())
            .map(|p| p.items.into_iter().filter(|v| v.platform_id == source).map(|v| (v.id, v.name)).collect::<Vec<_>>())
            .unwrap_or_default()
    });
    let all = RwSignal::new(true);
    let chosen = RwSignal::new(BTreeSet::<String>::new());
    // The report and the mappings version it was made with.
    let report = RwSignal::new(None::<(ValidationReport, u32)>);
    Effect::new(move |_| {
        route.source.track();
        chosen.set(BTreeSet::new());
        all.set(true);
    });
    Effect::new(move |_| {
        route.source.track();
        route.target.track();
        route.purpose.track();
        route.scope.track();
        report.set(None);
        route.check.error.set(None);
        route.check.fields.set(Vec::new());
    });
    let ids = move || -> Vec<String> {
        if all.get() {
            vms.get().into_iter().map(|(id, _)| id).collect()
        } else {
            vms.get().into_iter().filter(|(id, _)| chosen.with(|c| c.contains(id))).map(|(id, _)| id).collect()
        }
    };
    let run = move |_| {
        let version = route.version.get_untracked();
        let req = ValidateRequest {
            vm_ids: ids(),
            target_platform_id: route.target.get_untracked(),
            flow_id: route.scope.get_untracked(),
            purpose: route.purpose.get_untracked(),
        };
        report.set(None);
        route.check.run(api::validate_networks(req), move |r| report.set(Some((r, version))));
    };
    view! {
        <div class="card" data-testid="network-validation">
            <div class="card-head">
                <h2>"VALIDATION"</h2>
                <span class="muted small">{move || format!(
                    "to {} · {} · {}",
                    route.target_platform().map(|p| p.name).unwrap_or_default(),
                    route.purpose.get(),
                    route.scope_label(route.scope.get().as_deref())
                )}</span>
            </div>
            <p class="muted small">"Checks where every NIC of the VMs lands on the target before a failover: each NIC mapped, its network present on the target and allowed for the purpose."</p>
            <label class="check">
                <input type="checkbox" data-testid="validate-all" prop:checked=move || all.get() on:change=move |ev| all.set(event_target_checked(&ev)) />
                {move || format!("All {} VMs of {}", vms.with(Vec::len), route.source_platform().map(|p| p.name).unwrap_or_default())}
            </label>
            <Show when=move || !all.get()>
                <div class="check-grid vm-picks" data-testid="validate-vms">
                    {move || vms.get().into_iter().map(|(id, name)| {
                        let (a, b) = (id.clone(), id.clone());
                        view! {
                            <label class="check">
                                <input type="checkbox" data-testid=format!("validate-vm-{name}") prop:checked=move || chosen.with(|c| c.contains(&a))
                                    on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        chosen.update(|c| { if on { c.insert(b.clone()); } else { c.remove(&b); } });
                                    } />
                                {name.clone()}
                            </label>
                        }
                    }).collect_view()}
                </div>
            </Show>
            {move || route.check.field("vm_ids").map(|m| view! { <span class="field-error" data-testid="field-error-vm_ids">{m}</span> })}
            {move || vms.with(Vec::is_empty).then(|| view! {
                <p class="muted small" data-testid="validate-no-vms">"No managed VM on the source platform: add its VMs in ASSETS to check them."</p>
            })}
            <div class="action-row">
                <button class="button primary" data-testid="validate-run" title=title
                    disabled=move || !operator() || route.check.busy.get() || vms.with(Vec::is_empty)
                    on:click=run>
                    {move || {
                        let n = if all.get() { vms.with(Vec::len) } else { chosen.with(BTreeSet::len) };
                        format!("Validate {n} VM{}", if n == 1 { "" } else { "s" })
                    }}
                </button>
                <Show when=move || route.check.busy.get()>
                    <span class="working"><span class="spinner"></span>"Checking…"</span>
                </Show>
            </div>
            <ActError act=route.check testid="validate-error" />
            {move || report.get().map(|(r, version)| view! { <Report report=r stale=Signal::derive(move || route.version.get() != version) /> })}
        </div>
    }
}

fn severity_class(s: NoteSeverity) -> &'static str {
    match s {
        NoteSeverity::Blocker => "warning",
        NoteSeverity::Warning => "caution",
        NoteSeverity::Info => "operational",
    }
}

#[component]
fn Issues(notes: Vec<CompatibilityNote>) -> impl IntoView {
    (!notes.is_empty()).then(|| view! {
        <ul class="issue-list net-issues">
            {notes.into_iter().map(|n| view! {
                <li class=format!("sev-{}", n.severity.as_str()) data-testid="validation-issue" data-severity=n.severity.as_str()>
                    <span class=format!("status-dot {}", severity_class(n.severity))></span>
                    <span class="small sev-label">{n.severity.as_str()}</span>
                    <span class="small">{n.message}</span>
                </li>
            }).collect_view()}
        </ul>
    })
}

#[component]
fn Report(report: ValidationReport, stale: Signal<bool>) -> impl IntoView {
    let nics: usize = report.vms.iter().map(|v| v.nics.len()).sum();
    let vm_count = report.vms.len();
    let summary = if report.ok {
        format!("Ready: all {nics} NICs of {vm_count} VMs land on networks of {}.", report.target_platform.name)
    } else {
        format!("{} blocker{}: a {} to {} would not start.", report.blockers, if report.blockers == 1 { "" } else { "s" }, report.purpose, report.target_platform.name)
    };
    // Blocked VMs first, each group in the request's order.
    let mut vms = report.vms;
    vms.sort_by_key(|v| v.ok);
    view! {
        <div class="validation-report" data-testid="validation-report" data-ok=report.ok.to_string() data-blockers=report.blockers>
            <p class=if report.ok { "notice operational" } else { "notice warning" } data-testid="validation-summary">{summary}</p>
            <Show when=move || stale.get()>
                <p class="notice caution" data-testid="validation-stale">"The mappings changed since this check: validate again."</p>
            </Show>
            {vms.into_iter().map(|vm| view! { <VmReport vm=vm /> }).collect_view()}
        </div>
    }
}

#[component]
fn VmReport(vm: VmValidation) -> impl IntoView {
    view! {
        <div class="vm-report" class:blocked=!vm.ok data-testid="validation-vm" data-vm=vm.vm_name.clone() data-ok=vm.ok.to_string()>
            <div class="vm-report-head">
                <span class="vm-name">{vm.vm_name.clone()}</span>
                <span class=if vm.ok { "status-pill operational" } else { "status-pill warning" }>{if vm.ok { "ready" } else { "blocked" }}</span>
                <span class="muted small">{format!("{} NIC{}", vm.nics.len(), if vm.nics.len() == 1 { "" } else { "s" })}</span>
            </div>
            <Issues notes=vm.issues />
            <div class="nic-rows">
                {vm.nics.into_iter().map(|n| {
                    let blocked = n.issues.iter().any(|i| i.severity == NoteSeverity::Blocker);
                    let vm_name = vm.vm_name.clone();
                    view! {
                        <div class="nic-row" class:blocked=blocked data-testid="validation-nic" data-vm=vm_name data-index=n.index
                            data-source=n.source_network.clone() data-target=n.target_network.clone().unwrap_or_default() data-blocked=blocked.to_string()>
                            <div class="nic-line">
                                <span class="mono small muted">{format!("NIC {}", n.index + 1)}</span>
                                <span class="mono small muted hide-narrow">{n.mac.clone()}</span>
                                <span class="mono">{n.source_network.clone()}</span>
                                <span class="muted">"→"</span>
                                {match n.target_network.clone() {
                                    Some(t) => view! { <span class="mono">{t}</span> }.into_any(),
                                    None => view! { <span class="bad">"unmapped"</span> }.into_any(),
                                }}
                                {n.scope.map(|s| view! {
                                    <span class="muted small">{match s { MappingScope::Flow => "flow mapping", MappingScope::Default => "default mapping" }}</span>
                                })}
                            </div>
                            <Issues notes=n.issues />
                        </div>
                    }
                }).collect_view()}
            </div>
        </div>
    }
}
