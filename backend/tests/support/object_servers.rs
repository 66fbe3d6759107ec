//! Real object-storage servers for the tests: moto's S3 server (with SigV4
//! signatures checked) and Azurite's Blob service, each a child process on a
//! free loopback port with its log in a temporary directory, killed (with its
//! process group) when the value is dropped, a panicking test included.
//!
//! The programs come from `scripts/lib.sh` (`need_moto`, `need_azurite`,
//! called by `scripts/test.sh`): the paths in `SENDENSE_MOTO`,
//! `SENDENSE_MOTO_PYTHON` and `SENDENSE_AZURITE`, else the install directory
//! those functions use (`~/.cache/sendense/test-services`).
//!
//! A server also dies with the thread that started it (`PR_SET_PDEATHSIG`),
//! so a test binary killed outright leaves none behind: start and keep it on
//! the test's own thread.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::Mac;
use sendense::repos::RepoSpec;

/// moto's region (its default): buckets are made there.
pub const MOTO_REGION: &str = "us-east-1";
/// Azurite's one account and its well-known key (public; Azurite's docs).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How long a server may take to listen (moto imports for about a second).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A program installed by `scripts/lib.sh`: `$var`, else `rel` under the
/// install directory.
fn installed(var: &str, rel: &str, installer: &str) -> PathBuf {
    let path = match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => {
            let base = std::env::var_os("SENDENSE_TEST_SERVICES_DIR").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME is not set")).join(".cache/sendense/test-services")
            });
            base.join(rel)
        }
    };
    assert!(
        path.exists(),
        "{} is missing: install it with `bash -c 'source scripts/lib.sh; {installer}'` (scripts/test.sh does) or set {var}",
        path.display()
    );
    path
}

/// A loopback port nobody listens on right now (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A server child process: its own process group, killed on drop.
pub struct ServerProcess {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `program` with the arguments `args(port, dir)` gives and waits
    /// until it accepts connections on `port`; a port taken in between by
    /// someone else means another try on another port.
    fn start(name: &'static str, program: &Path, envs: &[(&str, &str)], args: impl Fn(u16, &Path) -> Vec<String>) -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new().prefix(&format!("sendense-{name}-")).tempdir().unwrap();
            let port = free_port();
            let log = dir.path().join(format!("{name}.log"));
            let child = Self::spawn(name, program, envs, &args(port, dir.path()), dir.path(), &log);
            let mut server = ServerProcess { name, child, port, log, dir };
            match server.wait_listening() {
                Ok(()) => return server,
                Err(why) => {
                    last = format!("{why}; its log:\n{}", server.log());
                    // Someone else took the port between bind and start: again.
                    if !last.contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("{name} did not start: {last}");
    }

    /// The program in its own process group, its output appended to `log`.
    fn spawn(name: &str, program: &Path, envs: &[(&str, &str)], args: &[String], dir: &Path, log: &Path) -> Child {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(envs.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                    .map_err(std::io::Error::from)
            });
        }
        cmd.spawn().unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()))
    }

    /// Kills the server (SIGKILL to its process group), as a crash or a
    /// pulled cable would stop it: connections are refused from now on.
    pub fn kill(&mut self) {
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the program again on the same port and directory (its data
    /// kept) after [`ServerProcess::kill`], and waits until it listens.
    fn relaunch(&mut self, program: &Path, envs: &[(&str, &str)], args: impl Fn(u16, &Path) -> Vec<String>) {
        self.kill();
        self.child = Self::spawn(self.name, program, envs, &args(self.port, self.dir.path()), self.dir.path(), &self.log);
        if let Err(why) = self.wait_listening() {
            panic!("{} did not start again: {why}; its log:\n{}", self.name, self.log());
        }
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("it exited ({status}) before listening on port {}", self.port));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("it did not listen on port {} within {START_TIMEOUT:?}", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote so far (moto: one access-log line per request).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The server's temporary directory (its log, Azurite's data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// moto's S3 server. Signatures are checked: the first three requests,
/// which moto lets through unsigned (`INITIAL_NO_AUTH_ACTION_COUNT=3`), make
/// an IAM user allowed `s3:*` and its access key (`moto_admin.py bootstrap`);
/// a wrong secret is refused from then on (403 SignatureDoesNotMatch).
pub struct Moto {
    server: ServerProcess,
    python: PathBuf,
    access_key_id: String,
    secret_access_key: String,
}

/// One version of an object (`Moto::versions`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ObjectVersion {
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
}

/// An S3 error answer (`Moto::delete_object_version`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct S3Error {
    pub error: String,
    pub status: u16,
    #[serde(default)]
    pub message: String,
}

impl Moto {
    pub fn start() -> Moto {
        let program = installed("SENDENSE_MOTO", "moto/bin/moto_server", "need_moto");
        let python = installed("SENDENSE_MOTO_PYTHON", "moto/bin/python", "need_moto");
        let server = ServerProcess::start("moto", &program, &[("INITIAL_NO_AUTH_ACTION_COUNT", "3")], |port, _| {
            vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()]
        });
        let mut moto = Moto { server, python, access_key_id: String::new(), secret_access_key: String::new() };
        let key = moto.admin(&["bootstrap"]);
        let field = |name: &str| {
            key[name]
                .as_str()
                .unwrap_or_else(|| panic!("moto's bootstrap gave no {name}: {key}; log:\n{}", moto.server.log()))
                .to_string()
        };
        (moto.access_key_id, moto.secret_access_key) = (field("access_key_id"), field("secret_access_key"));
        moto
    }

    /// `moto_admin.py COMMAND ARGS` with this server's credentials; its JSON.
    fn admin(&self, args: &[&str]) -> serde_json::Value {
        self.admin_as(&self.access_key_id, &self.secret_access_key, args)
    }

    fn admin_as(&self, access_key_id: &str, secret_access_key: &str, args: &[&str]) -> serde_json::Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/moto_admin.py");
        let out = Command::new(&self.python)
            .arg(script)
            .arg(self.endpoint())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.python.display()));
        assert!(
            out.status.success(),
            "moto_admin.py {args:?} failed ({}): {}\nmoto's log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.server.log()
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("moto_admin.py {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Like `admin`, but an S3 error answer is a panic.
    fn admin_ok(&self, args: &[&str]) -> serde_json::Value {
        let v = self.admin(args);
        assert!(v.get("error").is_none(), "moto_admin.py {args:?}: {v}");
        v
    }

    /// `http://127.0.0.1:PORT` (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// Kills moto (SIGKILL): its endpoint stops answering. moto keeps its
    /// buckets in memory, so they are gone for good.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// The access key id and secret the server accepts.
    pub fn access_key(&self) -> (&str, &str) {
        (&self.access_key_id, &self.secret_access_key)
    }

    /// Creates `name`; `object_lock`: with Object Lock (and so versioning).
    pub fn create_bucket(&self, name: &str, object_lock: bool) {
        self.admin_ok(&["create-bucket", name, if object_lock { "1" } else { "0" }]);
    }

    /// Whether `bucket` has Object Lock enabled (GetObjectLockConfiguration).
    pub fn object_lock_enabled(&self, bucket: &str) -> bool {
        self.admin_ok(&["object-lock", bucket])["enabled"].as_bool().unwrap()
    }

    pub fn buckets(&self) -> Vec<String> {
        serde_json::from_value(self.admin_ok(&["list-buckets"])["buckets"].clone()).unwrap()
    }

    /// The versions and delete markers of `key` in a versioned bucket.
    pub fn versions(&self, bucket: &str, key: &str) -> Vec<ObjectVersion> {
        serde_json::from_value(self.admin_ok(&["versions", bucket, key])["versions"].clone()).unwrap()
    }

    /// Whether the server accepts these credentials (ListBuckets with them).
    pub fn check_credentials(&self, access_key_id: &str, secret_access_key: &str) -> Result<(), S3Error> {
        let v = self.admin_as(access_key_id, secret_access_key, &["list-buckets"]);
        match v.get("error") {
            None => Ok(()),
            Some(_) => Err(serde_json::from_value(v).unwrap()),
        }
    }

    /// PUTs a small object with boto3; `retain_seconds > 0`: under
    /// COMPLIANCE retention (Object Lock bucket). Its version id.
    pub fn put_object(&self, bucket: &str, key: &str, retain_seconds: u32) -> Option<String> {
        self.admin_ok(&["put", bucket, key, &retain_seconds.to_string()])["version_id"].as_str().map(str::to_string)
    }

    /// DeleteObject with a VersionId, straight through the S3 API (boto3): on
    /// a version under Object Lock retention this is refused (AccessDenied).
    pub fn delete_object_version(&self, bucket: &str, key: &str, version: &str) -> Result<(), S3Error> {
        let v = self.admin(&["delete-version", bucket, key, version]);
        match v.get("error") {
            None => Ok(()),
            Some(_) => Err(serde_json::from_value(v).unwrap()),
        }
    }

    /// A repository in `bucket` (made by `create_bucket`), path-style, at
    /// the root of the bucket.
    pub fn spec(&self, bucket: &str) -> RepoSpec {
        RepoSpec::S3 {
            endpoint: Some(self.endpoint()),
            region: MOTO_REGION.into(),
            bucket: bucket.into(),
            prefix: String::new(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            virtual_hosted: false,
        }
    }

    pub fn server(&self) -> &ServerProcess {
        &self.server
    }

    /// The requests moto answered so far, from its access log, one
    /// `METHOD /bucket/key?query STATUS` each (for counting requests).
    pub fn requests(&self) -> Vec<String> {
        let log = self.server.log();
        let mut plain = String::with_capacity(log.len());
        let mut rest = log.as_str();
        // Without werkzeug's terminal colours (`ESC [ ... m`).
        while let Some(i) = rest.find('\x1b') {
            plain.push_str(&rest[..i]);
            rest = rest[i..].find('m').map_or("", |j| &rest[i + j + 1..]);
        }
        plain.push_str(rest);
        plain
            .lines()
            .filter_map(|line| {
                let (_, after) = line.split_once('"')?;
                let (request, status) = after.split_once('"')?;
                let request = request.strip_suffix(" HTTP/1.1").or_else(|| request.strip_suffix(" HTTP/1.0"))?;
                Some(format!("{request} {}", status.split_whitespace().next()?))
            })
            .collect()
    }
}

/// Azurite's Blob service, account `devstoreaccount1` with its well-known
/// key, path-style (`http://127.0.0.1:PORT/devstoreaccount1`). Shared Key
/// signatures are checked.
pub struct Azurite {
    server: ServerProcess,
}

/// An answer to `Azurite::request`.
#[derive(Debug)]
pub struct AzureReply {
    pub status: u16,
    pub body: String,
}

impl Azurite {
    pub fn start() -> Azurite {
        let program = installed("SENDENSE_AZURITE", "azurite/node_modules/.bin/azurite-blob", "need_azurite");
        let server = ServerProcess::start("azurite", &program, &[], Self::args);
        Azurite { server }
    }

    fn args(port: u16, dir: &Path) -> Vec<String> {
        let data = dir.join("data");
        vec![
            "--blobHost".into(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            port.to_string(),
            "--location".into(),
            data.display().to_string(),
            "--skipApiVersionCheck".into(),
            "--loose".into(),
        ]
    }

    /// Kills Azurite (SIGKILL): its endpoint stops answering; its data
    /// stays on disk for [`Azurite::restart`].
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Azurite again on the same port with the same data (blobs written
    /// before a kill are still there).
    pub fn restart(&mut self) {
        let program = installed("SENDENSE_AZURITE", "azurite/node_modules/.bin/azurite-blob", "need_azurite");
        self.server.relaunch(&program, &[], Self::args);
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.server.port())
    }

    pub fn create_container(&self, name: &str) {
        let r = self.request("PUT", &format!("/{name}?restype=container"), AZURITE_KEY);
        assert_eq!(r.status, 201, "creating container {name}: {r:?}\nAzurite's log:\n{}", self.server.log());
    }

    /// The containers' names (List Containers).
    pub fn containers(&self) -> Vec<String> {
        let r = self.request("GET", "/?comp=list", AZURITE_KEY);
        assert_eq!(r.status, 200, "listing containers: {r:?}");
        r.body.split("<Name>").skip(1).filter_map(|s| s.split("</Name>").next()).map(str::to_string).collect()
    }

    /// One request without a body on `path_and_query` (after the account,
    /// starting with `/`), signed with Shared Key `key` (base64).
    pub fn request(&self, method: &str, path_and_query: &str, key: &str) -> AzureReply {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let version = "2021-08-06";
        let mut params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_lowercase(), v.to_string())
            })
            .collect();
        params.sort();
        // VERB, then eleven standard headers (all empty here: no body), the
        // x-ms-* headers, the resource (account twice: path-style URL).
        let mut to_sign = format!("{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n");
        to_sign += &format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}{path}");
        for (k, v) in &params {
            to_sign += &format!("\n{k}:{v}");
        }
        let key = base64::engine::general_purpose::STANDARD.decode(key).expect("an Azure key is base64");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        // HTTP/1.0: the answer ends with the connection, never chunked.
        let request = format!(
            "{method} /{AZURITE_ACCOUNT}{path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nx-ms-date: {date}\r\n\
             x-ms-version: {version}\r\nContent-Length: 0\r\nAuthorization: SharedKey {AZURITE_ACCOUNT}:{signature}\r\n\r\n",
            port = self.server.port()
        );
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.server.port())).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no HTTP status from Azurite: {head}"));
        AzureReply { status, body: body.to_string() }
    }

    /// A repository in `container` (made by `create_container`) with the
    /// account key, at the root of the container.
    pub fn spec(&self, container: &str) -> RepoSpec {
        RepoSpec::Azure {
            account: AZURITE_ACCOUNT.into(),
            container: container.into(),
            prefix: String::new(),
            access_key: Some(AZURITE_KEY.into()),
            sas: None,
            endpoint: Some(self.endpoint()),
        }
    }

    pub fn server(&self) -> &ServerProcess {
        &self.server
    }
}

/// One version or delete marker in a bucket (`Moto::all_versions`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BucketVersion {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
}

/// An object version's Object Lock retention (`Moto::retention`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct VersionRetention {
    /// `GOVERNANCE` or `COMPLIANCE`; `None` when the version has no retention.
    pub mode: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
}

impl Moto {
    /// Every version and delete marker in `bucket` (ListObjectVersions, all pages, boto3).
    pub fn all_versions(&self, bucket: &str) -> Vec<BucketVersion> {
        serde_json::from_value(self.admin_ok(&["all-versions", bucket])["versions"].clone()).unwrap()
    }

    /// A plain DELETE (no VersionId) of every key in `bucket`, as someone
    /// holding the credentials would: on a versioned bucket each leaves a
    /// delete marker over the kept versions. How many keys.
    pub fn delete_all(&self, bucket: &str) -> usize {
        self.admin_ok(&["delete-all", bucket])["deleted"].as_u64().unwrap() as usize
    }

    /// The retention of one version, read by boto3's HeadObject.
    pub fn retention(&self, bucket: &str, key: &str, version: &str) -> VersionRetention {
        serde_json::from_value(self.admin_ok(&["retention", bucket, key, version])).unwrap()
    }
}
