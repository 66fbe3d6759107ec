//! The real `sendense serve` process: refuses to start with a clear message
//! when the port is taken or the data directory is unusable, and shuts down
//! cleanly on SIGTERM.

use std::process::{Command, Stdio};
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
    let mut child = serve(&format!("127.0.0.1:{port}"), dir.path()).stdout(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !health_ok(port) {
        assert!(Instant::now() < deadline, "server did not answer /api/v1/health");
        std::thread::sleep(Duration::from_millis(50));
    }
    // First start with no SENDENSE_ADMIN_PASSWORD: a generated password, owner-only.
    let file = dir.path().join("initial-admin-password");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim().len(), 24);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(dir.path().join("catalog.sqlite").is_file(), "catalog created in the data dir");
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(stdout.contains(&format!("http://127.0.0.1:{port}/")), "URL printed: {stdout}");
}

#[test]
fn first_start_creates_the_demo_lab_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = serve(&format!("127.0.0.1:{port}"), dir.path()).env("SENDENSE_DEMO_LAB", "true").spawn().unwrap();
    let lab_file = dir.path().join("lab/lab.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    while !lab_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(health_ok(port), "the server answers while the lab is built");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(lab_file.exists(), "serve made DATA_DIR/lab on first start");
    let host = sendense::platforms::kvm::KvmHost::open(&dir.path().join("lab/hosts/kvm-prod-01")).unwrap();
    use sendense::platforms::Platform;
    assert!(host.inventory().unwrap().vms.len() >= 5);

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
