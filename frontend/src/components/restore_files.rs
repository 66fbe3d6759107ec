//! Restore selected files of a file-level session: to a directory on the
//! Sendense host, or back into a VM's disk (the VM powered off), with a
//! choice of what happens to files already there. The server queues a
//! `file_restore` job (`POST /restore/{mount_id}/restore-files`, 202); the
//! form follows it (progress, its log, stop) and then shows what it wrote
//! and what it skipped (`GET /jobs/{id}`'s `file_restore`).

use leptos::prelude::*;
use shared_types::platform::PowerState;
use shared_types::jobs::{JobDetails, JobStatus};
use shared_types::restore::{ConflictPolicy, FileRestoreDestination, FileRestoreRequest, Mount};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::format::{format_bytes, format_duration};

/// The volume (first path component) of a session path.
fn volume_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or_default()
}

#[component]
pub fn RestoreFilesForm(mount: Mount, paths: RwSignal<Vec<String>>, open: RwSignal<bool>) -> impl IntoView {
    let to_vm = RwSignal::new(true);
    let vms = Fetch::new(api::vm_contexts);
    let vm_id = RwSignal::new(String::new());
    let directory = RwSignal::new(String::new());
    let host_path = RwSignal::new(String::new());
    let conflict = RwSignal::new(ConflictPolicy::Skip);
    // The job being followed, as last read.
    let details = RwSignal::new(None::<JobDetails>);
    let act = Act::new();
    let stop_act = Act::new();
    let source_vm = mount.vm_name.clone();
    // The session's own VM is the default destination.
    Effect::new(move |_| {
        if vm_id.with_untracked(String::is_empty) {
            if let Some(Ok(p)) = vms.get() {
                if let Some(v) = p.items.iter().find(|v| v.name == source_vm) {
                    vm_id.set(v.id.clone());
                }
            }
        }
    });
    let one_volume = Signal::derive(move || {
        let mut v: Vec<String> = paths.with(|p| p.iter().map(|x| volume_of(x).to_string()).collect());
        v.sort();
        v.dedup();
        if v.len() == 1 { v.pop() } else { None }
    });
    let chosen_vm = move || vms.get().and_then(|r| r.ok()).and_then(|p| p.items.into_iter().find(|v| v.id == vm_id.get()));
    let running = move || chosen_vm().is_some_and(|v| v.power == PowerState::Running);
    let mount_id = mount.id.clone();
    let submit = move |_| {
        let destination = if to_vm.get_untracked() {
            FileRestoreDestination::VmDisk {
                vm_id: vm_id.get_untracked(),
                volume: one_volume.get_untracked().unwrap_or_default(),
                directory: Some(directory.get_untracked()).filter(|d| !d.trim().is_empty()),
            }
        } else {
            FileRestoreDestination::HostDirectory { path: host_path.get_untracked() }
        };
        let req = FileRestoreRequest { paths: paths.get_untracked(), destination, conflict: conflict.get_untracked() };
        details.set(None);
        act.run(api::restore_files(mount_id.clone(), req), move |job| {
            // Follow the job until it ends (or the form closes).
            leptos::task::spawn_local(async move {
                let id = job.id.clone();
                loop {
                    if details.try_with_untracked(|_| ()).is_none() {
                        break; // the form closed
                    }
                    if let Ok(d) = api::job(id.clone()).await {
                        let done = d.job.status.is_finished();
                        if details.try_set(Some(d)).is_some() {
                            break;
                        }
                        if done {
                            break;
                        }
                    }
                    gloo_timers::future::sleep(std::time::Duration::from_millis(700)).await;
                }
            });
        });
    };
    let following = move || details.with(|d| d.as_ref().is_some_and(|d| !d.job.status.is_finished()));
    let stop = move |_| {
        if let Some(id) = details.with_untracked(|d| d.as_ref().map(|d| d.job.id.clone())) {
            stop_act.run(api::job_action(id, "stop"), |_| {});
        }
    };
    view! {
        <div class="card inset" data-testid="restore-files">
            <h3 class="section-title">"RESTORE SELECTED"</h3>
            <fieldset class="radio-row">
                <legend>"Destination"</legend>
                <label class="radio"><input type="radio" name="dest" data-testid="dest-vm" prop:checked=move || to_vm.get() on:change=move |_| to_vm.set(true) />
                    "Back into a VM's disk (the VM must be powered off)"</label>
                <label class="radio"><input type="radio" name="dest" data-testid="dest-host" prop:checked=move || !to_vm.get() on:change=move |_| to_vm.set(false) />
                    "A directory on the Sendense host"</label>
            </fieldset>
            {move || if to_vm.get() {
                view! {
                    <div class="form-row">
                        <label>"VM"
                            <select data-testid="dest-vm-select" prop:value=move || vm_id.get() on:change=move |ev| vm_id.set(event_target_value(&ev))>
                                {move || vms.get().and_then(|r| r.ok()).map(|p| p.items.into_iter().map(|v| {
                                    let label = format!("{} · {} · {}", v.name, v.platform_name, format!("{:?}", v.power).to_lowercase());
                                    view! { <option value=v.id.clone() selected={v.id == vm_id.get_untracked()}>{label}</option> }
                                }).collect_view())}
                            </select>
                        </label>
                        <label>"Volume"
                            <input type="text" readonly prop:value=move || one_volume.get().unwrap_or_else(|| "several: select files of one volume".into()) />
                        </label>
                        <label>"Into directory (empty: where each file was)"
                            <input type="text" data-testid="dest-directory" placeholder="/" prop:value=move || directory.get()
                                on:input=move |ev| directory.set(event_target_value(&ev)) />
                        </label>
                    </div>
                    {move || running().then(|| view! {
                        <p class="notice caution" data-testid="dest-running">"This VM is running: power it off first, or restore to a directory on the host."</p>
                    })}
                }.into_any()
            } else {
                view! {
                    <div class="form-row">
                        <label>"Directory (absolute path, created if missing)"
                            <input type="text" data-testid="dest-host-path" placeholder="/srv/restore" prop:value=move || host_path.get()
                                on:input=move |ev| host_path.set(event_target_value(&ev)) />
                        </label>
                    </div>
                }.into_any()
            }}
            <div class="form-row">
                <label>"When a file is already there"
                    <select data-testid="dest-conflict" on:change=move |ev| {
                        if let Some(c) = ConflictPolicy::parse(&event_target_value(&ev)) { conflict.set(c) }
                    }>
                        <option value="skip" selected>"Skip it (keep the existing file)"</option>
                        <option value="overwrite">"Overwrite it"</option>
                        <option value="keep_both">"Keep both (rename the restored copy)"</option>
                    </select>
                </label>
                <span class="grow"></span>
                <button class="button" on:click=move |_| open.set(false)>"Cancel"</button>
                <button class="button primary" data-testid="restore-files-start"
                    disabled=move || act.busy.get() || following() || paths.with(Vec::is_empty) || (to_vm.get() && (one_volume.get().is_none() || running()))
                    on:click=submit>
                    {move || if act.busy.get() || following() { "Restoring…" } else { "Restore" }}
                </button>
            </div>
            <ActError act=act testid="restore-files-error" />
            {move || details.get().map(|d| {
                let j = d.job.clone();
                let percent = j.progress_percent.unwrap_or(if j.status == JobStatus::Completed { 100.0 } else { 0.0 });
                let status = j.status;
                let tail: Vec<String> = d.logs.iter().rev().take(4).rev().map(|l| l.message.clone()).collect();
                view! {
                    <div class="progress restore-job" data-testid="restore-files-job" data-job-id=j.id.clone() data-status=status.as_str()>
                        <div class="job-head">
                            <span class="muted small">{format!("File restore job {}", &j.id[..j.id.len().min(8)])}</span>
                            <span class=format!("status-pill {}", crate::job_view::status_class(status)) data-testid="restore-files-status">{status.as_str().to_uppercase()}</span>
                            <span class="grow"></span>
                            {(!status.is_finished()).then(|| view! {
                                <button class="button" data-testid="restore-files-stop" disabled=move || stop_act.busy.get() on:click=stop>"Stop"</button>
                            })}
                        </div>
                        <div class="progress-track">
                            <div class=format!("progress-fill {}", crate::job_view::status_class(status)) style:width=format!("{percent:.1}%")></div>
                        </div>
                        <div class="progress-caption mono">
                            <span data-testid="restore-files-percent">{format!("{percent:.1}%")}</span>
                            <span data-testid="restore-files-bytes">{format!("{} / {} written", format_bytes(j.bytes_written), format_bytes(j.bytes_total))}</span>
                        </div>
                        <ul class="small mono job-log" data-testid="restore-files-log">
                            {tail.into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}
                        </ul>
                        {j.error.clone().map(|e| view! { <p class="notice warning" data-testid="restore-files-failed">{e}</p> })}
                    </div>
                }
            })}
            <ActError act=stop_act testid="restore-files-stop-error" />
            {move || details.with(|d| d.as_ref().and_then(|d| d.file_restore.clone())).map(|r| view! {
                <div class="notice operational" data-testid="restore-files-result" data-files=r.files.to_string() data-bytes=r.bytes.to_string()>
                    {format!("Restored {} file(s), {} folder(s), {} link(s), {} to {} in {}.",
                        r.files, r.directories, r.symlinks, format_bytes(r.bytes), r.destination, if r.duration_ms < 1000 { format!("{} ms", r.duration_ms) } else { format_duration(r.duration_ms / 1000) })}
                    {(!r.skipped.is_empty()).then(|| view! {
                        <ul class="small" data-testid="restore-files-skipped">
                            {r.skipped.into_iter().map(|s| view! { <li>{format!("{}: {}", s.path, s.reason)}</li> }).collect_view()}
                        </ul>
                    })}
                </div>
            })}
        </div>
    }
}
