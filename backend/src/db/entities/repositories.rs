//! `repositories`: where backups live.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "repositories")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    /// A `RepositoryKind` word.
    pub kind: String,
    /// The directory of a local repository; for an object store, where it
    /// is in words (`s3://bucket/prefix`, `azure://account/container/prefix`),
    /// never a secret.
    pub path: String,
    pub created_at: ChronoDateTimeUtc,
    /// Set while the repository is in maintenance (see `shared_types::repositories::Maintenance`).
    pub maintenance_reason: Option<String>,
    pub maintenance_since: Option<ChronoDateTimeUtc>,
    pub maintenance_by: Option<String>,
    /// Cron pattern of scheduled verifies: NULL = the default, empty = off.
    pub verify_schedule: Option<String>,
    /// Cron pattern of scheduled GC: NULL = the default, empty = off.
    pub gc_schedule: Option<String>,
    pub last_verify_at: Option<ChronoDateTimeUtc>,
    /// A `VerifyOutcome` word: `ok`, `damaged` (some restore point was) or `failed`.
    pub last_verify_status: Option<String>,
    pub last_verify_damaged: Option<i64>,
    pub last_gc_at: Option<ChronoDateTimeUtc>,
    pub last_gc_reclaimed_bytes: Option<i64>,
    /// S3: the endpoint URL (None = AWS); Azure: a custom endpoint (Azurite).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub container: Option<String>,
    /// Key prefix inside the bucket or container ("" or None = its root).
    pub prefix: Option<String>,
    /// S3 virtual-hosted-style addressing (`bucket.host`) instead of path-style.
    pub virtual_hosted: bool,
    /// Azure storage account.
    pub account: Option<String>,
    pub access_key_id: Option<String>,
    /// The S3 secret key, the Azure account key or SAS, sealed with the
    /// catalog secret key (`alerts::secrets`) for this row's id. Never returned.
    pub secret_sealed: Option<String>,
    /// Which secret `secret_sealed` holds: `secret_key` (S3), `account_key` or `sas` (Azure).
    pub credential_kind: Option<String>,
    /// Restore points stay undeletable this many days (0 = off).
    pub immutable_days: i32,
    /// S3 Object Lock mode: `governance` or `compliance`.
    pub object_lock_mode: Option<String>,
    /// Created encrypted (its key in `DATA_DIR/keys/<id>.key`).
    pub encrypted: bool,
    /// New flows go here unless they name another repository.
    pub is_default: bool,
    /// The storage's last failed write here (see `catalog::repository_health`):
    /// when, a `StorageFailureCause` word, the answer in words, the job.
    pub storage_failure_at: Option<ChronoDateTimeUtc>,
    pub storage_failure_cause: Option<String>,
    pub storage_failure: Option<String>,
    pub storage_failure_job: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
