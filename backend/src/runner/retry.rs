//! Retry: a failed or cancelled job queued again with what it was asked to
//! do (the same VM, repository, flow and backup type; the same restore point,
//! target and options; the same repository upkeep). The new job is a job of
//! its own; the old one stays in the history as it ended.

use sea_orm::EntityTrait;
use shared_types::jobs::{BackupType, JobKind, JobStatus};

use super::{maintenance_job, restore_job, BackupRequest, Runner, RunnerError};
use crate::db::entities::{flows, jobs};

impl Runner {
    /// Queues `job_id` again for `requested_by`; the new job.
    pub async fn retry(&self, job_id: &str, requested_by: &str) -> Result<jobs::Model, RunnerError> {
        let db = self.db();
        let old = jobs::Entity::find_by_id(job_id.to_owned())
            .one(db)
            .await?
            .ok_or_else(|| RunnerError::NotFound(format!("job '{job_id}' not found")))?;
        let status = JobStatus::parse(&old.status).unwrap_or(JobStatus::Failed);
        if !matches!(status, JobStatus::Failed | JobStatus::Cancelled) {
            return Err(RunnerError::Conflict(format!(
                "job {} is {}: only a failed or cancelled job can be retried",
                old.id, old.status
            )));
        }
        let requested_by = Some(requested_by.to_owned());
        let missing = |what: &str| RunnerError::Conflict(format!("job {} has no {what} recorded, so it cannot be run again", old.id));
        match JobKind::parse(&old.kind) {
            Some(JobKind::Backup) => {
                // A flow removed since: the retry is a backup of the VM alone.
                let flow_id = match &old.flow_id {
                    Some(id) => flows::Entity::find_by_id(id.clone()).one(db).await?.map(|f| f.id),
                    None => None,
                };
                self.enqueue_backup(BackupRequest {
                    vm_context_id: old.vm_context_id.clone().ok_or_else(|| missing("VM"))?,
                    repository_id: old.repository_id.clone().ok_or_else(|| missing("repository"))?,
                    flow_id,
                    backup_type: old.backup_type.as_deref().and_then(BackupType::parse).unwrap_or(BackupType::Incremental),
                    priority: old.priority,
                    requested_by,
                })
                .await
            }
            Some(JobKind::Restore) => {
                let options = old
                    .options
                    .as_deref()
                    .and_then(|o| serde_json::from_str::<restore_job::RestoreOptions>(o).ok())
                    .ok_or_else(|| missing("restore options"))?;
                self.enqueue_restore(restore_job::RestoreJobRequest {
                    vm_context_id: old.vm_context_id.clone().ok_or_else(|| missing("VM"))?,
                    repository_id: old.repository_id.clone().ok_or_else(|| missing("repository"))?,
                    backup_id: old.backup_id.clone().ok_or_else(|| missing("restore point"))?,
                    target_platform_id: old.target_platform_id.clone().ok_or_else(|| missing("target platform"))?,
                    options,
                    priority: old.priority,
                    requested_by,
                })
                .await
            }
            Some(kind @ (JobKind::Verify | JobKind::Gc | JobKind::Prune)) => {
                let repository = old.repository_id.clone().ok_or_else(|| missing("repository"))?;
                maintenance_job::enqueue(self, &repository, kind, requested_by.as_deref().unwrap_or_default()).await
            }
            Some(JobKind::Replication) => Err(RunnerError::Conflict(
                "a replication job is run again from its replication flow (Replicate now), which picks the newest restore point".into(),
            )),
            Some(JobKind::FileRestore) => Err(RunnerError::Conflict(
                "a file-level restore is run again from its restore point's file browser (the session it used has ended)".into(),
            )),
            Some(JobKind::InstantRecovery) => Err(RunnerError::Conflict(
                "an instant recovery is started again from RECOVERY (Instant recovery), or finalized again from its card".into(),
            )),
            Some(JobKind::Copy) => {
                let backup_id = old.backup_id.clone().ok_or_else(|| missing("restore point"))?;
                let target_id = old.repository_id.clone().ok_or_else(|| missing("target repository"))?;
                let backup = crate::db::entities::backups::Entity::find_by_id(backup_id.clone())
                    .one(db)
                    .await?
                    .ok_or_else(|| RunnerError::NotFound(format!("restore point '{backup_id}' was deleted since")))?;
                let target = crate::db::entities::repositories::Entity::find_by_id(target_id.clone())
                    .one(db)
                    .await?
                    .ok_or_else(|| RunnerError::NotFound(format!("repository '{target_id}' was removed since")))?;
                let mut options = super::copy_job::options_of(&old);
                options.sent_bytes = None;
                options.sent_chunks = None;
                self.enqueue_copy(&backup, &target, options, requested_by).await
            }
            None => Err(RunnerError::Conflict(format!("job {} is of a kind this server does not know ({})", old.id, old.kind))),
        }
    }
}
