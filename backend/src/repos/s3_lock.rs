//! S3 Object Lock requests object_store lacks, signed with its
//! [`AwsAuthorizer`] (every header we add, `Content-MD5` included, is
//! signed: AWS refuses unsigned `x-amz-*` headers, though moto accepts them)
//! and sent through our connector ([`super::http`]). No hand-written signing.
//!
//! * [`S3Raw::put_retention`]: PutObjectRetention
//!   (`PUT /key?retention[&versionId=]`, XML body, `Content-MD5`), on the
//!   current version unless a version is named. Retention is only ever
//!   extended by Sendense (AWS refuses to shorten COMPLIANCE, and GOVERNANCE
//!   only with the bypass permission, which we never send).
//! * [`S3Raw::retention`]: the retention of an object read from a HEAD's
//!   `x-amz-object-lock-mode` / `x-amz-object-lock-retain-until-date`
//!   headers (one cheap request per pack for the lock band checks).
//! * [`S3Raw::get_retention`]: GetObjectRetention (`GET /key?retention`),
//!   the storage's own record of a restore point's lock (its manifest). moto
//!   ignores the `retention` subresource and answers the object itself with
//!   the lock headers: that answer is read from its headers (boto3's
//!   `get_object_retention` fails on it).
//! * [`S3Raw::versioning`]: GetBucketVersioning, whether deletes leave the
//!   old versions (undelete needs it).
//! * [`S3Raw::lock_configuration`]: GetObjectLockConfiguration, whether the
//!   bucket was created with Object Lock (a bucket without it answers 404
//!   `ObjectLockConfigurationNotFoundError`), and its default retention.
//! * [`S3Raw::undelete`]: removes the delete markers that hide objects
//!   (ListObjectVersions, then DeleteObject with the marker's VersionId):
//!   after a plain DELETE of every key by someone holding the credentials,
//!   the locked versions are current again.

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use md5::Digest as _;
use object_store::aws::AwsAuthorizer;
use object_store::client::{HttpRequest, HttpRequestBody};

use super::s3_raw::S3Raw;
use crate::engine::repository::{LockMode, Retention, SweepReport};

const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// The bucket's Object Lock configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConfiguration {
    /// `ObjectLockEnabled` is `Enabled`.
    pub enabled: bool,
    /// A default retention rule (`GOVERNANCE 30 Days`), applied by the
    /// bucket to every new object version.
    pub default_retention: Option<String>,
}

/// What an S3 request answered: status, headers, body.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// `PutObjectRetention answered 400 InvalidRequest: Bucket is missing Object Lock Configuration`.
    fn failure(&self, what: &str) -> String {
        let text = String::from_utf8_lossy(&self.body);
        match (xml_text(&text, "Code"), xml_text(&text, "Message")) {
            (Some(code), Some(msg)) => format!("{what} answered {} {code}: {msg}", self.status.as_u16()),
            (Some(code), None) => format!("{what} answered {} {code}", self.status.as_u16()),
            _ => format!("{what} answered {}", self.status),
        }
    }

    fn code(&self) -> Option<String> {
        xml_text(&String::from_utf8_lossy(&self.body), "Code")
    }
}

/// The XML body of PutObjectRetention.
pub fn retention_xml(mode: LockMode, until: DateTime<Utc>) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Retention xmlns="{S3_XMLNS}"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>"#,
        mode.as_s3(),
        until.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// `Content-MD5` of a body: base64 of its MD5.
pub fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

/// The text of the first `<tag>..</tag>` in an S3 XML document.
fn xml_text(doc: &str, tag: &str) -> Option<String> {
    let parsed = roxmltree::Document::parse(doc).ok()?;
    parsed
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == tag)
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
}

/// A GetObjectLockConfiguration answer's body.
pub fn parse_lock_configuration(doc: &str) -> Result<LockConfiguration, String> {
    let parsed = roxmltree::Document::parse(doc).map_err(|e| format!("unreadable ObjectLockConfiguration: {e}"))?;
    let find = |tag: &str| {
        parsed.descendants().find(|n| n.is_element() && n.tag_name().name() == tag).and_then(|n| n.text()).map(str::trim)
    };
    if !parsed.descendants().any(|n| n.is_element() && n.tag_name().name() == "ObjectLockConfiguration") {
        return Err("the answer holds no ObjectLockConfiguration".into());
    }
    let enabled = find("ObjectLockEnabled") == Some("Enabled");
    let default_retention = find("Mode").map(|mode| {
        match (find("Days"), find("Years")) {
            (Some(d), _) => format!("{mode} {d} days"),
            (None, Some(y)) => format!("{mode} {y} years"),
            (None, None) => mode.to_string(),
        }
    });
    Ok(LockConfiguration { enabled, default_retention })
}

/// The retention in a HEAD answer's headers; `None` when the object has none.
pub fn retention_from_headers(headers: &HeaderMap) -> Result<Option<Retention>, String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let (Some(mode), Some(until)) = (get("x-amz-object-lock-mode"), get("x-amz-object-lock-retain-until-date")) else {
        return Ok(None);
    };
    let mode = LockMode::from_s3(mode).ok_or_else(|| format!("unknown Object Lock mode '{mode}'"))?;
    let until = DateTime::parse_from_rfc3339(until)
        .map_err(|e| format!("unreadable retain-until date '{until}': {e}"))?
        .with_timezone(&Utc);
    Ok(Some(Retention { mode, until }))
}

/// A GetObjectRetention answer's body: `<Retention><Mode>..</Mode><RetainUntilDate>..</RetainUntilDate></Retention>`;
/// `Ok(None)` when the body is no `Retention` document.
pub fn parse_retention(doc: &str) -> Result<Option<Retention>, String> {
    let Ok(parsed) = roxmltree::Document::parse(doc) else { return Ok(None) };
    if parsed.root_element().tag_name().name() != "Retention" {
        return Ok(None);
    }
    let find = |tag: &str| {
        parsed.descendants().find(|n| n.is_element() && n.tag_name().name() == tag).and_then(|n| n.text()).map(str::trim)
    };
    let (Some(mode), Some(until)) = (find("Mode"), find("RetainUntilDate")) else {
        return Err("a Retention without Mode or RetainUntilDate".into());
    };
    let mode = LockMode::from_s3(mode).ok_or_else(|| format!("unknown Object Lock mode '{mode}'"))?;
    let until = DateTime::parse_from_rfc3339(until)
        .map_err(|e| format!("unreadable RetainUntilDate '{until}': {e}"))?
        .with_timezone(&Utc);
    Ok(Some(Retention { mode, until }))
}

/// A GetBucketVersioning answer's body: `Status` is `Enabled` (`Suspended`
/// or no status: deletes remove objects for good).
pub fn parse_versioning(doc: &str) -> Result<bool, String> {
    let parsed = roxmltree::Document::parse(doc).map_err(|e| format!("unreadable VersioningConfiguration: {e}"))?;
    Ok(parsed.descendants().any(|n| n.is_element() && n.tag_name().name() == "Status" && n.text().map(str::trim) == Some("Enabled")))
}

/// One version or delete marker of ListObjectVersions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    pub key: String,
    pub version: String,
    pub latest: bool,
    pub marker: bool,
    pub modified: DateTime<Utc>,
    pub size: u64,
}

/// The non-current entries of a listing, each with when it stopped being
/// current (the modification time of the next newer entry of its key).
pub fn superseded(mut entries: Vec<VersionEntry>) -> Vec<(VersionEntry, DateTime<Utc>)> {
    entries.sort_by(|a, b| a.key.cmp(&b.key).then(b.latest.cmp(&a.latest)).then(b.modified.cmp(&a.modified)));
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.latest || i == 0 || entries[i - 1].key != e.key {
            continue;
        }
        out.push((e.clone(), entries[i - 1].modified));
    }
    out
}

/// One page of ListObjectVersions.
pub struct VersionsPage {
    /// (full key, version id, made) of delete markers that are a key's latest version.
    pub latest_markers: Vec<(String, String, DateTime<Utc>)>,
    /// Every version and delete marker listed, in the page's order.
    pub entries: Vec<VersionEntry>,
    pub truncated: bool,
    pub next_key: Option<String>,
    pub next_version: Option<String>,
}

pub fn parse_versions(doc: &str) -> Result<VersionsPage, String> {
    let parsed = roxmltree::Document::parse(doc).map_err(|e| format!("unreadable ListVersionsResult: {e}"))?;
    let root = parsed.root_element();
    let child = |n: roxmltree::Node, tag: &str| {
        n.children().find(|c| c.is_element() && c.tag_name().name() == tag).and_then(|c| c.text()).map(|t| t.to_string())
    };
    let latest_markers = root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "DeleteMarker")
        .filter(|n| child(*n, "IsLatest").as_deref() == Some("true"))
        .filter_map(|n| {
            let made = DateTime::parse_from_rfc3339(&child(n, "LastModified")?).ok()?.with_timezone(&Utc);
            Some((child(n, "Key")?, child(n, "VersionId")?, made))
        })
        .collect();
    let entries = root
        .children()
        .filter(|n| n.is_element() && matches!(n.tag_name().name(), "Version" | "DeleteMarker"))
        .filter_map(|n| {
            Some(VersionEntry {
                key: child(n, "Key")?,
                version: child(n, "VersionId")?,
                latest: child(n, "IsLatest").as_deref() == Some("true"),
                marker: n.tag_name().name() == "DeleteMarker",
                modified: DateTime::parse_from_rfc3339(&child(n, "LastModified")?).ok()?.with_timezone(&Utc),
                size: child(n, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
            })
        })
        .collect();
    Ok(VersionsPage {
        entries,
        latest_markers,
        truncated: child(root, "IsTruncated").as_deref() == Some("true"),
        next_key: child(root, "NextKeyMarker"),
        next_version: child(root, "NextVersionIdMarker"),
    })
}

fn header(v: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(v).map_err(|e| e.to_string())
}

/// `?a&b=c` query values, percent-encoded (version ids can hold `+`, `/`, `=`).
fn query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3Raw {
    /// The URL of `key` (`None`: the bucket itself) with `query`.
    pub(super) fn url(&self, key: Option<&str>, query: &str) -> String {
        let base = match key {
            Some(k) => format!("{}/{}", self.bucket_url, self.encoded_key(k)),
            // A virtual-hosted bucket's URL has no path: the bucket is `/`.
            None if !self.bucket_url.split_once("://").is_some_and(|(_, rest)| rest.contains('/')) => {
                format!("{}/", self.bucket_url)
            }
            None => self.bucket_url.clone(),
        };
        if query.is_empty() {
            base
        } else {
            format!("{base}?{query}")
        }
    }

    /// The signed request (not sent).
    pub(super) fn signed(
        &self,
        method: Method,
        url: &str,
        headers: &[(&'static str, String)],
        body: Option<Bytes>,
    ) -> Result<HttpRequest, String> {
        let len = body.as_ref().map_or(0, |b| b.len());
        let body = body.map(HttpRequestBody::from).unwrap_or_else(HttpRequestBody::empty);
        let mut req: HttpRequest = http::Request::builder().method(method).uri(url).body(body).map_err(|e| e.to_string())?;
        let h = req.headers_mut();
        for (name, value) in headers {
            h.insert(*name, header(value)?);
        }
        h.insert(http::header::CONTENT_LENGTH, header(&len.to_string())?);
        AwsAuthorizer::new(&self.credential, "s3", &self.region).try_authorize(&mut req, None).map_err(|e| e.to_string())?;
        Ok(req)
    }

    pub(super) async fn send(&self, req: HttpRequest) -> Result<Answer, String> {
        let resp = self.client.execute(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().bytes().await.map_err(|e| e.to_string())?;
        Ok(Answer { status, headers, body })
    }

    /// The PutObjectRetention request of `key` (not sent).
    pub(super) fn retention_request(&self, key: &str, version: Option<&str>, retention: &Retention) -> Result<HttpRequest, String> {
        let query = match version {
            Some(v) => format!("retention&versionId={}", query_value(v)),
            None => "retention".to_string(),
        };
        let body = retention_xml(retention.mode, retention.until);
        let headers = [("content-md5", content_md5(body.as_bytes())), ("content-type", "application/xml".to_string())];
        self.signed(Method::PUT, &self.url(Some(key), &query), &headers, Some(Bytes::from(body)))
    }

    /// Sets `key`'s retention (its current version, or `version`).
    /// `Ok(false)`: no such object.
    pub async fn put_retention(&self, key: &str, version: Option<&str>, retention: &Retention) -> Result<bool, String> {
        let answer = self.send(self.retention_request(key, version, retention)?).await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND if matches!(answer.code().as_deref(), Some("NoSuchKey" | "NoSuchVersion")) => Ok(false),
            _ => Err(answer.failure("PutObjectRetention")),
        }
    }

    /// `key`'s retention from a HEAD: `Ok(None)` no such object,
    /// `Ok(Some(None))` an object without retention.
    pub async fn retention(&self, key: &str) -> Result<Option<Option<Retention>>, String> {
        let req = self.signed(Method::HEAD, &self.url(Some(key), ""), &[], None)?;
        let answer = self.send(req).await?;
        match answer.status {
            s if s.is_success() => retention_from_headers(&answer.headers).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(format!("HEAD answered {s}")),
        }
    }

    /// GetObjectRetention of `key` (its current version, or `version`):
    /// `Ok(None)` no such object, `Ok(Some(None))` an object without
    /// retention.
    pub async fn get_retention(&self, key: &str, version: Option<&str>) -> Result<Option<Option<Retention>>, String> {
        let query = match version {
            Some(v) => format!("retention&versionId={}", query_value(v)),
            None => "retention".to_string(),
        };
        let answer = self.send(self.signed(Method::GET, &self.url(Some(key), &query), &[], None)?).await?;
        match answer.status {
            s if s.is_success() => match parse_retention(&String::from_utf8_lossy(&answer.body))? {
                Some(r) => Ok(Some(Some(r))),
                // A server that answered the object itself (moto): its lock headers.
                None => retention_from_headers(&answer.headers).map(Some),
            },
            StatusCode::NOT_FOUND if answer.code().as_deref() == Some("NoSuchObjectLockConfiguration") => Ok(Some(None)),
            StatusCode::NOT_FOUND if matches!(answer.code().as_deref(), Some("NoSuchKey" | "NoSuchVersion") | None) => Ok(None),
            // AWS: "Bucket is missing Object Lock Configuration".
            StatusCode::BAD_REQUEST if answer.code().as_deref() == Some("InvalidRequest") => Ok(Some(None)),
            _ => Err(answer.failure("GetObjectRetention")),
        }
    }

    /// GetBucketVersioning: whether the bucket keeps old versions.
    pub async fn versioning(&self) -> Result<bool, String> {
        let answer = self.send(self.signed(Method::GET, &self.url(None, "versioning"), &[], None)?).await?;
        if !answer.status.is_success() {
            return Err(answer.failure("GetBucketVersioning"));
        }
        parse_versioning(&String::from_utf8_lossy(&answer.body))
    }

    /// GetObjectLockConfiguration of the bucket.
    pub async fn lock_configuration(&self) -> Result<LockConfiguration, String> {
        let req = self.signed(Method::GET, &self.url(None, "object-lock"), &[], None)?;
        let answer = self.send(req).await?;
        match answer.status {
            s if s.is_success() => parse_lock_configuration(&String::from_utf8_lossy(&answer.body)),
            StatusCode::NOT_FOUND if answer.code().as_deref() == Some("ObjectLockConfigurationNotFoundError") => {
                Ok(LockConfiguration { enabled: false, default_retention: None })
            }
            _ => Err(answer.failure("GetObjectLockConfiguration")),
        }
    }

    /// Removes every delete marker that is the latest version of a key
    /// under the prefix and was made at or after `since` (the key's
    /// previous version becomes current again); never over `locks/` or
    /// `tmp/` (leases and temporary objects Sendense removed itself). The
    /// keys brought back, relative to the prefix.
    pub async fn undelete(&self, since: DateTime<Utc>) -> Result<Vec<String>, String> {
        let mut markers = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let mut query = format!("versions&prefix={}", query_value(&self.prefix));
            if let Some(k) = &key_marker {
                query.push_str(&format!("&key-marker={}", query_value(k)));
            }
            if let Some(v) = &version_marker {
                query.push_str(&format!("&version-id-marker={}", query_value(v)));
            }
            let answer = self.send(self.signed(Method::GET, &self.url(None, &query), &[], None)?).await?;
            if !answer.status.is_success() {
                return Err(answer.failure("ListObjectVersions"));
            }
            let page = parse_versions(&String::from_utf8_lossy(&answer.body))?;
            markers.extend(page.latest_markers.into_iter().filter(|(key, _, made)| {
                let relative = key.strip_prefix(self.prefix.as_str()).unwrap_or(key);
                *made >= since && !relative.starts_with("locks/") && !relative.starts_with("tmp/")
            }));
            if !page.truncated {
                break;
            }
            (key_marker, version_marker) = (page.next_key, page.next_version);
            if key_marker.is_none() {
                return Err("ListObjectVersions said truncated without a next marker".into());
            }
        }
        let mut restored = Vec::new();
        for (key, version, _) in markers {
            let url = format!("{}/{}?versionId={}", self.bucket_url, super::s3_raw::url_encode_path(&key), query_value(&version));
            let answer = self.send(self.signed(Method::DELETE, &url, &[], None)?).await?;
            if !answer.status.is_success() {
                return Err(format!("{} ({key})", answer.failure("DeleteObject of a delete marker")));
            }
            restored.push(key.strip_prefix(self.prefix.as_str()).unwrap_or(&key).to_string());
        }
        Ok(restored)
    }

    /// Every version and delete marker under the prefix (all pages).
    async fn all_versions(&self) -> Result<Vec<VersionEntry>, String> {
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let mut query = format!("versions&prefix={}", query_value(&self.prefix));
            if let Some(k) = &key_marker {
                query.push_str(&format!("&key-marker={}", query_value(k)));
            }
            if let Some(v) = &version_marker {
                query.push_str(&format!("&version-id-marker={}", query_value(v)));
            }
            let answer = self.send(self.signed(Method::GET, &self.url(None, &query), &[], None)?).await?;
            if !answer.status.is_success() {
                return Err(answer.failure("ListObjectVersions"));
            }
            let page = parse_versions(&String::from_utf8_lossy(&answer.body))?;
            out.extend(page.entries);
            if !page.truncated {
                return Ok(out);
            }
            (key_marker, version_marker) = (page.next_key, page.next_version);
            if key_marker.is_none() {
                return Err("ListObjectVersions said truncated without a next marker".into());
            }
        }
    }

    /// DeleteObject of one version (full key). `Ok(false)`: refused with
    /// AccessDenied (a retention the storage still enforces).
    async fn delete_version(&self, key: &str, version: &str) -> Result<bool, String> {
        let url = format!("{}/{}?versionId={}", self.bucket_url, super::s3_raw::url_encode_path(key), query_value(version));
        let answer = self.send(self.signed(Method::DELETE, &url, &[], None)?).await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::FORBIDDEN if answer.code().as_deref() == Some("AccessDenied") => Ok(false),
            StatusCode::NOT_FOUND => Ok(true),
            _ => Err(format!("{} ({key} version {version})", answer.failure("DeleteObject of a version"))),
        }
    }

    /// The version sweep of a versioned bucket (design §4.5): deletes the
    /// non-current versions under the prefix that stopped being current
    /// before `superseded_before` (objects GC or a lease removal deleted,
    /// replaced objects) and whose retention has ended by `now` (the
    /// storage's clock) or that never had one; delete markers no longer
    /// current hide nothing and go too. Current objects are never touched.
    /// A version the storage still refuses to delete is counted retained.
    pub async fn sweep_versions(&self, superseded_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<SweepReport, String> {
        let mut report = SweepReport::default();
        for (e, since) in superseded(self.all_versions().await?) {
            if since >= superseded_before {
                report.recent += 1;
                continue;
            }
            if !e.marker {
                let url = format!("{}/{}?versionId={}", self.bucket_url, super::s3_raw::url_encode_path(&e.key), query_value(&e.version));
                let head = self.send(self.signed(Method::HEAD, &url, &[], None)?).await?;
                if head.status.is_success() {
                    if retention_from_headers(&head.headers)?.is_some_and(|r| r.until > now) {
                        report.retained += 1;
                        continue;
                    }
                } else if head.status != StatusCode::NOT_FOUND {
                    return Err(format!("HEAD of {} version {} answered {}", e.key, e.version, head.status));
                }
            }
            match self.delete_version(&e.key, &e.version).await? {
                false => report.retained += 1,
                true if e.marker => report.markers_removed += 1,
                true => {
                    report.versions_removed += 1;
                    report.bytes_removed += e.size;
                }
            }
        }
        Ok(report)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repos::http::Connector;
    use crate::repos::spec::RepoSpec;

    fn raw(virtual_hosted: bool) -> S3Raw {
        let spec = RepoSpec::S3 {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "eu-west-3".into(),
            bucket: "locked".into(),
            prefix: "site".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            virtual_hosted,
        };
        S3Raw::new(&spec, &Connector::new()).unwrap().unwrap()
    }

    fn until() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2027-01-02T03:04:05.678Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn retention_xml_names_mode_and_date() {
        let xml = retention_xml(LockMode::Compliance, until());
        assert_eq!(
            xml,
            r#"<?xml version="1.0" encoding="UTF-8"?><Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>COMPLIANCE</Mode><RetainUntilDate>2027-01-02T03:04:05.678Z</RetainUntilDate></Retention>"#
        );
        let doc = roxmltree::Document::parse(&xml).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "Retention");
        assert!(retention_xml(LockMode::Governance, until()).contains("<Mode>GOVERNANCE</Mode>"));
        // RFC 1864: the MD5 of "" is 1B2M2Y8AsgTpgAmY7PhCfg==.
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[test]
    fn retention_request_is_signed_with_its_md5() {
        let r = raw(false);
        let ret = Retention { mode: LockMode::Governance, until: until() };
        let req = r.retention_request("packs/ab/ab cd", Some("v+1/="), &ret).unwrap();
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:9/locked/site/packs/ab/ab%20cd?retention&versionId=v%2B1%2F%3D");
        let h = req.headers();
        let body = retention_xml(LockMode::Governance, until());
        assert_eq!(h["content-md5"], content_md5(body.as_bytes()).as_str());
        assert_eq!(h["content-length"], body.len().to_string().as_str());
        let auth = h["authorization"].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
        assert!(auth.contains("/eu-west-3/s3/aws4_request"), "{auth}");
        // Content-MD5 is covered by the signature (AWS needs every header we add signed).
        let signed = auth.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap();
        assert!(signed.split(';').any(|s| s == "content-md5"), "{signed}");
        assert!(signed.split(';').any(|s| s == "x-amz-content-sha256"), "{signed}");
        // The payload hash is the body's, not UNSIGNED-PAYLOAD.
        let sha = h["x-amz-content-sha256"].to_str().unwrap();
        assert_eq!(sha, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body.as_bytes())));
        let plain = r.retention_request("manifest.json", None, &ret).unwrap();
        assert!(plain.uri().to_string().ends_with("/locked/site/manifest.json?retention"));
    }

    #[test]
    fn bucket_urls_for_both_addressings() {
        assert_eq!(raw(false).url(None, "object-lock"), "http://127.0.0.1:9/locked?object-lock");
        assert_eq!(raw(true).url(None, "object-lock"), "http://locked.127.0.0.1:9/?object-lock");
        assert_eq!(raw(true).url(Some("a/b"), ""), "http://locked.127.0.0.1:9/site/a/b");
    }

    #[test]
    fn lock_configuration_and_retention_headers_parse() {
        let on = r#"<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>"#;
        assert_eq!(parse_lock_configuration(on).unwrap(), LockConfiguration { enabled: true, default_retention: None });
        let rule = r#"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>30</Days></DefaultRetention></Rule></ObjectLockConfiguration>"#;
        assert_eq!(parse_lock_configuration(rule).unwrap().default_retention.as_deref(), Some("GOVERNANCE 30 days"));
        assert!(!parse_lock_configuration("<ObjectLockConfiguration/>").unwrap().enabled);
        assert!(parse_lock_configuration("<Error><Code>X</Code></Error>").is_err());

        let mut h = HeaderMap::new();
        assert_eq!(retention_from_headers(&h).unwrap(), None);
        h.insert("x-amz-object-lock-mode", HeaderValue::from_static("COMPLIANCE"));
        h.insert("x-amz-object-lock-retain-until-date", HeaderValue::from_static("2027-01-02T03:04:05.678Z"));
        assert_eq!(retention_from_headers(&h).unwrap(), Some(Retention { mode: LockMode::Compliance, until: until() }));
        h.insert("x-amz-object-lock-mode", HeaderValue::from_static("SOMETIMES"));
        assert!(retention_from_headers(&h).is_err());
    }

    #[test]
    fn delete_markers_that_hide_keys_are_found() {
        let doc = r#"<ListVersionsResult><IsTruncated>true</IsTruncated><NextKeyMarker>site/b</NextKeyMarker><NextVersionIdMarker>v9</NextVersionIdMarker>
            <Version><Key>site/a</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest></Version>
            <DeleteMarker><Key>site/a</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest><LastModified>2026-12-05T15:00:00.000Z</LastModified></DeleteMarker>
            <DeleteMarker><Key>site/b</Key><VersionId>m0</VersionId><IsLatest>false</IsLatest></DeleteMarker></ListVersionsResult>"#;
        let page = parse_versions(doc).unwrap();
        let made = DateTime::parse_from_rfc3339("2026-12-05T15:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(page.latest_markers, vec![("site/a".to_string(), "m1".to_string(), made)]);
        assert!(page.truncated);
        assert_eq!((page.next_key.as_deref(), page.next_version.as_deref()), (Some("site/b"), Some("v9")));
    }

    #[test]
    fn get_object_retention_answers_parse() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?><Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>GOVERNANCE</Mode><RetainUntilDate>2027-01-02T03:04:05.678Z</RetainUntilDate></Retention>"#;
        assert_eq!(parse_retention(doc).unwrap(), Some(Retention { mode: LockMode::Governance, until: until() }));
        // The object itself (a server that ignores ?retention): not a Retention.
        assert_eq!(parse_retention("{\"version\":1}").unwrap(), None);
        assert_eq!(parse_retention("<Other/>").unwrap(), None);
        assert!(parse_retention("<Retention><Mode>GOVERNANCE</Mode></Retention>").is_err());
        assert!(parse_retention("<Retention><Mode>X</Mode><RetainUntilDate>2027-01-02T03:04:05Z</RetainUntilDate></Retention>").is_err());
        assert!(parse_versioning(r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>Enabled</Status></VersioningConfiguration>"#).unwrap());
        assert!(!parse_versioning("<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>").unwrap());
        assert!(!parse_versioning("<VersioningConfiguration/>").unwrap());
        let r = raw(false);
        let req = r.signed(Method::GET, &r.url(Some("snapshots/vm1/x.json"), "retention"), &[], None).unwrap();
        assert_eq!(req.uri().to_string(), "http://127.0.0.1:9/locked/site/snapshots/vm1/x.json?retention");
        assert!(req.headers()["authorization"].to_str().unwrap().starts_with("AWS4-HMAC-SHA256 "));
    }

    #[test]
    fn superseded_versions_know_when_they_stopped_being_current() {
        let t = |m: u32| DateTime::parse_from_rfc3339(&format!("2026-12-05T15:{m:02}:00Z")).unwrap().with_timezone(&Utc);
        let doc = r#"<ListVersionsResult><IsTruncated>false</IsTruncated>
            <DeleteMarker><Key>site/p</Key><VersionId>m1</VersionId><IsLatest>true</IsLatest><LastModified>2026-12-05T15:30:00Z</LastModified></DeleteMarker>
            <Version><Key>site/p</Key><VersionId>v2</VersionId><IsLatest>false</IsLatest><LastModified>2026-12-05T15:20:00Z</LastModified><Size>7</Size></Version>
            <Version><Key>site/p</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest><LastModified>2026-12-05T15:10:00Z</LastModified><Size>5</Size></Version>
            <Version><Key>site/q</Key><VersionId>w1</VersionId><IsLatest>true</IsLatest><LastModified>2026-12-05T15:05:00Z</LastModified><Size>3</Size></Version>
            </ListVersionsResult>"#;
        let page = parse_versions(doc).unwrap();
        assert_eq!(page.entries.len(), 4);
        let mut shuffled = page.entries.clone();
        shuffled.reverse();
        let s = superseded(shuffled);
        let got: Vec<(&str, DateTime<Utc>, u64)> = s.iter().map(|(e, at)| (e.version.as_str(), *at, e.size)).collect();
        assert_eq!(got, vec![("v2", t(30), 7), ("v1", t(20), 5)]);
    }

    #[test]
    fn error_answers_are_named() {
        let a = Answer {
            status: StatusCode::BAD_REQUEST,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"<Error><Code>InvalidRequest</Code><Message>Bucket is missing Object Lock Configuration</Message></Error>"),
        };
        assert_eq!(a.failure("PutObjectRetention"), "PutObjectRetention answered 400 InvalidRequest: Bucket is missing Object Lock Configuration");
    }
}
