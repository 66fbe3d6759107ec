//! The restore wizard's networks with the real binary, Chromium and the
//! demo lab on its libvirt hosts: web-01 (on dmz and lan) is backed up; a
//! failover mapping lan -> storage is saved for the lab's hosts; the
//! wizard's configuration step shows each NIC with its target network
//! filled in (storage for lan, by the saved mapping; dmz by the
//! recommendation), dmz is moved to the isolated network, and the restored
//! VM's NICs on the DR host are on isolated and storage (virsh domiflist).
//! Screenshots at 1440x900, 820x1180 and 390x844.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use serde_json::json;

const T: Duration = Duration::from_secs(10);

async fn click(b: &Browser, id: &str) -> Result<()> {
    b.click_testid(id, T).await
}

/// The selected value of the NIC select of `network`.
async fn chosen(b: &Browser, network: &str) -> Result<String> {
    Ok(b.testid(&format!("wizard-net-{network}"), T).await?.prop("value").await?.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_maps_each_nic_and_the_restored_vm_joins_those_networks() -> Result<()> {
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let prod = server.wait_platform(&token, "lab-prod", Duration::from_secs(180))?;
    let dr = server.wait_platform(&token, "lab-dr", Duration::from_secs(30))?;
    let found = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": prod})), 200)?;
    let web = found["vms"].as_array().context("vms")?.iter().find(|v| v["vm"]["name"] == "web-01").context("web-01 in the lab")?;
    let added = server.expect(&token, "POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": prod, "vm_ids": [web["vm"]["id"]]})), 200)?;
    let vm = added["added"][0]["id"].as_str().context("managed id")?.to_owned();
    let queued = server.expect(&token, "POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vm]})), 202)?;
    let job = queued["jobs"][0]["id"].as_str().context("backup job")?.to_owned();
    let j = server.wait_job(&token, &job, Duration::from_secs(600))?;
    ensure!(j["job"]["status"] == "completed", "{}", j["job"]);
    let points = server.expect(&token, "GET", "/api/v1/backup/list?limit=5", None, 200)?;
    let backup = points["items"][0]["id"].as_str().context("the restore point")?.to_owned();
    // The Networks page's failover mapping for the pair: lan -> storage.
    server.expect(
        &token,
        "POST",
        "/api/v1/network-mappings",
        Some(json!({"source_platform_id": prod, "source_network": "lan", "target_platform_id": dr, "target_network": "storage", "purpose": "failover"})),
        201,
    )?;

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.client.goto(&server.url("/recovery")).await?;
    click(&b, &format!("restore-{backup}")).await?;
    click(&b, "wizard-next").await?;
    let target = b.testid("wizard-target", T).await?;
    b.until("the DR host proposed", T, || async { Ok((target.prop("value").await?.unwrap_or_default() == dr).then_some(())) }).await?;
    let name = b.testid("wizard-name", T).await?;
    name.clear().await?;
    name.send_keys("web-01-mapped").await?;
    click(&b, "wizard-next").await?;

    // Each NIC with its proposal filled in.
    b.until("the proposals filled in", Duration::from_secs(30), || async {
        Ok((chosen(&b, "lan").await.unwrap_or_default() == "storage").then_some(()))
    })
    .await?;
    ensure!(chosen(&b, "dmz").await? == "dmz", "dmz keeps its own network (recommended)");
    let lan = b.testid("wizard-proposal-lan", T).await?.text().await?;
    ensure!(lan.contains("storage") && lan.contains("saved mapping"), "lan's proposal: {lan:?}");
    let dmz = b.testid("wizard-proposal-dmz", T).await?.text().await?;
    ensure!(dmz.contains("recommended"), "dmz's proposal: {dmz:?}");
    // dmz moved to the isolated network; the check runs again with it.
    b.testid("wizard-net-dmz", T).await?.select_by_value("isolated").await?;
    b.until("the check with the choice", Duration::from_secs(30), || async {
        let ok = match b.client.find_all(fantoccini::Locator::Css("[data-testid=wizard-report][data-ok=true]")).await?.first() {
            Some(_) => chosen(&b, "dmz").await? == "isolated",
            None => false,
        };
        Ok(ok.then_some(()))
    })
    .await?;
    let networks = b.testid("wizard-networks", T).await?;
    b.client.execute("arguments[0].scrollIntoView()", vec![serde_json::to_value(&networks)?]).await?;
    b.screenshot("restore-networks-desktop-1440x900").await?;
    for (w, h, shot) in [(820, 1180, "restore-networks-tablet-820x1180"), (390, 844, "restore-networks-phone-390x844")] {
        b.resize(w, h).await?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let networks = b.testid("wizard-networks", T).await?;
        b.client.execute("arguments[0].scrollIntoView()", vec![serde_json::to_value(&networks)?]).await?;
        b.screenshot(shot).await?;
    }
    b.resize(1440, 900).await?;
    click(&b, "wizard-start").await?;
    b.testid("wizard-step-run", T).await?;
    let jobs = server.expect(&token, "GET", "/api/v1/jobs?kind=restore&limit=5", None, 200)?;
    let restore = jobs["items"][0]["id"].as_str().or_else(|| jobs[0]["id"].as_str()).context(format!("the restore job: {jobs}"))?.to_owned();
    let done = server.wait_job(&token, &restore, Duration::from_secs(600))?;
    ensure!(done["job"]["status"] == "completed", "{}", done["job"]);

    // On the DR host, the restored VM's NICs are on the chosen networks.
    let dr_uri = format!("qemu+unix:///system?socket={}", server.lab_dir().join("libvirt/dr/sock/libvirt-sock").display());
    let out = Command::new("virsh").args(["-q", "-c", &dr_uri, "domiflist", "web-01-mapped"]).output()?;
    ensure!(out.status.success(), "virsh domiflist: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut sources: Vec<String> = text.lines().filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned)).collect();
    sources.sort();
    ensure!(sources == ["isolated", "storage"], "the restored VM's NICs: {text}");
    b.close().await
}
