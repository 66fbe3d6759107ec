//! Adding, testing, changing and removing repositories
//! (`POST /api/v1/repositories`, `POST /api/v1/repositories/test`,
//! `PATCH`/`DELETE /api/v1/repositories/{id}`): a local directory (also an
//! NFS/CIFS mount), an S3-compatible bucket or an Azure Blob container.
//!
//! Secrets (the S3 secret key, the Azure account key or SAS) are written,
//! stored sealed, and never read back: no answer carries them, and the
//! `Debug` form of these requests hides them.

use serde::{Deserialize, Serialize};

use crate::repositories::RepositoryKind;

wire_enum! {
    /// S3 Object Lock retention mode of a repository's immutable restore points.
    pub enum ObjectLockMode {
        /// Users with the `s3:BypassGovernanceRetention` permission can still delete.
        Governance = "governance",
        /// Nobody can delete before the date, not even the bucket's owner.
        Compliance = "compliance",
    }
}

wire_enum! {
    /// Who keeps immutable restore points from being deleted.
    pub enum Immutability {
        /// The storage refuses the delete (S3 Object Lock).
        Storage = "storage",
        /// Sendense refuses to delete or prune them; someone with the
        /// storage's own credentials still could.
        Sendense = "sendense",
        /// No immutability asked (`immutable_days` is 0).
        None = "none",
    }
}

/// Longest immutability, in days (100 years).
pub const IMMUTABLE_DAYS_MAX: u32 = 36_500;
/// Region used when an S3 repository names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// `POST /api/v1/repositories` and `POST /api/v1/repositories/test`.
/// Fields of another kind are refused (400, naming the field).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRepository {
    pub name: String,
    pub kind: RepositoryKind,
    /// local: an absolute directory, new, empty, or holding a Sendense repository to attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// s3: the endpoint URL (left out = AWS); azure: a custom endpoint (e.g. Azurite's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// s3: the region (default us-east-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// s3: the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// s3: virtual-hosted-style addressing (`bucket.host`) instead of path-style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_hosted: Option<bool>,
    /// azure: the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// s3/azure: where in the bucket or container (e.g. `sendense/site-a`); left out = its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// s3: the access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// s3: the secret access key (stored sealed, never returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// azure: the storage account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// azure: the account key (stored sealed, never returned); or `sas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<String>,
    /// azure: a shared access signature (stored sealed, never returned); or `account_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas: Option<String>,
    /// Restore points stay undeletable this many days (0 or left out = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_days: Option<u32>,
    /// s3 with `immutable_days`: the Object Lock mode (default governance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_mode: Option<ObjectLockMode>,
    /// Encrypt chunks, indexes and manifests (default true for a new repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// Attaching an encrypted repository whose key is not on this server
    /// (a new server after the old one was lost): the key file's contents
    /// as `sendense key export` wrote them. Checked against the repository,
    /// kept in the data directory's keys, never returned or logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Default for CreateRepository {
    fn default() -> Self {
        CreateRepository {
            name: String::new(),
            kind: RepositoryKind::Local,
            path: None,
            endpoint: None,
            region: None,
            bucket: None,
            virtual_hosted: None,
            container: None,
            prefix: None,
            access_key_id: None,
            secret_access_key: None,
            account: None,
            account_key: None,
            sas: None,
            immutable_days: None,
            object_lock_mode: None,
            encrypted: None,
            key: None,
        }
    }
}

fn hidden(s: &Option<String>) -> &'static str {
    if s.is_some() {
        "Some(<hidden>)"
    } else {
        "None"
    }
}

impl std::fmt::Debug for CreateRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateRepository")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("virtual_hosted", &self.virtual_hosted)
            .field("container", &self.container)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("account", &self.account)
            .field("account_key", &hidden(&self.account_key))
            .field("sas", &hidden(&self.sas))
            .field("immutable_days", &self.immutable_days)
            .field("object_lock_mode", &self.object_lock_mode)
            .field("encrypted", &self.encrypted)
            .field("key", &hidden(&self.key))
            .finish()
    }
}

/// A failed check of a request: (field, what to change).
pub type FieldProblem = (String, String);

fn problem(field: &str, message: impl Into<String>) -> FieldProblem {
    (field.to_owned(), message.into())
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A line of text without control characters, at most `max` characters.
fn plain(field: &str, v: &str, max: usize) -> Result<(), FieldProblem> {
    if v.chars().count() > max {
        return Err(problem(field, format!("at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(problem(field, "one line of text without control characters"));
    }
    Ok(())
}

/// An absolute directory path without `.`/`..` parts.
pub fn check_path(v: &str) -> Result<(), FieldProblem> {
    plain("path", v, 4096)?;
    if !v.starts_with('/') {
        return Err(problem("path", format!("'{v}' is not an absolute path: enter the directory from the root, e.g. /srv/backups/site-a")));
    }
    if v.split('/').any(|p| p == ".." || p == ".") {
        return Err(problem("path", "write the path without '.' or '..' parts"));
    }
    if v.trim_end_matches('/').matches('/').count() < 2 {
        return Err(problem("path", format!("'{v}' is a top-level directory: choose a directory below one, e.g. /srv/backups/site-a")));
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host and nothing after the host but a path.
pub fn check_endpoint(v: &str) -> Result<(), FieldProblem> {
    plain("endpoint", v, 2048)?;
    let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
    let host = rest.map(|r| r.split('/').next().unwrap_or(""));
    if host.is_none_or(str::is_empty) || v.chars().any(char::is_whitespace) || v.contains(['?', '#', '@']) {
        return Err(problem("endpoint", format!("'{v}' is not an http:// or https:// URL with a host (e.g. https://s3.eu-central-1.amazonaws.com or http://127.0.0.1:9000)")));
    }
    Ok(())
}

/// S3 bucket names: 3–63 lowercase letters, digits, dots and hyphens,
/// starting and ending with a letter or digit.
pub fn check_bucket(v: &str) -> Result<(), FieldProblem> {
    let ok = (3..=63).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(problem("bucket", format!("'{v}' is not an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens")));
    }
    Ok(())
}

/// Azure container names: 3–63 lowercase letters, digits and single hyphens.
pub fn check_container(v: &str) -> Result<(), FieldProblem> {
    let ok = (3..=63).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !v.contains("--");
    if !ok {
        return Err(problem("container", format!("'{v}' is not an Azure container name: 3 to 63 lowercase letters, digits and single hyphens")));
    }
    Ok(())
}

/// Azure account names: 3–24 lowercase letters and digits.
pub fn check_account(v: &str) -> Result<(), FieldProblem> {
    if !(3..=24).contains(&v.len()) || !v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(problem("account", format!("'{v}' is not an Azure storage account name: 3 to 24 lowercase letters and digits")));
    }
    Ok(())
}

/// A key prefix: relative, `/`-separated, no empty, `.` or `..` parts.
pub fn check_prefix(v: &str) -> Result<(), FieldProblem> {
    plain("prefix", v, 512)?;
    let trimmed = v.trim_matches('/');
    if trimmed.split('/').any(|p| p.is_empty() || p == "." || p == "..") && !trimmed.is_empty() {
        return Err(problem("prefix", "a prefix is a path inside the bucket like sendense/site-a: no empty, '.' or '..' parts"));
    }
    Ok(())
}

fn check_secret(field: &str, v: &str) -> Result<(), FieldProblem> {
    if v.len() > 4096 {
        return Err(problem(field, "at most 4096 characters"));
    }
    if v.chars().any(char::is_control) {
        return Err(problem(field, "paste the secret as one line without control characters"));
    }
    Ok(())
}

/// The largest key file `key` takes.
pub const KEY_FILE_MAX: usize = 4096;

fn check_days(days: Option<u32>) -> Result<(), FieldProblem> {
    match days {
        Some(d) if d > IMMUTABLE_DAYS_MAX => Err(problem("immutable_days", format!("at most {IMMUTABLE_DAYS_MAX} days"))),
        _ => Ok(()),
    }
}

impl CreateRepository {
    /// Checks what can be checked without touching the storage: required
    /// fields per kind, their form, and no fields of another kind.
    pub fn validate(&self) -> Result<(), FieldProblem> {
        crate::validate_name("repository", &self.name).map_err(|m| problem("name", m))?;
        let foreign: &[(&str, bool)] = &[
            ("path", self.path.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("region", self.region.is_some()),
            ("bucket", self.bucket.is_some()),
            ("virtual_hosted", self.virtual_hosted.is_some()),
            ("container", self.container.is_some()),
            ("prefix", self.prefix.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            ("secret_access_key", self.secret_access_key.is_some()),
            ("account", self.account.is_some()),
            ("account_key", self.account_key.is_some()),
            ("sas", self.sas.is_some()),
            ("object_lock_mode", self.object_lock_mode.is_some()),
        ];
        let allowed: &[&str] = match self.kind {
            RepositoryKind::Local => &["path"],
            RepositoryKind::S3 => &["endpoint", "region", "bucket", "virtual_hosted", "prefix", "access_key_id", "secret_access_key", "object_lock_mode"],
            RepositoryKind::Azure => &["endpoint", "container", "prefix", "account", "account_key", "sas"],
        };
        if let Some((field, _)) = foreign.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(problem(field, format!("a {} repository takes no {field}: leave it out", self.kind)));
        }
        check_days(self.immutable_days)?;
        if let Some(k) = &self.key {
            if k.trim().is_empty() || k.len() > KEY_FILE_MAX {
                return Err(problem("key", format!("paste the key file's contents (a small JSON document from `sendense key export`, at most {KEY_FILE_MAX} bytes), or leave key out")));
            }
            if self.encrypted == Some(false) {
                return Err(problem("key", "a key is for attaching an encrypted repository: leave it out with encrypted false"));
            }
        }
        match self.kind {
            RepositoryKind::Local => {
                let path = given(&self.path).ok_or_else(|| problem("path", "enter the directory that holds the repository, e.g. /srv/backups/site-a"))?;
                check_path(path)?;
            }
            RepositoryKind::S3 => {
                if let Some(e) = given(&self.endpoint) {
                    check_endpoint(e)?;
                }
                if let Some(r) = given(&self.region) {
                    if r.len() > 64 || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                        return Err(problem("region", format!("'{r}' is not a region name like eu-central-1")));
                    }
                }
                check_bucket(given(&self.bucket).ok_or_else(|| problem("bucket", "enter the bucket the repository lives in"))?)?;
                if let Some(p) = self.prefix.as_deref() {
                    check_prefix(p)?;
                }
                let key = given(&self.access_key_id).ok_or_else(|| problem("access_key_id", "enter the access key id"))?;
                plain("access_key_id", key, 256)?;
                let secret = given(&self.secret_access_key).ok_or_else(|| problem("secret_access_key", "enter the secret access key"))?;
                check_secret("secret_access_key", secret)?;
            }
            RepositoryKind::Azure => {
                if let Some(e) = given(&self.endpoint) {
                    check_endpoint(e)?;
                }
                check_account(given(&self.account).ok_or_else(|| problem("account", "enter the storage account name"))?)?;
                check_container(given(&self.container).ok_or_else(|| problem("container", "enter the container the repository lives in"))?)?;
                if let Some(p) = self.prefix.as_deref() {
                    check_prefix(p)?;
                }
                match (given(&self.account_key), given(&self.sas)) {
                    (None, None) => return Err(problem("account_key", "enter the account key, or a shared access signature in sas")),
                    (Some(_), Some(_)) => return Err(problem("sas", "give either the account key or a shared access signature, not both")),
                    (Some(k), None) => check_secret("account_key", k)?,
                    (None, Some(s)) => check_secret("sas", s)?,
                }
            }
        }
        Ok(())
    }

    /// The immutability the repository will have.
    pub fn immutability(&self) -> Immutability {
        immutability(self.kind, self.immutable_days.unwrap_or(0))
    }
}

/// Who enforces immutability for a repository of `kind` keeping restore
/// points `days` days: S3 with Object Lock the storage; Azure (our client
/// and Azurite cannot set immutability policies) and local directories
/// Sendense only.
pub fn immutability(kind: RepositoryKind, days: u32) -> Immutability {
    match (kind, days) {
        (_, 0) => Immutability::None,
        (RepositoryKind::S3, _) => Immutability::Storage,
        _ => Immutability::Sendense,
    }
}

/// `PATCH /api/v1/repositories/{id}`: a field left out stays as it is.
/// Credentials of the repository's own kind only; a rotated credential is
/// tried against the storage before it is stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateRepository {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// s3: a new access key id (with `secret_access_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// s3: a new secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// azure: a new account key (replaces a stored SAS too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key: Option<String>,
    /// azure: a new shared access signature (replaces a stored account key too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas: Option<String>,
    /// New restore points stay undeletable this many days (0 = off);
    /// restore points already made keep their date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_days: Option<u32>,
    /// s3: the Object Lock mode of new restore points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_mode: Option<ObjectLockMode>,
    /// `true` makes this the default repository (`false` is refused: make another one the default instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
}

impl std::fmt::Debug for UpdateRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateRepository")
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("account_key", &hidden(&self.account_key))
            .field("sas", &hidden(&self.sas))
            .field("immutable_days", &self.immutable_days)
            .field("object_lock_mode", &self.object_lock_mode)
            .field("is_default", &self.is_default)
            .finish()
    }
}

impl UpdateRepository {
    /// Checks the request against a repository of `kind`.
    pub fn validate(&self, kind: RepositoryKind) -> Result<(), FieldProblem> {
        if let Some(n) = &self.name {
            crate::validate_name("repository", n).map_err(|m| problem("name", m))?;
        }
        check_days(self.immutable_days)?;
        if self.is_default == Some(false) {
            return Err(problem("is_default", "a repository stops being the default when another one becomes it: set is_default on that one"));
        }
        let s3 = [("access_key_id", &self.access_key_id), ("secret_access_key", &self.secret_access_key)];
        let azure = [("account_key", &self.account_key), ("sas", &self.sas)];
        let foreign: Vec<(&str, &Option<String>)> = match kind {
            RepositoryKind::Local => s3.iter().chain(azure.iter()).copied().collect(),
            RepositoryKind::S3 => azure.to_vec(),
            RepositoryKind::Azure => s3.to_vec(),
        };
        if let Some((field, _)) = foreign.iter().find(|(_, v)| v.is_some()) {
            return Err(problem(field, format!("a {kind} repository has no {field}")));
        }
        if self.object_lock_mode.is_some() && kind != RepositoryKind::S3 {
            return Err(problem("object_lock_mode", "only S3 repositories have an Object Lock mode"));
        }
        match kind {
            RepositoryKind::S3 => match (given(&self.access_key_id), given(&self.secret_access_key)) {
                (None, None) if self.access_key_id.is_none() && self.secret_access_key.is_none() => {}
                (Some(k), Some(s)) => {
                    plain("access_key_id", k, 256)?;
                    check_secret("secret_access_key", s)?;
                }
                (None, _) => return Err(problem("access_key_id", "rotate the access key id and the secret access key together")),
                (_, None) => return Err(problem("secret_access_key", "rotate the access key id and the secret access key together")),
            },
            RepositoryKind::Azure => match (&self.account_key, &self.sas) {
                (Some(_), Some(_)) => return Err(problem("sas", "give either a new account key or a new shared access signature, not both")),
                (Some(k), None) => {
                    let k = k.trim();
                    if k.is_empty() {
                        return Err(problem("account_key", "enter the new account key"));
                    }
                    check_secret("account_key", k)?;
                }
                (None, Some(s)) => {
                    let s = s.trim();
                    if s.is_empty() {
                        return Err(problem("sas", "enter the new shared access signature"));
                    }
                    check_secret("sas", s)?;
                }
                (None, None) => {}
            },
            RepositoryKind::Local => {}
        }
        Ok(())
    }

    /// Whether the request rotates a credential.
    pub fn rotates(&self) -> bool {
        self.secret_access_key.is_some() || self.account_key.is_some() || self.sas.is_some()
    }
}

wire_enum! {
    /// One check of `POST /api/v1/repositories/test`.
    pub enum TestCheck {
        /// The directory, bucket or container is usable for a repository:
        /// new, empty, or a Sendense repository to attach.
        Location = "location",
        /// The storage answers.
        Reachable = "reachable",
        /// The credentials are accepted.
        Credentials = "credentials",
        /// A probe object was written…
        Write = "write",
        /// …read back whole…
        Read = "read",
        /// …and deleted.
        Delete = "delete",
        /// The bucket has Object Lock (asked for by `immutable_days`).
        ObjectLock = "object_lock",
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestCheckResult {
    pub check: TestCheck,
    pub ok: bool,
    /// What was found, or what to change when it failed.
    pub message: String,
}

/// `POST /api/v1/repositories/test`: every check, in order; a check after a
/// failed one that it depends on is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepositoryTest {
    /// Every check passed: the repository can be added as it is.
    pub ok: bool,
    pub checks: Vec<TestCheckResult>,
    /// The location already holds a Sendense repository, which adding attaches.
    pub attaches: bool,
    pub immutability: Immutability,
}

/// `DELETE /api/v1/repositories/{id}`: the repository left the catalog;
/// its data did not move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepositoryRemoved {
    pub id: String,
    pub name: String,
    /// Where the data stays (directory or object-store location).
    pub location: String,
    /// What happened to the data and the key, in words.
    pub message: String,
}

/// `POST /api/v1/repositories/{id}/import` (and adding a repository that
/// holds restore points): the repository's restore points the catalog did
/// not have, recorded for the VMs they belong to. A VM is matched by the
/// catalog id its snapshots are named by, else by its platform's stable id
/// (the UUID), never by name; restore points of VMs this server does not
/// manage stay unrecorded until their platform is added and discovered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepositoryImport {
    /// Snapshots found in the repository.
    pub snapshots: u32,
    /// Restore points recorded now.
    pub recorded: u32,
    /// Snapshots of restore points the catalog has in another repository,
    /// recorded as copies held here.
    pub copies: u32,
    /// Snapshots the catalog already had here.
    pub known: u32,
    /// VMs whose restore points were not recorded: no managed VM has their id.
    pub unmatched: Vec<UnmatchedVm>,
    /// Snapshots that could not be read (name/id: why).
    pub unreadable: Vec<String>,
}

/// A VM of a repository's snapshots that this server does not manage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnmatchedVm {
    /// The VM's name when it was backed up.
    pub name: String,
    /// Its platform's stable id (UUID), when the snapshots carry it.
    pub platform_vm_id: Option<String>,
    pub restore_points: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(path: &str) -> CreateRepository {
        CreateRepository { name: "site".into(), kind: RepositoryKind::Local, path: Some(path.into()), ..Default::default() }
    }

    fn s3() -> CreateRepository {
        CreateRepository {
            name: "offsite".into(),
            kind: RepositoryKind::S3,
            bucket: Some("backups".into()),
            access_key_id: Some("AKIA1".into()),
            secret_access_key: Some("s3cr3t-value".into()),
            ..Default::default()
        }
    }

    fn field(r: Result<(), FieldProblem>) -> String {
        r.expect_err("refused").0
    }

    #[test]
    fn each_kind_names_its_missing_field() {
        assert!(local("/srv/backups/a").validate().is_ok());
        assert_eq!(field(local("relative/dir").validate()), "path");
        assert_eq!(field(local("/srv/../etc").validate()), "path");
        assert_eq!(field(local("/backups").validate()), "path");
        assert_eq!(field(local("/").validate()), "path");
        assert_eq!(field(CreateRepository { path: None, ..local("/x") }.validate()), "path");
        assert_eq!(field(CreateRepository { bucket: Some("b1b".into()), ..local("/x") }.validate()), "bucket");
        assert!(s3().validate().is_ok());
        assert_eq!(field(CreateRepository { bucket: None, ..s3() }.validate()), "bucket");
        assert_eq!(field(CreateRepository { bucket: Some("Bad_Bucket".into()), ..s3() }.validate()), "bucket");
        assert_eq!(field(CreateRepository { secret_access_key: None, ..s3() }.validate()), "secret_access_key");
        assert_eq!(field(CreateRepository { endpoint: Some("ftp://x".into()), ..s3() }.validate()), "endpoint");
        assert_eq!(field(CreateRepository { prefix: Some("a/../b".into()), ..s3() }.validate()), "prefix");
        let azure = CreateRepository {
            name: "az".into(),
            kind: RepositoryKind::Azure,
            account: Some("devstoreaccount1".into()),
            container: Some("backups".into()),
            account_key: Some("k".into()),
            ..Default::default()
        };
        assert!(azure.validate().is_ok());
        assert_eq!(field(CreateRepository { account_key: None, ..azure.clone() }.validate()), "account_key");
        assert_eq!(field(CreateRepository { sas: Some("sv=1".into()), ..azure.clone() }.validate()), "sas");
        assert_eq!(field(CreateRepository { container: None, ..azure.clone() }.validate()), "container");
        assert_eq!(field(CreateRepository { object_lock_mode: Some(ObjectLockMode::Compliance), ..azure }.validate()), "object_lock_mode");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let text = format!("{:?} {:?}", s3(), UpdateRepository { sas: Some("sig-123".into()), ..Default::default() });
        assert!(!text.contains("s3cr3t-value") && !text.contains("sig-123"), "{text}");
    }

    #[test]
    fn immutability_by_kind() {
        assert_eq!(immutability(RepositoryKind::S3, 7), Immutability::Storage);
        assert_eq!(immutability(RepositoryKind::Azure, 7), Immutability::Sendense);
        assert_eq!(immutability(RepositoryKind::Local, 7), Immutability::Sendense);
        assert_eq!(immutability(RepositoryKind::S3, 0), Immutability::None);
    }

    #[test]
    fn update_checks_credentials_of_its_kind() {
        let rotate = UpdateRepository { access_key_id: Some("AK".into()), secret_access_key: Some("x".into()), ..Default::default() };
        assert!(rotate.validate(RepositoryKind::S3).is_ok());
        assert_eq!(field(rotate.validate(RepositoryKind::Azure)), "access_key_id");
        assert_eq!(field(UpdateRepository { secret_access_key: Some("x".into()), ..Default::default() }.validate(RepositoryKind::S3)), "access_key_id");
        assert_eq!(field(UpdateRepository { is_default: Some(false), ..Default::default() }.validate(RepositoryKind::Local)), "is_default");
    }
}
