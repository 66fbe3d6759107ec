//! Adding, testing, changing and removing repositories (admins only, see
//! `auth::policy`): `POST /repositories`, `POST /repositories/test`,
//! `PATCH`/`DELETE /repositories/{id}`, `POST /repositories/{id}/default`.
//! Secrets are sealed into the catalog (`alerts::secrets`, bound to the row)
//! and never answered, logged or written to the audit log. Removing a
//! repository never deletes its data.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait};
use shared_types::error::ErrorBody;
use shared_types::jobs::JobStatus;
use shared_types::repositories::{Repository, RepositoryKind};
use shared_types::repository_setup::{
    immutability, CreateRepository, Immutability, ObjectLockMode, RepositoryRemoved, RepositoryTest, UpdateRepository,
};

use super::common::{check_id, is_unique_violation, noted, quote_list};
use super::{ApiError, ApiJson};
use crate::alerts::secrets;
use crate::auth::audit::AuditNote;
use crate::catalog::repositories::{self as repo_logic, AZURE_ACCOUNT_KEY, AZURE_SAS, S3_SECRET_KEY};
use crate::catalog::repository_keys;
use crate::catalog::repository_setup::{self as setup, Created};
use crate::catalog::backup_locations;
use crate::catalog::new_id;
use crate::db::entities::{flows, instant_recoveries, jobs, policies, repositories};
use crate::repos::RepoSpec;
use crate::state::AppState;

/// How long a test or a credential check waits for the storage.
const STORAGE_TIMEOUT: Duration = Duration::from_secs(30);

fn field_error((field, message): (String, String)) -> ApiError {
    ApiError::invalid_field(&field, message)
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict("repository_exists", format!("A repository is already named '{name}': choose another name."))
}

async fn find(state: &AppState, id: &str) -> Result<repositories::Model, ApiError> {
    check_id("id", id)?;
    repositories::Entity::find_by_id(id.to_owned()).one(&state.db).await?.ok_or_else(|| {
        ApiError::not_found("repository_not_found", format!("No repository has the id '{id}'. GET /api/v1/repositories lists them."))
    })
}

async fn answer(state: &AppState, row: repositories::Model) -> Result<Repository, ApiError> {
    let n = backup_locations::held(&state.db, std::slice::from_ref(&row.id)).await?.get(&row.id).map(|h| h.total()).unwrap_or(0);
    Ok(repo_logic::describe(&state.data_dir, row, n, &state.repo_stats).await)
}

/// Runs blocking storage work off the async threads, bounded in time.
async fn blocking<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    match tokio::time::timeout(STORAGE_TIMEOUT, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what} stopped unexpectedly: {e}")),
        Err(_) => Err(format!("{what}: the storage did not answer within {} s", STORAGE_TIMEOUT.as_secs())),
    }
}

/// The field a location problem is about.
fn location_field(kind: RepositoryKind) -> &'static str {
    match kind {
        RepositoryKind::Local => "path",
        RepositoryKind::S3 => "bucket",
        RepositoryKind::Azure => "container",
    }
}

/// The request checked, and its immutability (S3 Object Lock mode only
/// with immutable days).
fn checked(req: &CreateRepository) -> Result<Immutability, ApiError> {
    req.validate().map_err(field_error)?;
    if req.object_lock_mode.is_some() && req.immutable_days.unwrap_or(0) == 0 {
        return Err(ApiError::invalid_field("object_lock_mode", "an Object Lock mode needs immutable_days above 0"));
    }
    Ok(req.immutability())
}

async fn run_test(state: &AppState, req: &CreateRepository, immutability: Immutability) -> Result<RepositoryTest, ApiError> {
    let others = repositories::Entity::find().all(&state.db).await?;
    let spec = setup::request_spec(req);
    let data_dir = state.data_dir.clone();
    let place = spec.describe();
    let key = req.key.clone();
    let tested = blocking("the test", move || match &spec {
        RepoSpec::Local { path } => setup::test_local(&data_dir, path, &others, immutability, key.as_deref()),
        _ => setup::test_object(&data_dir, &spec, &others, immutability, key.as_deref()),
    })
    .await;
    Ok(tested.unwrap_or_else(|message| RepositoryTest {
        ok: false,
        checks: vec![shared_types::repository_setup::TestCheckResult {
            check: shared_types::repository_setup::TestCheck::Reachable,
            ok: false,
            message: format!("{place}: {message}"),
        }],
        attaches: false,
        immutability,
    }))
}

/// Tries a new repository's settings without saving anything: where it
/// would go (new, empty, or a Sendense repository to attach), reachable,
/// credentials accepted, a probe object written, read back and deleted,
/// and Object Lock on the bucket when immutable days are asked. Each check
/// says what to change when it fails.
#[utoipa::path(post, path = "/repositories/test", tag = "repositories", request_body = CreateRepository, responses(
    (status = 200, body = RepositoryTest), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn test_repository(State(state): State<AppState>, ApiJson(req): ApiJson<CreateRepository>) -> Result<Response, ApiError> {
    let immutability = checked(&req)?;
    let test = run_test(&state, &req, immutability).await?;
    let target = format!("{} ({}): {}", req.name, req.kind, if test.ok { "passed" } else { "failed" });
    Ok(noted(ApiJson(test), AuditNote::new("repository.test", target)))
}

/// Adds a repository: `local` (an absolute directory, created when new,
/// refused inside or around another repository or over other files; a
/// Sendense repository found there is attached as it is), `s3` or `azure`.
/// The same checks as the test run first; the first failed one is the 422.
/// Encrypted by default (`encrypted: false` to opt out), the key in
/// `DATA_DIR/keys/<id>.key`; an encrypted repository attached on a server
/// that lacks its key takes it in `key` (checked against the repository).
/// An attached repository's restore points are recorded for the VMs this
/// server manages (see `POST /repositories/{id}/import`). The first
/// repository becomes the default.
#[utoipa::path(post, path = "/repositories", tag = "repositories", request_body = CreateRepository, responses(
    (status = 201, body = Repository), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_repository(State(state): State<AppState>, ApiJson(req): ApiJson<CreateRepository>) -> Result<Response, ApiError> {
    let immutability = checked(&req)?;
    if repositories::Entity::find().filter(repositories::Column::Name.eq(req.name.clone())).one(&state.db).await?.is_some() {
        return Err(name_taken(&req.name));
    }
    let test = run_test(&state, &req, immutability).await?;
    if let Some(failed) = test.checks.iter().find(|c| !c.ok) {
        let field = match failed.check {
            shared_types::repository_setup::TestCheck::Credentials => match req.kind {
                RepositoryKind::Azure if req.sas.is_some() => "sas",
                RepositoryKind::Azure => "account_key",
                _ => "secret_access_key",
            },
            shared_types::repository_setup::TestCheck::ObjectLock => "immutable_days",
            shared_types::repository_setup::TestCheck::Location if req.key.is_some() && failed.message.contains("key") => "key",
            shared_types::repository_setup::TestCheck::Reachable if req.kind != RepositoryKind::Local => "endpoint",
            _ => location_field(req.kind),
        };
        return Err(ApiError::invalid_value(field, failed.message.clone()));
    }
    let spec = setup::request_spec(&req);
    let id = new_id();
    let encrypt = req.encrypted.unwrap_or(true);
    let (data_dir, made_id, made_spec, key) = (state.data_dir.clone(), id.clone(), spec.clone(), req.key.clone());
    let made = blocking("creating the repository", move || setup::create(&data_dir, &made_id, &made_spec, encrypt, key.as_deref()))
        .await
        .and_then(|r| r)
        .map_err(|m| ApiError::invalid_value(location_field(req.kind), m))?;
    // A re-attached encrypted repository keeps the id its key file is named by.
    let id = adopt_key(&state, id, &made).await?;
    let secret = match req.kind {
        RepositoryKind::Local => None,
        RepositoryKind::S3 => req.secret_access_key.as_deref().map(|s| (S3_SECRET_KEY, s.trim())),
        RepositoryKind::Azure => match (&req.account_key, &req.sas) {
            (Some(k), _) => Some((AZURE_ACCOUNT_KEY, k.trim())),
            (None, Some(s)) => Some((AZURE_SAS, s.trim())),
            (None, None) => None,
        },
    };
    let sealed = match secret {
        Some((kind, s)) => Some((kind, seal(&state, &id, s)?)),
        None => None,
    };
    let first = repositories::Entity::find().one(&state.db).await?.is_none();
    let trim = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let (path, region, prefix) = match &spec {
        RepoSpec::Local { path } => (path.display().to_string(), None, None),
        RepoSpec::S3 { region, prefix, .. } => (spec.describe(), Some(region.clone()), Some(prefix.clone())),
        RepoSpec::Azure { prefix, .. } => (spec.describe(), None, Some(prefix.clone())),
    };
    let row = repositories::ActiveModel {
        id: Set(id),
        name: Set(req.name.clone()),
        kind: Set(req.kind.as_str().to_owned()),
        path: Set(path),
        created_at: Set(Utc::now()),
        endpoint: Set(trim(&req.endpoint).map(|e| e.trim_end_matches('/').to_owned())),
        region: Set(region),
        bucket: Set(trim(&req.bucket)),
        container: Set(trim(&req.container)),
        prefix: Set(prefix.filter(|p| !p.is_empty())),
        virtual_hosted: Set(req.virtual_hosted.unwrap_or(false)),
        account: Set(trim(&req.account)),
        access_key_id: Set(trim(&req.access_key_id)),
        credential_kind: Set(sealed.as_ref().map(|(k, _)| (*k).to_owned())),
        secret_sealed: Set(sealed.map(|(_, s)| s)),
        immutable_days: Set(i32::try_from(req.immutable_days.unwrap_or(0)).unwrap_or(0)),
        object_lock_mode: Set((req.kind == RepositoryKind::S3 && req.immutable_days.unwrap_or(0) > 0)
            .then(|| req.object_lock_mode.unwrap_or(ObjectLockMode::Governance).as_str().to_owned())),
        encrypted: Set(made.encrypted),
        is_default: Set(first),
        ..Default::default()
    }
    .insert(&state.db)
    .await
    .map_err(|e| if is_unique_violation(&e) { name_taken(&req.name) } else { e.into() })?;
    // An attached repository's restore points join the catalog (the VMs
    // this server manages; POST .../import again after adding the others').
    let imported = if made.attached {
        match crate::catalog::repository_import::import(&state.db, &state.data_dir, &row).await {
            Ok(r) => format!("; {} restore point(s) recorded, {} copies, {} of unmanaged VMs", r.recorded, r.copies, r.unmatched.iter().map(|u| u.restore_points).sum::<u32>()),
            Err(e) => {
                tracing::warn!(repository = %row.name, error = %e, "recording the attached repository's restore points");
                format!("; its restore points were not recorded ({e}): POST /api/v1/repositories/{}/import to try again", row.id)
            }
        }
    } else {
        String::new()
    };
    let target = format!(
        "{} ({} at {}; {}{}{imported})",
        row.name,
        row.kind,
        row.path,
        if made.attached { "attached" } else { "created" },
        if made.encrypted { ", encrypted" } else { "" }
    );
    Ok(noted((StatusCode::CREATED, ApiJson(answer(&state, row).await?)), AuditNote::new("repository.create", target)))
}

/// The id the new row takes: the former id of an attached encrypted
/// repository when no row holds it (its key file keeps its name), else a
/// copy of that key under the new id.
async fn adopt_key(state: &AppState, id: String, made: &Created) -> Result<String, ApiError> {
    let Some(owner) = made.key_from.clone() else { return Ok(id) };
    if repositories::Entity::find_by_id(owner.clone()).one(&state.db).await?.is_none() {
        return Ok(owner);
    }
    let (from, to) = (
        repository_keys::key_path(&state.data_dir, &owner).map_err(|e| ApiError::Internal(e.into()))?,
        repository_keys::key_path(&state.data_dir, &id).map_err(|e| ApiError::Internal(e.into()))?,
    );
    std::fs::copy(&from, &to).map_err(|e| ApiError::Internal(anyhow::anyhow!("copying the key file {}: {e}", from.display())))?;
    Ok(id)
}

fn seal(state: &AppState, id: &str, secret: &str) -> Result<String, ApiError> {
    secrets::seal(&state.data_dir, id, secret).map_err(|e| {
        tracing::error!(error = %e, "sealing a repository's secret");
        ApiError::unavailable("secret_store_unavailable", format!("The secret could not be stored: {e}"))
    })
}

/// Renames a repository, rotates its credentials (tried against the
/// storage before they are stored: 422 when refused), changes its
/// immutability for new restore points, or makes it the default.
#[utoipa::path(patch, path = "/repositories/{id}", tag = "repositories", request_body = UpdateRepository,
    params(("id" = String, Path, description = "Repository id")), responses(
    (status = 200, body = Repository), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_repository(State(state): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<UpdateRepository>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let kind = RepositoryKind::parse(&row.kind).unwrap_or(RepositoryKind::Local);
    req.validate(kind).map_err(field_error)?;
    let days = req.immutable_days.unwrap_or_else(|| u32::try_from(row.immutable_days).unwrap_or(0));
    if immutability(kind, days) == Immutability::Storage && req.immutable_days.is_some_and(|d| d > 0) {
        // The storage must be able to lock: the bucket needs Object Lock.
        let data_dir = state.data_dir.clone();
        let probe = row.clone();
        let lock = blocking("checking Object Lock", move || {
            let spec = repo_logic::row_spec(&data_dir, &probe).map_err(|e| e.to_string())?;
            let repo = crate::repos::open_backend(&spec).map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>(setup::object_lock_check(repo.as_ref(), &spec))
        })
        .await
        .and_then(|r| r)
        .map_err(|e| ApiError::invalid_value("immutable_days", format!("cannot check Object Lock on the bucket ({e}); nothing was changed")))?;
        if !lock.ok {
            return Err(ApiError::invalid_value("immutable_days", format!("{}; nothing was changed", lock.message)));
        }
    }
    let mut changed = Vec::new();
    let mut active = row.clone().into_active_model();
    if let Some(name) = req.name.as_ref().filter(|n| **n != row.name) {
        if repositories::Entity::find().filter(repositories::Column::Name.eq(name.clone())).one(&state.db).await?.is_some() {
            return Err(name_taken(name));
        }
        active.name = Set(name.clone());
        changed.push(format!("renamed from '{}'", row.name));
    }
    if req.rotates() {
        let (credential, secret, field) = match (&req.secret_access_key, &req.account_key, &req.sas) {
            (Some(s), _, _) => (S3_SECRET_KEY, s.trim().to_owned(), "secret_access_key"),
            (None, Some(k), _) => (AZURE_ACCOUNT_KEY, k.trim().to_owned(), "account_key"),
            (None, None, Some(s)) => (AZURE_SAS, s.trim().to_owned(), "sas"),
            (None, None, None) => unreachable!("rotates() said a secret is given"),
        };
        let mut probe = row.clone();
        if let Some(key) = &req.access_key_id {
            probe.access_key_id = Some(key.trim().to_owned());
        }
        probe.credential_kind = Some(credential.to_owned());
        let spec = repo_logic::spec(&probe, Some(secret.clone()));
        let accepted = blocking("trying the new credentials", move || {
            let repo = crate::repos::open_backend(&spec).map_err(|e| format!("{e:#}"))?;
            setup::inspect_object(repo.as_ref()).map(|_| ())
        })
        .await
        .and_then(|r| r);
        if let Err(e) = accepted {
            return Err(ApiError::invalid_value(field, format!("the storage did not accept the new credentials ({e}); nothing was changed")));
        }
        active.access_key_id = Set(probe.access_key_id.clone());
        active.credential_kind = Set(Some(credential.to_owned()));
        active.secret_sealed = Set(Some(seal(&state, &row.id, &secret)?));
        changed.push("credentials rotated".to_owned());
    }
    if let Some(d) = req.immutable_days.filter(|d| i64::from(*d) != i64::from(row.immutable_days)) {
        active.immutable_days = Set(i32::try_from(d).unwrap_or(i32::MAX));
        changed.push(format!("immutable {d} days"));
    }
    if let Some(mode) = req.object_lock_mode {
        active.object_lock_mode = Set(Some(mode.as_str().to_owned()));
        changed.push(format!("Object Lock {mode}"));
    } else if kind == RepositoryKind::S3 && days > 0 && row.object_lock_mode.is_none() {
        // As when created: immutable days on S3 lock in governance mode unless told.
        active.object_lock_mode = Set(Some(ObjectLockMode::Governance.as_str().to_owned()));
        changed.push(format!("Object Lock {}", ObjectLockMode::Governance));
    }
    let txn = state.db.begin().await?;
    if req.is_default == Some(true) && !row.is_default {
        make_default(&txn, &row.id).await?;
        active.is_default = Set(true);
        changed.push("made the default".to_owned());
    }
    let row = active.update(&txn).await.map_err(|e| match (&req.name, is_unique_violation(&e)) {
        (Some(n), true) => name_taken(n),
        _ => e.into(),
    })?;
    txn.commit().await?;
    let target = format!("{}: {}", row.name, if changed.is_empty() { "nothing changed".to_owned() } else { changed.join(", ") });
    Ok(noted(ApiJson(answer(&state, row).await?), AuditNote::new("repository.update", target)))
}

async fn make_default(db: &impl ConnectionTrait, id: &str) -> Result<(), ApiError> {
    repositories::Entity::update_many()
        .col_expr(repositories::Column::IsDefault, Expr::value(false))
        .filter(repositories::Column::Id.ne(id.to_owned()))
        .exec(db)
        .await?;
    repositories::Entity::update_many().col_expr(repositories::Column::IsDefault, Expr::value(true)).filter(repositories::Column::Id.eq(id.to_owned())).exec(db).await?;
    Ok(())
}

/// Makes this repository the one new flows go to unless they name another.
#[utoipa::path(post, path = "/repositories/{id}/default", tag = "repositories", params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, body = Repository), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_default(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let txn = state.db.begin().await?;
    make_default(&txn, &row.id).await?;
    txn.commit().await?;
    let row = find(&state, &id).await?;
    let target = row.name.clone();
    Ok(noted(ApiJson(answer(&state, row).await?), AuditNote::new("repository.default", target)))
}

/// Removes a repository from the catalog. Refused (409, naming them) while
/// restore points or copies of restore points are in it, flows write to it,
/// flows or policies copy to it, or jobs use it, and while it is the default
/// and others exist. The data is never deleted: the directory or bucket keeps
/// it, and an encrypted repository's key stays in `DATA_DIR/keys`, so adding
/// the same location again attaches it.
#[utoipa::path(delete, path = "/repositories/{id}", tag = "repositories", params(("id" = String, Path, description = "Repository id")),
    responses((status = 200, body = RepositoryRemoved), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_repository(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    if let Some(why) = in_use(&state, &row).await? {
        return Err(ApiError::conflict("repository_in_use", why));
    }
    if row.is_default && repositories::Entity::find().filter(repositories::Column::Id.ne(row.id.clone())).count(&state.db).await? > 0 {
        return Err(ApiError::conflict(
            "repository_is_default",
            format!("'{}' is the default repository: make another repository the default first.", row.name),
        ));
    }
    repositories::Entity::delete_by_id(row.id.clone()).exec(&state.db).await.map_err(|e| {
        if super::common::is_foreign_key_violation(&e) {
            ApiError::conflict("repository_in_use", format!("'{}' became used while it was being removed: try again to see by what.", row.name))
        } else {
            e.into()
        }
    })?;
    // Its failed copies' rows and the storage locks read there go with it.
    if let Err(e) = backup_locations::forget_repository(&state.db, &row.id).await {
        tracing::warn!(repository = %row.id, error = %e, "removing the failed copies' rows of a removed repository");
    }
    // Its index caches on this machine go with it (the data stays).
    if let Err(e) = crate::catalog::index_caches::forget(&state.db, &row).await {
        tracing::warn!(repository = %row.id, error = %e, "removing the index caches of a removed repository");
    }
    let key = if row.encrypted || row.kind == RepositoryKind::Local.as_str() {
        repository_keys::key_path(&state.data_dir, &row.id).ok().filter(|k| k.exists())
    } else {
        None
    };
    let message = format!(
        "'{}' left the catalog. Its data was not deleted: it stays in {}{}. Adding the same location again attaches it.",
        row.name,
        row.path,
        key.map(|k| format!(", and its key stays in {}", k.display())).unwrap_or_default()
    );
    let target = format!("{} ({} at {}); data left in place", row.name, row.kind, row.path);
    let body = RepositoryRemoved { id: row.id, name: row.name, location: row.path, message };
    Ok(noted(ApiJson(body), AuditNote::new("repository.delete", target)))
}

/// What keeps the repository from leaving the catalog, in words.
async fn in_use(state: &AppState, row: &repositories::Model) -> Result<Option<String>, ApiError> {
    let mut users = Vec::new();
    let held = backup_locations::held(&state.db, std::slice::from_ref(&row.id)).await?.remove(&row.id).unwrap_or_default();
    let points = held.written;
    if points > 0 {
        users.push(format!("{points} restore point{} (forget or move them first)", if points == 1 { "" } else { "s" }));
    }
    if held.copies > 0 {
        let copies = held.copies;
        users.push(format!("{copies} cop{} of restore points written elsewhere (forget those restore points first)", if copies == 1 { "y" } else { "ies" }));
    }
    let flow_names: Vec<String> = flows::Entity::find()
        .filter(flows::Column::RepositoryId.eq(row.id.clone()))
        .order_by_asc(flows::Column::Name)
        .all(&state.db)
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    if !flow_names.is_empty() {
        users.push(format!("the flow{} {} (point them to another repository)", if flow_names.len() == 1 { "" } else { "s" }, quote_list(&flow_names)));
    }
    // Flows and policies that copy to it (their copy jobs would fail).
    let copies_here = |column: Option<&str>| backup_locations::parse_target(column).is_some_and(|t| t.repository_id == row.id);
    let copying_flows: Vec<String> = flows::Entity::find()
        .filter(flows::Column::CopyTarget.is_not_null())
        .order_by_asc(flows::Column::Name)
        .all(&state.db)
        .await?
        .into_iter()
        .filter(|f| copies_here(f.copy_target.as_deref()))
        .map(|f| f.name)
        .collect();
    if !copying_flows.is_empty() {
        users.push(format!("the flow{} {} as copy target (choose another)", if copying_flows.len() == 1 { "" } else { "s" }, quote_list(&copying_flows)));
    }
    let copying_policies: Vec<String> = policies::Entity::find()
        .filter(policies::Column::CopyTarget.is_not_null())
        .order_by_asc(policies::Column::Name)
        .all(&state.db)
        .await?
        .into_iter()
        .filter(|p| copies_here(p.copy_target.as_deref()))
        .map(|p| p.name)
        .collect();
    if !copying_policies.is_empty() {
        users.push(format!("the polic{} {} as copy target (choose another)", if copying_policies.len() == 1 { "y" } else { "ies" }, quote_list(&copying_policies)));
    }
    let running = jobs::Entity::find()
        .filter(jobs::Column::RepositoryId.eq(row.id.clone()))
        .filter(jobs::Column::Status.is_in(JobStatus::ACTIVE.map(|s| s.as_str())))
        .count(&state.db)
        .await?;
    if running > 0 {
        users.push(format!("{running} queued or running job{}", if running == 1 { "" } else { "s" }));
    }
    let instant = instant_recoveries::Entity::find()
        .select_only()
        .column(instant_recoveries::Column::Id)
        .filter(instant_recoveries::Column::RepositoryId.eq(row.id.clone()))
        .count(&state.db)
        .await?;
    if instant > 0 {
        users.push(format!("{instant} instant recover{}", if instant == 1 { "y" } else { "ies" }));
    }
    if users.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!("'{}' is used by {}: it can be removed once nothing uses it. Removing never deletes its data.", row.name, users.join(", "))))
}
