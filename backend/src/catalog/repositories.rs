//! Repositories in the catalog: the local one the server creates on first
//! start (encrypted, its key in `DATA_DIR/keys`: [`super::repository_keys`]),
//! opening a repository's datastore, its capacity and engine stats.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use shared_types::repositories::{Capacity, Maintenance, ObjectLocation, Repository, RepositoryKind, RepositoryStats, RepositoryStatus};

use super::new_id;
use super::repository_keys;
use crate::db::entities::repositories;
use crate::engine::datastore::{Datastore, CONFIG_KEY};
use crate::engine::stats::StatsCache;
use crate::engine::EngineError;
use crate::repos::{open_backend, RepoSpec};
use shared_types::repository_setup::{immutability, ObjectLockMode, DEFAULT_REGION};

/// Name of the repository every install has.
pub const LOCAL_NAME: &str = "local";

/// Where the local repository lives in the data directory.
pub fn local_path(data_dir: &Path) -> PathBuf {
    data_dir.join("repos").join("local")
}

/// Creates the local repository (engine and catalog row) when the catalog
/// has none by that name: encrypted, with a new key in `DATA_DIR/keys`.
/// Never re-creates one whose directory vanished: that shows as unavailable
/// instead. A repository already in the directory (a catalog reset) is
/// adopted as it is.
pub async fn ensure_local(db: &DatabaseConnection, data_dir: &Path) -> anyhow::Result<repositories::Model> {
    let path = local_path(data_dir);
    // Found by name, or by its directory once an operator renamed it.
    let found = repositories::Entity::find()
        .filter(repositories::Column::Name.eq(LOCAL_NAME).or(repositories::Column::Path.eq(path.display().to_string())))
        .one(db)
        .await?;
    if let Some(row) = found {
        return Ok(row);
    }
    let id = new_id();
    let first = repositories::Entity::find().one(db).await?.is_none();
    let (init_path, init_id, init_data) = (path.clone(), id.clone(), data_dir.to_path_buf());
    let encrypted = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
        if !init_path.join(CONFIG_KEY).exists() {
            repository_keys::init_encrypted(&init_data, &init_id, &init_path)
                .with_context(|| format!("unable to create the local repository in '{}'", init_path.display()))?;
        }
        Ok(repository_keys::fingerprint(&init_path).ok().flatten().is_some())
    })
    .await??;
    let row = repositories::ActiveModel {
        id: Set(id),
        name: Set(LOCAL_NAME.to_owned()),
        kind: Set(RepositoryKind::Local.as_str().to_owned()),
        path: Set(path.display().to_string()),
        created_at: Set(Utc::now()),
        maintenance_reason: Set(None),
        maintenance_since: Set(None),
        maintenance_by: Set(None),
        encrypted: Set(encrypted),
        is_default: Set(first),
        ..Default::default()
    }
    .insert(db)
    .await?;
    tracing::info!(path = %path.display(), "created the local repository");
    Ok(row)
}

/// The repository backups go to when a request names none: the default
/// (`is_default`), else the one named `local`, else the oldest.
pub async fn default_repository(db: &impl sea_orm::ConnectionTrait) -> Result<Option<repositories::Model>, sea_orm::DbErr> {
    use sea_orm::QueryOrder;
    if let Some(r) = repositories::Entity::find().filter(repositories::Column::IsDefault.eq(true)).one(db).await? {
        return Ok(Some(r));
    }
    if let Some(r) = repositories::Entity::find().filter(repositories::Column::Name.eq(LOCAL_NAME)).one(db).await? {
        return Ok(Some(r));
    }
    repositories::Entity::find().order_by_asc(repositories::Column::CreatedAt).one(db).await
}

/// The directories of every repository in the catalog (destinations of
/// restored files must never touch them).
pub async fn local_paths(db: &DatabaseConnection) -> Result<Vec<std::path::PathBuf>, sea_orm::DbErr> {
    Ok(repositories::Entity::find().all(db).await?.into_iter().filter(|r| r.path.starts_with('/')).map(|r| std::path::PathBuf::from(r.path)).collect())
}

/// Immutable days and the storage lock a backup to this repository asks
/// (`BackupOptions::{immutable_days, object_lock}`): the longer of the
/// flow's and the repository's immutable days; on S3 with an Object Lock
/// mode set, the storage enforces them (`engine::object_lock`), elsewhere
/// Sendense alone does.
pub fn backup_immutability(row: &repositories::Model, flow_days: u32) -> (u32, Option<crate::engine::repository::LockMode>) {
    let days = flow_days.max(u32::try_from(row.immutable_days).unwrap_or(0));
    let lock = match row.object_lock_mode.as_deref().and_then(ObjectLockMode::parse) {
        _ if days == 0 || row.kind != RepositoryKind::S3.as_str() => None,
        Some(ObjectLockMode::Compliance) => Some(crate::engine::repository::LockMode::Compliance),
        Some(ObjectLockMode::Governance) => Some(crate::engine::repository::LockMode::Governance),
        None => None,
    };
    (days, lock)
}

/// Opens a repository's datastore, with its key when it is encrypted: the
/// one way the server (API, jobs, restore sessions) opens a repository.
/// Blocking (an object store is reached over the network).
pub fn open_datastore(data_dir: &Path, row: &repositories::Model) -> crate::engine::Result<Datastore> {
    if row.kind == RepositoryKind::Local.as_str() {
        return repository_keys::open_datastore(data_dir, &row.id, Path::new(&row.path));
    }
    let spec = row_spec(data_dir, row).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let repo = open_backend(&spec).map_err(|e| EngineError::Pipeline(format!("{e:#}")))?;
    let key = if row.encrypted { Some(repository_keys::key_path(data_dir, &row.id)?) } else { None };
    if let Some(k) = key.as_deref().filter(|k| !k.exists()) {
        return Err(EngineError::KeyFileMissing { repository: spec.describe(), path: k.to_path_buf() });
    }
    Datastore::open_repo(repo, Path::new(&spec.describe()), key.as_deref())
}

/// Repository `row`'s key file, checked against it (see
/// [`repository_keys::export`]); `None` when it is not encrypted. Blocking.
pub fn export_key(data_dir: &Path, row: &repositories::Model) -> crate::engine::Result<Option<Vec<u8>>> {
    if row.kind == RepositoryKind::Local.as_str() {
        return repository_keys::export(data_dir, &row.id, Path::new(&row.path));
    }
    let spec = row_spec(data_dir, row).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let config = Datastore::read_config_spec(&spec)?;
    repository_keys::export_for(data_dir, &row.id, &spec.describe(), config)
}

/// Where a catalog row's repository lives, with its secret as given
/// (`secret`: the S3 secret key, the Azure account key or SAS, whichever
/// `access_key_id`/`account` the row holds; see [`row_spec`] to unseal it).
pub fn spec(row: &repositories::Model, secret: Option<String>) -> RepoSpec {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    match RepositoryKind::parse(&row.kind).unwrap_or(RepositoryKind::Local) {
        RepositoryKind::Local => RepoSpec::Local { path: PathBuf::from(&row.path) },
        RepositoryKind::S3 => RepoSpec::S3 {
            endpoint: row.endpoint.clone(),
            region: row.region.clone().unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            bucket: text(&row.bucket),
            prefix: text(&row.prefix),
            access_key_id: text(&row.access_key_id),
            secret_access_key: secret.unwrap_or_default(),
            virtual_hosted: row.virtual_hosted,
        },
        RepositoryKind::Azure => {
            let sas = row.credential_kind.as_deref() == Some(AZURE_SAS);
            RepoSpec::Azure {
                account: text(&row.account),
                container: text(&row.container),
                prefix: text(&row.prefix),
                access_key: if sas { None } else { secret.clone() },
                sas: if sas { secret } else { None },
                endpoint: row.endpoint.clone(),
            }
        }
    }
}

/// `credential_kind` of a row: which secret `secret_sealed` holds.
pub const AZURE_SAS: &str = "sas";
pub const AZURE_ACCOUNT_KEY: &str = "account_key";
pub const S3_SECRET_KEY: &str = "secret_key";

/// [`spec`] with the row's secret unsealed (blocking: reads the catalog secret key).
pub fn row_spec(data_dir: &Path, row: &repositories::Model) -> Result<RepoSpec, crate::alerts::secrets::SecretError> {
    let secret = match &row.secret_sealed {
        Some(sealed) => Some(crate::alerts::secrets::open(data_dir, &row.id, sealed)?),
        None => None,
    };
    Ok(spec(row, secret))
}

/// The filesystem's capacity under `path` (blocking: a `statvfs`).
pub fn capacity(path: &Path) -> Option<Capacity> {
    rustix::fs::statvfs(path).ok().map(|st| Capacity {
        total_bytes: st.f_blocks * st.f_frsize,
        free_bytes: st.f_bavail * st.f_frsize,
        used_bytes: st.f_blocks.saturating_sub(st.f_bfree) * st.f_frsize,
    })
}

/// A repository with live capacity and engine statistics (read on a
/// blocking thread, statistics cached until the repository changes); a repository that cannot be read is reported
/// unavailable with the reason, not as an error.
pub async fn describe(data_dir: &Path, row: repositories::Model, backup_count: u64, cache: &Arc<StatsCache>) -> Repository {
    let kind = RepositoryKind::parse(&row.kind).unwrap_or(RepositoryKind::Local);
    let probe = row.clone();
    let cache = Arc::clone(cache);
    let data_dir = data_dir.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        let local = kind == RepositoryKind::Local;
        let capacity = if local { capacity(Path::new(&probe.path)) } else { None };
        let opened = open_datastore(&data_dir, &probe);
        let fingerprint = match &opened {
            Ok(ds) => ds.config.encryption.as_ref().map(|e| e.key_check.chars().take(repository_keys::FINGERPRINT_LEN).collect()),
            Err(_) if local => repository_keys::fingerprint(Path::new(&probe.path)).ok().flatten(),
            Err(_) => None,
        };
        let stats = opened.and_then(|ds| cache.stats(Path::new(&probe.path), &ds)).map(|s| RepositoryStats {
            snapshots: s.snapshots as u64,
            logical_bytes: s.logical_bytes,
            unique_bytes: s.unique_bytes,
            stored_bytes: s.unique_stored_bytes,
            repository_bytes: s.repository_bytes,
            dedup_ratio: s.dedup_ratio,
            compression_ratio: s.compression_ratio,
        });
        (capacity, stats.map_err(|e| e.to_string()), fingerprint)
    });
    // An object store that does not answer must not hold up the list.
    let measured = match tokio::time::timeout(DESCRIBE_TIMEOUT, read).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => (None, Err(format!("reading the repository stopped unexpectedly: {e}")), None),
        Err(_) => (None, Err(format!("the storage did not answer within {} s", DESCRIBE_TIMEOUT.as_secs())), None),
    };
    let (capacity, stats, key_fingerprint) = measured;
    let maintenance = maintenance(&row);
    let storage_failure = super::repository_health::of(&row);
    let (status, error, stats) = match stats {
        Ok(s) if maintenance.is_some() => (RepositoryStatus::Maintenance, None, Some(s)),
        // It opens, but the last write there failed at the storage.
        Ok(s) if storage_failure.is_some() => (RepositoryStatus::Degraded, None, Some(s)),
        Ok(s) => (RepositoryStatus::Online, None, Some(s)),
        Err(e) => (RepositoryStatus::Unavailable, Some(e), None),
    };
    let upkeep = super::upkeep::describe(&row, Utc::now());
    let days = u32::try_from(row.immutable_days).unwrap_or(0);
    Repository {
        kind,
        location: location(&row),
        is_default: row.is_default,
        immutable_days: days,
        immutability: immutability(kind, days),
        object_lock_mode: row.object_lock_mode.as_deref().and_then(ObjectLockMode::parse).filter(|_| kind == RepositoryKind::S3),
        id: row.id,
        name: row.name,
        path: row.path,
        status,
        error,
        storage_failure,
        maintenance,
        backup_count,
        capacity,
        stats,
        upkeep,
        encrypted: key_fingerprint.is_some() || row.encrypted,
        key_fingerprint,
        created_at: row.created_at,
    }
}

/// How long listing waits for one repository's figures.
const DESCRIBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Where an object-store repository lives, without its secret.
pub fn location(row: &repositories::Model) -> Option<ObjectLocation> {
    if row.kind == RepositoryKind::Local.as_str() {
        return None;
    }
    Some(ObjectLocation {
        endpoint: row.endpoint.clone(),
        region: row.region.clone(),
        bucket: row.bucket.clone(),
        container: row.container.clone(),
        account: row.account.clone(),
        prefix: row.prefix.clone().filter(|p| !p.is_empty()),
        virtual_hosted: row.virtual_hosted,
        access_key_id: row.access_key_id.clone(),
        credential: row.credential_kind.clone(),
    })
}

/// The repository's maintenance, when it is in maintenance.
pub fn maintenance(row: &repositories::Model) -> Option<Maintenance> {
    row.maintenance_reason.as_ref().map(|reason| Maintenance {
        reason: reason.clone(),
        since: row.maintenance_since.unwrap_or(row.created_at),
        by: row.maintenance_by.clone(),
    })
}

/// Why a backup to this repository cannot start now, if it cannot.
pub fn refusal(row: &repositories::Model) -> Option<String> {
    row.maintenance_reason.as_ref().map(|reason| {
        format!(
            "repository '{}' is in maintenance ({reason}); backups to it resume when an operator ends maintenance (PUT /api/v1/repositories/{}/maintenance)",
            row.name, row.id
        )
    })
}
