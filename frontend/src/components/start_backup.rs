//! Start-backup modal (seed 001): the VMs, full or incremental, the
//! repository, and an estimate from the VM's last backup, if it had one.

use leptos::prelude::*;
use shared_types::jobs::{BackupType, JobStatus, StartBackupRequest};
use shared_types::vms::VmContext;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::format::{format_bytes, format_duration};
use crate::job_view::{duration_s, rate};

/// `vms`: the VMs to back up; the modal is open while it is non-empty.
#[component]
pub fn StartBackupModal(vms: RwSignal<Vec<VmContext>>, #[prop(into)] on_started: Callback<Vec<String>>) -> impl IntoView {
    view! {
        {move || {
            let list = vms.get();
            (!list.is_empty()).then(|| view! {
                <div class="modal-backdrop" on:click=move |_| vms.set(Vec::new())>
                    <div class="modal" role="dialog" aria-modal="true" aria-label="Start backup" data-testid="start-backup"
                        on:click=|ev| ev.stop_propagation()>
                        <header class="modal-head">
                            <h2>"START BACKUP"</h2>
                            <button class="icon-button" aria-label="Close" on:click=move |_| vms.set(Vec::new())>"✕"</button>
                        </header>
                        <div class="modal-body"><StartBackupForm list=list vms=vms on_started=on_started /></div>
                    </div>
                </div>
            })
        }}
    }
}

#[component]
fn StartBackupForm(list: Vec<VmContext>, vms: RwSignal<Vec<VmContext>>, on_started: Callback<Vec<String>>) -> impl IntoView {
    let act = Act::new();
    let kind = RwSignal::new(if list.iter().all(|v| v.backup_count > 0) { BackupType::Incremental } else { BackupType::Full });
    let repo = RwSignal::new(String::new());
    let repos = Fetch::new(api::repositories);
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
    // Estimate from each VM's newest completed backup.
    let ids: Vec<String> = list.iter().map(|v| v.id.clone()).collect();
    let capacity: u64 = list.iter().map(|v| v.capacity_bytes).sum();
    let history = Fetch::new(move || {
        let ids = ids.clone();
        async move {
            let mut out = Vec::new();
            for id in ids {
                if let Ok(page) = api::vm_jobs(&id, 20).await {
                    if let Some(j) = page.items.into_iter().find(|j| j.status == JobStatus::Completed) {
                        out.push(j);
                    }
                }
            }
            out
        }
    });
    let estimate = move || {
        let jobs = history.get()?;
        let full = kind.get() == BackupType::Full;
        let mut secs = 0.0;
        let (mut bytes, mut took) = (0.0, 0.0);
        for j in &jobs {
            let d = duration_s(j)?;
            bytes += j.bytes_total as f64;
            took += d;
            if !full {
                secs += d;
            }
        }
        if jobs.is_empty() || took <= 0.0 {
            return Some("No earlier backup of these VMs: no estimate yet.".to_string());
        }
        let speed = bytes / took;
        if full {
            secs = capacity as f64 / speed;
        }
        Some(format!("≈ {} (from the last backup's pace, {})", format_duration(secs.ceil() as u64), rate(speed)))
    };
    let names = list.iter().map(|v| v.name.clone()).collect::<Vec<_>>().join(", ");
    let count = list.len();
    let start = move |_| {
        let req = StartBackupRequest {
            vm_ids: vms.get_untracked().iter().map(|v| v.id.clone()).collect(),
            backup_type: kind.get_untracked(),
            repository_id: Some(repo.get_untracked()).filter(|r| !r.is_empty()),
            priority: 0,
        };
        act.run(api::start_backup(req), move |q| {
            vms.set(Vec::new());
            on_started.run(q.jobs.into_iter().map(|j| j.id).collect());
        });
    };
    view! {
        <dl class="facts wide">
            <dt>"VMs"</dt><dd data-testid="start-backup-vms">{names}</dd>
            <dt>"Size"</dt><dd class="mono">{format_bytes(capacity)} " virtual"</dd>
        </dl>
        <div class="form-col">
            <fieldset class="radio-row">
                <legend>"Type"</legend>
                <label class="radio"><input type="radio" name="backup-type" data-testid="backup-type-incremental"
                    prop:checked=move || kind.get() == BackupType::Incremental on:change=move |_| kind.set(BackupType::Incremental) />
                    "Incremental — only what changed"</label>
                <label class="radio"><input type="radio" name="backup-type" data-testid="backup-type-full"
                    prop:checked=move || kind.get() == BackupType::Full on:change=move |_| kind.set(BackupType::Full) />
                    "Full — every allocated block"</label>
            </fieldset>
            <label>"Repository"
                <select data-testid="start-backup-repo" on:change=move |ev| repo.set(event_target_value(&ev)) prop:value=move || repo.get()>
                    {move || repos.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|r| {
                        let free = r.capacity.as_ref().map(|c| format!(" — {} free", format_bytes(c.free_bytes))).unwrap_or_default();
                        view! { <option value=r.id.clone()>{format!("{}{free}", r.name)}</option> }
                    }).collect_view()}
                </select>
            </label>
            <p class="muted small" data-testid="start-backup-estimate">"Estimated time: " {move || estimate().unwrap_or_else(|| "…".into())}</p>
        </div>
        <ActError act=act testid="start-backup-error" />
        <div class="modal-actions">
            <button class="button" on:click=move |_| vms.set(Vec::new())>"Cancel"</button>
            <button class="button primary" data-testid="start-backup-submit" disabled=move || act.busy.get() on:click=start>
                {move || if act.busy.get() { "Starting…".to_string() } else { format!("Back up {count} VM(s)") }}
            </button>
        </div>
    }
}
