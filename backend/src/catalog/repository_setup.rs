//! Adding and testing repositories: where a new repository may go (never
//! inside or around another one, never over other files), what is there
//! already (nothing, an empty directory, a Sendense repository to attach),
//! the checks of `POST /api/v1/repositories/test` (reachable, credentials,
//! a probe object written, read back and deleted, Object Lock), and creating
//! it. Everything here that touches storage is blocking: call it from
//! `spawn_blocking` (the object-store backends block on their own runtime).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use shared_types::repositories::RepositoryKind;
use shared_types::repository_setup::{CreateRepository, Immutability, RepositoryTest, TestCheck, TestCheckResult, DEFAULT_REGION};

use super::repository_keys;
use crate::db::entities::repositories;
use crate::engine::crypto::CryptConfig;
use crate::engine::datastore::{Datastore, RepoConfig, CONFIG_KEY};
use crate::engine::repository::{LockSupport, Repository as Backend};
use crate::repos::{open_backend, RepoSpec};

/// Directories no repository may be put in.
const SYSTEM_DIRS: &[&str] = &["/proc", "/sys", "/dev", "/boot", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/run"];

/// What a location holds before the repository is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Nothing yet: the repository is created there.
    Nothing,
    /// A Sendense repository: adding attaches it as it is.
    Repository { encrypted: bool, key_check: Option<String> },
}

/// The spec a create/test request describes, with its secret.
pub fn request_spec(req: &CreateRepository) -> RepoSpec {
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let opt = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    match req.kind {
        RepositoryKind::Local => RepoSpec::Local { path: PathBuf::from(text(&req.path).trim_end_matches('/')) },
        RepositoryKind::S3 => RepoSpec::S3 {
            endpoint: opt(&req.endpoint).map(|e| e.trim_end_matches('/').to_owned()),
            region: opt(&req.region).unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            bucket: text(&req.bucket),
            prefix: normal_prefix(req.prefix.as_deref()),
            access_key_id: text(&req.access_key_id),
            secret_access_key: text(&req.secret_access_key),
            virtual_hosted: req.virtual_hosted.unwrap_or(false),
        },
        RepositoryKind::Azure => RepoSpec::Azure {
            account: text(&req.account),
            container: text(&req.container),
            prefix: normal_prefix(req.prefix.as_deref()),
            access_key: opt(&req.account_key),
            sas: opt(&req.sas),
            endpoint: opt(&req.endpoint).map(|e| e.trim_end_matches('/').to_owned()),
        },
    }
}

/// `a/b` from `/a/b/`; "" for the root.
pub fn normal_prefix(prefix: Option<&str>) -> String {
    prefix.map(|p| p.trim().trim_matches('/').to_owned()).unwrap_or_default()
}

/// `path` without `.` parts, trailing slashes or repeated separators.
fn lexical(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// `path` with symbolic links of its existing part resolved.
fn resolved(path: &Path) -> PathBuf {
    let mut existing = lexical(path);
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(|n| n.to_owned()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    for name in rest.into_iter().rev() {
        out.push(name);
    }
    out
}

/// Why a local repository cannot go at `path` given the other repositories
/// (`None`: it can). Blocking (resolves symbolic links).
pub fn local_conflict(data_dir: &Path, path: &Path, others: &[repositories::Model]) -> Option<String> {
    let want = resolved(path);
    if let Some(sys) = SYSTEM_DIRS.iter().find(|d| want.starts_with(d)) {
        return Some(format!("'{}' is under the system directory {sys}: choose a directory meant for data, e.g. /srv/backups/site-a", path.display()));
    }
    let data = resolved(data_dir);
    if want.starts_with(&data) && !want.starts_with(data.join("repos")) {
        return Some(format!(
            "'{}' is inside the server's data directory ({}); only {}/repos/<name> may hold repositories there",
            path.display(),
            data_dir.display(),
            data_dir.display()
        ));
    }
    if data.starts_with(&want) {
        return Some(format!("'{}' holds the server's data directory ({}): choose a directory of its own", path.display(), data_dir.display()));
    }
    for other in others.iter().filter(|o| o.kind == RepositoryKind::Local.as_str()) {
        let theirs = resolved(Path::new(&other.path));
        if theirs == want {
            return Some(format!("'{}' is already the repository '{}'", path.display(), other.name));
        }
        if want.starts_with(&theirs) {
            return Some(format!("'{}' is inside the repository '{}' ({})", path.display(), other.name, other.path));
        }
        if theirs.starts_with(&want) {
            return Some(format!("'{}' holds the repository '{}' ({}): choose a directory beside it", path.display(), other.name, other.path));
        }
    }
    None
}

/// Why an object-store repository cannot go where `spec` says given the
/// other repositories: the same bucket or container with prefixes inside
/// one another.
pub fn object_conflict(spec: &RepoSpec, others: &[repositories::Model]) -> Option<String> {
    let (kind, endpoint, place, prefix) = match spec {
        RepoSpec::Local { .. } => return None,
        RepoSpec::S3 { endpoint, bucket, prefix, .. } => (RepositoryKind::S3, endpoint.clone(), bucket.clone(), prefix.clone()),
        RepoSpec::Azure { endpoint, account, container, prefix, .. } => {
            (RepositoryKind::Azure, endpoint.clone(), format!("{account}/{container}"), prefix.clone())
        }
    };
    let normal_endpoint = |e: Option<String>| e.map(|e| e.trim_end_matches('/').to_ascii_lowercase());
    for other in others.iter().filter(|o| o.kind == kind.as_str()) {
        let theirs_place = match kind {
            RepositoryKind::S3 => other.bucket.clone().unwrap_or_default(),
            _ => format!("{}/{}", other.account.clone().unwrap_or_default(), other.container.clone().unwrap_or_default()),
        };
        if theirs_place != place || normal_endpoint(other.endpoint.clone()) != normal_endpoint(endpoint.clone()) {
            continue;
        }
        let theirs = normal_prefix(other.prefix.as_deref());
        let inside = |a: &str, b: &str| b.is_empty() || a == b || a.starts_with(&format!("{b}/"));
        if inside(&prefix, &theirs) || inside(&theirs, &prefix) {
            let field = if kind == RepositoryKind::S3 { "bucket" } else { "container" };
            return Some(if theirs.is_empty() {
                format!("the repository '{}' uses the whole {field}: choose another {field}", other.name)
            } else {
                format!("the repository '{}' already uses the prefix '{theirs}' of this {field}: choose another {field} or a prefix beside it", other.name)
            });
        }
    }
    None
}

fn parse_config(body: &[u8]) -> Result<RepoConfig, String> {
    serde_json::from_slice(body).map_err(|e| format!("it has a config.json that is not a Sendense repository's ({e})"))
}

/// What the local directory `path` holds: nothing (missing or empty), a
/// Sendense repository, or something else (refused, with what to change).
pub fn inspect_local(path: &Path) -> Result<Found, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(format!("'{}' cannot be read: {e}", path.display())),
    };
    if !meta.is_dir() {
        return Err(format!("'{}' is a file, not a directory", path.display()));
    }
    if path.join(CONFIG_KEY).exists() {
        let body = std::fs::read(path.join(CONFIG_KEY)).map_err(|e| format!("'{}' cannot be read: {e}", path.join(CONFIG_KEY).display()))?;
        let config = parse_config(&body).map_err(|m| format!("'{}': {m}", path.display()))?;
        return Ok(Found::Repository { encrypted: config.encryption.is_some(), key_check: config.encryption.map(|e| e.key_check) });
    }
    let mut entries = std::fs::read_dir(path).map_err(|e| format!("'{}' cannot be listed: {e}", path.display()))?;
    match entries.next() {
        None => Ok(Found::Nothing),
        Some(first) => {
            let name = first.map(|e| e.file_name().to_string_lossy().into_owned()).unwrap_or_default();
            Err(format!(
                "'{}' already holds other files (e.g. '{name}') and is not a Sendense repository: choose a new or empty directory",
                path.display()
            ))
        }
    }
}

/// What an object-store location holds (blocking, over the network).
pub fn inspect_object(repo: &dyn Backend) -> Result<Found, String> {
    match repo.get(CONFIG_KEY) {
        Ok(body) => {
            let config = parse_config(&body)?;
            return Ok(Found::Repository { encrypted: config.encryption.is_some(), key_check: config.encryption.map(|e| e.key_check) });
        }
        Err(crate::engine::EngineError::NotFound { .. }) => {}
        Err(e) => return Err(e.to_string()),
    }
    let objects = repo.list("").map_err(|e| e.to_string())?;
    match objects.first() {
        None => Ok(Found::Nothing),
        Some(o) => Err(format!(
            "this location already holds {} object(s) (e.g. '{}') and is not a Sendense repository: choose an empty bucket, container or prefix",
            objects.len(),
            o.key
        )),
    }
}

/// The id of the key file in `DATA_DIR/keys` whose check value is
/// `key_check`: a repository removed from the catalog keeps its key there,
/// so attaching it again finds it.
pub fn find_key(data_dir: &Path, key_check: &str) -> Option<String> {
    let dir = repository_keys::keys_dir(data_dir);
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let path = entry.path();
        let id = path.file_name()?.to_str()?.strip_suffix(".key")?.to_owned();
        repository_keys::key_path(data_dir, &id).ok()?;
        let key = CryptConfig::load_key_file(&path).ok()?;
        (key.check_value() == key_check).then_some(id)
    })
}

fn check(check: TestCheck, ok: bool, message: impl Into<String>) -> TestCheckResult {
    TestCheckResult { check, ok, message: message.into() }
}

/// What failed talking to an object store, as the check it belongs to.
fn classify(error: &str) -> TestCheck {
    let e = error.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| e.contains(w));
    if any(&["403", "401", "forbidden", "accessdenied", "access denied", "signature", "invalidaccesskeyid", "invalid access key", "authentication", "authorization", "unauthorized"]) {
        TestCheck::Credentials
    } else if any(&["nosuchbucket", "containernotfound", "bucket not found", "404"]) {
        TestCheck::Location
    } else {
        TestCheck::Reachable
    }
}

/// The message for a failure of `what` on an object store.
fn object_failure(what: TestCheck, place: &str, error: &str) -> String {
    match what {
        TestCheck::Credentials => format!("{place} refused the credentials ({error}): check the access key and its secret, and that they may read, write and delete there"),
        TestCheck::Location => format!("{place} does not exist ({error}): create the bucket or container first"),
        _ => format!("{place} did not answer ({error}): check the endpoint, the network and that the service runs"),
    }
}

/// The nearest directory of `path` that exists (where a new repository's
/// directories would be created).
fn nearest_existing(path: &Path) -> Option<PathBuf> {
    let mut p = Some(path);
    while let Some(dir) = p {
        if dir.is_dir() {
            return Some(dir.to_path_buf());
        }
        p = dir.parent();
    }
    None
}

/// Writes, reads back and deletes a probe file in `dir`.
fn probe_local(dir: &Path, checks: &mut Vec<TestCheckResult>) {
    let probe = dir.join(format!(".sendense-probe-{}", uuid::Uuid::new_v4()));
    let body: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    if let Err(e) = std::fs::write(&probe, &body) {
        checks.push(check(TestCheck::Write, false, format!("cannot write in '{}' ({e}): give the server's user write access to it", dir.display())));
        return;
    }
    checks.push(check(TestCheck::Write, true, format!("wrote a 4 KiB probe file in '{}'", dir.display())));
    match std::fs::read(&probe) {
        Ok(read) if read == body => checks.push(check(TestCheck::Read, true, "read it back whole")),
        Ok(_) => checks.push(check(TestCheck::Read, false, "the probe file read back different bytes: the file system is not reliable")),
        Err(e) => checks.push(check(TestCheck::Read, false, format!("cannot read the probe back ({e})"))),
    }
    match std::fs::remove_file(&probe) {
        Ok(()) => checks.push(check(TestCheck::Delete, true, "deleted it")),
        Err(e) => checks.push(check(TestCheck::Delete, false, format!("cannot delete '{}' ({e}): the server must be able to delete in the repository", probe.display()))),
    }
}

/// The outcome of all checks.
fn outcome(checks: Vec<TestCheckResult>, found: Option<&Found>, immutability: Immutability) -> RepositoryTest {
    RepositoryTest {
        ok: !checks.is_empty() && checks.iter().all(|c| c.ok),
        checks,
        attaches: matches!(found, Some(Found::Repository { .. })),
        immutability,
    }
}

/// The message for a repository found at the location (or the problem
/// that stops it being attached). `key`: a key file's contents given to
/// attach an encrypted one whose key is not on this server.
fn attach_message(data_dir: &Path, encrypted: bool, key_check: Option<&str>, key: Option<&str>) -> Result<String, String> {
    if !encrypted {
        if key.is_some() {
            return Err("holds a Sendense repository that is not encrypted: leave the key out".into());
        }
        return Ok("holds a Sendense repository (not encrypted): adding attaches it and records its restore points".into());
    }
    if key_check.and_then(|k| find_key(data_dir, k)).is_some() {
        return Ok("holds an encrypted Sendense repository whose key is on this server: adding attaches it and records its restore points".into());
    }
    match (key, key_check) {
        (Some(body), Some(check)) => {
            repository_keys::check_given(body.trim().as_bytes(), check)?;
            Ok("holds an encrypted Sendense repository that the key given opens: adding attaches it and records its restore points".into())
        }
        _ => Err(format!(
            "holds an encrypted Sendense repository whose key is not on this server: give its key file's contents (from `sendense key export`) as the key, or put the file in {} first",
            repository_keys::keys_dir(data_dir).display()
        )),
    }
}

/// The check of an empty location when a key was given.
fn empty_with_key(key: Option<&str>) -> Option<String> {
    key.map(|_| "holds no repository to attach: a key is only for attaching an encrypted repository; leave it out to create a new one (with a new key)".to_owned())
}

/// The checks of a local directory (blocking): location, then a probe
/// written, read and deleted where the repository's files would go.
pub fn test_local(data_dir: &Path, path: &Path, others: &[repositories::Model], immutability: Immutability, key: Option<&str>) -> RepositoryTest {
    let mut checks = Vec::new();
    if let Some(why) = local_conflict(data_dir, path, others) {
        checks.push(check(TestCheck::Location, false, why));
        return outcome(checks, None, immutability);
    }
    let found = match inspect_local(path) {
        Ok(f) => f,
        Err(why) => {
            checks.push(check(TestCheck::Location, false, why));
            return outcome(checks, None, immutability);
        }
    };
    match &found {
        Found::Nothing => match empty_with_key(key) {
            None => checks.push(check(TestCheck::Location, true, format!("'{}' is new or empty: a repository is created there", path.display()))),
            Some(m) => {
                checks.push(check(TestCheck::Location, false, format!("'{}' {m}", path.display())));
                return outcome(checks, Some(&found), immutability);
            }
        },
        Found::Repository { encrypted, key_check } => match attach_message(data_dir, *encrypted, key_check.as_deref(), key) {
            Ok(m) => checks.push(check(TestCheck::Location, true, format!("'{}' {m}", path.display()))),
            Err(m) => {
                checks.push(check(TestCheck::Location, false, format!("'{}' {m}", path.display())));
                return outcome(checks, Some(&found), immutability);
            }
        },
    }
    let Some(dir) = nearest_existing(path) else {
        checks.push(check(TestCheck::Reachable, false, format!("no directory of '{}' exists", path.display())));
        return outcome(checks, Some(&found), immutability);
    };
    // Only the repository's own directory is created: a missing parent is
    // more often a share that is not mounted than a wish for new directories.
    if let Some(parent) = path.parent().filter(|p| !p.is_dir()) {
        checks.push(check(
            TestCheck::Reachable,
            false,
            format!("the parent directory '{}' does not exist: create it, or mount the share there, first", parent.display()),
        ));
        return outcome(checks, Some(&found), immutability);
    }
    let reach = if dir == path { format!("'{}' exists", path.display()) } else { format!("'{}' will be created in '{}'", path.display(), dir.display()) };
    checks.push(check(TestCheck::Reachable, true, reach));
    probe_local(&dir, &mut checks);
    outcome(checks, Some(&found), immutability)
}

/// The checks of an object store (blocking, over the network): reachable,
/// credentials, location, a probe object, Object Lock when asked.
pub fn test_object(data_dir: &Path, spec: &RepoSpec, others: &[repositories::Model], immutability: Immutability, key: Option<&str>) -> RepositoryTest {
    let mut checks = Vec::new();
    let place = spec.describe();
    if let Some(why) = object_conflict(spec, others) {
        checks.push(check(TestCheck::Location, false, why));
        return outcome(checks, None, immutability);
    }
    let repo = match open_backend(spec) {
        Ok(r) => r,
        Err(e) => {
            // Opening does no I/O: what fails here is the settings themselves (a key that is not base64…).
            let e = format!("{e:#}");
            match classify(&e) {
                TestCheck::Credentials => checks.push(check(TestCheck::Credentials, false, object_failure(TestCheck::Credentials, &place, &e))),
                _ => checks.push(check(TestCheck::Reachable, false, e)),
            }
            return outcome(checks, None, immutability);
        }
    };
    let found = match inspect_object(repo.as_ref()) {
        Ok(f) => {
            checks.push(check(TestCheck::Reachable, true, format!("{place} answers")));
            checks.push(check(TestCheck::Credentials, true, "the credentials are accepted"));
            f
        }
        Err(e) => {
            let what = classify(&e);
            if what != TestCheck::Reachable {
                checks.push(check(TestCheck::Reachable, true, format!("{place} answers")));
            }
            if what == TestCheck::Location {
                checks.push(check(TestCheck::Credentials, true, "the credentials are accepted"));
            }
            let message = if e.contains("not a Sendense repository") { format!("{place}: {e}") } else { object_failure(what, &place, &e) };
            checks.push(check(if e.contains("not a Sendense repository") { TestCheck::Location } else { what }, false, message));
            return outcome(checks, None, immutability);
        }
    };
    match &found {
        Found::Nothing => match empty_with_key(key) {
            None => checks.push(check(TestCheck::Location, true, format!("{place} is empty: a repository is created there"))),
            Some(m) => {
                checks.push(check(TestCheck::Location, false, format!("{place} {m}")));
                return outcome(checks, Some(&found), immutability);
            }
        },
        Found::Repository { encrypted, key_check } => match attach_message(data_dir, *encrypted, key_check.as_deref(), key) {
            Ok(m) => checks.push(check(TestCheck::Location, true, format!("{place} {m}"))),
            Err(m) => {
                checks.push(check(TestCheck::Location, false, format!("{place} {m}")));
                return outcome(checks, Some(&found), immutability);
            }
        },
    }
    probe_object(repo.as_ref(), &place, &mut checks);
    if immutability == Immutability::Storage {
        checks.push(object_lock_check(repo.as_ref(), spec));
    }
    outcome(checks, Some(&found), immutability)
}

/// Immutable days on S3 need a bucket with Object Lock
/// (GetObjectLockConfiguration): the storage then refuses to delete a
/// locked restore point's objects (`engine::object_lock`).
pub fn object_lock_check(repo: &dyn Backend, spec: &RepoSpec) -> TestCheckResult {
    let bucket = match spec {
        RepoSpec::S3 { bucket, .. } => bucket.as_str(),
        _ => "",
    };
    match repo.lock_support() {
        Ok(LockSupport::Storage) => {
            check(TestCheck::ObjectLock, true, format!("bucket '{bucket}' has Object Lock: immutable restore points are locked by the storage"))
        }
        Ok(LockSupport::None) => check(
            TestCheck::ObjectLock,
            false,
            format!(
                "bucket '{bucket}' has no Object Lock, so the storage could not refuse deletes of immutable restore points: \
                 use a bucket created with Object Lock enabled, or set immutable_days to 0"
            ),
        ),
        Err(e) => check(TestCheck::ObjectLock, false, format!("cannot read the Object Lock configuration of bucket '{bucket}' ({e})")),
    }
}

fn probe_object(repo: &dyn Backend, place: &str, checks: &mut Vec<TestCheckResult>) {
    let key = format!("tmp/sendense-probe-{}", uuid::Uuid::new_v4());
    let body: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    if let Err(e) = repo.put(&key, &body) {
        let e = e.to_string();
        let message = match classify(&e) {
            TestCheck::Credentials => format!("{place} refused a write ({e}): the credentials need permission to write objects"),
            _ => format!("writing a probe object to {place} failed ({e})"),
        };
        checks.push(check(TestCheck::Write, false, message));
        return;
    }
    checks.push(check(TestCheck::Write, true, format!("wrote a 4 KiB probe object ({key})")));
    match repo.get(&key) {
        Ok(read) if read == body => checks.push(check(TestCheck::Read, true, "read it back whole")),
        Ok(_) => checks.push(check(TestCheck::Read, false, "the probe object read back different bytes")),
        Err(e) => checks.push(check(TestCheck::Read, false, format!("cannot read the probe object back ({e})"))),
    }
    match repo.delete(&key) {
        Ok(()) => checks.push(check(TestCheck::Delete, true, "deleted it")),
        Err(e) => checks.push(check(TestCheck::Delete, false, format!("cannot delete the probe object {key} ({e}): the credentials need permission to delete"))),
    }
}

/// The checks of a saved repository (blocking, over the network for an
/// object store): it opens (reachable, credentials, its config and key),
/// then a probe is written, read back and deleted where its objects go.
/// What `POST /repositories/{id}/test` runs after a storage failure.
pub fn test_saved(data_dir: &Path, row: &repositories::Model) -> RepositoryTest {
    let kind = RepositoryKind::parse(&row.kind).unwrap_or(RepositoryKind::Local);
    let immutability = shared_types::repository_setup::immutability(kind, u32::try_from(row.immutable_days).unwrap_or(0));
    let mut checks = Vec::new();
    let place = if kind == RepositoryKind::Local { format!("'{}'", row.path) } else { row.path.clone() };
    if let Err(e) = super::repositories::open_datastore(data_dir, row) {
        let e = e.to_string();
        let what = if kind == RepositoryKind::Local { TestCheck::Location } else { classify(&e) };
        let message = match what {
            TestCheck::Location if kind == RepositoryKind::Local => format!("{place} cannot be opened as this repository ({e})"),
            _ => object_failure(what, &place, &e),
        };
        checks.push(check(what, false, message));
        return outcome(checks, None, immutability);
    }
    checks.push(check(TestCheck::Reachable, true, format!("{place} answers")));
    checks.push(check(TestCheck::Location, true, format!("{place} holds this repository")));
    if kind == RepositoryKind::Local {
        probe_local(Path::new(&row.path), &mut checks);
    } else {
        let opened = super::repositories::row_spec(data_dir, row).map_err(|e| e.to_string()).and_then(|spec| open_backend(&spec).map_err(|e| format!("{e:#}")));
        match opened {
            Ok(repo) => probe_object(repo.as_ref(), &place, &mut checks),
            Err(e) => checks.push(check(TestCheck::Reachable, false, format!("{place}: {e}"))),
        }
    }
    outcome(checks, Some(&Found::Repository { encrypted: row.encrypted, key_check: None }), immutability)
}

/// Creates (or attaches) the repository at `spec` for the catalog row `id`
/// (blocking). Returns whether it is encrypted and the id whose key file
/// it uses (a re-attached encrypted repository keeps its former id's key).
pub fn create(data_dir: &Path, id: &str, spec: &RepoSpec, encrypt: bool, key: Option<&str>) -> Result<Created, String> {
    let (found, repo): (Found, Option<Arc<dyn Backend>>) = match spec {
        RepoSpec::Local { path } => (inspect_local(path)?, None),
        _ => {
            let repo = open_backend(spec).map_err(|e| format!("{e:#}"))?;
            (inspect_object(repo.as_ref())?, Some(repo))
        }
    };
    match found {
        Found::Repository { encrypted: false, .. } if key.is_some() => Err("it holds a Sendense repository that is not encrypted: leave the key out".into()),
        Found::Repository { encrypted: false, .. } => Ok(Created { encrypted: false, attached: true, key_from: None }),
        Found::Repository { encrypted: true, key_check } => {
            if let Some(owner) = key_check.as_deref().and_then(|k| find_key(data_dir, k)) {
                return Ok(Created { encrypted: true, attached: true, key_from: Some(owner) });
            }
            match (key, key_check.as_deref()) {
                (Some(body), Some(check)) => {
                    repository_keys::import(data_dir, id, body.trim().as_bytes(), check)?;
                    Ok(Created { encrypted: true, attached: true, key_from: None })
                }
                _ => Err(format!(
                    "it is encrypted and its key is not on this server: give its key file's contents as the key, or put the file in {} first",
                    repository_keys::keys_dir(data_dir).display()
                )),
            }
        }
        Found::Nothing if key.is_some() => Err(empty_with_key(key).unwrap_or_default()),
        Found::Nothing => {
            match (spec, repo) {
                (RepoSpec::Local { path }, _) => {
                    let made = if encrypt { repository_keys::init_encrypted(data_dir, id, path) } else { Datastore::init(path, None) };
                    made.map_err(|e| e.to_string())?;
                }
                (_, Some(_repo)) => {
                    let made = if encrypt {
                        repository_keys::init_encrypted_spec(data_dir, id, spec)
                    } else {
                        Datastore::init_spec(spec, None, crate::engine::datastore::DEFAULT_CHUNK_SIZE)
                    };
                    made.map_err(|e| format!("{}: {e}", spec.describe()))?;
                }
                (_, None) => return Err("no backend".into()),
            }
            Ok(Created { encrypted: encrypt, attached: false, key_from: None })
        }
    }
}

/// What [`create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub encrypted: bool,
    /// An existing repository was attached (nothing written).
    pub attached: bool,
    /// The id whose key file opens the attached encrypted repository.
    pub key_from: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, path: &str) -> repositories::Model {
        repositories::Model {
            id: name.into(),
            name: name.into(),
            kind: "local".into(),
            path: path.into(),
            created_at: chrono::Utc::now(),
            maintenance_reason: None,
            maintenance_since: None,
            maintenance_by: None,
            verify_schedule: None,
            gc_schedule: None,
            last_verify_at: None,
            last_verify_status: None,
            last_verify_damaged: None,
            last_gc_at: None,
            last_gc_reclaimed_bytes: None,
            endpoint: None,
            region: None,
            bucket: None,
            container: None,
            prefix: None,
            virtual_hosted: false,
            account: None,
            access_key_id: None,
            secret_sealed: None,
            credential_kind: None,
            immutable_days: 0,
            object_lock_mode: None,
            encrypted: false,
            is_default: false,
            storage_failure_at: None,
            storage_failure_cause: None,
            storage_failure: None,
            storage_failure_job: None,
        }
    }

    #[test]
    fn local_paths_never_nest() {
        let data = tempfile::tempdir().unwrap();
        let others = [row("main", "/srv/repos/main")];
        let d = data.path();
        assert!(local_conflict(d, Path::new("/srv/repos/second"), &others).is_none());
        assert!(local_conflict(d, Path::new("/srv/repos/main/inner"), &others).unwrap().contains("inside the repository 'main'"));
        assert!(local_conflict(d, Path::new("/srv/repos"), &others).unwrap().contains("holds the repository 'main'"));
        assert!(local_conflict(d, Path::new("/srv/repos/main/"), &others).unwrap().contains("already the repository"));
        assert!(local_conflict(d, Path::new("/etc/backups"), &others).unwrap().contains("system directory"));
        assert!(local_conflict(d, &d.join("keys"), &others).unwrap().contains("data directory"));
        assert!(local_conflict(d, &d.join("repos/second"), &others).is_none());
    }

    #[test]
    fn object_prefixes_never_nest() {
        let mut other = row("s3a", "s3://b/site-a");
        other.kind = "s3".into();
        other.bucket = Some("b".into());
        other.prefix = Some("site-a".into());
        let spec = |prefix: &str| RepoSpec::S3 {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: prefix.into(),
            access_key_id: "a".into(),
            secret_access_key: "s".into(),
            virtual_hosted: false,
        };
        assert!(object_conflict(&spec("site-b"), std::slice::from_ref(&other)).is_none());
        assert!(object_conflict(&spec("site-a/x"), std::slice::from_ref(&other)).is_some());
        assert!(object_conflict(&spec(""), std::slice::from_ref(&other)).is_some());
        assert!(object_conflict(&spec("site-ab"), std::slice::from_ref(&other)).is_none());
    }

    #[test]
    fn local_test_probes_and_refuses_foreign_files() {
        let data = tempfile::tempdir().unwrap();
        let target = data.path().join("repos/new");
        let t = test_local(data.path(), &target, &[], Immutability::None, None);
        assert!(!t.ok && t.checks[1].message.contains("parent directory"), "{t:?}");
        std::fs::create_dir_all(data.path().join("repos")).unwrap();
        let t = test_local(data.path(), &target, &[], Immutability::None, None);
        assert!(t.ok, "{t:?}");
        assert!(!target.exists(), "the test created nothing");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("notes.txt"), b"x").unwrap();
        let t = test_local(data.path(), &target, &[], Immutability::None, None);
        assert!(!t.ok && t.checks[0].message.contains("notes.txt"), "{t:?}");
    }

    #[test]
    fn encrypted_repository_reattaches_with_its_key() {
        let data = tempfile::tempdir().unwrap();
        let path = data.path().join("repos/r");
        repository_keys::init_encrypted(data.path(), "old-id", &path).unwrap();
        let spec = RepoSpec::Local { path: path.clone() };
        let made = create(data.path(), "new-id", &spec, true, None).unwrap();
        assert_eq!(made, Created { encrypted: true, attached: true, key_from: Some("old-id".into()) });
        std::fs::remove_file(repository_keys::key_path(data.path(), "old-id").unwrap()).unwrap();
        assert!(create(data.path(), "new-id", &spec, true, None).unwrap_err().contains("key"));
    }
}
