//! Platform roots (`--platform-root`): KVM host directories are added and
//! tested only from inside them, whatever tricks the address plays (`..`,
//! links planted inside a root pointing out, absolute paths elsewhere, NUL
//! bytes, very long names, Unicode); an address outside is the same 422
//! whether it exists or not, and never a 5xx. A VM whose disk file resolves
//! outside its host directory is refused at discovery with the reason (the
//! rest of the host is discovered). The server refuses to start with a
//! restore root that is its data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use sendense::confinement::Roots;
use sendense::platforms::kvm::definition::{self, DiskDefinition, HostDefinition, VmDefinition};
use serde_json::{json, Value};
use shared_types::discovery::{DiscoverVmsResponse, Platform};
use shared_types::error::ErrorBody;
use shared_types::platform::{DiskFormat, Firmware, GuestOs, PowerState};

mod support;

use support::api::Api;

/// A KVM host directory with one VM per disk file given (relative to the VM directory).
fn host(dir: &Path, name: &str, disks: &[(&str, &str)]) {
    for (vm, _) in disks {
        std::fs::create_dir_all(definition::vm_dir(dir, vm)).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    definition::write_host(dir, &HostDefinition { name: name.into(), cpu_cores: 4, memory_mib: 8192, networks: vec![] }).unwrap();
    for (i, (vm, file)) in disks.iter().enumerate() {
        let def = VmDefinition {
            name: vm.to_string(),
            uuid: format!("00000000-0000-0000-0000-00000000000{i}"),
            vcpus: 1,
            memory_mib: 512,
            firmware: Firmware::Bios,
            os: GuestOs::Linux,
            power: PowerState::Stopped,
            role: None,
            nics: vec![],
            disks: vec![DiskDefinition { name: "disk0".into(), file: file.to_string(), format: DiskFormat::Raw, bus: "virtio".into() }],
        };
        definition::write_vm(dir, &def).unwrap();
    }
}

/// Every platform's address is inside one of `roots`.
async fn all_inside(api: &Api, roots: &[PathBuf]) {
    let all: Vec<Platform> = api.ok("GET", "/api/v1/platforms", None, StatusCode::OK).await;
    for p in all {
        let resolved = sendense::confinement::resolve(Path::new(&p.address));
        assert!(roots.iter().any(|r| resolved.starts_with(r)), "platform '{}' at {} is outside {roots:?}", p.name, p.address);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_addresses_stay_inside_the_platform_roots() {
    let mut f = support::fixture().await;
    let base = std::fs::canonicalize(f.data.path()).unwrap();
    let lab = base.join("lab");
    let outside = tempfile::tempdir().unwrap();
    let outside = std::fs::canonicalize(outside.path()).unwrap();
    // The default roots: DATA_DIR/lab only (the fixture's temp-dir allowance dropped).
    f.state.roots = Arc::new(Roots::configure(&base, &[], &[], None, &[]).unwrap());
    let roots = f.state.roots.platform_roots().to_vec();
    assert_eq!(roots, vec![lab.clone()]);
    let api = Api::admin(f).await;

    // A host outside (exists, valid) and one inside; links planted inside pointing out.
    let foreign = outside.join("foreign-host");
    host(&foreign, "foreign", &[]);
    std::fs::write(outside.join("sentinel"), b"sentinel").unwrap();
    let good = lab.join("hosts/kvm-a");
    for vm in ["ok-01", "esc-01", "link-01"] {
        std::fs::create_dir_all(good.join("vms").join(vm)).unwrap();
    }
    std::fs::write(good.join("vms/ok-01/disk0.raw"), vec![0u8; 1 << 20]).unwrap();
    std::fs::write(outside.join("stolen.raw"), vec![0u8; 1 << 20]).unwrap();
    std::os::unix::fs::symlink(outside.join("stolen.raw"), good.join("vms/link-01/disk0.raw")).unwrap();
    host(&good, "kvm-a", &[("ok-01", "disk0.raw"), ("esc-01", &format!("{}{}", "../".repeat(30), outside.join("stolen.raw").display().to_string().trim_start_matches('/'))), ("link-01", "disk0.raw")]);
    std::os::unix::fs::symlink(&foreign, lab.join("hosts/link-out")).unwrap();
    std::os::unix::fs::symlink("/", lab.join("hosts/root")).unwrap();

    // Outside: the same 422 whether the path exists or not, for add and test alike.
    let outside_answer = |reply: &support::Reply, address: &str| -> String {
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{address}: {}", reply.body);
        let e: ErrorBody = reply.json();
        assert_eq!(e.code, "address_not_allowed", "{address}: {}", reply.body);
        assert!(e.message.contains(&lab.display().to_string()) && e.message.contains("--platform-root"), "the roots are named: {}", e.message);
        e.message.replace(&address.escape_default().to_string(), "ADDRESS")
    };
    let mut answers = Vec::new();
    for address in [foreign.display().to_string(), outside.join("no-such-host").display().to_string(), "/etc".into(), "/etc/no-such-dir".into(), "/root".into(), "/proc/self".into()] {
        for route in ["/api/v1/platforms", "/api/v1/platforms/test"] {
            let reply = api.call("POST", route, Some(json!({"kind": "kvm", "address": address}))).await;
            answers.push(outside_answer(&reply, &address));
        }
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "every outside address gets the same answer: {answers:?}");

    // Fuzz: path tricks built from pieces; never a 5xx, nothing added outside the roots.
    let long = "x".repeat(300);
    let pieces: Vec<String> = vec![
        "..".into(), ".".into(), "hosts".into(), "kvm-a".into(), "link-out".into(), "root".into(), "etc".into(), "\u{0}".into(), "é".into(),
        "🦀".into(), long.clone(), "".into(), "%2e%2e".into(), " ".into(), "vms".into(), "\\".into(), "~".into(),
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
        let mut address = starts[next(starts.len())].clone();
        for _ in 0..(1 + next(5)) {
            address.push('/');
            address.push_str(&pieces[next(pieces.len())]);
        }
        let route = if next(2) == 0 { "/api/v1/platforms" } else { "/api/v1/platforms/test" };
        let reply = api.call("POST", route, Some(json!({"kind": "kvm", "address": address}))).await;
        assert!(reply.status.is_success() || reply.status.is_client_error(), "{route} {address:?}: {} {}", reply.status, reply.body);
        if reply.status.is_success() {
            accepted += 1;
            let resolved = sendense::confinement::resolve(Path::new(address.trim()));
            assert!(resolved.starts_with(&lab), "{route} accepted {address:?} ({}) outside the roots: {}", resolved.display(), reply.body);
        }
        tried += 1;
    }
    eprintln!("METRIC platform_fuzz tried={tried} accepted={accepted}");
    all_inside(&api, &roots).await;
    // Through a link planted inside pointing out: refused as outside.
    let through = lab.join("hosts/link-out").display().to_string();
    let reply = api.call("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": through}))).await;
    outside_answer(&reply, &through);

    // Inside: added; the VMs whose disk resolves outside the host are refused with the reason, the rest discovered.
    let p: Platform = api.ok("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": good.display().to_string()})), StatusCode::CREATED).await;
    let found: DiscoverVmsResponse = api.ok("POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": p.id})), StatusCode::OK).await;
    let names: Vec<&str> = found.vms.iter().map(|v| v.vm.name.as_str()).collect();
    assert_eq!(names, vec!["ok-01"], "only the confined VM is protectable");
    let mut refused: Vec<(&str, &str)> = found.refused.iter().map(|r| (r.name.as_str(), r.reason.as_str())).collect();
    refused.sort();
    assert_eq!(refused.len(), 2, "{refused:?}");
    for (name, reason) in &refused {
        assert!(reason.contains("outside the host directory") && reason.contains(&good.display().to_string()), "{name}: {reason}");
    }
    assert_eq!((refused[0].0, refused[1].0), ("esc-01", "link-01"));
    let test: Value = api.ok("POST", "/api/v1/platforms/test", Some(json!({"kind": "kvm", "address": good.display().to_string()})), StatusCode::OK).await;
    assert_eq!(test["vm_count"], 1, "{test}");
    assert_eq!(std::fs::read(outside.join("sentinel")).unwrap(), b"sentinel");
    all_inside(&api, &roots).await;
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
