//! `sendense serve --demo-lab --lab-guests` (what scripts/run.sh runs): the
//! lab's two libvirt hosts come up with their guests booted, mounting their
//! real filesystems, within the budget (60 s, under 2 GiB of guest memory);
//! the hosts are added as platforms; a guest's own work shows in its change
//! tracking (an incremental backup reads what it wrote); and SIGTERM stops
//! every host, guest and bridge.

// Index caches under target/tmp, not in ~/.cache.
#[path = "support/test_cache.rs"]
mod test_cache;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sendense::engine::backup::BackupOptions;
use sendense::engine::datastore::Datastore;
use sendense::engine::progress::Progress;
use sendense::jobs::vm_backup::backup_vm;
use sendense::lab::slot;
use sendense::platforms::libvirt::LibvirtPlatform;
use sendense::platforms::Platform;
use shared_types::platform::PowerState;

const BIN: &str = env!("CARGO_BIN_EXE_sendense");

fn get(port: u16, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    let method = if body.is_some() { "POST" } else { "GET" };
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
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), body.to_string())
}

/// Processes whose command line names `dir` (the lab's daemons and guests).
fn processes_under(dir: &std::path::Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

/// The bridges of this lab slot's networks (`sdp-`/`sdd-` in slot 0, `sd1p-`/`sd1d-` in
/// slot 1: SENDENSE_LAB_SLOT), whichever other slot's lab runs beside.
fn lab_bridges() -> Vec<String> {
    let slot = slot::current().unwrap();
    let prefixes = ["prod", "dr"].map(|h| slot::bridge_prefix(slot, h));
    std::fs::read_dir("/sys/class/net").unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| prefixes.iter().any(|p| n.starts_with(p.as_str()))).collect()
}

/// The devices plugged into bridge `bridge` (the guests' tap devices).
fn bridge_ports(bridge: &str) -> Vec<String> {
    let mut ports: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif")).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    ports.sort();
    ports
}

struct Server(Option<std::process::Child>);
impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

#[test]
fn the_demo_lab_runs_real_guests_on_two_libvirt_hosts_and_stops_with_the_server() {
    let dir = tempfile::Builder::new().prefix("sd-lab").tempdir_in("/tmp").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .arg("--web-dir")
        .arg(dir.path().join("no-web"))
        .args(["--demo-lab", "--lab-guests"])
        .env_remove("DATABASE_URL")
        .env_remove("SENDENSE_DEMO_LAB")
        .env("SENDENSE_ADMIN_PASSWORD", "lab-guests-admin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // However the test ends, the server (and with it the lab) is stopped.
    let mut server = Server(Some(child));
    let lab = dir.path().join("lab");
    let prod = LibvirtPlatform::new(&format!("qemu+unix:///system?socket={}/libvirt/prod/sock/libvirt-sock", lab.display()));

    // The server adds both hosts as platforms once their guests are up.
    let deadline = Instant::now() + Duration::from_secs(240);
    let token = loop {
        let (status, body) = get(port, "/api/v1/auth/login", None, Some(r#"{"username":"admin","password":"lab-guests-admin"}"#));
        if status == 200 {
            break serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the server never answered");
        std::thread::sleep(Duration::from_millis(200));
    };
    let platforms = loop {
        let (_, body) = get(port, "/api/v1/platforms", Some(&token), None);
        let list: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let uris: Vec<String> = list.as_array().map(|a| a.iter().filter_map(|p| p["address"].as_str().map(String::from)).filter(|a| a.starts_with("qemu+unix")).collect()).unwrap_or_default();
        if uris.len() == 2 {
            break list;
        }
        assert!(Instant::now() < deadline, "the lab's hosts were never added: {body}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let up = started.elapsed();
    eprintln!("serve to both lab hosts added with guests up: {:.1} s (lab init included)", up.as_secs_f64());
    let names: Vec<&str> = platforms.as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"lab-prod") && names.contains(&"lab-dr"), "{names:?}");

    let inv = prod.inventory().unwrap();
    let running: Vec<&str> = inv.vms.iter().filter(|v| v.power == PowerState::Running).map(|v| v.name.as_str()).collect();
    assert_eq!(running, vec!["app-01", "db-01", "files-01", "web-01", "web-02"]);
    let win = inv.vms.iter().find(|v| v.name == "win-01").unwrap();
    assert_eq!(win.power, PowerState::Stopped);
    assert!(win.role.as_deref().unwrap_or("").contains("offline"), "{:?}", win.role);
    // Every guest mounted a real filesystem (the boot line says which).
    for vm in &running {
        let log = std::fs::read_to_string(lab.join(format!("libvirt/prod/images/{vm}.console.log"))).unwrap();
        let line = log.lines().find(|l| l.contains("SENDENSE-GUEST-UP")).unwrap();
        assert!(line.contains(":ext4"), "{vm}: {line}");
    }
    // The slot's bridges; the guests' tap devices carry the lab's own names,
    // not the vnetN every libvirt daemon counts on its own.
    let slot = slot::current().unwrap();
    let lan = slot::bridge(slot, "prod", "lan");
    assert!(lab_bridges().contains(&lan), "{lan} among {:?}", lab_bridges());
    let taps = bridge_ports(&lan);
    assert!(!taps.is_empty() && taps.iter().all(|t| t.starts_with("sdt")), "{lan}'s ports: {taps:?}");
    // Memory budget: every guest's QEMU together.
    let guests = processes_under(&lab).iter().filter(|c| c.contains("qemu-system")).count();
    assert_eq!(guests, 5, "five guest processes");
    let total_rss: u64 = std::fs::read_dir("/proc").unwrap().flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).map(|c| String::from_utf8_lossy(&c).contains(&*lab.to_string_lossy()) && String::from_utf8_lossy(&c).contains("qemu-system")).unwrap_or(false))
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter_map(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    eprintln!("guests' QEMU RSS together: {} MiB", total_rss / 1024);
    assert!(total_rss < 2 * 1024 * 1024, "under 2 GiB: {} MiB", total_rss / 1024);

    // web-01 writes its access log every few seconds: an incremental reads that.
    let repo = dir.path().join("test-repo");
    let ds = Datastore::init(&repo, None).unwrap();
    let opts = BackupOptions::new("lab-web-01");
    backup_vm(&prod, "web-01", &ds, &opts, &Progress::new()).unwrap();
    std::thread::sleep(Duration::from_secs(12));
    let inc = backup_vm(&prod, "web-01", &ds, &opts, &Progress::new()).unwrap();
    assert!(inc.disks[0].incremental, "{:?}", inc.disks);
    assert!(inc.bytes_read > 0 && inc.bytes_read < 4 << 20, "the guest's own log writes (and its filesystem's journal): {} bytes", inc.bytes_read);
    eprintln!("web-01 wrote {} bytes in 12 s of its own work (incremental read)", inc.bytes_read);

    // SIGTERM: the server stops the lab with it.
    let mut child = server.0.take().unwrap();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    let left = processes_under(&lab);
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(lab_bridges().is_empty(), "bridges left: {:?}", lab_bridges());
    let taps_left: Vec<&String> = taps.iter().filter(|t| std::path::Path::new("/sys/class/net").join(t).exists()).collect();
    assert!(taps_left.is_empty(), "tap devices left: {taps_left:?}");
}
