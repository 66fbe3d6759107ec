//! RecoveryWizard (seed 000 6.2): 1 restore point → 2 target → 3
//! configuration (with the server's compatibility check) → 4 execution
//! with live progress. Back and Cancel at every step. Formats the licence
//! tier forbids are shown disabled with the reason, by the same rule the
//! server enforces (`shared_types::recovery::required_feature`). The
//! configuration step maps each NIC to a network of the target, filled in
//! with what the server proposes (the mapping saved on the Networks page,
//! else the recommendation), and the restore is sent with that map.

use leptos::prelude::*;
use shared_types::backups::{Backup, LocationRole, LocationState};
use shared_types::instant::{InstantRecovery, InstantRecoveryRequest};
use shared_types::jobs::Job;
use shared_types::platform::{DiskFormat, PlatformKind};
use shared_types::recovery::{required_feature, CompatibilityReport, LicenseTier, NoteSeverity, RestoreVmRequest};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::instant_recoveries::InstantRecoveries;
use crate::components::job_panel::JobPanel;
use crate::fetch::Fetch;
use crate::format::{format_bytes, format_duration, when};

const STEPS: [&str; 4] = ["RESTORE POINT", "TARGET", "CONFIGURATION", "EXECUTION"];

/// Open while `open` holds the restore point to start from.
#[component]
pub fn RestoreWizardModal(open: RwSignal<Option<Backup>>) -> impl IntoView {
    view! {
        {move || open.get().map(|b| view! {
            <div class="modal-backdrop">
                <div class="modal wide" role="dialog" aria-modal="true" aria-label="Restore a VM" data-testid="restore-wizard"
                    on:click=|ev| ev.stop_propagation()>
                    <header class="modal-head">
                        <h2>{format!("RESTORE · {}", b.vm_name)}</h2>
                        <button class="icon-button" aria-label="Close" data-testid="wizard-close" on:click=move |_| open.set(None)>"✕"</button>
                    </header>
                    <div class="modal-body"><Wizard start=b open=open /></div>
                </div>
            </div>
        })}
    }
}

#[component]
fn Wizard(start: Backup, open: RwSignal<Option<Backup>>) -> impl IntoView {
    let step = RwSignal::new(0usize);
    let vm_id = start.vm_context_id.clone();
    let points = Fetch::new(move || api::backups(format!("vm={}&limit=100", vm_id)));
    let platforms = Fetch::new(api::platforms);
    let license = Fetch::new(api::license_features);
    let vm_id = start.vm_context_id.clone();
    let source_kind = Fetch::new(move || {
        let id = vm_id.clone();
        async move { api::vm_contexts().await.map(|p| p.items.into_iter().find(|v| v.id == id).map(|v| v.platform_kind)) }
    });
    let point = RwSignal::new(start.id.clone());
    // Where the chosen point can be read now: the server reads its manifest
    // in each repository it is in (a deleted primary shows missing at once,
    // not only after a check or a restore met it).
    let checked = Fetch::new(move || api::check_locations(point.get()));
    // The repository to read the restore point from ("": the primary when
    // it can be read, else a copy: the server decides).
    let source = RwSignal::new(String::new());
    let target = RwSignal::new(String::new());
    let name = RwSignal::new(format!("{}-restored", start.vm_name));
    let format = RwSignal::new(None::<DiskFormat>);
    let power_on = RwSignal::new(false);
    let overwrite = RwSignal::new(false);
    let confirm = RwSignal::new(String::new());
    let report = RwSignal::new(None::<CompatibilityReport>);
    // "" = the host's default pool.
    let pool = RwSignal::new(String::new());
    // Source network → target network, sent with the request; filled from
    // the first check's proposals for the chosen target.
    let networks = RwSignal::new(std::collections::BTreeMap::<String, String>::new());
    let networks_filled = RwSignal::new(false);
    let job = RwSignal::new(None::<Job>);
    let instant = RwSignal::new(None::<InstantRecovery>);
    let check = Act::new();
    let run = Act::new();

    Effect::new(move |_| {
        if let Some(Ok(list)) = platforms.get() {
            if target.get_untracked().is_empty() {
                // The DR host first when there is one: restores rarely go back onto production.
                let pick = list.iter().find(|p| p.name.contains("dr")).or(list.first());
                if let Some(p) = pick {
                    target.set(p.id.clone());
                }
            }
        }
    });
    let target_kind = move || platforms.get().and_then(|r| r.ok()).and_then(|l| l.into_iter().find(|p| p.id == target.get()).map(|p| p.kind));
    let tier = move || license.get().and_then(|r| r.ok()).map(|l| l.tier);
    // Why a format cannot be chosen, if it cannot.
    let forbidden = move |f: DiskFormat| -> Option<String> {
        let (Some(src), Some(dst), Some(tier)) = (source_kind.get().and_then(|r| r.ok()).flatten(), target_kind(), tier()) else { return None };
        let need = required_feature(src, dst, f);
        (!tier.allows(need)).then(|| format!("needs the {} licence tier (this server runs {})", LicenseTier::needed_for(need).label(), tier.label()))
    };
    let request = move || RestoreVmRequest {
        backup_id: point.get_untracked(),
        target_platform_id: target.get_untracked(),
        name: name.get_untracked().trim().to_string(),
        overwrite: overwrite.get_untracked(),
        confirm_overwrite: overwrite.get_untracked().then(|| confirm.get_untracked()),
        disk_format: format.get_untracked(),
        network_mapping: networks.get_untracked(),
        power_on: power_on.get_untracked(),
        storage_pool: pool.with_untracked(|p| (!p.is_empty()).then(|| p.clone())),
        repository_id: Some(source.get_untracked()).filter(|s| !s.is_empty()),
    };
    let run_check = move || {
        report.set(None);
        check.run(api::restore_check(request()), move |r| report.set(Some(r)));
    };
    // The first answer for a target fills the map with its proposals and,
    // where they differ from what the check assumed, checks again.
    Effect::new(move |_| {
        let Some(r) = report.get() else { return };
        if networks_filled.get_untracked() {
            return;
        }
        networks_filled.set(true);
        let proposed: std::collections::BTreeMap<String, String> =
            r.nics.iter().filter_map(|n| n.suggestion.as_ref().map(|s| (n.source_network.clone(), s.network.clone()))).collect();
        let differs = r.nics.iter().any(|n| n.suggestion.as_ref().is_some_and(|s| n.target_network.as_deref() != Some(s.network.as_str())));
        networks.set(proposed);
        if differs {
            run_check();
        }
    });
    let start_restore = move |_| {
        run.run(api::restore_start(request()), move |j| {
            job.set(Some(j));
            step.set(3);
        });
    };
    let start_instant = move |_| {
        let r = request();
        let req = InstantRecoveryRequest { backup_id: r.backup_id, target_platform_id: r.target_platform_id, name: r.name, network_mapping: r.network_mapping, storage_pool: r.storage_pool, repository_id: r.repository_id };
        run.run(api::instant_start(req), move |i| {
            instant.set(Some(i));
            step.set(3);
        });
    };
    let back = move |_| step.update(|s| *s = s.saturating_sub(1));
    let cancel = move |_| open.set(None);

    view! {
        <ol class="wizard-steps" data-testid="wizard-steps">
            {STEPS.iter().enumerate().map(|(i, s)| view! {
                <li class=move || match step.get() { n if n == i => "current", n if n > i => "done", _ => "" }>{format!("{} · {s}", i + 1)}</li>
            }).collect_view()}
        </ol>
        // 1: restore point
        <Show when=move || step.get() == 0>
            <section class="step" data-testid="wizard-step-point">
                <p class="muted small">"Which restore point of this VM to bring back."</p>
                {move || points.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(p) => view! {
                        <div class="check-list">
                            {p.items.into_iter().map(|b| {
                                let id = b.id.clone();
                                let id2 = b.id.clone();
                                view! {
                                    <label class="check">
                                        <input type="radio" name="restore-point" data-testid=format!("wizard-point-{}", b.id)
                                            prop:checked=move || point.get() == id on:change=move |_| { point.set(id2.clone()); source.set(String::new()); } />
                                        {format!("{} · {} · {}", when(b.created_at), b.backup_type.as_str(), format_bytes(b.logical_bytes))}
                                    </label>
                                }
                            }).collect_view()}
                        </div>
                    }.into_any(),
                })}
                // 3-2-1: where to read it from, when it is in more than one repository.
                {move || {
                    let chosen = point.get();
                    let fresh = checked.get().and_then(|r| r.ok()).filter(|b| b.id == chosen).map(|b| b.locations);
                    let here = fresh.clone()
                        .or_else(|| points.get().and_then(|r| r.ok()).and_then(|p| p.items.into_iter().find(|b| b.id == chosen)).map(|b| b.locations))
                        .unwrap_or_default();
                    let read = fresh.is_some();
                    (here.len() > 1).then(|| view! {
                        <label>"Read from"
                            <select data-testid="wizard-source" data-checked=read.to_string() prop:value=move || source.get() on:change=move |ev| source.set(event_target_value(&ev))>
                                <option value="">"Automatic: the primary, or a copy when it cannot be read"</option>
                                {here.into_iter().filter(|l| matches!(l.state, LocationState::Present | LocationState::Missing)).map(|l| {
                                    let role = if l.role == LocationRole::Copy { "copy" } else { "primary" };
                                    view! { <option value=l.repository_id.clone()>{format!("{} ({role}, {})", l.repository_name, l.state.as_str())}</option> }
                                }).collect_view()}
                            </select>
                        </label>
                    })
                }}
                <div class="modal-actions">
                    <button class="button" on:click=cancel>"Cancel"</button>
                    <button class="button primary" data-testid="wizard-next" on:click=move |_| step.set(1)>"Next"</button>
                </div>
            </section>
        </Show>
        // 2: target
        <Show when=move || step.get() == 1>
            <section class="step form-col" data-testid="wizard-step-target">
                <label>"Target platform"
                    <select data-testid="wizard-target" prop:value=move || target.get() on:change=move |ev| { target.set(event_target_value(&ev)); format.set(None); networks.set(Default::default()); networks_filled.set(false); }>
                        {move || platforms.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|p| view! {
                            <option value=p.id.clone()>{format!("{} — {}", p.name, p.kind.label())}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label>"Name of the restored VM"
                    <input type="text" data-testid="wizard-name" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                </label>
                <fieldset class="radio-row" data-testid="wizard-formats">
                    <legend>"Disk format"</legend>
                    <label class="radio">
                        <input type="radio" name="format" prop:checked=move || format.get().is_none() on:change=move |_| format.set(None) />
                        {move || format!("Native ({})", target_kind().map(PlatformKind::native_disk_format).map(DiskFormat::qemu_name).unwrap_or("…"))}
                    </label>
                    {DiskFormat::ALL.into_iter().map(|f| view! {
                        <label class="radio" title=move || forbidden(f).unwrap_or_default()>
                            <input type="radio" name="format" data-testid=format!("wizard-format-{}", f.qemu_name())
                                disabled=move || forbidden(f).is_some()
                                prop:checked=move || format.get() == Some(f) on:change=move |_| format.set(Some(f)) />
                            {f.qemu_name()}
                            {move || forbidden(f).map(|r| view! { <span class="muted small">{format!(" — {r}")}</span> })}
                        </label>
                    }).collect_view()}
                </fieldset>
                <div class="modal-actions">
                    <button class="button" on:click=cancel>"Cancel"</button>
                    <button class="button" on:click=back>"Back"</button>
                    <button class="button primary" data-testid="wizard-next"
                        disabled=move || target.with(|t| t.is_empty()) || !RestoreVmRequest::valid_name(name.get().trim())
                        on:click=move |_| { step.set(2); run_check(); }>"Next"</button>
                </div>
            </section>
        </Show>
        // 3: configuration and the server's check
        <Show when=move || step.get() == 2>
            <section class="step form-col" data-testid="wizard-step-config">
                <label class="check"><input type="checkbox" data-testid="wizard-power-on" prop:checked=move || power_on.get()
                    on:change=move |ev| power_on.set(event_target_checked(&ev)) />"Power on after the restore"</label>
                <label class="check"><input type="checkbox" data-testid="wizard-overwrite" prop:checked=move || overwrite.get()
                    on:change=move |ev| { overwrite.set(event_target_checked(&ev)); run_check(); } />"Replace a VM of that name on the target"</label>
                <Show when=move || overwrite.get()>
                    <label>{move || format!("Type {} to confirm replacing it", name.get().trim())}
                        <input type="text" data-testid="wizard-confirm" prop:value=move || confirm.get() on:input=move |ev| confirm.set(event_target_value(&ev)) />
                    </label>
                </Show>
                {move || report.with(|r| r.as_ref().filter(|r| !r.nics.is_empty()).map(|r| (r.nics.clone(), r.target_networks.clone()))).map(|(nics, nets)| view! {
                    <div class="table-wrap" data-testid="wizard-networks">
                        <table class="table nic-map">
                            <thead><tr><th>"NIC (source network)"</th><th>"Target network"</th></tr></thead>
                            <tbody>
                                {nics.into_iter().map(|n| {
                                    let src = n.source_network.clone();
                                    let current = networks.with_untracked(|m| m.get(&src).cloned()).or(n.target_network.clone()).unwrap_or_default();
                                    let change = {
                                        let src = src.clone();
                                        move |ev| {
                                            let to = event_target_value(&ev);
                                            networks.update(|m| {
                                                if to.is_empty() {
                                                    m.remove(&src);
                                                } else {
                                                    m.insert(src.clone(), to);
                                                }
                                            });
                                            run_check();
                                        }
                                    };
                                    view! {
                                        <tr data-testid=format!("wizard-nic-{}", n.mac)>
                                            <td>
                                                <strong>{src.clone()}</strong>
                                                <span class="mono small muted nic-id">{format!("{} · {}", n.mac, n.model)}</span>
                                            </td>
                                            <td>
                                                <select data-testid=format!("wizard-net-{src}") aria-label=format!("Target network of {src}") on:change=change>
                                                    {current.is_empty().then(|| view! { <option value="" selected=true>"Choose a network"</option> })}
                                                    {nets.iter().map(|t| {
                                                        let label = if t.isolated { format!("{} (isolated)", t.name) } else { t.name.clone() };
                                                        view! { <option value=t.name.clone() selected=t.name == current>{label}</option> }
                                                    }).collect_view()}
                                                </select>
                                                {n.suggestion.map(|s| view! {
                                                    <span class="muted small nic-proposal" data-testid=format!("wizard-proposal-{src}")>
                                                        {format!("proposed: {} ({}{})", s.network, s.reason.label(), s.score.map(|v| format!(", {v}/100")).unwrap_or_default())}
                                                    </span>
                                                })}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                })}
                {move || report.with(|r| r.as_ref().map(|r| r.storage_pools.iter().filter(|p| p.active).cloned().collect::<Vec<_>>())).filter(|p| p.len() > 1).map(|pools| view! {
                    <label>"Storage pool on the target"
                        <select data-testid="wizard-pool" prop:value=move || pool.get() on:change=move |ev| { pool.set(event_target_value(&ev)); run_check(); }>
                            <option value="">"The host's default pool"</option>
                            {pools.into_iter().map(|p| view! {
                                <option value=p.name.clone()>{format!("{} ({}, {} free)", p.name, p.kind, format_bytes(p.available_bytes))}</option>
                            }).collect_view()}
                        </select>
                    </label>
                })}
                <Show when=move || check.busy.get()>
                    <span class="working"><span class="spinner"></span>"Checking compatibility with the target…"</span>
                </Show>
                <ActError act=check testid="wizard-check-error" />
                {move || report.get().map(|r| view! {
                    <div class="card" data-testid="wizard-report" data-ok=r.ok.to_string()>
                        <dl class="facts">
                            <dt>"Format written"</dt><dd class="mono">{r.target_format.qemu_name()}</dd>
                            <dt>"Space needed / free"</dt><dd class="mono">{format!("{} / {}", format_bytes(r.required_bytes), format_bytes(r.free_bytes))}</dd>
                            <dt>"Estimated time"</dt>
                            <dd class="mono" data-testid="wizard-estimate">{r.estimated_seconds.map(format_duration).unwrap_or_else(|| "no earlier job to estimate from".into())}</dd>
                            {r.read_from.clone().map(|f| {
                                let role = if f.role == LocationRole::Copy { "copy" } else { "primary" };
                                view! {
                                    <dt>"Reads from"</dt>
                                    <dd data-testid="wizard-read-from" data-repository=f.repository.id.clone() data-role=role>
                                        {format!("{} ({role})", f.repository.name)}
                                        {f.fallback_reason.map(|why| view! { <span class="muted small read-from-why" data-testid="wizard-read-from-why">{format!(" — {why}")}</span> })}
                                    </dd>
                                }
                            })}
                        </dl>
                        <ul class="issue-list">
                            {r.notes.iter().map(|n| {
                                let class = match n.severity { NoteSeverity::Blocker => "warning", NoteSeverity::Warning => "caution", NoteSeverity::Info => "operational" };
                                view! { <li><span class=format!("status-dot {class}")></span><span class="small">{n.severity.as_str()}</span><span class="small">{n.message.clone()}</span></li> }
                            }).collect_view()}
                        </ul>
                    </div>
                })}
                <ActError act=run testid="wizard-start-error" />
                <div class="modal-actions">
                    <button class="button" on:click=cancel>"Cancel"</button>
                    <button class="button" on:click=back>"Back"</button>
                    <button class="button primary" data-testid="wizard-start"
                        disabled=move || run.busy.get() || check.busy.get() || !report.with(|r| r.as_ref().is_some_and(|r| r.ok))
                        on:click=start_restore>"Start restore"</button>
                    <button class="button" data-testid="wizard-instant"
                        title="Boot the VM on the target straight from the restore point (libvirt hosts): up in seconds; finalize later copies its disks while it runs"
                        disabled=move || run.busy.get() || check.busy.get() || report.with(|r| r.is_none()) || overwrite.get()
                        on:click=start_instant>"Instant recovery"</button>
                </div>
                <p class="muted small">"Instant recovery runs the VM from the repository at once (the space check applies to its finalize)."</p>
            </section>
        </Show>
        // 4: execution
        <Show when=move || step.get() == 3>
            <section class="step" data-testid="wizard-step-run">
                {move || job.get().map(|j| view! {
                    <JobPanel job=Signal::derive(move || j.clone()) />
                    <p class="muted small">"Stop the restore from its panel; a stopped or failed restore leaves no VM on the target."</p>
                })}
                {move || instant.get().map(|_| view! { <InstantRecoveries /> })}
                <div class="modal-actions">
                    <button class="button primary" data-testid="wizard-done" on:click=cancel>"Close"</button>
                </div>
            </section>
        </Show>
    }
}
