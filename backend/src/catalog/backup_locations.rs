//! Where restore points are (3-2-1): each restore point has its primary
//! location (the repository the backup wrote it to, recorded with it) and
//! any copies in second repositories (`backup_locations` rows). Restores
//! read from an available location: the one the operator names, else the
//! primary when its repository opens and holds the snapshot, else a copy.
//! A restore point with no location rows (recorded before copies existed
//! and not back-filled, or inserted by hand) is at its `backups.repository_id`.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set};
use shared_types::backups::{LocationRole, LocationState, RestorePointLocation};
use shared_types::flow::{CopyTarget, IMMUTABLE_DAYS_MAX};
use shared_types::repositories::StorageFailureCause;

use super::{from_wire, to_i64, to_u64};
use crate::db::entities::{backup_locations, backups, repositories};

/// Records the primary location of a restore point the backup just wrote.
pub async fn record_primary(db: &impl ConnectionTrait, b: &backups::Model) -> Result<(), DbErr> {
    backup_locations::ActiveModel {
        backup_id: Set(b.id.clone()),
        repository_id: Set(b.repository_id.clone()),
        role: Set(LocationRole::Primary.as_str().to_owned()),
        state: Set(LocationState::Present.as_str().to_owned()),
        snapshot_name: Set(b.snapshot_name.clone()),
        snapshot_id: Set(b.snapshot_id.clone()),
        immutable_until: Set(b.immutable_until),
        copied_at: Set(None),
        bytes_sent: Set(b.bytes_written),
        job_id: Set(b.job_id.clone()),
        error: Set(None),
        updated_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map(|_| ())
}

/// The location rows of `backup`, the primary first; a row-less restore
/// point gets its implicit primary.
pub async fn of(db: &impl ConnectionTrait, backup: &backups::Model) -> Result<Vec<backup_locations::Model>, DbErr> {
    let rows = backup_locations::Entity::find().filter(backup_locations::Column::BackupId.eq(backup.id.clone())).all(db).await?;
    Ok(with_implicit_primary(backup, rows))
}

/// The location rows of many restore points, by restore point id (each with its implicit primary when it has none).
pub async fn of_many(db: &impl ConnectionTrait, backups: &[backups::Model]) -> Result<HashMap<String, Vec<backup_locations::Model>>, DbErr> {
    let mut by_id: HashMap<String, Vec<backup_locations::Model>> = HashMap::new();
    for chunk in backups.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(|b| b.id.clone()).collect();
        for row in backup_locations::Entity::find().filter(backup_locations::Column::BackupId.is_in(ids)).all(db).await? {
            by_id.entry(row.backup_id.clone()).or_default().push(row);
        }
    }
    Ok(backups.iter().map(|b| (b.id.clone(), with_implicit_primary(b, by_id.remove(&b.id).unwrap_or_default()))).collect())
}

fn with_implicit_primary(backup: &backups::Model, mut rows: Vec<backup_locations::Model>) -> Vec<backup_locations::Model> {
    if rows.is_empty() {
        rows.push(implicit_primary(backup));
    }
    rows.sort_by_key(|r| (r.role != LocationRole::Primary.as_str(), r.copied_at, r.repository_id.clone()));
    rows
}

fn implicit_primary(b: &backups::Model) -> backup_locations::Model {
    backup_locations::Model {
        backup_id: b.id.clone(),
        repository_id: b.repository_id.clone(),
        role: LocationRole::Primary.as_str().to_owned(),
        state: LocationState::Present.as_str().to_owned(),
        snapshot_name: b.snapshot_name.clone(),
        snapshot_id: b.snapshot_id.clone(),
        immutable_until: b.immutable_until,
        copied_at: None,
        bytes_sent: b.bytes_written,
        job_id: b.job_id.clone(),
        error: None,
        updated_at: b.created_at,
    }
}

/// The restore point as it is at `location`: the repository, snapshot and
/// immutability there (what restores and retention read).
pub fn located(backup: &backups::Model, location: &backup_locations::Model) -> backups::Model {
    backups::Model {
        repository_id: location.repository_id.clone(),
        snapshot_name: location.snapshot_name.clone(),
        snapshot_id: location.snapshot_id.clone(),
        immutable_until: location.immutable_until,
        ..backup.clone()
    }
}

/// Every restore point in repository `repository_id`, as it is there, with
/// its role there: the ones written to it (and still there) and the copies
/// made to it (present). What verify checks and GC must find there.
pub async fn in_repository(db: &impl ConnectionTrait, repository_id: &str) -> Result<Vec<(backups::Model, LocationRole)>, DbErr> {
    let written = backups::Entity::find().filter(backups::Column::RepositoryId.eq(repository_id)).all(db).await?;
    let copy_ids: Vec<String> = backup_locations::Entity::find()
        .filter(backup_locations::Column::RepositoryId.eq(repository_id))
        .filter(backup_locations::Column::Role.eq(LocationRole::Copy.as_str()))
        .filter(backup_locations::Column::State.eq(LocationState::Present.as_str()))
        .all(db)
        .await?
        .into_iter()
        .map(|l| l.backup_id)
        .collect();
    let mut copied = Vec::new();
    for chunk in copy_ids.chunks(500) {
        copied.extend(backups::Entity::find().filter(backups::Column::Id.is_in(chunk.to_vec())).all(db).await?);
    }
    let mut all = written;
    all.extend(copied);
    let locations = of_many(db, &all).await?;
    let mut out = Vec::new();
    for b in &all {
        let Some(here) = locations.get(&b.id).and_then(|ls| ls.iter().find(|l| l.repository_id == repository_id)) else { continue };
        let role = from_wire(&here.role).unwrap_or(LocationRole::Copy);
        if out.iter().any(|(o, r): &(backups::Model, LocationRole)| o.id == b.id && *r == role) {
            continue;
        }
        out.push((located(b, here), role));
    }
    Ok(out)
}

/// What a repository holds, by the catalog: restore points written there
/// and copies held there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Restore points whose primary location is there.
    pub written: u64,
    /// Copies of restore points (written elsewhere) held there.
    pub copies: u64,
}

impl Held {
    pub fn total(&self) -> u64 {
        self.written + self.copies
    }
}

/// What each repository of `ids` holds: its locations present or missing
/// (the catalog expects them there; not copies being made or failed ones),
/// by role, and the restore points recorded without location rows at their
/// `backups.repository_id`. A restore point whose primary location was
/// removed while a copy stayed counts only where the copy is.
pub async fn held(db: &impl ConnectionTrait, ids: &[String]) -> Result<HashMap<String, Held>, DbErr> {
    let mut out: HashMap<String, Held> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let states = [LocationState::Present.as_str(), LocationState::Missing.as_str()];
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, String, i64)> = backup_locations::Entity::find()
            .select_only()
            .column(backup_locations::Column::RepositoryId)
            .column(backup_locations::Column::Role)
            .column_as(Expr::col(backup_locations::Column::BackupId).count(), "n")
            .filter(backup_locations::Column::RepositoryId.is_in(chunk.to_vec()))
            .filter(backup_locations::Column::State.is_in(states))
            .group_by(backup_locations::Column::RepositoryId)
            .group_by(backup_locations::Column::Role)
            .into_tuple()
            .all(db)
            .await?;
        for (repo, role, n) in rows {
            let h = out.entry(repo).or_default();
            match from_wire(&role).unwrap_or(LocationRole::Copy) {
                LocationRole::Primary => h.written += to_u64(n),
                LocationRole::Copy => h.copies += to_u64(n),
            }
        }
        let row_less: Vec<(String, i64)> = backups::Entity::find()
            .select_only()
            .column(backups::Column::RepositoryId)
            .column_as(Expr::col(backups::Column::Id).count(), "n")
            .filter(backups::Column::RepositoryId.is_in(chunk.to_vec()))
            .filter(backups::Column::Id.not_in_subquery(Query::select().column(backup_locations::Column::BackupId).from(backup_locations::Entity).to_owned()))
            .group_by(backups::Column::RepositoryId)
            .into_tuple()
            .all(db)
            .await?;
        for (repo, n) in row_less {
            out.entry(repo).or_default().written += to_u64(n);
        }
    }
    Ok(out)
}

/// The restore points [`held`] counts in repository `repository_id` (a
/// condition on `backups`): a location there, present or missing, or no
/// location rows and recorded at that repository.
pub fn held_in(repository_id: &str) -> sea_orm::Condition {
    let states = [LocationState::Present.as_str(), LocationState::Missing.as_str()];
    let here = Query::select()
        .column(backup_locations::Column::BackupId)
        .from(backup_locations::Entity)
        .and_where(backup_locations::Column::RepositoryId.eq(repository_id))
        .and_where(backup_locations::Column::State.is_in(states))
        .to_owned();
    let any = Query::select().column(backup_locations::Column::BackupId).from(backup_locations::Entity).to_owned();
    sea_orm::Condition::any().add(backups::Column::Id.in_subquery(here)).add(
        sea_orm::Condition::all().add(backups::Column::RepositoryId.eq(repository_id)).add(backups::Column::Id.not_in_subquery(any)),
    )
}

/// Repository `repository_id` left the catalog: its failed copies' rows and
/// the storage locks recorded there go (nothing else can be there: removal
/// is refused while it holds restore points or copies, see [`held`]).
pub async fn forget_repository(db: &impl ConnectionTrait, repository_id: &str) -> Result<(), DbErr> {
    backup_locations::Entity::delete_many()
        .filter(backup_locations::Column::RepositoryId.eq(repository_id))
        .filter(backup_locations::Column::State.eq(LocationState::Failed.as_str()))
        .exec(db)
        .await?;
    crate::db::entities::backup_storage_locks::Entity::delete_many()
        .filter(crate::db::entities::backup_storage_locks::Column::RepositoryId.eq(repository_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The restore point as it is in repository `repository_id` (a job's
/// chosen location); as recorded when it has no location there.
pub async fn at(db: &impl ConnectionTrait, backup: backups::Model, repository_id: &str) -> Result<backups::Model, DbErr> {
    let loc = backup_locations::Entity::find_by_id((backup.id.clone(), repository_id.to_owned())).one(db).await?;
    Ok(match loc {
        Some(l) => located(&backup, &l),
        None => backup,
    })
}

/// The wire form of a restore point's locations, named by `repos` (id → name),
/// each with its lock there (`locks`: the storage locks recorded, by
/// (backup id, repository id); see `storage_locks::of_locations`).
pub fn describe(
    rows: &[backup_locations::Model],
    repos: &HashMap<String, String>,
    locks: &HashMap<(String, String), crate::db::entities::backup_storage_locks::Model>,
) -> Vec<RestorePointLocation> {
    rows.iter()
        .map(|r| RestorePointLocation {
            lock: super::storage_locks::lock_at(r.immutable_until, locks.get(&(r.backup_id.clone(), r.repository_id.clone()))),
            repository_id: r.repository_id.clone(),
            repository_name: repos.get(&r.repository_id).cloned().unwrap_or_else(|| r.repository_id.clone()),
            role: from_wire(&r.role).unwrap_or(LocationRole::Copy),
            state: from_wire(&r.state).unwrap_or(LocationState::Missing),
            immutable_until: r.immutable_until,
            copied_at: r.copied_at,
        })
        .collect()
}

/// The latest end of immutability over every location of a restore point, if any is still inside it at `now`.
pub fn immutable_until(rows: &[backup_locations::Model], now: DateTime<Utc>) -> Option<(DateTime<Utc>, String)> {
    rows.iter().filter_map(|r| r.immutable_until.filter(|u| *u > now).map(|u| (u, r.repository_id.clone()))).max_by_key(|(u, _)| *u)
}

/// Marks a location's state (and why), e.g. missing when its repository could not be read.
pub async fn set_state(db: &impl ConnectionTrait, backup_id: &str, repository_id: &str, state: LocationState, error: Option<String>) -> Result<(), DbErr> {
    let Some(row) = backup_locations::Entity::find_by_id((backup_id.to_owned(), repository_id.to_owned())).one(db).await? else { return Ok(()) };
    if row.state == state.as_str() && row.error == error {
        return Ok(());
    }
    let mut a: backup_locations::ActiveModel = row.into();
    a.state = Set(state.as_str().to_owned());
    a.error = Set(error);
    a.updated_at = Set(Utc::now());
    a.update(db).await.map(|_| ())
}

/// Starts (or restarts) a copy location: state `copying`, written by `job_id`.
pub async fn begin_copy(db: &impl ConnectionTrait, backup: &backups::Model, repository_id: &str, job_id: &str) -> Result<(), DbErr> {
    let now = Utc::now();
    match backup_locations::Entity::find_by_id((backup.id.clone(), repository_id.to_owned())).one(db).await? {
        Some(row) => {
            let mut a: backup_locations::ActiveModel = row.into();
            a.state = Set(LocationState::Copying.as_str().to_owned());
            a.job_id = Set(Some(job_id.to_owned()));
            a.error = Set(None);
            a.updated_at = Set(now);
            a.update(db).await.map(|_| ())
        }
        None => backup_locations::ActiveModel {
            backup_id: Set(backup.id.clone()),
            repository_id: Set(repository_id.to_owned()),
            role: Set(LocationRole::Copy.as_str().to_owned()),
            state: Set(LocationState::Copying.as_str().to_owned()),
            snapshot_name: Set(backup.snapshot_name.clone()),
            snapshot_id: Set(backup.snapshot_id.clone()),
            immutable_until: Set(None),
            copied_at: Set(None),
            bytes_sent: Set(0),
            job_id: Set(Some(job_id.to_owned())),
            error: Set(None),
            updated_at: Set(now),
        }
        .insert(db)
        .await
        .map(|_| ()),
    }
}

/// What a finished copy recorded at the target.
pub struct CopyDone {
    pub snapshot_name: String,
    pub snapshot_id: String,
    pub immutable_until: Option<DateTime<Utc>>,
    pub bytes_sent: u64,
}

/// Ends a copy location: present with what the copy wrote, or failed with why.
pub async fn end_copy(db: &impl ConnectionTrait, backup_id: &str, repository_id: &str, outcome: Result<CopyDone, String>) -> Result<(), DbErr> {
    let Some(row) = backup_locations::Entity::find_by_id((backup_id.to_owned(), repository_id.to_owned())).one(db).await? else { return Ok(()) };
    let now = Utc::now();
    let mut a: backup_locations::ActiveModel = row.into();
    match outcome {
        Ok(done) => {
            a.state = Set(LocationState::Present.as_str().to_owned());
            a.snapshot_name = Set(done.snapshot_name);
            a.snapshot_id = Set(done.snapshot_id);
            a.immutable_until = Set(done.immutable_until);
            a.copied_at = Set(Some(now));
            a.bytes_sent = Set(to_i64(done.bytes_sent));
            a.error = Set(None);
        }
        Err(e) => {
            a.state = Set(LocationState::Failed.as_str().to_owned());
            a.error = Set(Some(e));
        }
    }
    a.updated_at = Set(now);
    a.update(db).await.map(|_| ())
}

/// Removes a restore point from one repository in the catalog; the
/// restore point itself goes with its last location. Returns whether the
/// restore point is gone.
pub async fn remove(db: &impl ConnectionTrait, backup: &backups::Model, repository_id: &str) -> Result<bool, DbErr> {
    backup_locations::Entity::delete_by_id((backup.id.clone(), repository_id.to_owned())).exec(db).await?;
    // The storage's lock read there went with it.
    crate::db::entities::backup_storage_locks::Entity::delete_by_id((backup.id.clone(), repository_id.to_owned())).exec(db).await?;
    let left = backup_locations::Entity::find().filter(backup_locations::Column::BackupId.eq(backup.id.clone())).all(db).await?;
    // A row-less restore point was only at its own repository.
    if left.is_empty() {
        backups::Entity::delete_by_id(backup.id.clone()).exec(db).await?;
        return Ok(true);
    }
    Ok(false)
}

/// The copy target in a flow's or policy's `copy_target` column.
pub fn parse_target(column: Option<&str>) -> Option<CopyTarget> {
    let text = column?;
    serde_json::from_str(text).map_err(|e| tracing::error!(error = %e, "unreadable copy target; not copying")).ok()
}

pub fn target_column(target: Option<&CopyTarget>) -> Option<String> {
    target.and_then(|t| serde_json::to_string(t).ok())
}

/// Why a copy target cannot be used: `(field, message)` for a 4xx answer.
/// `primary`: the repository the restore points are written to (a flow's), when known.
pub async fn check_target(db: &impl ConnectionTrait, target: &CopyTarget, primary: Option<&str>) -> Result<Option<(String, String)>, DbErr> {
    if let Err((field, message)) = target.retention.validate() {
        return Ok(Some((format!("copy_target.retention.{field}"), message)));
    }
    if target.immutable_days > IMMUTABLE_DAYS_MAX {
        return Ok(Some(("copy_target.immutable_days".into(), format!("{} days is more than the {IMMUTABLE_DAYS_MAX} days allowed", target.immutable_days))));
    }
    let id = target.repository_id.trim();
    if id.is_empty() || id.len() > 64 {
        return Ok(Some(("copy_target.repository_id".into(), "name the repository to copy to by its id (GET /api/v1/repositories lists them)".into())));
    }
    let Some(repo) = repositories::Entity::find_by_id(id.to_owned()).one(db).await? else {
        return Ok(Some(("copy_target.repository_id".into(), format!("no repository has the id '{id}' (GET /api/v1/repositories lists them)"))));
    };
    if primary == Some(id) {
        return Ok(Some((
            "copy_target.repository_id".into(),
            format!("'{}' is the repository the backups are written to; a copy must go to a second repository", repo.name),
        )));
    }
    Ok(None)
}

/// The location a restore reads from: `wanted` (a repository id) when the
/// operator names one, else the first available of the primary and then
/// the copies (present, repository in the catalog, opens, holds the
/// snapshot). A location found unreadable is marked missing. Returns the
/// restore point as it is there and its repository.
pub async fn choose(
    db: &impl ConnectionTrait,
    data_dir: &Path,
    backup: &backups::Model,
    wanted: Option<&str>,
) -> Result<(backups::Model, repositories::Model), ChooseError> {
    choose_cause(db, data_dir, backup, wanted).await.map_err(|(e, _)| e)
}

/// [`choose`], telling when the `wanted` repository cannot be read because
/// its storage failed (not: the restore point is not there): the cause,
/// for its health ([`super::repository_health::record`]).
pub async fn choose_cause(
    db: &impl ConnectionTrait,
    data_dir: &Path,
    backup: &backups::Model,
    wanted: Option<&str>,
) -> Result<(backups::Model, repositories::Model), (ChooseError, Option<StorageFailureCause>)> {
    let mut cause = None;
    choose_inner(db, data_dir, backup, wanted, &mut cause).await.map_err(|e| (e, cause))
}

async fn choose_inner(
    db: &impl ConnectionTrait,
    data_dir: &Path,
    backup: &backups::Model,
    wanted: Option<&str>,
    cause: &mut Option<StorageFailureCause>,
) -> Result<(backups::Model, repositories::Model), ChooseError> {
    let rows = of(db, backup).await?;
    if let Some(id) = wanted {
        let Some(loc) = rows.iter().find(|r| r.repository_id == id) else {
            let known: Vec<&str> = rows.iter().map(|r| r.repository_id.as_str()).collect();
            return Err(ChooseError::NotThere(format!("restore point '{}' is not in repository '{id}' (it is in: {})", backup.id, known.join(", "))));
        };
        if loc.state != LocationState::Present.as_str() && loc.state != LocationState::Missing.as_str() {
            return Err(ChooseError::NotThere(format!("the copy of restore point '{}' in repository '{id}' is {}", backup.id, loc.state)));
        }
        let repo = repositories::Entity::find_by_id(id.to_owned())
            .one(db)
            .await?
            .ok_or_else(|| ChooseError::NotThere(format!("repository '{id}' is no longer in the catalog")))?;
        // Read there now (its manifest), not as the catalog last saw it.
        let point = located(backup, loc);
        if let Err((e, failed)) = probe_cause(db, data_dir, backup, loc, &repo).await? {
            *cause = failed;
            let mut elsewhere = Vec::new();
            for other in rows.iter().filter(|r| r.repository_id != id && r.state == LocationState::Present.as_str()) {
                if let Some(r) = repositories::Entity::find_by_id(other.repository_id.clone()).one(db).await? {
                    elsewhere.push(format!("'{}'", r.name));
                }
            }
            let hint = if elsewhere.is_empty() {
                "verify the repository".to_string()
            } else {
                format!("it is also in {}: read it from there (Read from), or let the server choose", elsewhere.join(", "))
            };
            return Err(ChooseError::Unreadable(format!("restore point '{}' cannot be read from '{}': {e}; {hint}", backup.id, repo.name)));
        }
        return Ok((point, repo));
    }
    let mut why = Vec::new();
    for loc in rows.iter().filter(|r| r.state == LocationState::Present.as_str() || r.state == LocationState::Missing.as_str()) {
        let Some(repo) = repositories::Entity::find_by_id(loc.repository_id.clone()).one(db).await? else {
            why.push(format!("repository '{}' is no longer in the catalog", loc.repository_id));
            continue;
        };
        match probe(db, data_dir, backup, loc, &repo).await? {
            Ok(()) => return Ok((located(backup, loc), repo)),
            Err(e) => why.push(format!("'{}': {e}", repo.name)),
        }
    }
    Err(ChooseError::Unavailable(format!("restore point '{}' cannot be read from any of its repositories: {}", backup.id, why.join("; "))))
}

/// Reads the restore point's manifest at `loc` (in `repo`) and records
/// what was met: present when it reads, missing with the reason when not
/// (only rows that exist are marked, not an implicit primary). The outer
/// error is the catalog's; the inner one says why it cannot be read.
pub async fn probe(
    db: &impl ConnectionTrait,
    data_dir: &Path,
    backup: &backups::Model,
    loc: &backup_locations::Model,
    repo: &repositories::Model,
) -> Result<Result<(), String>, DbErr> {
    Ok(probe_cause(db, data_dir, backup, loc, repo).await?.map_err(|(e, _)| e))
}

/// [`probe`], with the storage's failure when that is why it cannot be
/// read (`None`: it answered, e.g. the manifest is not there).
pub async fn probe_cause(
    db: &impl ConnectionTrait,
    data_dir: &Path,
    backup: &backups::Model,
    loc: &backup_locations::Model,
    repo: &repositories::Model,
) -> Result<Result<(), (String, Option<StorageFailureCause>)>, DbErr> {
    let point = located(backup, loc);
    let (dir, row, name, id) = (data_dir.to_path_buf(), repo.clone(), point.snapshot_name.clone(), point.snapshot_id.clone());
    let fail = |e: crate::engine::EngineError| (e.to_string(), super::repository_health::engine_cause(&e));
    let readable = tokio::task::spawn_blocking(move || -> Result<(), (String, Option<StorageFailureCause>)> {
        let ds = super::repositories::open_datastore(&dir, &row).map_err(fail)?;
        ds.load_manifest(&name, &id).map(|_| ()).map_err(fail)
    });
    let readable = match tokio::time::timeout(PROBE_TIMEOUT, readable).await {
        Ok(r) => r.map_err(|e| (e.to_string(), None)).and_then(|r| r),
        Err(_) => Err((format!("the storage did not answer within {} s", PROBE_TIMEOUT.as_secs()), Some(StorageFailureCause::Unreachable))),
    };
    match &readable {
        Ok(()) if loc.state != LocationState::Present.as_str() => set_state(db, &backup.id, &loc.repository_id, LocationState::Present, None).await?,
        Ok(()) => {}
        Err((e, _)) => {
            tracing::warn!(restore_point = %backup.id, repository = %repo.name, error = %e, "restore point unreadable at this location");
            set_state(db, &backup.id, &loc.repository_id, LocationState::Missing, Some(e.clone())).await?;
        }
    }
    Ok(readable)
}

/// How long reading one location's manifest may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ChooseError {
    /// The named location does not hold it (a 4xx on the request's `repository_id`).
    #[error("{0}")]
    NotThere(String),
    /// No location can be read.
    #[error("{0}")]
    Unavailable(String),
    /// The named location cannot be read now (the message says where else it is).
    #[error("{0}")]
    Unreadable(String),
    #[error("catalog: {0}")]
    Db(#[from] DbErr),
}
