//! Fold keys: what makes two alerts the same trouble. Built from stable ids
//! (never names), so a renamed flow keeps its alert.

use shared_types::alerts::AlertSourceKind;

use crate::db::entities::jobs;

/// The source a job's alerts belong to: its backup flow, its replication
/// flow, else its VM, else its repository.
pub fn job_source(job: &jobs::Model) -> (AlertSourceKind, Option<String>) {
    if let Some(f) = &job.flow_id {
        (AlertSourceKind::Flow, Some(f.clone()))
    } else if let Some(r) = &job.replication_id {
        (AlertSourceKind::Replication, Some(r.clone()))
    } else if let Some(v) = &job.vm_context_id {
        (AlertSourceKind::Vm, Some(v.clone()))
    } else if let Some(r) = &job.repository_id {
        (AlertSourceKind::Repository, Some(r.clone()))
    } else {
        (AlertSourceKind::System, None)
    }
}

fn source_part(kind: AlertSourceKind, id: Option<&str>) -> String {
    format!("{}:{}", kind.as_str(), id.unwrap_or("-"))
}

/// A job of this kind failed for this source and VM (resolved by the next
/// good run of the same kind for the same source and VM: one VM of a group
/// flow doing well does not hide another one failing).
pub fn job_failed(job: &jobs::Model) -> String {
    let (kind, id) = job_source(job);
    let what = match &job.operation {
        Some(op) => format!("{}.{op}", job.kind),
        None => job.kind.clone(),
    };
    let mut key = format!("job_failed:{what}:{}", source_part(kind, id.as_deref()));
    if let (AlertSourceKind::Flow | AlertSourceKind::Replication, Some(vm)) = (kind, &job.vm_context_id) {
        key.push_str(&format!(":vm:{vm}"));
    }
    key
}

/// A verify found damaged restore points in a repository.
pub fn repository_damaged(repository_id: &str) -> String {
    format!("repository_damaged:{}", source_part(AlertSourceKind::Repository, Some(repository_id)))
}

/// A replication flow missed its RPO (resolved by its next point).
pub fn rpo_missed(replication_id: &str) -> String {
    format!("rpo_missed:{}", source_part(AlertSourceKind::Replication, Some(replication_id)))
}

/// A flow's scheduled run could not start (resolved by a good run).
pub fn schedule_skipped(flow_id: &str) -> String {
    format!("schedule_skipped:{}", source_part(AlertSourceKind::Flow, Some(flow_id)))
}

/// A stage of a group's site failover could not start a VM.
pub fn site_failover_stage(group_id: &str) -> String {
    format!("site_failover:{}", source_part(AlertSourceKind::Group, Some(group_id)))
}
