//! [`Repository`] on an object store (S3-compatible, Azure Blob) through
//! object_store's clients and our HTTP connector ([`super::http`]).
//!
//! # The sync bridge
//!
//! The engine runs on plain threads and its trait is synchronous. Each call
//! here is spawned on one small multi-thread tokio runtime owned by this
//! module (2 workers, created on first use, lives for the process) and the
//! calling thread waits for its answer on a channel. That works from any
//! thread that is not a tokio worker: engine threads, `spawn_blocking`,
//! child processes' main threads. **Never call a backend from an async task**:
//! it would block that task's worker thread until the request ends (with a
//! current-thread runtime, forever if the request needed that thread): run
//! engine work under `spawn_blocking` or on its own thread.
//!
//! # Semantics
//!
//! * Every key lives under the spec's prefix (`prefix/packs/..`).
//! * `put` is one whole-object PUT (atomic on S3 and Azure); `put_if_absent`
//!   is `PutMode::Create` (S3 `If-None-Match: *`, Azure `If-None-Match: *`),
//!   `AlreadyExists` → `Ok(false)`. object_store retries a conditional PUT
//!   whose answer was lost; the retry then reports our own object as
//!   existing (`Ok(false)`): harmless for content-addressed keys.
//! * `list` follows every page (object_store's list stream paginates).
//! * `stat` is a HEAD. `modified` is the server's Last-Modified.
//! * `touch` refreshes Last-Modified with a server-side copy of the object
//!   onto itself (no bytes through us, one request): Azure's Copy Blob; on
//!   S3 a CopyObject with `x-amz-metadata-directive: REPLACE`
//!   ([`super::s3_raw`]: S3 refuses a copy onto itself that changes nothing,
//!   and object_store cannot send the directive). A missing source is a 404:
//!   absent, never recreated. Where the copy is refused, `touch` rewrites the
//!   object with a conditional PUT (`If-Match` on the ETag just read; a pack
//!   deleted meanwhile is reported absent), one GET and one PUT of the pack.
//!   On a versioned (Object Lock) bucket either way makes a new version: the
//!   two-phase GC plan of issue 18 (design §3) replaces `touch` altogether.
//!
//! Errors name the repository ([`RepoSpec::describe`]), the object and the
//! cause in words (wrong credentials, missing bucket or container, no answer
//! from the endpoint), with the store's error code.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::prefix::PrefixStore;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use super::http::{Connector, Counters, RequestCounts};
use super::s3_raw::S3Raw;
use super::spec::RepoSpec;
use crate::engine::error::{EngineError, Result};
use crate::engine::repository::{LockMode, LockSupport, ObjectInfo, Repository, Retention};

/// The runtime every object-store request runs on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sendense-objstore")
            .enable_all()
            .build()
            .expect("start the object-store runtime")
    })
}

/// Runs `fut` on the backend runtime and waits for it (see the module docs:
/// not from an async task).
fn block_on<T: Send + 'static>(fut: impl std::future::Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the object-store runtime dropped a request")
}

const TOUCH_UNKNOWN: u8 = 0;
const TOUCH_BY_COPY: u8 = 1;
const TOUCH_BY_REWRITE: u8 = 2;

pub struct ObjectRepository {
    store: Arc<dyn ObjectStore>,
    describe: String,
    counters: Arc<Counters>,
    touch_mode: AtomicU8,
    /// S3 only: the requests object_store lacks (touch, Object Lock).
    s3_raw: Option<Arc<S3Raw>>,
    /// The bucket's Object Lock, asked once.
    lock_support: OnceLock<LockSupport>,
}

impl ObjectRepository {
    /// The backend of an S3 or Azure spec (a local spec is refused: see
    /// [`super::open_backend`]). No request is made here.
    pub fn open(spec: &RepoSpec) -> anyhow::Result<ObjectRepository> {
        let connector = Connector::new();
        let counters = connector.counters.clone();
        let describe = spec.describe();
        let s3_raw = S3Raw::new(spec, &connector).transpose()?.map(Arc::new);
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = match spec {
            RepoSpec::Local { .. } => anyhow::bail!("{describe} is a local directory, not an object store"),
            RepoSpec::S3 { endpoint, region, bucket, prefix, access_key_id, secret_access_key, virtual_hosted } => {
                if bucket.is_empty() {
                    anyhow::bail!("S3 repository: the bucket name is empty");
                }
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_region(region)
                    .with_bucket_name(bucket)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key)
                    .with_virtual_hosted_style_request(*virtual_hosted)
                    .with_http_connector(connector.clone());
                if let Some(e) = endpoint {
                    // object_store wants the bucket's own URL for virtual-hosted style.
                    let url = if *virtual_hosted { virtual_host_endpoint(e, bucket) } else { e.clone() };
                    b = b.with_endpoint(url).with_allow_http(e.starts_with("http://"));
                }
                let s = b.build().map_err(|e| anyhow::anyhow!("repository {describe}: {e}"))?;
                (Arc::new(s), prefix)
            }
            RepoSpec::Azure { account, container, prefix, access_key, sas, endpoint } => {
                if container.is_empty() {
                    anyhow::bail!("Azure repository: the container name is empty");
                }
                let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_container_name(container)
                    .with_http_connector(connector);
                b = match (access_key, sas) {
                    (Some(k), _) => b.with_access_key(k),
                    (None, Some(s)) => b.with_sas_authorization(split_sas(s)),
                    (None, None) => anyhow::bail!("repository {describe}: give an access key or a SAS token"),
                };
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e.clone()).with_allow_http(e.starts_with("http://"));
                }
                let s = b.build().map_err(|e| anyhow::anyhow!("repository {describe}: {e}"))?;
                (Arc::new(s), prefix)
            }
        };
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> =
            if prefix.is_empty() { store } else { Arc::new(PrefixStore::new(store, ObjPath::from(prefix))) };
        Ok(ObjectRepository { store, describe, counters, touch_mode: AtomicU8::new(TOUCH_UNKNOWN), s3_raw, lock_support: OnceLock::new() })
    }

    /// S3 with versions (Object Lock): removes the delete markers made
    /// since `since` (by the storage's clock) that hide objects under the
    /// prefix, so objects someone deleted with a plain DELETE (their locked
    /// versions kept) are back; leases and `tmp/` stay deleted. The keys
    /// brought back. A bucket without versioning (or Azure here) is refused
    /// with [`EngineError::Invalid`] naming it.
    pub fn undelete(&self, since: chrono::DateTime<chrono::Utc>) -> Result<Vec<String>> {
        let Some(raw) = self.s3_raw.clone() else {
            return Err(EngineError::Invalid(format!(
                "repository {}: undelete needs an S3 bucket with versioning; this Azure container keeps no deleted versions Sendense can bring back",
                self.describe
            )));
        };
        let r = raw.clone();
        let versioned = block_on(async move { r.versioning().await })
            .map_err(|e| EngineError::Pipeline(format!("repository {}: reading the versioning of bucket '{}': {e}", self.describe, raw.bucket())))?;
        if !versioned {
            return Err(EngineError::Invalid(format!(
                "repository {}: bucket '{}' has no versioning, so deleted objects are gone for good and there is nothing to undelete (create the bucket with Object Lock, which turns versioning on)",
                self.describe,
                raw.bucket()
            )));
        }
        block_on(async move { raw.undelete(since).await })
            .map_err(|e| EngineError::Pipeline(format!("repository {}: removing delete markers: {e}", self.describe)))
    }

    /// Requests this backend has sent so far, by method.
    pub fn requests(&self) -> RequestCounts {
        self.counters.snapshot()
    }

    fn err(&self, key: &str, e: object_store::Error) -> EngineError {
        storage_error(&self.describe, key, e)
    }

    fn run<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(Arc<dyn ObjectStore>, ObjPath) -> futures_util::future::BoxFuture<'static, object_store::Result<T>>,
    ) -> Result<T> {
        let fut = f(self.store.clone(), ObjPath::from(key));
        block_on(fut).map_err(|e| self.err(key, e))
    }

    /// An Object Lock request's failure as an engine error.
    fn lock_error(&self, key: &str, what: &str, e: String) -> EngineError {
        EngineError::object(key, std::io::Error::other(format!("repository {}: {what}: {e}", self.describe)))
    }

    fn touch_by_copy(&self, key: &str) -> std::result::Result<bool, String> {
        if let Some(raw) = &self.s3_raw {
            let (raw, key) = (raw.clone(), key.to_string());
            return block_on(async move { raw.touch(&key).await });
        }
        let (store, path) = (self.store.clone(), ObjPath::from(key));
        match block_on(async move { store.copy(&path, &path).await }) {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(error_chain(&e)),
        }
    }

    fn touch_by_rewrite(&self, key: &str) -> Result<bool> {
        let (store, path) = (self.store.clone(), ObjPath::from(key));
        let r = block_on(async move {
            let got = match store.get_opts(&path, GetOptions::default()).await {
                Ok(g) => g,
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e),
            };
            let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
            let body = got.bytes().await?;
            let opts = PutOptions { mode: PutMode::Update(version), ..Default::default() };
            match store.put_opts(&path, PutPayload::from(body), opts).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        });
        r.map_err(|e| self.err(key, e))
    }
}

impl Repository for ObjectRepository {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let b = self.run(key, |s, p| Box::pin(async move { s.get(&p).await?.bytes().await }))?;
        Ok(b.into())
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let range = offset..offset + len as u64;
        let b = self.run(key, move |s, p| Box::pin(async move { s.get_range(&p, range).await }))?;
        if b.len() != len {
            return Err(EngineError::object(
                key,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("repository {}: asked {len} bytes at {offset}, got {}", self.describe, b.len()),
                ),
            ));
        }
        Ok(b.into())
    }

    /// Each request waits about a round trip plus the server's time to
    /// first byte (moto: ~5 ms for a small range): 8 in flight keep a
    /// loopback or LAN store busy without flooding a throttling one.
    fn parallel_requests(&self) -> usize {
        8
    }

    fn request_counts(&self) -> Option<RequestCounts> {
        Some(self.requests())
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let payload = PutPayload::from(Bytes::copy_from_slice(data));
        self.run(key, move |s, p| Box::pin(async move { s.put(&p, payload).await }))?;
        Ok(())
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let payload = PutPayload::from(Bytes::copy_from_slice(data));
        let r = self.run(key, move |s, p| {
            Box::pin(async move {
                let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
                match s.put_opts(&p, payload, opts).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                    Err(e) => Err(e),
                }
            })
        })?;
        Ok(r)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.run(key, |s, p| {
            Box::pin(async move {
                match s.delete(&p).await {
                    Err(object_store::Error::NotFound { .. }) => Ok(()),
                    r => r,
                }
            })
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        // List the folder part, filter by the rest (as the local backend does).
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let (store, dir_path) = (self.store.clone(), (!dir.is_empty()).then(|| ObjPath::from(dir)));
        let metas = block_on(async move { store.list(dir_path.as_ref()).try_collect::<Vec<_>>().await })
            .map_err(|e| self.err(prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: decode_key(m.location.as_ref()),
                size: m.size,
                modified: SystemTime::from(m.last_modified),
            })
            .filter(|o| o.key.starts_with(prefix))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let r = self.run(key, |s, p| {
            Box::pin(async move {
                match s.head(&p).await {
                    Ok(m) => Ok(Some(m)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
        })?;
        Ok(r.map(|m| ObjectInfo { key: key.to_string(), size: m.size, modified: SystemTime::from(m.last_modified) }))
    }

    fn touch(&self, key: &str) -> Result<bool> {
        if self.touch_mode.load(Ordering::Relaxed) != TOUCH_BY_REWRITE {
            match self.touch_by_copy(key) {
                Ok(alive) => {
                    if alive {
                        self.touch_mode.store(TOUCH_BY_COPY, Ordering::Relaxed);
                    }
                    return Ok(alive);
                }
                Err(e) if self.touch_mode.load(Ordering::Relaxed) == TOUCH_BY_COPY => {
                    return Err(EngineError::object(
                        key,
                        std::io::Error::other(format!("repository {}: refreshing its time: {e}", self.describe)),
                    ))
                }
                Err(e) => {
                    tracing::info!(repository = %self.describe, "copy onto itself refused ({e}); touch rewrites objects instead");
                    self.touch_mode.store(TOUCH_BY_REWRITE, Ordering::Relaxed);
                }
            }
        }
        self.touch_by_rewrite(key)
    }

    fn lock_support(&self) -> Result<LockSupport> {
        let Some(raw) = &self.s3_raw else { return Ok(LockSupport::None) };
        if let Some(s) = self.lock_support.get() {
            return Ok(*s);
        }
        let r = raw.clone();
        let conf = block_on(async move { r.lock_configuration().await }).map_err(|e| {
            EngineError::Pipeline(format!(
                "repository {}: reading the Object Lock configuration of bucket '{}': {e}",
                self.describe,
                raw.bucket()
            ))
        })?;
        let support = if conf.enabled { LockSupport::Storage } else { LockSupport::None };
        Ok(*self.lock_support.get_or_init(|| support))
    }

    fn retention(&self, key: &str) -> Result<Option<Retention>> {
        let Some(raw) = &self.s3_raw else { return Ok(None) };
        let (r, k) = (raw.clone(), key.to_string());
        match block_on(async move { r.retention(&k).await }) {
            Ok(Some(ret)) => Ok(ret),
            Ok(None) => Err(EngineError::NotFound { key: key.to_string() }),
            Err(e) => Err(self.lock_error(key, "reading its retention", e)),
        }
    }

    fn object_retention(&self, key: &str) -> Result<Option<Retention>> {
        let Some(raw) = &self.s3_raw else { return Ok(None) };
        let (r, k) = (raw.clone(), key.to_string());
        match block_on(async move { r.get_retention(&k, None).await }) {
            Ok(Some(ret)) => Ok(ret),
            Ok(None) => Err(EngineError::NotFound { key: key.to_string() }),
            Err(e) => Err(self.lock_error(key, "reading its retention (GetObjectRetention)", e)),
        }
    }

    fn undelete(&self, since: chrono::DateTime<chrono::Utc>) -> Result<Vec<String>> {
        ObjectRepository::undelete(self, since)
    }

    fn sweep_versions(&self, superseded_before: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> Result<crate::engine::repository::SweepReport> {
        let Some(raw) = self.s3_raw.clone() else { return Ok(Default::default()) };
        block_on(async move { raw.sweep_versions(superseded_before, now).await })
            .map_err(|e| EngineError::Pipeline(format!("repository {}: sweeping old versions: {e}", self.describe)))
    }

    fn retain(&self, key: &str, until: chrono::DateTime<chrono::Utc>, mode: LockMode) -> Result<Retention> {
        let Some(raw) = &self.s3_raw else {
            return Err(self.lock_error(key, "locking it", "Azure Blob here cannot lock objects (immutability is Sendense's only)".into()));
        };
        let retention = Retention { mode, until };
        let (r, k) = (raw.clone(), key.to_string());
        match block_on(async move { r.put_retention(&k, None, &retention).await }) {
            Ok(true) => Ok(retention),
            Ok(false) => Err(EngineError::NotFound { key: key.to_string() }),
            Err(e) => Err(self.lock_error(key, &format!("locking it until {} ({mode})", until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)), e)),
        }
    }
}

/// Object keys come back percent-encoded where object_store encodes
/// (`%`, `#`, `~`...); the engine's keys are the decoded ones.
fn decode_key(raw: &str) -> String {
    if !raw.contains('%') {
        return raw.to_string();
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&raw[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `https://s3.example.com` → `https://bucket.s3.example.com` (virtual-hosted
/// addressing); an endpoint already naming the bucket stays.
pub(crate) fn virtual_host_endpoint(endpoint: &str, bucket: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    match e.split_once("://") {
        Some((scheme, rest)) if !rest.starts_with(&format!("{bucket}.")) => format!("{scheme}://{bucket}.{rest}"),
        _ => e.to_string(),
    }
}

/// `sv=..&sig=..` (with or without a leading `?`) as query pairs.
fn split_sas(sas: &str) -> Vec<(String, String)> {
    sas.trim_start_matches('?')
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode_key(k), decode_key(v))
        })
        .collect()
}

/// The store's error code from an S3/Azure XML error body (`<Code>..</Code>`)
/// anywhere in the error's text.
fn error_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(&text[start..end])
}

/// An object_store error as an engine error naming the repository, the
/// object and the cause in words.
pub(crate) fn storage_error(repo: &str, key: &str, e: object_store::Error) -> EngineError {
    use std::io::ErrorKind;
    let text = error_chain(&e);
    let code = error_code(&text).map(str::to_string);
    let with_code = |words: &str| match &code {
        Some(c) => format!("{words} ({c})"),
        None => words.to_string(),
    };
    let status = http_status(&text);
    // `507 XMinioStorageFull: Storage backend has reached ...`: the
    // storage's own words, for the person who has to act on them.
    let answer = || {
        let mut s = status.map(|s| s.to_string()).unwrap_or_default();
        if let Some(c) = &code {
            s = if s.is_empty() { c.clone() } else { format!("{s} {c}") };
        }
        match error_message(&text) {
            Some(m) if !s.is_empty() => format!("{s}: {m}"),
            Some(m) => m.to_string(),
            None => s,
        }
    };
    let (kind, why) = match (&e, code.as_deref()) {
        (_, Some("NoSuchBucket")) => (ErrorKind::Other, "the bucket does not exist (NoSuchBucket)".to_string()),
        // Full drives (MinIO's 507), a used-up bucket or user quota (Ceph's
        // 403 QuotaExceeded, MinIO's bucket quota), an Azure account at its
        // capacity: the storage refuses new objects until space is freed.
        _ if status == Some(507) || code.as_deref().is_some_and(is_full_code) => (
            ErrorKind::StorageFull,
            format!("the storage is full or over its quota and refuses new objects ({}{}): free space or raise the quota there, then back up again", answer(), retried(&text)),
        ),
        // Throttling still answered after object_store's retries with backoff.
        _ if status == Some(503) || status == Some(429) || code.as_deref().is_some_and(is_throttle_code) => (
            ErrorKind::Other,
            format!(
                "the storage kept throttling requests ({}{}{}); it is overloaded or this account is over its request rate",
                answer(),
                throttled_for(&text),
                retried(&text)
            ),
        ),
        (_, Some("ContainerNotFound")) => {
            (ErrorKind::Other, "the container does not exist (ContainerNotFound)".to_string())
        }
        (_, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AuthenticationFailed" | "InvalidSecurity")) => (
            ErrorKind::PermissionDenied,
            with_code("wrong credentials: the store refused the access key or secret"),
        ),
        (object_store::Error::NotFound { .. }, _) => (ErrorKind::NotFound, "not found".to_string()),
        (object_store::Error::Unauthenticated { .. }, _) => {
            (ErrorKind::PermissionDenied, with_code("wrong credentials: the store refused them"))
        }
        (object_store::Error::PermissionDenied { .. }, _) => (
            ErrorKind::PermissionDenied,
            format!(
                "access denied: the storage refuses this request with these credentials ({}): wrong credentials, or they lack permission on this bucket or container",
                answer()
            ),
        ),
        _ if text.contains("HTTP error") && text.contains("certificate") => (
            ErrorKind::Other,
            format!("the endpoint's TLS certificate is not trusted by this machine ({})", innermost(&e)),
        ),
        _ if text.contains("HTTP error") && (text.contains("onnect") || text.contains("dns error")) => {
            (ErrorKind::ConnectionRefused, format!("the endpoint does not answer ({}{})", innermost(&e), retried(&text)))
        }
        _ if text.contains("no complete answer within") || text.contains("timed out") => {
            (ErrorKind::TimedOut, format!("the endpoint did not answer in time ({}{})", innermost(&e), retried(&text)))
        }
        _ if status.is_some_and(|s| s >= 500) => (
            ErrorKind::Other,
            format!("the storage failed the request ({}{})", answer(), retried(&text)),
        ),
        _ => (ErrorKind::Other, short(&text)),
    };
    if kind == ErrorKind::NotFound {
        return EngineError::NotFound { key: key.to_string() };
    }
    EngineError::object(key, std::io::Error::new(kind, format!("repository {repo}: {why}")))
}

/// Codes of a storage that refuses new objects for want of space or quota.
fn is_full_code(code: &str) -> bool {
    matches!(code, "XMinioStorageFull" | "QuotaExceeded" | "XMinioAdminBucketQuotaExceeded" | "InsufficientStorage")
}

/// Codes of a storage asking for fewer requests.
fn is_throttle_code(code: &str) -> bool {
    matches!(code, "SlowDown" | "ServerBusy" | "TooManyRequests" | "RequestLimitExceeded" | "Throttling")
}

/// The HTTP status of a storage's error answer
/// (`Server returned non-2xx status code: 507 Insufficient Storage: ...`).
fn http_status(text: &str) -> Option<u16> {
    let i = text.find("status code: ")? + "status code: ".len();
    text.get(i..i + 3)?.parse().ok()
}

/// The store's message from an S3/Azure XML error body (`<Message>..</Message>`),
/// on one line and cut to a readable length.
fn error_message(text: &str) -> Option<String> {
    let start = text.find("<Message>")? + "<Message>".len();
    let end = text[start..].find("</Message>")? + start;
    let m = text[start..end].split_whitespace().collect::<Vec<_>>().join(" ");
    (!m.is_empty()).then(|| short(&m))
}

/// The deepest cause (`tcp connect error: Connection refused (os error 111)`).
fn innermost(e: &object_store::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// `, throttled 9 times over 20.4 s` from the connector's text when it gave up
/// on a throttled request (`the storage throttled this request 9 times
/// over 20.4 s; its last answer: ...`).
fn throttled_for(text: &str) -> String {
    const MARK: &str = "throttled this request ";
    let Some(i) = text.find(MARK).map(|i| i + MARK.len()) else { return String::new() };
    let tail = &text[i..];
    let end = tail.find(';').unwrap_or(tail.len());
    format!(", throttled {}", &tail[..end])
}

/// `, after 10 retries in 41.2 s` when object_store retried (its text:
/// `Error performing PUT URL in 41.2s, after 10 retries, max_retries: ...`).
fn retried(text: &str) -> String {
    let Some(i) = text.find(", after ").map(|i| i + 2) else { return String::new() };
    let tail = &text[i..];
    let end = tail.find(',').unwrap_or(tail.len());
    let after = &tail[..end];
    if !after.ends_with(" retries") && !after.ends_with(" retry") {
        return String::new();
    }
    // The time is the last word before `, after`: `41.2s`, `912.3ms`.
    let took = text[..i - 2].rsplit(' ').next().and_then(|t| {
        let (n, scale) = match t.strip_suffix("ms") {
            Some(n) => (n, 0.001),
            None => (t.strip_suffix('s')?, 1.0),
        };
        n.parse::<f64>().ok().map(|v| v * scale)
    });
    match took {
        Some(secs) => format!(", {after} in {secs:.1} s"),
        None => format!(", {after}"),
    }
}

fn error_chain(e: &object_store::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(c) = source {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        source = c.source();
    }
    s
}

/// An error text cut to a readable length (XML bodies can be long).
fn short(text: &str) -> String {
    const MAX: usize = 600;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_and_sas_splits() {
        assert_eq!(decode_key("snapshots/vm%23one/x.json"), "snapshots/vm#one/x.json");
        assert_eq!(decode_key("100%"), "100%");
        assert_eq!(
            split_sas("?sv=2022-11-02&sig=a%2Bb"),
            vec![("sv".to_string(), "2022-11-02".to_string()), ("sig".to_string(), "a+b".to_string())]
        );
        assert_eq!(error_code("x: <Error><Code>NoSuchBucket</Code></Error>"), Some("NoSuchBucket"));
        assert_eq!(virtual_host_endpoint("https://s3.example.com/", "b"), "https://b.s3.example.com");
        assert_eq!(virtual_host_endpoint("http://b.s3.example.com", "b"), "http://b.s3.example.com");
    }

    #[test]
    fn errors_name_the_repository_and_the_cause() {
        let e = object_store::Error::PermissionDenied {
            path: "config.json".into(),
            source: "<Error><Code>InvalidAccessKeyId</Code></Error>".into(),
        };
        let msg = storage_error("s3://b at http://h", "config.json", e).to_string();
        assert!(msg.contains("s3://b at http://h") && msg.contains("wrong credentials"), "{msg}");
        let e = object_store::Error::NotFound { path: "x".into(), source: "404".into() };
        assert!(matches!(storage_error("r", "x", e), EngineError::NotFound { .. }));
        let e = object_store::Error::NotFound { path: "x".into(), source: "<Code>NoSuchBucket</Code>".into() };
        let msg = storage_error("r", "x", e).to_string();
        assert!(msg.contains("bucket does not exist"), "{msg}");
    }

    #[test]
    fn a_full_or_throttling_storage_is_said_so_with_its_own_words() {
        let body = "<?xml version=\"1.0\"?><Error><Code>XMinioStorageFull</Code><Message>Storage backend has reached its minimum free drive threshold.</Message></Error>";
        let text = format!("Error performing PUT http://h/b/packs/1 in 41.23456s, after 10 retries, max_retries: 10, retry_timeout: 180s  - Server returned non-2xx status code: 507 Insufficient Storage: {body}");
        assert_eq!(http_status(&text), Some(507));
        assert_eq!(retried(&text), ", after 10 retries in 41.2 s");
        let e = object_store::Error::Generic { store: "S3", source: text.into() };
        let msg = storage_error("s3://b at http://h", "packs/1", e).to_string();
        assert!(
            msg.contains("s3://b at http://h: the storage is full or over its quota")
                && msg.contains("(507 XMinioStorageFull: Storage backend has reached its minimum free drive threshold., after 10 retries in 41.2 s)"),
            "{msg}"
        );
        let e = object_store::Error::PermissionDenied {
            path: "packs/1".into(),
            source: "Error performing PUT http://h/b/packs/1 in 3ms - Server returned non-2xx status code: 403 Forbidden: <Error><Code>QuotaExceeded</Code><Message>Retry after a while</Message></Error>".into(),
        };
        let msg = storage_error("r", "packs/1", e).to_string();
        assert!(msg.contains("over its quota") && msg.contains("(403 QuotaExceeded: Retry after a while)"), "{msg}");
        let e = object_store::Error::Generic {
            store: "MicrosoftAzure",
            source: "Error performing PUT u in 180.1s, after 9 retries, max_retries: 10 - Server returned non-2xx status code: 503 Service Unavailable: <Error><Code>ServerBusy</Code><Message>busy</Message></Error>".into(),
        };
        let msg = storage_error("r", "packs/1", e).to_string();
        assert!(msg.contains("kept throttling requests (503 ServerBusy: busy, after 9 retries in 180.1 s)"), "{msg}");
        let e = object_store::Error::Generic {
            store: "S3",
            source: "Error performing PUT u in 20.5s - HTTP error: the storage throttled this request 9 times over 20.4 s; its last answer: Server returned non-2xx status code: 503 Service Unavailable: <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".into(),
        };
        let msg = storage_error("r", "packs/1", e).to_string();
        assert!(msg.contains("kept throttling requests (503 SlowDown: Please reduce your request rate., throttled 9 times over 20.4 s)"), "{msg}");
    }
}
