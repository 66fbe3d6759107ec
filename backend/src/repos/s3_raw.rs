//! S3 requests object_store does not offer, signed with its public
//! [`AwsAuthorizer`] (SigV4: every header we add is signed, as AWS requires
//! for `x-amz-*`) and sent through our connector ([`super::http`]). No
//! hand-written signing.
//!
//! * `touch`: CopyObject of an object onto itself with
//!   `x-amz-metadata-directive: REPLACE`, which refreshes Last-Modified
//!   server-side in one request (a copy onto itself that changes nothing is
//!   refused by S3, and object_store cannot send the directive). A missing
//!   source is a 404: reported absent, never recreated.
//! * Object Lock (retention, the bucket's lock configuration): [`super::s3_lock`].

use http::{HeaderValue, Method, StatusCode};
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{ClientOptions, HttpClient, HttpConnector, HttpRequest, HttpRequestBody};
use object_store::path::Path as ObjPath;

use super::http::Connector;
use super::spec::RepoSpec;

pub struct S3Raw {
    pub(super) client: HttpClient,
    pub(super) credential: AwsCredential,
    pub(super) region: String,
    pub(super) bucket: String,
    /// The bucket's URL (path-style `endpoint/bucket` or virtual-hosted).
    pub(super) bucket_url: String,
    /// `prefix/` or empty.
    pub(super) prefix: String,
}

impl S3Raw {
    /// For an S3 spec; `None` for other kinds.
    pub fn new(spec: &RepoSpec, connector: &Connector) -> Option<anyhow::Result<S3Raw>> {
        let RepoSpec::S3 { endpoint, region, bucket, prefix, access_key_id, secret_access_key, virtual_hosted } = spec else {
            return None;
        };
        let bucket_url = match (endpoint, virtual_hosted) {
            (Some(e), true) => super::object::virtual_host_endpoint(e, bucket),
            (Some(e), false) => format!("{}/{bucket}", e.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let prefix = prefix.trim_matches('/');
        let client = match connector.connect(&ClientOptions::default()) {
            Ok(c) => c,
            Err(e) => return Some(Err(anyhow::anyhow!("repository {}: {e}", spec.describe()))),
        };
        Some(Ok(S3Raw {
            client,
            credential: AwsCredential {
                key_id: access_key_id.clone(),
                secret_key: secret_access_key.clone(),
                token: None,
            },
            region: region.clone(),
            bucket: bucket.clone(),
            bucket_url,
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
        }))
    }

    /// The object's key in the bucket, URL-encoded as object_store sends it.
    pub(super) fn encoded_key(&self, key: &str) -> String {
        let stored = ObjPath::from(format!("{}{key}", self.prefix));
        url_encode_path(stored.as_ref())
    }

    /// Refresh the object's Last-Modified: `Ok(true)` done, `Ok(false)` no
    /// such object, `Err` anything else (the caller falls back).
    pub async fn touch(&self, key: &str) -> Result<bool, String> {
        let encoded = self.encoded_key(key);
        let url = format!("{}/{encoded}", self.bucket_url);
        let mut req: HttpRequest = http::Request::builder()
            .method(Method::PUT)
            .uri(&url)
            .body(HttpRequestBody::empty())
            .map_err(|e| e.to_string())?;
        let h = req.headers_mut();
        h.insert("x-amz-copy-source", header(&format!("{}/{encoded}", self.bucket))?);
        h.insert("x-amz-metadata-directive", HeaderValue::from_static("REPLACE"));
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        AwsAuthorizer::new(&self.credential, "s3", &self.region)
            .try_authorize(&mut req, None)
            .map_err(|e| e.to_string())?;
        let resp = self.client.execute(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.into_body().bytes().await.map_err(|e| e.to_string())?;
        let body = String::from_utf8_lossy(&body);
        match status {
            // A copy can fail after its 200 header: the error is in the body.
            StatusCode::OK if !body.contains("<Error>") => Ok(true),
            StatusCode::NOT_FOUND if body.contains("NoSuchKey") => Ok(false),
            s => Err(format!("CopyObject onto itself answered {s}: {}", body.chars().take(300).collect::<String>())),
        }
    }
}

fn header(v: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(v).map_err(|e| e.to_string())
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(super) fn url_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_under_the_prefix() {
        let spec = RepoSpec::S3 {
            endpoint: Some("http://127.0.0.1:9/".into()),
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: "/site a/".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            virtual_hosted: false,
        };
        let raw = S3Raw::new(&spec, &Connector::new()).unwrap().unwrap();
        assert_eq!(raw.bucket_url, "http://127.0.0.1:9/b");
        assert_eq!(raw.encoded_key("snapshots/vm 1/x.json"), "site%20a/snapshots/vm%201/x.json");
        assert_eq!(raw.encoded_key("packs/ab/abcd"), "site%20a/packs/ab/abcd");
    }
}
