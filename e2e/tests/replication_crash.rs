//! Reliability: the server is killed (SIGKILL) in the middle of a
//! replication sync, twice, with the real binary and the demo lab on its
//! libvirt hosts (a guest booting a real kernel, replicated from the
//! production host to the DR host's storage pool).
//!
//! 1. During the first (full) sync of the running web-01: after the restart
//!    the flow says the sync was interrupted, the job is failed, and the
//!    next sync (which the server queues at once, after ending the backup
//!    job the killed server left in libvirt) resumes it and makes point 1;
//!    with the guest shut off it equals the source.
//! 2. During an incremental sync of 24 MiB written to the source: after the
//!    restart the replica's point 1 still equals the source as it was before
//!    the write (the interrupted delta never touched it), and the next sync
//!    makes point 2, equal to the source now.
//! 3. During a live failover (its sync of 16 MiB the source wrote last):
//!    after the restart the flow says why it stopped, and failing over again
//!    finishes the switch; the replica's guest runs with that write.
//!
//! Syncs read at the lab server's read limit (4 MiB/s), so there is time to
//! kill one while it moves.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{metric, Server, ADMIN_PASSWORD};
use serde_json::{json, Value};

fn qemu_img(args: &[&str]) -> Result<bool> {
    Ok(Command::new("qemu-img").args(args).status().context("running qemu-img")?.success())
}

/// The guest-visible contents of two images are equal.
fn same(a: &Path, b: &Path) -> Result<bool> {
    qemu_img(&["compare", "-q", "-U", &a.display().to_string(), &b.display().to_string()])
}

/// Kills the server once the running job `job` has read `at_least` bytes.
fn kill_mid_job(server: &mut Server, token: &str, job: &str, at_least: u64) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = server.expect(token, "GET", &format!("/api/v1/jobs/{job}"), None, 200)?;
        let read = j["job"]["bytes_read"].as_u64().unwrap_or(0);
        match j["job"]["status"].as_str() {
            Some("running") if read >= at_least => {
                server.kill()?;
                return Ok(read);
            }
            Some("completed" | "failed" | "cancelled") => bail!("the job ended before it could be killed: {}", j["job"]),
            _ if Instant::now() > deadline => bail!("the job did not get going: {}", j["job"]),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The volume of a lab guest's first disk in a lab host's pool.
fn lab_volume(pool: &Path, vm: &str) -> Result<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(pool)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{vm}-")) && !n.ends_with(".log")))
        .collect();
    found.sort();
    found.into_iter().next().with_context(|| format!("no volume of {vm} in {}", pool.display()))
}

fn flow(server: &Server, token: &str, id: &str) -> Result<Value> {
    server.expect(token, "GET", &format!("/api/v1/replication/{id}"), None, 200)
}

/// The sync that finishes the interrupted one: the one the server queued
/// itself after the restart (a flow interrupted mid-sync is due at once),
/// or one asked for now. Its job, ended.
fn next_sync(server: &Server, token: &str, id: &str) -> Result<Value> {
    let f = flow(server, token, id)?;
    let job = match f["flow"]["active_job_id"].as_str() {
        Some(j) => j.to_owned(),
        None => server.expect(token, "POST", &format!("/api/v1/replication/{id}/sync"), None, 202)?["job"]["id"].as_str().context("job")?.to_owned(),
    };
    server.wait_job(token, &job, Duration::from_secs(180))
}

#[test]
fn a_sync_killed_mid_way_resumes_and_the_last_point_stays_consistent() -> Result<()> {
    let mut server = Server::start_with_lab_guests()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let prod = server.wait_platform(&token, "lab-prod", Duration::from_secs(180))?;
    let dr = server.wait_platform(&token, "lab-dr", Duration::from_secs(30))?;
    let found = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": prod})), 200)?;
    let web = found["vms"].as_array().context("vms")?.iter().find(|v| v["vm"]["name"] == "web-01").context("web-01 in the lab")?;
    ensure!(web["vm"]["power"] == "running", "web-01's guest runs: {web}");
    let added = server.expect(&token, "POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": prod, "vm_ids": [web["vm"]["id"]]})), 200)?;
    let vm = added["added"][0]["id"].as_str().context("managed id")?.to_owned();
    let pools = server.lab_dir().join("libvirt");
    let source = lab_volume(&pools.join("prod/images"), "web-01")?;
    let replica = pools.join("dr/images/web-01-replica");

    // 1. Killed during the first, full sync.
    let started = server.expect(&token, "POST", "/api/v1/replication/start", Some(json!({"vm_id": vm, "target_platform_id": dr})), 201)?;
    let id = started["flow"]["id"].as_str().context("flow id")?.to_owned();
    let job = started["job"]["id"].as_str().context("job id")?.to_owned();
    // Past a few journal checkpoints (every 2 s, at 4 MiB/s).
    let read = kill_mid_job(&mut server, &token, &job, 16 << 20)?;
    ensure!(replica.join("sync.json").exists(), "the kill landed mid-sync: the journal is there");
    server.launch()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    // The guest stops, so that point 1 can be compared with its disk.
    server.expect(&token, "POST", &format!("/api/v1/vms/{vm}/power"), Some(json!({"action": "stop"})), 200)?;
    let f = flow(&server, &token, &id)?;
    ensure!(f["flow"]["point_count"] == 0, "no point yet after the killed first sync: {}", f["flow"]);
    ensure!(f["flow"]["failure_reason"].as_str().unwrap_or("").contains("interrupted by a server restart"), "{}", f["flow"]);
    let j = server.expect(&token, "GET", &format!("/api/v1/jobs/{job}"), None, 200)?;
    ensure!(j["job"]["status"] == "failed", "the killed job is failed: {}", j["job"]);
    // The sync the restart queued at once may have been starting while the
    // guest was stopped (QEMU exits under libvirt's backup call: "Unable to
    // read from monitor"); it fails, the journal stays, and the next one,
    // with the guest off, resumes it.
    let mut j = next_sync(&server, &token, &id)?;
    if j["job"]["status"] == "failed" {
        eprintln!("the sync queued at the restart failed while the guest stopped: {}", j["job"]["error"]);
        ensure!(replica.join("sync.json").exists(), "a failed resume keeps the journal: {j}");
        j = next_sync(&server, &token, &id)?;
    }
    ensure!(j["job"]["status"] == "completed", "{j}");
    let f = flow(&server, &token, &id)?;
    ensure!(f["flow"]["state"] == "healthy" && f["flow"]["point_count"] == 1, "{}", f["flow"]);
    ensure!(!replica.join("sync.json").exists(), "the journal is gone once the sync finished");
    let resumed_read = j["job"]["bytes_read"].as_u64().unwrap_or(0);
    let report: Value = j["logs"]
        .as_array()
        .context("logs")?
        .iter()
        .filter_map(|l| l["message"].as_str()?.strip_prefix("report "))
        .find_map(|r| serde_json::from_str(r).ok())
        .context("the sync's report in its log")?;
    let resumed_from = report["disks"][0]["resumed_from"].as_u64().unwrap_or(0);
    metric("replication_crash_full_killed_after_bytes", read);
    metric("replication_crash_full_resumed_from_offset", resumed_from);
    metric("replication_crash_full_resume_read_bytes", resumed_read);
    ensure!(resumed_from > 0, "the full sync resumed instead of starting over: {report}");
    ensure!(same(&replica.join("vda.rp-1.qcow2"), &source)?, "point 1 equals the source");

    // 2. Killed during an incremental sync: point 1 stays what it was.
    let before = server.data_dir.path().join("before.qcow2");
    ensure!(qemu_img(&["convert", "-U", "-O", "qcow2", &source.display().to_string(), &before.display().to_string()])?);
    let info = Command::new("qemu-img").args(["info", "-U", "--output=json"]).arg(&source).output()?;
    let size = serde_json::from_slice::<Value>(&info.stdout)?["virtual-size"].as_u64().context("virtual size")?;
    let offset = size - (64 << 20);
    let write = Command::new("qemu-io").args(["-f", "qcow2", "-c", &format!("write -P 0x5a {offset} 24M")]).arg(&source).output()?;
    ensure!(write.status.success(), "qemu-io: {}", String::from_utf8_lossy(&write.stderr));
    let inc = server.expect(&token, "POST", &format!("/api/v1/replication/{id}/sync"), None, 202)?;
    let inc_job = inc["job"]["id"].as_str().context("job")?.to_owned();
    kill_mid_job(&mut server, &token, &inc_job, 4 << 20)?;
    ensure!(replica.join("sync.json").exists(), "the kill landed mid-sync: the journal is there");
    ensure!(same(&replica.join("vda.rp-1.qcow2"), &before)?, "point 1 is untouched by the interrupted sync");
    server.launch()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let f = flow(&server, &token, &id)?;
    ensure!(f["flow"]["point_count"] == 1, "back at point 1: {}", f["flow"]);
    let j = next_sync(&server, &token, &id)?;
    ensure!(j["job"]["status"] == "completed", "{j}");
    let f = flow(&server, &token, &id)?;
    ensure!(f["flow"]["point_count"] == 2, "{}", f["flow"]);
    ensure!(f["flow"]["last_sync"]["kind"] == "incremental", "the redone sync is incremental: {}", f["flow"]["last_sync"]);
    ensure!(f["flow"]["last_sync"]["bytes_changed"].as_u64().unwrap_or(0) >= 24 << 20, "{}", f["flow"]["last_sync"]);
    ensure!(same(&replica.join("vda.rp-2.qcow2"), &source)?, "point 2 equals the source");
    ensure!(same(&replica.join("vda.rp-1.qcow2"), &before)?, "point 1 still equals the source before the write");

    // 3. Killed during a live failover (while its sync copies what the
    //    source wrote last): after the restart the flow is settled with the
    //    reason, and failing over again finishes the switch: the replica's
    //    guest runs with the source's last write.
    let offset = size - (160 << 20);
    let write = Command::new("qemu-io").args(["-f", "qcow2", "-c", &format!("write -P 0x6b {offset} 16M")]).arg(&source).output()?;
    ensure!(write.status.success(), "qemu-io: {}", String::from_utf8_lossy(&write.stderr));
    server.expect(
        &token,
        "POST",
        "/api/v1/networks/bulk-mapping",
        Some(json!({"source_platform_id": prod, "target_platform_id": dr,
            "mappings": [{"source_network": "dmz", "target_network": "dmz"}, {"source_network": "lan", "target_network": "lan"}]})),
        200,
    )?;
    let fo = server.expect(&token, "POST", &format!("/api/v1/replication/{id}/failover"), Some(json!({"confirm": "web-01"})), 202)?;
    let fo_job = fo["job"]["id"].as_str().context("failover job")?.to_owned();
    let read = kill_mid_job(&mut server, &token, &fo_job, 4 << 20)?;
    metric("replication_crash_failover_killed_after_bytes", read);
    server.launch()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let j = server.expect(&token, "GET", &format!("/api/v1/jobs/{fo_job}"), None, 200)?;
    ensure!(j["job"]["status"] == "failed", "the killed failover is failed: {}", j["job"]);
    let f = flow(&server, &token, &id)?;
    ensure!(f["flow"]["failure_reason"].as_str().unwrap_or("").contains("interrupted by a server restart"), "{}", f["flow"]);
    // A sync the restart queued may run first; then the failover again.
    if let Some(active) = f["flow"]["active_job_id"].as_str() {
        server.wait_job(&token, active, Duration::from_secs(180))?;
    }
    let again = server.expect(&token, "POST", &format!("/api/v1/replication/{id}/failover"), Some(json!({"confirm": "web-01"})), 202)?;
    let j = server.wait_job(&token, again["job"]["id"].as_str().context("job")?, Duration::from_secs(300))?;
    ensure!(j["job"]["status"] == "completed", "the second failover completes: {}", j["job"]);
    let f = flow(&server, &token, &id)?;
    ensure!(f["flow"]["state"] == "failed_over", "{}", f["flow"]);
    let top = replica.join("vda.qcow2");
    let check = Command::new("qemu-io").args(["-U", "-r", "-f", "qcow2", "-c", &format!("read -P 0x6b {offset} 16M")]).arg(&top).output()?;
    ensure!(
        check.status.success() && !String::from_utf8_lossy(&check.stdout).contains("Pattern verification failed"),
        "the replica holds the source's last write: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let dr_vms = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": dr})), 200)?;
    let r = dr_vms["vms"].as_array().context("vms")?.iter().find(|v| v["vm"]["name"] == "web-01-replica").context("the replica on the DR host")?;
    ensure!(r["vm"]["power"] == "running", "the replica's guest runs: {r}");
    server.stop()?;
    Ok(())
}
