//! Platform roots (`--platform-root`): a KVM host reached through a unix
//! socket (`qemu+unix:///system?socket=…`) is added and tested only when
//! its socket is inside them, whatever tricks the path plays (`..`, links
//! planted inside a root pointing out, absolute paths elsewhere, NUL bytes,
//! very long names, Unicode); an address outside is the same 422 whether
//! the socket exists or not, and never a 5xx. The server refuses to start
//! with a restore root that is its data directory.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use sendense::confinement::Roots;
use sendense::lab::libvirt_host::{LibvirtHost, RunningHost};
use serde_json::json;
use shared_types::discovery::Platform;
use shared_types::error::ErrorBody;

mod support;

use support::api::Api;

fn unix_uri(socket: &str) -> String {
    format!("qemu+unix:///system?socket={socket}")
}

/// Every platform's socket is inside one of `roots`.
async fn all_inside(api: &Api, roots: &[PathBuf]) {
    let all: Vec<Platform> = api.ok("GET", "/api/v1/platforms", None, StatusCode::OK).await;
    for p in all {
        let socket = sendense::platforms::libvirt::check_uri(&p.address).unwrap().expect("a unix socket");
        let resolved = sendense::confinement::resolve(&socket);
        assert!(roots.iter().any(|r| resolved.starts_with(r)), "platform '{}' at {} is outside {roots:?}", p.name, p.address);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_addresses_stay_inside_the_platform_roots() {
    let mut f = support::fixture().await;
    let base = std::fs::canonicalize(f.data.path()).unwrap();
    let lab = base.join("lab");
    let outside = tempfile::Builder::new().prefix("sd-conf").tempdir_in("/tmp").unwrap();
    let outside = std::fs::canonicalize(outside.path()).unwrap();
    // The default roots: DATA_DIR/lab only (the fixture's temp-dir allowance dropped).
    f.state.roots = Arc::new(Roots::configure(&base, &[], &[], None, &[]).unwrap());
    let roots = f.state.roots.platform_roots().to_vec();
    assert_eq!(roots, vec![lab.clone()]);
    let api = Api::admin(f).await;

    // A real host outside the roots and one inside; links planted inside pointing out.
    let (foreign, good) = tokio::task::spawn_blocking({
        let (outside, lab) = (outside.clone(), lab.clone());
        move || {
            (
                RunningHost::start(LibvirtHost::new("foreign", &outside.join("foreign-host"))).unwrap(),
                RunningHost::start(LibvirtHost::new("inside", &lab.join("hosts/kvm-a"))).unwrap(),
            )
        }
    })
    .await
    .unwrap();
    std::os::unix::fs::symlink(foreign.socket().parent().unwrap(), lab.join("hosts/link-out")).unwrap();
    std::os::unix::fs::symlink("/", lab.join("hosts/root")).unwrap();

    // Outside: the same 422 whether the socket exists or not, for add and test alike.
    let outside_answer = |reply: &support::Reply, address: &str| -> String {
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{address}: {}", reply.body);
        let e: ErrorBody = reply.json();
        assert_eq!(e.code, "address_not_allowed", "{address}: {}", reply.body);
        assert!(e.message.contains(&lab.display().to_string()) && e.message.contains("--platform-root"), "the roots are named: {}", e.message);
        let socket = sendense::platforms::libvirt::check_uri(address).unwrap().unwrap();
        e.message.replace(&socket.display().to_string().escape_default().to_string(), "SOCKET")
    };
    let mut answers = Vec::new();
    for socket in [foreign.socket().display().to_string(), outside.join("no-such-host/sock").display().to_string(), "/etc/passwd".into(), "/run/no-such-dir/sock".into(), "/root/sock".into(), "/proc/self/fd/0".into()] {
        let address = unix_uri(&socket);
        for route in ["/api/v1/platforms", "/api/v1/platforms/test"] {
            let reply = api.call("POST", route, Some(json!({"kind": "kvm", "address": address}))).await;
            answers.push(outside_answer(&reply, &address));
        }
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "every outside address gets the same answer: {answers:?}");

    // Fuzz: socket path tricks built from pieces; never a 5xx, nothing added outside the roots.
    let long = "x".repeat(300);
    let pieces: Vec<String> = vec![
        "..".into(), ".".into(), "hosts".into(), "kvm-a".into(), "link-out".into(), "root".into(), "sock".into(), "libvirt-sock".into(), "etc".into(),
        "\u{0}".into(), "é".into(), "🦀".into(), long.clone(), "".into(), "%2e%2e".into(), " ".into(), "&".into(), "?".into(), "\\".into(), "~".into(),
    ];
    let starts: Vec<String> = vec![lab.display().to_string(), format!("{}/hosts", lab.display()), outside.display().to_string(), "/".into(), base.display().to_string(), "relative".into(), "".into()];
    let mut seed: u64 = 0x5eed_c0f1_ed00_0004;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut tried = 0;
    let mut accepted = 0;
    for _ in 0..160 {
        let mut socket = starts[next(starts.len())].clone();
        for _ in 0..(1 + next(5)) {
            socket.push('/');
            socket.push_str(&pieces[next(pieces.len())]);
        }
        let address = unix_uri(&socket);
        let route = if next(2) == 0 { "/api/v1/platforms" } else { "/api/v1/platforms/test" };
        let reply = api.call("POST", route, Some(json!({"kind": "kvm", "address": address}))).await;
        assert!(reply.status.is_success() || reply.status.is_client_error(), "{route} {address:?}: {} {}", reply.status, reply.body);
        if reply.status.is_success() {
            accepted += 1;
            if let Ok(Some(s)) = sendense::platforms::libvirt::check_uri(&address) {
                let resolved = sendense::confinement::resolve(&s);
                assert!(resolved.starts_with(&lab), "{route} accepted {address:?} ({}) outside the roots: {}", resolved.display(), reply.body);
            }
        }
        tried += 1;
    }
    eprintln!("METRIC platform_fuzz tried={tried} accepted={accepted}");
    all_inside(&api, &roots).await;
    // Through a link planted inside pointing out: refused as outside.
    let through = unix_uri(&lab.join("hosts/link-out/libvirt-sock").display().to_string());
    let reply = api.call("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": through}))).await;
    outside_answer(&reply, &through);
    let through = unix_uri(&format!("{}/hosts/kvm-a/sock/../../../../{}", lab.display(), foreign.socket().display().to_string().trim_start_matches('/')));
    let reply = api.call("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": through}))).await;
    outside_answer(&reply, &through);

    // Inside: added and discovered.
    let p: Platform = api.ok("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": good.uri()})), StatusCode::CREATED).await;
    assert!(p.last_error.is_none(), "{p:?}");
    all_inside(&api, &roots).await;
    drop((foreign, good));
}

#[test]
fn the_server_refuses_a_restore_root_that_is_its_data_directory() {
    let data = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_sendense");
    let out = std::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .arg("--restore-root")
        .arg(data.path())
        .env("SENDENSE_ADMIN_PASSWORD", "a-long-enough-password-1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--restore-root") && err.contains("is the data directory"), "{err}");
    // A root above the data directory is allowed (destinations holding the data are refused one by one).
    let roots = Roots::configure(data.path(), &[data.path().parent().unwrap().to_path_buf()], &[], None, &[]).unwrap();
    assert!(roots.check_destination(&data.path().join("x").display().to_string(), &[]).is_err());
}
