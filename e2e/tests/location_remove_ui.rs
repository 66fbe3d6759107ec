//! Issue 18 leftovers in the cockpit, against the real server with the demo
//! lab on its libvirt hosts:
//!
//! * a restore point of web-02 written to the local repository and copied
//!   to 'offsite' (a flow with a copy target): its 'Stored in' badges offer
//!   "×" on each location; removing the copy asks first (the dialog names
//!   the repository and where the restore point stays), then the copy's
//!   badge is gone and the primary's "×" with it (its last location);
//! * (no lab) a repository whose storage failed the last write (the failure
//!   written to the catalog as a failed backup records it: the backend
//!   tests `repository_health` and `object_store_faults` produce it for
//!   real) shows 'degraded' with the cause, when and the storage's words,
//!   and "Test now" (a real probe written, read and deleted there) clears it.
//!
//! Screenshots at 1440x900 and 820x1180, none scrolling sideways.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use fantoccini::Locator;
use serde_json::json;

const T: Duration = Duration::from_secs(20);
const SIZES: [(&str, u32, u32); 2] = [("1440x900", 1440, 900), ("820x1180", 820, 1180)];

async fn shoot(b: &Browser, name: &str, testid: &str) -> Result<()> {
    for (size, w, h) in SIZES {
        b.resize(w, h).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.client.execute(&format!("document.querySelector(\"[data-testid='{testid}']\").scrollIntoView({{block: 'center'}})"), vec![]).await?;
        ensure!(!b.overflows().await?, "{name} scrolls sideways at {size}");
        b.screenshot(&format!("{name}-{size}")).await?;
    }
    b.resize(1440, 900).await
}

async fn badges(b: &Browser) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for e in b.client.find_all(Locator::Css("[data-testid='vm-points'] [data-testid='point-location']")).await? {
        out.push((e.attr("data-role").await?.unwrap_or_default(), e.attr("data-repository").await?.unwrap_or_default()));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_is_removed_from_its_badge_after_a_confirmation() -> Result<()> {
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let vm = server.manage_lab_vm(&token, "lab-prod", "web-02")?;
    let repos = server.get_json("/api/v1/repositories")?;
    let primary = repos.as_array().and_then(|a| a.first()).context("the local repository")?.clone();
    let primary_id = primary["id"].as_str().context("id")?.to_owned();
    let offsite_path = server.data_path().parent().context("the server's directory")?.join("offsite");
    let offsite = server.expect(&token, "POST", "/api/v1/repositories", Some(json!({"name": "offsite", "kind": "local", "path": offsite_path.display().to_string()})), 201)?;
    let offsite_id = offsite["id"].as_str().context("id")?.to_owned();
    let flow = server.expect(
        &token,
        "POST",
        "/api/v1/flows",
        Some(json!({"name": "web-3-2-1", "kind": "backup", "source": {"type": "vms", "vm_ids": [vm]}, "repository_id": primary_id,
                    "copy_target": {"repository_id": offsite_id, "retention": {"keep_last": 3}}})),
        201,
    )?;
    server.expect(&token, "POST", &format!("/api/v1/flows/{}/run", flow["id"].as_str().context("flow id")?), None, 202)?;
    let backup = server.newest_job(&vm, "backup")?;
    let done = server.wait_job(&token, &backup, Duration::from_secs(600))?;
    ensure!(done["job"]["status"] == "completed", "backup: {}", done["job"]);
    let copy = server.newest_job(&vm, "copy")?;
    let copied = server.wait_job(&token, &copy, Duration::from_secs(600))?;
    ensure!(copied["job"]["status"] == "completed", "copy: {copied}");
    let point = server.get_json(&format!("/api/v1/backup/list?vm={vm}"))?["items"][0]["id"].as_str().context("point id")?.to_owned();

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/assets")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.click_testid("restore-points-web-02", T).await?;
    b.testid("vm-points", T).await?;
    b.until("both locations", T, || async { Ok((badges(&b).await?.len() == 2).then_some(())) }).await?;
    b.testid(&format!("remove-location-{primary_id}"), T).await?;
    b.click_testid(&format!("remove-location-{offsite_id}"), T).await?;
    let dialog = b.testid("remove-location-dialog", T).await?.text().await?;
    ensure!(dialog.contains("'offsite'") && dialog.contains("stays restorable from") && dialog.contains(primary["name"].as_str().unwrap_or("")), "the confirmation: {dialog:?}");
    shoot(&b, "location-remove-confirm", "remove-location-dialog").await?;
    b.click_testid("remove-location-confirm", T).await?;
    let left = b
        .until("the copy's badge gone", T, || async {
            let now = badges(&b).await?;
            Ok((now.len() == 1).then_some(now))
        })
        .await?;
    ensure!(left == vec![("primary".to_string(), primary_id.clone())], "badges after: {left:?}");
    ensure!(b.client.find(Locator::Css(&format!("[data-testid='remove-location-{primary_id}']"))).await.is_err(), "the last location offers removal");
    let p = server.get_json(&format!("/api/v1/backup/{point}"))?;
    ensure!(p["locations"].as_array().map(|l| l.len()) == Some(1), "the catalog still has the copy: {p}");
    shoot(&b, "location-removed", "vm-points").await?;
    b.close().await?;
    Ok(())
}

/// No lab needed: a second local repository, its last write failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_repository_says_why_and_a_passing_test_clears_it() -> Result<()> {
    let server = Server::start()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let offsite_path = server.data_path().parent().context("the server's directory")?.join("offsite");
    let offsite = server.expect(&token, "POST", "/api/v1/repositories", Some(json!({"name": "offsite", "kind": "local", "path": offsite_path.display().to_string()})), 201)?;
    let offsite_id = offsite["id"].as_str().context("id")?.to_owned();
    let backup = "job-4f1c";
    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/repositories")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("repo-offsite", T).await?;
    // 'offsite' degraded: its last write refused (as a failed backup records it).
    let catalog = server.data_path().join("catalog.sqlite");
    // (created_at: a time in the catalog's own format.)
    let sql = format!(
        "UPDATE repositories SET storage_failure_at = created_at, storage_failure_cause = 'full', storage_failure = \
         'backup to local repository ''offsite'' failed: repository object ''packs/3f/3f9c'': No space left on device (os error 28)', \
         storage_failure_job = '{backup}' WHERE id = '{offsite_id}'"
    );
    let out = std::process::Command::new("sqlite3").arg(&catalog).arg(&sql).output()?;
    ensure!(out.status.success(), "sqlite3: {}", String::from_utf8_lossy(&out.stderr));
    let shown = server.get_json(&format!("/api/v1/repositories/{offsite_id}"))?;
    ensure!(shown["status"] == "degraded" && shown["storage_failure"]["cause"] == "full", "{shown}");
    b.client.refresh().await?;
    let card = b.testid("repo-offsite", T).await?;
    ensure!(card.attr("data-status").await?.as_deref() == Some("degraded"), "card status");
    let notice = b.testid("repo-storage-failure", T).await?.text().await?;
    ensure!(notice.contains("full or over its quota") && notice.contains("No space left on device") && notice.contains(&backup), "the notice: {notice:?}");
    shoot(&b, "repository-degraded", "repo-offsite").await?;
    b.click_testid("repo-test", T).await?;
    b.until("the repository online again", T, || async {
        let c = b.testid("repo-offsite", T).await?;
        Ok((c.attr("data-status").await?.as_deref() == Some("online")).then_some(()))
    })
    .await?;
    let message = b.testid("repo-message", T).await?.text().await?;
    ensure!(message.contains("test passed"), "{message:?}");
    ensure!(b.client.find(Locator::Css("[data-testid='repo-storage-failure']")).await.is_err(), "the notice stays after a passing test");
    shoot(&b, "repository-tested-online", "repo-offsite").await?;
    b.close().await?;
    Ok(())
}
