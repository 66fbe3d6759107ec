//! A repository's health beyond "it opens": the last failure of the storage
//! behind it (issue 18: a repository that fills up or starts refusing
//! writes). A backup that fails at the storage (the engine's error is about
//! a repository object: full, over quota, refusing the credentials, not
//! answering) records it on the repository's row, and so does a copy on the
//! row of the repository whose storage failed it (the target or the
//! source, told apart by `engine::repository::ErrorTap`; a source whose
//! storage fails already at the copy's first read, its restore point's
//! manifest, is marked too, besides its location marked missing, but not
//! when the storage answered that the manifest is not there); the repository then
//! shows `degraded` with the cause and when; a failed test of the saved
//! repository records it too. The next successful backup or copy to the
//! repository, or a successful test, clears it. Failures that are not the
//! storage's (the VM could not be read, an operator stopped the job) leave
//! it as it is.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use shared_types::repositories::{StorageFailure, StorageFailureCause};

use crate::db::entities::repositories;
use crate::engine::EngineError;
use crate::jobs::JobError;

/// The cause of an engine error when the storage behind the repository
/// caused it (an error about a repository object), else `None`.
pub fn engine_cause(e: &EngineError) -> Option<StorageFailureCause> {
    use std::io::ErrorKind;
    let EngineError::Object { source, .. } = e else { return None };
    Some(match source.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => StorageFailureCause::Full,
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StorageFailureCause::Refused,
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::NotConnected
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::TimedOut => StorageFailureCause::Unreachable,
        _ => StorageFailureCause::Failed,
    })
}

/// [`engine_cause`] of a job's error.
pub fn job_cause(e: &JobError) -> Option<StorageFailureCause> {
    match e {
        JobError::Engine(e) => engine_cause(e),
        _ => None,
    }
}

/// Records the storage's failure on repository `repository_id` (the
/// message as the job or test said it; `job_id`: the job that met it).
pub async fn record(
    db: &impl ConnectionTrait,
    repository_id: &str,
    cause: StorageFailureCause,
    message: &str,
    job_id: Option<&str>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    repositories::Entity::update_many()
        .col_expr(repositories::Column::StorageFailureAt, Expr::value(Some(at)))
        .col_expr(repositories::Column::StorageFailureCause, Expr::value(Some(cause.as_str().to_owned())))
        .col_expr(repositories::Column::StorageFailure, Expr::value(Some(message.to_owned())))
        .col_expr(repositories::Column::StorageFailureJob, Expr::value(job_id.map(str::to_owned)))
        .filter(repositories::Column::Id.eq(repository_id))
        .exec(db)
        .await
        .map(|_| ())
}

/// A write to repository `repository_id` succeeded: its last storage
/// failure, if any, is over. Returns whether one was cleared.
pub async fn clear(db: &impl ConnectionTrait, repository_id: &str) -> Result<bool, DbErr> {
    let done = repositories::Entity::update_many()
        .col_expr(repositories::Column::StorageFailureAt, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(repositories::Column::StorageFailureCause, Expr::value(Option::<String>::None))
        .col_expr(repositories::Column::StorageFailure, Expr::value(Option::<String>::None))
        .col_expr(repositories::Column::StorageFailureJob, Expr::value(Option::<String>::None))
        .filter(repositories::Column::Id.eq(repository_id))
        .filter(repositories::Column::StorageFailureAt.is_not_null())
        .exec(db)
        .await?;
    Ok(done.rows_affected > 0)
}

/// The last storage failure a row records, if any.
pub fn of(row: &repositories::Model) -> Option<StorageFailure> {
    let at = row.storage_failure_at?;
    Some(StorageFailure {
        at,
        cause: row.storage_failure_cause.as_deref().and_then(StorageFailureCause::parse).unwrap_or(StorageFailureCause::Failed),
        message: row.storage_failure.clone().unwrap_or_default(),
        job_id: row.storage_failure_job.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_about_repository_objects_are_the_storages() {
        let object = |kind| EngineError::Object { key: "packs/ab".into(), source: std::io::Error::new(kind, "repository s3://b: ...") };
        assert_eq!(engine_cause(&object(std::io::ErrorKind::StorageFull)), Some(StorageFailureCause::Full));
        assert_eq!(engine_cause(&object(std::io::ErrorKind::QuotaExceeded)), Some(StorageFailureCause::Full));
        assert_eq!(engine_cause(&object(std::io::ErrorKind::PermissionDenied)), Some(StorageFailureCause::Refused));
        assert_eq!(engine_cause(&object(std::io::ErrorKind::ConnectionRefused)), Some(StorageFailureCause::Unreachable));
        assert_eq!(engine_cause(&object(std::io::ErrorKind::Other)), Some(StorageFailureCause::Failed));
        assert_eq!(engine_cause(&EngineError::Cancelled), None);
        assert_eq!(engine_cause(&EngineError::SnapshotNotFound("web/1".into())), None);
        let platform = JobError::Io { what: "reading the VM's disk".into(), source: std::io::Error::other("nbd") };
        assert_eq!(job_cause(&platform), None);
        assert_eq!(job_cause(&JobError::Engine(object(std::io::ErrorKind::StorageFull))), Some(StorageFailureCause::Full));
    }
}
