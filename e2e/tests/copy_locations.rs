//! 3-2-1 copies in the cockpit, against the real server with the demo lab
//! on its libvirt hosts: a second local repository and a flow with a copy
//! target to it (made through the API), the flow run, its backup and copy
//! jobs complete; ASSETS → web-02's restore points show where the restore
//! point exists: a badge for the primary repository and one for the copy,
//! both present; "Copy…" copies it to a third repository from the table
//! (a copy job; a third badge once done). Screenshots at 1440x900 and
//! 820x1180 (no sideways overflow).

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_points_show_their_primary_and_their_copy() -> Result<()> {
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let vm = server.manage_lab_vm(&token, "lab-prod", "web-02")?;
    let repos = server.get_json("/api/v1/repositories")?;
    let primary = repos.as_array().and_then(|a| a.first()).context("the local repository")?.clone();
    let offsite_path = server.data_path().parent().context("the server's directory")?.join("offsite");
    let offsite = server.expect(&token, "POST", "/api/v1/repositories", Some(json!({"name": "offsite", "kind": "local", "path": offsite_path.display().to_string()})), 201)?;
    let flow = server.expect(
        &token,
        "POST",
        "/api/v1/flows",
        Some(json!({"name": "web-3-2-1", "kind": "backup", "source": {"type": "vms", "vm_ids": [vm]}, "repository_id": primary["id"],
                    "copy_target": {"repository_id": offsite["id"], "retention": {"keep_last": 5}, "immutable_days": 1}})),
        201,
    )?;
    let flow_id = flow["id"].as_str().context("flow id")?.to_owned();
    server.expect(&token, "POST", &format!("/api/v1/flows/{flow_id}/run"), None, 202)?;
    let find = |kind: &str| -> Result<Option<String>> {
        let jobs = server.get_json(&format!("/api/v1/jobs?vm={vm}&kind={kind}"))?;
        Ok(jobs["items"].as_array().and_then(|a| a.first()).and_then(|j| j["id"].as_str().map(str::to_owned)))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let backup = loop {
        if let Some(id) = find("backup")? {
            break id;
        }
        ensure!(std::time::Instant::now() < deadline, "no backup job");
        std::thread::sleep(Duration::from_millis(300));
    };
    let done = server.wait_job(&token, &backup, Duration::from_secs(600))?;
    ensure!(done["job"]["status"] == "completed", "backup: {}", done["job"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let copy = loop {
        if let Some(id) = find("copy")? {
            break id;
        }
        ensure!(std::time::Instant::now() < deadline, "no copy job after the backup: {}", done["logs"]);
        std::thread::sleep(Duration::from_millis(300));
    };
    let copied = server.wait_job(&token, &copy, Duration::from_secs(600))?;
    ensure!(copied["job"]["status"] == "completed", "copy: {copied}");
    let vault_path = server.data_path().parent().context("the server's directory")?.join("vault");
    let vault = server.expect(&token, "POST", "/api/v1/repositories", Some(json!({"name": "vault", "kind": "local", "path": vault_path.display().to_string(), "encrypted": false})), 201)?;
    let vault_id = vault["id"].as_str().context("vault id")?.to_owned();

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/assets")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.click_testid("restore-points-web-02", T).await?;
    b.testid("vm-points", T).await?;
    let badges = b
        .until("the restore point's two locations", T, || async {
            let found = b.client.find_all(fantoccini::Locator::Css("[data-testid='vm-points'] [data-testid='point-location']")).await?;
            let mut out = Vec::new();
            for e in found {
                out.push((e.attr("data-role").await?.unwrap_or_default(), e.attr("data-state").await?.unwrap_or_default(), e.text().await?));
            }
            Ok((out.len() == 2).then_some(out))
        })
        .await?;
    let primary_name = primary["name"].as_str().context("name")?;
    ensure!(
        badges == vec![("primary".to_string(), "present".to_string(), primary_name.to_string()), ("copy".to_string(), "present".to_string(), "copy: offsite".to_string())],
        "badges: {badges:?}"
    );
    let title = b.client.find(fantoccini::Locator::Css("[data-testid='point-location'][data-role='copy']")).await?.attr("title").await?.unwrap_or_default();
    ensure!(title.contains("Copy in 'offsite'") && title.contains("immutable there until"), "title: {title:?}");
    // Copy… to the third repository, from the table.
    let point = server.get_json(&format!("/api/v1/backup/list?vm={vm}"))?["items"][0]["id"].as_str().context("point id")?.to_owned();
    b.click_testid(&format!("copy-point-{point}"), T).await?;
    b.until("vault among the repositories to copy to", T, || async {
        let sel = b.testid("copy-to-repo", T).await?;
        Ok(sel.html(false).await?.contains(&vault_id).then_some(()))
    })
    .await?;
    let options = b.testid("copy-to-repo", T).await?.html(false).await?;
    ensure!(!options.contains(offsite["id"].as_str().unwrap_or("-")), "offsite holds it already, yet is offered: {options}");
    b.testid("copy-to-repo", T).await?.select_by_value(&vault_id).await?;
    b.click_testid("copy-to-start", T).await?;
    let third = b
        .until("the third copy", T, || async {
            let found = b.client.find_all(fantoccini::Locator::Css("[data-testid='vm-points'] [data-testid='point-location'][data-state='present']")).await?;
            Ok((found.len() == 3).then_some(found.len()))
        })
        .await;
    if third.is_err() {
        // The table shows what it had when the copy was queued: reopen it.
        b.click_testid("vm-points-close", T).await?;
        b.until("the vault copy in the catalog", Duration::from_secs(300), || async {
            let p = server.get_json(&format!("/api/v1/backup/{point}"))?;
            Ok(p["locations"].as_array().is_some_and(|l| l.iter().any(|x| x["repository_name"] == "vault" && x["state"] == "present")).then_some(()))
        })
        .await?;
        b.click_testid("restore-points-web-02", T).await?;
        b.until("three badges", T, || async {
            let found = b.client.find_all(fantoccini::Locator::Css("[data-testid='vm-points'] [data-testid='point-location'][data-state='present']")).await?;
            Ok((found.len() == 3).then_some(()))
        })
        .await?;
    }
    for (name, w, h) in [("1440x900", 1440, 900), ("820x1180", 820, 1180)] {
        b.resize(w, h).await?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        ensure!(!b.overflows().await?, "sideways overflow at {name}");
        b.screenshot(&format!("copy-locations-{name}")).await?;
    }
    b.close().await?;
    Ok(())
}
