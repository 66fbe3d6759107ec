//! Instant recovery with the real binary, Chromium and the demo lab on its
//! libvirt hosts: web-01 (a running guest) is backed up; from the restore
//! wizard a VM boots on the DR host straight from that restore point (its
//! job completes when the guest's console shows its boot line; RECOVERY
//! shows it running with the time it took and the pin); the restore point
//! is pinned (deleting it is refused); finalize is started from RECOVERY
//! with a speed cap and the server is killed (SIGKILL) while it copies;
//! after the restart the export still serves (its process outlived the
//! server), the finalize is queued again and completes; then the VM stands
//! alone: no export process, no pin, its disk without a backing image, the
//! guest running. Screenshots at desktop and tablet size.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{metric, Browser, Server, ADMIN_PASSWORD};
use serde_json::{json, Value};

fn instant(server: &Server, token: &str, id: &str) -> Result<Value> {
    server.expect(token, "GET", &format!("/api/v1/restore/instant/{id}"), None, 200)
}

/// Waits until instant recovery `id` is in `state`.
fn wait_state(server: &Server, token: &str, id: &str, state: &str, timeout: Duration) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let i = instant(server, token, id)?;
        if i["state"] == state {
            return Ok(i);
        }
        if i["state"] == "failed" || Instant::now() > deadline {
            bail!("instant recovery {id} is not {state}: {i}; log:\n{}", server.log_text().lines().rev().take(30).collect::<Vec<_>>().join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Export processes serving `socket`.
fn export_processes(socket: &str) -> usize {
    let out = Command::new("pgrep").args(["-f", &format!("export-snapshot.*{socket}")]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

const T: Duration = Duration::from_secs(15);

/// Clicks `id` once enabled; found again when a live refresh replaced it.
async fn click(b: &Browser, id: &str) -> Result<()> {
    b.click_testid(id, T).await
}

/// The instant recovery row on RECOVERY once in `state`.
async fn row_in(b: &Browser, state: &str, timeout: Duration) -> Result<fantoccini::elements::Element> {
    b.until(&format!("an instant recovery {state} on RECOVERY"), timeout, || async {
        let el = b.testid("instant", T).await?;
        Ok((el.attr("data-state").await?.as_deref() == Some(state)).then_some(el))
    })
    .await
}

async fn shoot(b: &Browser, name: &str) -> Result<()> {
    for (size, w, h) in [("desktop-1440x900", 1440, 900), ("tablet-820x1180", 820, 1180)] {
        b.resize(w, h).await?;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let card = b.testid("instant-recoveries", T).await?;
        let _ = b.client.execute("arguments[0].scrollIntoView()", vec![serde_json::to_value(&card)?]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("screenshot {}", b.screenshot(&format!("{name}-{size}")).await?.display());
    }
    b.resize(1440, 900).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_boots_from_a_backup_and_its_finalize_survives_a_server_kill() -> Result<()> {
    let mut server = Server::start_with_lab_guests()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let prod = server.wait_platform(&token, "lab-prod", Duration::from_secs(180))?;
    let dr = server.wait_platform(&token, "lab-dr", Duration::from_secs(30))?;
    let found = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": prod})), 200)?;
    let web = found["vms"].as_array().context("vms")?.iter().find(|v| v["vm"]["name"] == "web-01").context("web-01 in the lab")?;
    let added = server.expect(&token, "POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": prod, "vm_ids": [web["vm"]["id"]]})), 200)?;
    let vm = added["added"][0]["id"].as_str().context("managed id")?.to_owned();

    // A restore point of the running guest.
    let queued = server.expect(&token, "POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vm]})), 202)?;
    let job = queued["jobs"][0]["id"].as_str().context("backup job")?.to_owned();
    let j = server.wait_job(&token, &job, Duration::from_secs(600))?;
    ensure!(j["job"]["status"] == "completed", "{}", j["job"]);
    let points = server.expect(&token, "GET", "/api/v1/backup/list?limit=5", None, 200)?;
    let backup = points["items"].as_array().and_then(|a| a.first()).context("the restore point")?["id"].as_str().context("id")?.to_owned();

    // Bad input: clear 4xx answers.
    let (s, e) = server.call(&token, "POST", "/api/v1/restore/instant", Some(json!({"backup_id": backup, "target_platform_id": dr, "name": "../x"})))?;
    ensure!(s == 400 && e["message"].as_str().unwrap_or("").contains("cannot name a VM"), "{s} {e}");
    let (s, e) = server.call(&token, "POST", "/api/v1/restore/instant", Some(json!({"backup_id": "nope", "target_platform_id": dr, "name": "x"})))?;
    ensure!(s == 422 || s == 400, "{s} {e}");

    // A second storage pool on the DR host: the wizard offers the choice.
    let dr_uri = format!("qemu+unix:///system?socket={}", server.lab_dir().join("libvirt/dr/sock/libvirt-sock").display());
    let fast = server.data_path().join("ssd-pool");
    std::fs::create_dir_all(&fast)?;
    for args in [vec!["pool-define-as", "ssd", "dir", "--target", fast.to_str().context("path")?], vec!["pool-start", "ssd"]] {
        let o = Command::new("virsh").args(["-q", "-c", &dr_uri]).args(&args).output()?;
        ensure!(o.status.success(), "virsh {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    }

    // Up from the restore point, from the restore wizard.
    let browser = Browser::start(1440, 900).await?;
    let b = &browser;
    b.client.goto(&server.url("/")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.client.goto(&server.url("/recovery")).await?;
    b.testid("no-instant", T).await?;
    click(b, &format!("restore-{backup}")).await?;
    click(b, "wizard-next").await?;
    let target = b.testid("wizard-target", T).await?;
    b.until("the DR host proposed", T, || async { Ok((target.prop("value").await?.unwrap_or_default() == dr).then_some(())) }).await?;
    let name = b.testid("wizard-name", T).await?;
    name.clear().await?;
    name.send_keys("web-01-instant").await?;
    click(b, "wizard-next").await?;
    b.testid("wizard-report", Duration::from_secs(20)).await?;
    let pools = b.testid("wizard-pool", T).await?.text().await?;
    ensure!(pools.contains("ssd") && pools.contains("images"), "the wizard offers the DR host's pools: {pools}");
    println!("screenshot {}", b.screenshot("restore-wizard-pools-desktop-1440x900").await?.display());
    // The overlays (and, after finalize, the disks) go to the chosen pool.
    b.testid("wizard-pool", T).await?.select_by_value("ssd").await?;
    b.testid("wizard-report", Duration::from_secs(20)).await?;
    let t0 = Instant::now();
    click(b, "wizard-instant").await?;
    b.testid("wizard-step-run", T).await?;
    let list = server.expect(&token, "GET", "/api/v1/restore/instant", None, 200)?;
    let id = list[0]["id"].as_str().context("the instant recovery the wizard started")?.to_owned();
    let running = wait_state(&server, &token, &id, "running", Duration::from_secs(180))?;
    let click_to_up = t0.elapsed().as_millis() as u64;
    row_in(b, "running", Duration::from_secs(20)).await?;
    click(b, "wizard-done").await?;
    let up_ms = running["up_ms"].as_u64().context("up_ms: the guest's boot line was seen")?;
    ensure!(running["boot_line"].as_str().unwrap_or("").contains("name=web-01"), "{running}");
    ensure!(running["pinned"] == true, "{running}");
    metric("instant_recovery_up_ms", up_ms);
    metric("instant_recovery_click_to_running_ms", click_to_up);
    let (s, e) = server.call(&token, "DELETE", &format!("/api/v1/backup/{backup}"), None)?;
    ensure!(s == 409 && e["code"] == "backup_pinned", "a pinned restore point cannot be deleted: {s} {e}");
    let (s, _) = server.call(&token, "POST", "/api/v1/restore/instant", Some(json!({"backup_id": backup, "target_platform_id": dr, "name": "web-01-instant"})))?;
    ensure!(s == 409, "the name is taken: {s}");
    let socket = std::env::temp_dir().join("sendense-instant").join(format!("{id}.sock")).display().to_string();
    ensure!(export_processes(&socket) == 1, "one export process serves it");
    b.client.goto(&server.url("/recovery")).await?;
    let row = row_in(b, "running", T).await?;
    ensure!(row.attr("data-up-ms").await?.as_deref() == Some(up_ms.to_string().as_str()), "RECOVERY shows the measured time");
    b.testid("instant-pinned", T).await?;
    ensure!(b.testid("instant-boot-line", T).await?.text().await?.contains("name=web-01"));
    shoot(b, "instant-running").await?;

    // Finalize from RECOVERY, capped, killed mid-way.
    b.testid("instant-cap", T).await?.send_keys("2").await?;
    click(b, "instant-finalize").await?;
    row_in(b, "finalizing", T).await?;
    b.testid("instant-progress", T).await?;
    let fjob = instant(&server, &token, &id)?["job_id"].as_str().context("finalize job")?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = server.expect(&token, "GET", &format!("/api/v1/jobs/{fjob}"), None, 200)?;
        if j["job"]["status"] == "running" && j["job"]["bytes_read"].as_u64().unwrap_or(0) > 0 {
            metric("instant_recovery_finalize_killed_after_bytes", j["job"]["bytes_read"].as_u64().unwrap_or(0));
            break;
        }
        ensure!(Instant::now() < deadline && j["job"]["status"] != "completed", "the finalize did not get going or ended too soon: {}", j["job"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill()?;
    ensure!(export_processes(&socket) == 1, "the export outlives the server");
    server.launch()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let t1 = Instant::now();
    let done = wait_state(&server, &token, &id, "finalized", Duration::from_secs(300))?;
    metric("instant_recovery_finalize_after_restart_ms", t1.elapsed().as_millis() as u64);
    ensure!(done["pinned"] == false && done["finalize_total"].as_u64().unwrap_or(0) > 0, "{done}");
    ensure!(done["finalize_done"] == done["finalize_total"], "{done}");
    ensure!(export_processes(&socket) == 0, "the export process ended");
    let image = fast.join("web-01-instant/vda.qcow2");
    ensure!(!server.lab_dir().join("libvirt/dr/images/web-01-instant").exists(), "nothing in the default pool");
    let info = Command::new("qemu-img").args(["info", "-U", "--output=json"]).arg(&image).output()?;
    ensure!(info.status.success() && !String::from_utf8_lossy(&info.stdout).contains("backing-filename"), "the disk stands alone: {}", String::from_utf8_lossy(&info.stdout));
    let vms = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": dr})), 200)?;
    let v = vms["vms"].as_array().context("vms")?.iter().find(|v| v["vm"]["name"] == "web-01-instant").context("the instant VM on the DR host")?;
    ensure!(v["vm"]["power"] == "running", "the guest ran through it all: {v}");
    let (s, e) = server.call(&token, "POST", &format!("/api/v1/restore/instant/{id}/finalize"), Some(json!({})))?;
    ensure!(s == 409, "a finalized one cannot be finalized again: {s} {e}");

    // The browser's session outlived the server.
    b.client.goto(&server.url("/recovery")).await?;
    row_in(b, "finalized", T).await?;
    shoot(b, "instant-finalized").await?;

    // Forgetting a finalized one leaves its VM; the restore point is free.
    click(b, "instant-discard").await?;
    click(b, "instant-discard-confirm").await?;
    b.testid("no-instant", T).await?;
    let list = server.expect(&token, "GET", "/api/v1/restore/instant", None, 200)?;
    ensure!(list.as_array().is_some_and(|a| a.is_empty()), "{list}");
    let vms = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": dr})), 200)?;
    ensure!(vms["vms"].as_array().context("vms")?.iter().any(|v| v["vm"]["name"] == "web-01-instant"), "the finalized VM stays");
    browser.close().await?;
    Ok(())
}
