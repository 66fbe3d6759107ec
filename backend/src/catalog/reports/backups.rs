//! Backup duration and size per day and per VM.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use shared_types::jobs::{BackupType, JobKind, JobStatus};
use shared_types::reports::{BackupDay, BackupVmRow, BackupsReport};

use super::{finished_jobs, name_of, run_seconds, vm_names, Days};
use crate::catalog::to_u64;

pub const METHOD: &str = "Completed backup jobs, by the day they finished. Duration = finish − start of the job; read = \
    bytes read from the VM's disks (an incremental reads only the changed blocks); written = bytes stored in the \
    repository after deduplication and compression.";

pub async fn report(db: &DatabaseConnection, days: u32, now: DateTime<Utc>) -> Result<BackupsReport, DbErr> {
    let d = Days::new(days, now);
    let jobs = finished_jobs(db, &[JobKind::Backup], d.start).await?;
    let names = vm_names(db).await?;
    let mut per_day: Vec<(Vec<u64>, u64, u64)> = vec![(Vec::new(), 0, 0); d.n];
    // VM → (its row, each run's seconds, when its last run finished).
    type PerVm = (BackupVmRow, Vec<u64>, Option<DateTime<Utc>>);
    let mut per_vm: HashMap<String, PerVm> = HashMap::new();
    for job in jobs.iter().filter(|j| j.status == JobStatus::Completed.as_str()) {
        let (Some(finished), Some(seconds)) = (job.finished_at, run_seconds(job)) else { continue };
        let Some(i) = d.index(finished) else { continue };
        let (read, written) = (to_u64(job.bytes_read), to_u64(job.bytes_written));
        let day = &mut per_day[i];
        day.0.push(seconds);
        day.1 += read;
        day.2 += written;
        let Some(vm) = &job.vm_context_id else { continue };
        let entry = per_vm.entry(vm.clone()).or_insert_with(|| {
            let row = BackupVmRow {
                id: vm.clone(),
                name: name_of(&names, vm),
                runs: 0,
                full: 0,
                incremental: 0,
                mean_seconds: None,
                last_seconds: None,
                bytes_read: 0,
                bytes_written: 0,
            };
            (row, Vec::new(), None)
        });
        entry.0.runs += 1;
        match job.backup_type.as_deref().and_then(BackupType::parse) {
            Some(BackupType::Incremental) => entry.0.incremental += 1,
            _ => entry.0.full += 1,
        }
        entry.0.bytes_read += read;
        entry.0.bytes_written += written;
        entry.1.push(seconds);
        if entry.2.is_none_or(|at| at < finished) {
            entry.2 = Some(finished);
            entry.0.last_seconds = Some(seconds);
        }
    }
    let mean = |s: &[u64]| (!s.is_empty()).then(|| s.iter().sum::<u64>() as f64 / s.len() as f64);
    let mut vms: Vec<BackupVmRow> = per_vm
        .into_values()
        .map(|(mut row, seconds, _)| {
            row.mean_seconds = mean(&seconds);
            row
        })
        .collect();
    vms.sort_by(|a, b| b.mean_seconds.unwrap_or(0.0).total_cmp(&a.mean_seconds.unwrap_or(0.0)).then_with(|| a.name.cmp(&b.name)));
    Ok(BackupsReport {
        window: d.window(),
        method: METHOD.into(),
        days: per_day
            .into_iter()
            .enumerate()
            .map(|(i, (seconds, read, written))| BackupDay {
                day: d.day(i),
                runs: seconds.len() as u64,
                mean_seconds: mean(&seconds),
                max_seconds: seconds.iter().max().copied(),
                bytes_read: read,
                bytes_written: written,
            })
            .collect(),
        vms,
    })
}
