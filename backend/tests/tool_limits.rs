//! External tools run with a time limit and die with their job: `e2fsck`
//! is replaced (PATH override) by a script that, while a marker file
//! exists, records its pid and its child's and hangs; otherwise it runs the
//! real one. On the real demo lab, a file restore into web-01's disk (a
//! `file_restore` job) then
//!
//! * fails when the check hangs past its limit, the error naming the tool
//!   and the limit (`e2fsck timed out after 2 s`), the tool and its child
//!   killed, the disk unchanged;
//! * is cancelled when stopped while the tool hangs (limit 10 min): the
//!   tool and its child are gone within seconds;
//! * completes once the tool behaves.
//!
//! And without a job: `qemu-img convert` through the same override is
//! killed at its limit and at a stop, and a `qemu-nbd` server started for a
//! job is killed when the job is stopped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use sendense::catalog::repositories::ensure_local;
use sendense::lab::{self, InitOptions};
use sendense::platforms::nbd::{QemuNbd, QemuNbdOptions};
use sendense::platforms::tools::{self, Timeouts};
use sendense::platforms::PlatformError;
use serde_json::json;
use shared_types::jobs::{Job, JobDetails, JobStatus};
use shared_types::restore::Mount;

mod support;

use support::api::Api;

/// Whether `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) == Some("Z"),
    }
}

/// Waits up to `secs` until every pid in `file` is gone; the pids.
fn wait_gone(file: &Path, secs: u64) -> Vec<u32> {
    let pids: Vec<u32> = std::fs::read_to_string(file).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(!pids.is_empty(), "the fake tool recorded its pids in {}", file.display());
    let until = Instant::now() + Duration::from_secs(secs);
    while !pids.iter().all(|p| gone(*p)) {
        assert!(Instant::now() < until, "tool processes {pids:?} still alive {secs} s later");
        std::thread::sleep(Duration::from_millis(50));
    }
    pids
}

/// Waits until the fake tool wrote both its pids.
async fn wait_started(file: &Path, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    while std::fs::read_to_string(file).map(|s| s.lines().count() < 2).unwrap_or(true) {
        assert!(Instant::now() < until, "the hanging tool did not start within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `dir/name`: hangs (recording `$$` and its child's pid in `pids`) while `mark` exists, else runs `real`.
fn fake_tool(dir: &Path, name: &str, real: &Path, mark: &Path, pids: &Path) {
    let script = format!(
        "#!/bin/sh\nif [ -e '{mark}' ]; then echo $$ > '{pids}'; sleep 600 & echo $! >> '{pids}'; wait; exit 1; fi\nexec '{real}' \"$@\"\n",
        mark = mark.display(),
        pids = pids.display(),
        real = real.display()
    );
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&path).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn which(tool: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(tool)).find(|c| c.is_file()))
        .flatten()
        .unwrap_or_else(|| panic!("{tool} is not installed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_tools_time_out_and_die_with_their_job() {
    let _ = tracing_subscriber::fmt().with_env_filter("sendense::platforms::tools=info,sendense::runner=info").with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("bin");
    std::fs::create_dir_all(&fake).unwrap();
    // e2fsck and qemu-img each hang while their own mark exists.
    let (mark, img_mark, pids) = (dir.path().join("hang"), dir.path().join("hang-qemu-img"), dir.path().join("pids"));
    let real_img = which("qemu-img");
    fake_tool(&fake, "e2fsck", &which("e2fsck"), &mark, &pids);
    fake_tool(&fake, "qemu-img", &real_img, &img_mark, &pids);
    // The only test of this binary: the process-wide PATH and limits are its own.
    let path = std::env::join_paths(std::iter::once(fake.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()))).unwrap();
    std::env::set_var("PATH", path);

    // Without a job: qemu-img convert killed at its limit, then at a stop.
    std::fs::write(&img_mark, b"").unwrap();
    tools::set_timeouts(Timeouts::parse("convert=1").unwrap());
    let started = Instant::now();
    let err = tools::run("qemu-img", ["convert", "-O", "raw", "a", "b"]).unwrap_err();
    assert!(matches!(err, PlatformError::ToolTimedOut { seconds: 1, .. }), "{err:?}");
    assert!(err.to_string().starts_with("qemu-img convert timed out after 1 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let killed = wait_gone(&pids, 5);
    eprintln!("METRIC tool_timeout killed={killed:?} after_ms={}", started.elapsed().as_millis());
    std::fs::remove_file(&pids).unwrap();
    tools::set_timeouts(Timeouts::default());
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = {
        let (flag, pids) = (flag.clone(), pids.clone());
        std::thread::spawn(move || {
            while std::fs::read_to_string(&pids).map(|s| s.lines().count() < 2).unwrap_or(true) {
                std::thread::sleep(Duration::from_millis(20));
            }
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            Instant::now()
        })
    };
    let f2 = flag.clone();
    let err = tools::with_stop(move || f2.load(std::sync::atomic::Ordering::Relaxed), || tools::run("qemu-img", ["convert", "a", "b"])).unwrap_err();
    let stopped_at = stopper.join().unwrap();
    assert!(matches!(err, PlatformError::ToolStopped { .. }), "{err:?}");
    wait_gone(&pids, 5);
    eprintln!("METRIC tool_stop killed_ms={}", stopped_at.elapsed().as_millis());
    std::fs::remove_file(&pids).unwrap();
    std::fs::remove_file(&img_mark).unwrap();

    // A long-lived qemu-nbd server started for a job dies when the job is stopped.
    let served = dir.path().join("served.qcow2");
    assert!(std::process::Command::new(&real_img).args(["create", "-q", "-f", "qcow2"]).arg(&served).arg("16M").status().unwrap().success());
    let stop_nbd = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop_nbd.clone();
    let (pid, ms) = tools::with_stop(move || s2.load(std::sync::atomic::Ordering::Relaxed), || {
        let server = QemuNbd::start(&served, &QemuNbdOptions::qcow2()).unwrap();
        let pid = server.pid();
        assert!(!gone(pid), "qemu-nbd serving");
        let asked = Instant::now();
        stop_nbd.store(true, std::sync::atomic::Ordering::Relaxed);
        while !gone(pid) {
            assert!(asked.elapsed() < Duration::from_secs(5), "qemu-nbd {pid} still serving 5 s after its job was stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
        let ms = asked.elapsed().as_millis();
        drop(server);
        (pid, ms)
    });
    eprintln!("METRIC qemu_nbd_stop pid={pid} killed_ms={ms}");

    // The lab (its own e2fsck runs go through the fake, which passes them on).
    let lab_dir = dir.path().join("lab");
    let lab_task = lab_dir.clone();
    tokio::task::spawn_blocking(move || lab::init(&lab_task, &InitOptions { force: false }, &mut |_| {}).unwrap()).await.unwrap();
    let f = support::fixture().await;
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let host = support::kvm::TestHost::start(lab_dir.join("hosts/kvm-prod-01")).await;
    let platform = api.add_host(&host).await;
    let web = api.manage(&platform, &["web-01"]).await.remove(0);
    let backup = api.back_up(&web, "full").await;
    let mount: Mount = api.ok("POST", "/api/v1/restore/mount", Some(json!({"backup_id": backup})), StatusCode::CREATED).await;
    let vol = mount.volumes.iter().find(|v| v.filesystem == "ext4").expect("an ext4 volume").id.clone();
    let url = format!("/api/v1/restore/{}/restore-files", mount.id);
    let body = json!({"paths": [format!("/{vol}/etc/hostname")], "destination": {"kind": "vm_disk", "vm_id": web, "volume": vol, "directory": "/restored"}, "conflict": "skip"});
    let disk = host.vm("web-01").disk("vda").to_path_buf();
    let before = dir.path().join("before.qcow2");
    std::fs::copy(&disk, &before).unwrap();
    let same = |a: &Path, b: &Path| std::process::Command::new(&real_img).args(["compare", "-q", "-U"]).arg(a).arg(b).status().unwrap().success();

    // The check hangs past its 2 s limit: the job fails naming the tool and the limit.
    tools::set_timeouts(Timeouts::parse("check=2").unwrap());
    std::fs::write(&mark, b"").unwrap();
    let job: Job = api.ok("POST", &url, Some(body.clone()), StatusCode::ACCEPTED).await;
    let d: JobDetails = serde_json::from_value(api.wait(&job.id, 120).await).unwrap();
    assert_eq!(d.job.status, JobStatus::Failed, "{:?}", d.job);
    let error = d.job.error.clone().unwrap_or_default();
    assert!(error.contains("e2fsck timed out after 2 s"), "{error}");
    wait_gone(&pids, 5);
    assert!(same(&disk, &before), "a timed-out restore leaves the disk as it was");
    std::fs::remove_file(&pids).unwrap();

    // Stopped while the check hangs (limit 10 min): cancelled, the tool killed at once.
    tools::set_timeouts(Timeouts::default());
    let job: Job = api.ok("POST", &url, Some(body.clone()), StatusCode::ACCEPTED).await;
    wait_started(&pids, 120).await;
    let asked = Instant::now();
    let reply = api.call("POST", &format!("/api/v1/jobs/{}/stop", job.id), None).await;
    assert!(reply.status.is_success(), "{}", reply.body);
    let d: JobDetails = serde_json::from_value(api.wait(&job.id, 30).await).unwrap();
    assert_eq!(d.job.status, JobStatus::Cancelled, "{:?}", d.job);
    assert!(d.job.error.clone().unwrap_or_default().contains("e2fsck"), "{:?}", d.job.error);
    let killed = wait_gone(&pids, 5);
    eprintln!("METRIC job_stop killed={killed:?} ms={}", asked.elapsed().as_millis());
    assert!(asked.elapsed() < Duration::from_secs(10), "{:?}", asked.elapsed());
    assert!(same(&disk, &before), "a stopped restore leaves the disk as it was");
    std::fs::remove_file(&mark).unwrap();

    // The tool behaves again: the restore completes.
    let job: Job = api.ok("POST", &url, Some(body), StatusCode::ACCEPTED).await;
    let d: JobDetails = serde_json::from_value(api.wait(&job.id, 120).await).unwrap();
    assert_eq!(d.job.status, JobStatus::Completed, "{:?} {:?}", d.job, d.logs);
    assert_eq!(d.file_restore.expect("result").files, 1);
}
