//! The real `sendense serve` process: refuses to start with a clear message
//! when the port is taken or the data directory is unusable, shuts down
//! cleanly on SIGTERM, keeps the first admin password out of its output,
//! serves HTTPS with a self-signed certificate, makes the demo lab only
//! when asked, and serves Prometheus metrics (checked with `promtool`) only
//! to the addresses and the token it is given.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sendense");

fn serve(listen: &str, data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .arg("--web-dir")
        .arg(data_dir.join("no-web"))
        .env_remove("DATABASE_URL")
        .env("SENDENSE_DEMO_LAB", "false")
        .stdin(Stdio::null());
    cmd
}

fn health_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.write_all(b"GET /api/v1/health HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200")
}

/// One HTTP/1.0 exchange over `stream`: (status, head, body).
fn exchange(mut stream: impl Read + Write, request: &str) -> (u16, String, String) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    // A TLS peer may close without close_notify: keep what arrived.
    if let Err(err) = stream.read_to_end(&mut bytes) {
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn request(method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> String {
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

fn plain(port: u16, req: &str) -> (u16, String, String) {
    exchange(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap(), req)
}

fn sign_in(port: u16, password: &str) -> String {
    let body = serde_json::json!({"username": "admin", "password": password}).to_string();
    let (status, _, reply) = plain(port, &request("POST", "/api/v1/auth/login", None, Some(&body)));
    assert_eq!(status, 200, "{reply}");
    serde_json::from_str::<serde_json::Value>(&reply).unwrap()["token"].as_str().unwrap().to_owned()
}

fn wait_healthy(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while !health_ok(port) {
        assert!(Instant::now() < deadline, "server did not answer /api/v1/health");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: std::process::Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn stops_cleanly_when_signalled_during_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = serve(&format!("127.0.0.1:{port}"), dir.path()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn refuses_a_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = serve(&addr, dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use") && err.contains(&addr) && err.contains("--listen"), "{err}");
}

#[test]
fn refuses_a_data_dir_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where a directory should be: not creatable, even for root.
    let file = dir.path().join("occupied");
    std::fs::write(&file, b"x").unwrap();
    let out = serve("127.0.0.1:0", &file.join("data")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data directory") && err.contains("--data-dir"), "{err}");
}

#[test]
fn rejects_an_unsupported_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve("127.0.0.1:0", dir.path()).env("DATABASE_URL", "mysql://db/x").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_URL") && err.contains("mysql"), "{err}");
}

#[test]
fn stops_cleanly_on_sigterm_and_keeps_its_catalog() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("stderr.log");
    let mut child = serve(&format!("127.0.0.1:{port}"), dir.path())
        .env_remove("SENDENSE_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_healthy(port, Duration::from_secs(20));
    // First start with no SENDENSE_ADMIN_PASSWORD: a generated password, owner-only.
    let file = dir.path().join("initial-admin-password");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(password.len(), 24);
    sign_in(port, &password);
    // Metrics: served to this machine by default, without a token.
    let (status, _, metrics) = plain(port, &request("GET", "/metrics", None, None));
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("route=\"/api/v1/auth/login\",status=\"2xx\""), "{metrics}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(dir.path().join("catalog.sqlite").is_file(), "catalog created in the data dir");
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(stdout.contains(&format!("http://127.0.0.1:{port}/")), "URL printed: {stdout}");
    // The log says where the password is, never what it is.
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(stderr.contains(&file.display().to_string()), "the log names the password file: {stderr}");
    assert!(!stderr.contains(&password) && !stdout.contains(&password), "the password leaked into the output");
}

#[test]
fn serves_https_with_a_self_signed_certificate_it_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = || {
        serve(&format!("127.0.0.1:{port}"), dir.path())
            .args(["--tls", "self-signed"])
            .env("SENDENSE_ADMIN_PASSWORD", "tls-admin-password")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let cert = dir.path().join(sendense::tls::SELF_SIGNED_CERT);
    let key = dir.path().join(sendense::tls::SELF_SIGNED_KEY);

    // HTTPS that trusts only the generated certificate, by the name localhost.
    let https = |req: &str| -> (u16, String, String, String) {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
        let (status, head, body) = exchange(&mut tls, req);
        let peer = tls.conn.peer_certificates().expect("the server presented a certificate")[0].clone();
        (status, head, body, sendense::tls::fingerprint(&peer))
    };
    let wait_https = || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = cert.is_file() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up {
                return;
            }
            assert!(Instant::now() < deadline, "the HTTPS server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let child = start();
    wait_https();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the private key is owner-only");
    let (status, head, _, presented) = https(&request("GET", "/api/v1/health", None, None));
    assert_eq!(status, 200, "{head}");
    let head_lc = head.to_ascii_lowercase();
    assert!(head_lc.contains("strict-transport-security: max-age="), "HSTS: {head}");
    assert!(head_lc.contains("content-security-policy:"), "{head}");
    let body = serde_json::json!({"username": "admin", "password": "tls-admin-password"}).to_string();
    let (status, head, reply, _) = https(&request("POST", "/api/v1/auth/login", None, Some(&body)));
    assert_eq!(status, 200, "{reply}");
    let cookie = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a session cookie");
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    // Plain HTTP to the same port gets no answer.
    let (plain_status, _, _) = plain(port, &request("GET", "/api/v1/health", None, None));
    assert_ne!(plain_status, 200);

    let pem_der = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_file(&cert).unwrap()
    };
    let fingerprint = sendense::tls::fingerprint(&pem_der);
    assert_eq!(presented, fingerprint, "the server presents the generated certificate");
    let printed = |mut child: std::process::Child| {
        stop_keep(&mut child);
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        out
    };
    let out = printed(child);
    assert!(out.contains(&format!("https://127.0.0.1:{port}/")), "{out}");
    let line = out.lines().find(|l| l.contains("fingerprint")).unwrap_or_else(|| panic!("no fingerprint printed: {out}"));
    assert_eq!(line.rsplit(' ').next().unwrap(), fingerprint, "{line}");
    // A reasonable format: 32 colon-separated bytes, as browsers show it.
    assert_eq!(fingerprint.split(':').count(), 32);

    // A restart reuses the certificate.
    let child = start();
    wait_https();
    let (status, _, _, presented) = https(&request("GET", "/api/v1/health", None, None));
    assert_eq!((status, presented.as_str()), (200, fingerprint.as_str()));
    let out = printed(child);
    assert!(out.contains(&fingerprint), "{out}");
}

fn stop_keep(child: &mut std::process::Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn starts_without_the_demo_lab_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = serve(&format!("127.0.0.1:{port}"), dir.path())
        .env_remove("SENDENSE_DEMO_LAB")
        .env("SENDENSE_ADMIN_PASSWORD", "no-lab-admin-password")
        .spawn()
        .unwrap();
    wait_healthy(port, Duration::from_secs(20));
    let token = sign_in(port, "no-lab-admin-password");
    // The lab would be under way by now (it starts at once and takes seconds).
    std::thread::sleep(Duration::from_secs(2));
    let (status, _, platforms) = plain(port, &request("GET", "/api/v1/platforms", Some(&token), None));
    assert_eq!(status, 200, "{platforms}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&platforms).unwrap(), serde_json::json!([]), "no platforms");
    stop(child);
    assert!(!dir.path().join("lab").exists(), "no demo lab without --demo-lab");
}

#[test]
fn first_start_creates_the_demo_lab_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The flag (what scripts/run.sh passes) asks for the lab.
    let mut child = serve(&format!("127.0.0.1:{port}"), dir.path()).env_remove("SENDENSE_DEMO_LAB").arg("--demo-lab").spawn().unwrap();
    let lab_file = dir.path().join("lab/lab.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !lab_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(health_ok(port), "the server answers while the lab is built");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(lab_file.exists(), "serve made DATA_DIR/lab on first start");
    let vms = sendense::platforms::kvm::definition::list_vms(&dir.path().join("lab/hosts/kvm-prod-01")).unwrap();
    assert!(vms.len() >= 5, "the lab's VMs and disks are built: {vms:?}");

    // A second start finds the lab and leaves it as it was.
    let before = std::fs::read(&lab_file).unwrap();
    let mut child = serve(&format!("127.0.0.1:{port}"), dir.path()).env("SENDENSE_DEMO_LAB", "true").spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !health_ok(port) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read(&lab_file).unwrap(), before);
}

/// `promtool`: $SENDENSE_PROMTOOL (scripts/test.sh fetches it), else the cache it goes to.
fn promtool() -> std::path::PathBuf {
    let path = std::env::var_os("SENDENSE_PROMTOOL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sendense/tools/promtool"));
    assert!(path.is_file(), "promtool is missing at {}: run scripts/test.sh once (it fetches it)", path.display());
    path
}

#[test]
fn metrics_are_served_with_the_token_only_and_pass_promtool() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let child = serve(&format!("127.0.0.1:{port}"), dir.path())
        .args(["--metrics-token", "scrape-me", "--metrics-allow", ""])
        .env("SENDENSE_ADMIN_PASSWORD", "metrics-test-password-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(port, Duration::from_secs(20));
    let token = sign_in(port, "metrics-test-password-1");
    let (status, _, repos) = plain(port, &request("GET", "/api/v1/repositories", Some(&token), None));
    assert_eq!(status, 200);
    // A GC of the (empty) repository: a job that ends, timed and counted.
    let repo = serde_json::from_str::<serde_json::Value>(&repos).unwrap()[0]["id"].as_str().unwrap().to_owned();
    let (status, _, job) = plain(port, &request("POST", &format!("/api/v1/repositories/{repo}/gc"), Some(&token), None));
    assert_eq!(status, 202, "{job}");
    let job = serde_json::from_str::<serde_json::Value>(&job).unwrap()["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, j) = plain(port, &request("GET", &format!("/api/v1/jobs/{job}"), Some(&token), None));
        if j.contains("\"completed\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the GC did not end: {j}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // No address is allowed: without the token (or with a session's), a 403 saying what to set.
    for bearer in [None, Some(token.as_str()), Some("scrape-mf")] {
        let (status, _, body) = plain(port, &request("GET", "/metrics", bearer, None));
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("--metrics-token") && body.contains("--metrics-allow"), "{body}");
    }
    let (status, head, metrics) = plain(port, &request("GET", "/metrics", Some("scrape-me"), None));
    assert_eq!(status, 200, "{metrics}");
    assert!(head.to_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    for family in [
        "sendense_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/repositories\",status=\"2xx\",le=\"+Inf\"} 1",
        "sendense_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/auth/login\",status=\"2xx\"} 1",
        "sendense_job_duration_seconds_count{kind=\"gc\",outcome=\"completed\"} 1",
        "sendense_jobs{kind=\"gc\",state=\"completed\"} 1",
        "sendense_gc_last_reclaimed_bytes{repository=",
        "sendense_repository_up{repository=",
        "sendense_repository_capacity_bytes{repository=",
        "sendense_websocket_clients 0",
        "sendense_backup_rpo_breaches 0",
    ] {
        assert!(metrics.contains(family), "missing `{family}` in:\n{metrics}");
    }
    // Prometheus's own linter accepts the exposition.
    let mut check = Command::new(promtool()).args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    check.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(out.status.success(), "promtool check metrics: {}{}\n{metrics}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    stop(child);
}

/// At start the server removes the index caches under `DATA_DIR/cache` of
/// repositories its catalog no longer has (and old ones naming none); the
/// local repository's cache stays.
#[test]
fn removes_index_caches_of_repositories_it_no_longer_has_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let password = "cache-test-password-0123456789";
    let start = || {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = serve(&format!("127.0.0.1:{port}"), dir.path())
            .env_remove("SENDENSE_CACHE_DIR")
            .env("SENDENSE_ADMIN_PASSWORD", password)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_healthy(port, Duration::from_secs(30));
        (port, child)
    };
    let caches = dir.path().join("cache");
    let named = |location: &str| {
        std::fs::read_dir(&caches).map(|d| d.flatten().filter(|e| std::fs::read_to_string(e.path().join("location")).ok().as_deref() == Some(location)).count()).unwrap_or(0)
    };
    // First start: reading the repositories' statistics makes the local repository's cache.
    let (port, child) = start();
    let token = sign_in(port, password);
    let (status, _, body) = plain(port, &request("GET", "/api/v1/repositories", Some(&token), None));
    assert_eq!(status, 200, "{body}");
    stop(child);
    let local = dir.path().join("repos").join("local").display().to_string();
    assert_eq!(named(&local), 1, "the local repository's cache in {}", caches.display());
    // A cache of a repository that left the catalog, and one from before caches named theirs.
    for (name, location) in [("e", Some("/srv/removed-repository")), ("f", None)] {
        let d = caches.join(name.repeat(32));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("state.json"), "{}").unwrap();
        if let Some(l) = location {
            std::fs::write(d.join("location"), l).unwrap();
        }
    }
    let (_, child) = start();
    stop(child);
    assert!(!caches.join("e".repeat(32)).exists() && !caches.join("f".repeat(32)).exists(), "stale caches removed at start");
    assert_eq!(named(&local), 1, "the local repository's cache stays");
}
