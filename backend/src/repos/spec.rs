//! Where a repository lives: a local directory, an S3-compatible bucket or an
//! Azure Blob container. Serialised as JSON with a `kind` tag (the engine's
//! `--spec-file`, the catalog later). Secrets (`secret_access_key`,
//! `access_key`, `sas`) never appear in [`RepoSpec::describe`] nor in `Debug`.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RepoSpec {
    /// A directory (also an NFS/CIFS mount).
    Local { path: PathBuf },
    /// An S3-compatible bucket; `endpoint` for anything but AWS
    /// (e.g. `http://127.0.0.1:9000`), path-style unless `virtual_hosted`.
    S3 {
        endpoint: Option<String>,
        region: String,
        bucket: String,
        #[serde(default)]
        prefix: String,
        access_key_id: String,
        secret_access_key: String,
        #[serde(default)]
        virtual_hosted: bool,
    },
    /// An Azure Blob container, with the account key or a SAS token;
    /// `endpoint` for Azurite or sovereign clouds
    /// (e.g. `http://127.0.0.1:10000/devstoreaccount1`).
    Azure {
        account: String,
        container: String,
        #[serde(default)]
        prefix: String,
        access_key: Option<String>,
        sas: Option<String>,
        endpoint: Option<String>,
    },
}

impl RepoSpec {
    /// Where the repository is, for messages and logs: never a secret.
    /// `/srv/repo`, `s3://bucket/prefix at http://127.0.0.1:1234`,
    /// `azure://account/container/prefix`.
    pub fn describe(&self) -> String {
        fn join(base: String, prefix: &str) -> String {
            let p = prefix.trim_matches('/');
            if p.is_empty() {
                base
            } else {
                format!("{base}/{p}")
            }
        }
        match self {
            RepoSpec::Local { path } => path.display().to_string(),
            RepoSpec::S3 { endpoint, region, bucket, prefix, .. } => {
                let url = join(format!("s3://{bucket}"), prefix);
                match endpoint {
                    Some(e) => format!("{url} at {}", redact_url(e)),
                    None => format!("{url} (AWS {region})"),
                }
            }
            RepoSpec::Azure { account, container, prefix, endpoint, .. } => {
                let url = join(format!("azure://{account}/{container}"), prefix);
                match endpoint {
                    Some(e) => format!("{url} at {}", redact_url(e)),
                    None => url,
                }
            }
        }
    }

    /// The kind as in the JSON tag: `local`, `s3`, `azure`.
    pub fn kind(&self) -> &'static str {
        match self {
            RepoSpec::Local { .. } => "local",
            RepoSpec::S3 { .. } => "s3",
            RepoSpec::Azure { .. } => "azure",
        }
    }

    /// The directory of a local repository.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        match self {
            RepoSpec::Local { path } => Some(path),
            _ => None,
        }
    }
}

/// An endpoint URL without a query string or user info (a SAS pasted into
/// the endpoint must not reach a log).
fn redact_url(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or("");
    let Some((scheme, rest)) = no_query.split_once("://") else { return no_query.to_string() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for RepoSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoSpec::Local { path } => f.debug_struct("Local").field("path", path).finish(),
            RepoSpec::S3 { endpoint, region, bucket, prefix, access_key_id, secret_access_key: _, virtual_hosted } => f
                .debug_struct("S3")
                .field("endpoint", &endpoint.as_deref().map(redact_url))
                .field("region", region)
                .field("bucket", bucket)
                .field("prefix", prefix)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &REDACTED)
                .field("virtual_hosted", virtual_hosted)
                .finish(),
            RepoSpec::Azure { account, container, prefix, access_key, sas, endpoint } => f
                .debug_struct("Azure")
                .field("account", account)
                .field("container", container)
                .field("prefix", prefix)
                .field("access_key", &access_key.as_ref().map(|_| REDACTED))
                .field("sas", &sas.as_ref().map(|_| REDACTED))
                .field("endpoint", &endpoint.as_deref().map(redact_url))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> RepoSpec {
        RepoSpec::S3 {
            endpoint: Some("http://127.0.0.1:1234".into()),
            region: "us-east-1".into(),
            bucket: "bkt".into(),
            prefix: "site-a/".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI-SECRET".into(),
            virtual_hosted: false,
        }
    }

    #[test]
    fn describe_and_debug_never_show_secrets() {
        let s = s3();
        assert_eq!(s.describe(), "s3://bkt/site-a at http://127.0.0.1:1234");
        assert!(!format!("{s:?}").contains("SECRET"), "{s:?}");
        let a = RepoSpec::Azure {
            account: "devstoreaccount1".into(),
            container: "c".into(),
            prefix: String::new(),
            access_key: Some("KEY-SECRET".into()),
            sas: Some("sv=2020&sig=SAS-SECRET".into()),
            endpoint: Some("http://127.0.0.1:10000/devstoreaccount1?sig=URL-SECRET".into()),
        };
        assert_eq!(a.describe(), "azure://devstoreaccount1/c at http://127.0.0.1:10000/devstoreaccount1");
        let dbg = format!("{a:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert_eq!(redact_url("https://user:pw@host/x"), "https://host/x");
    }

    #[test]
    fn json_round_trip_with_kind_tag() {
        let json = r#"{"kind":"s3","endpoint":null,"region":"eu-west-1","bucket":"b","access_key_id":"a","secret_access_key":"s"}"#;
        let s: RepoSpec = serde_json::from_str(json).unwrap();
        assert_eq!(s.describe(), "s3://b (AWS eu-west-1)");
        assert_eq!(serde_json::from_str::<RepoSpec>(&serde_json::to_string(&s3()).unwrap()).unwrap(), s3());
        let l: RepoSpec = serde_json::from_str(r#"{"kind":"local","path":"/srv/r"}"#).unwrap();
        assert_eq!(l, RepoSpec::Local { path: "/srv/r".into() });
    }
}
