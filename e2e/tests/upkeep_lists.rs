//! Day-to-day upkeep in Chromium against the real server with the demo lab
//! (`--lab-guests`): on ASSETS the filters (power, platform, protection, group)
//! show what the API answers for the same filters; a selection is added to
//! a group with the bulk bar (one VM per outcome), then Back up now queues
//! the VM in the group's flow and says per VM that the other is in no flow;
//! the real backups run. On RECOVERY the restore point filters show what
//! the API counts, a restore point's chain reads from its full, and Delete
//! of an immutable restore point is refused with the date it ends.
//! Screenshots of both pages at 1440x900, 820x1180 and 390x844, no
//! sideways scrolling.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use fantoccini::Locator;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);
const SIZES: &[(&str, u32, u32)] = &[("1440x900", 1440, 900), ("820x1180", 820, 1180), ("390x844", 390, 844)];


async fn click(b: &Browser, id: &str) -> Result<()> {
    b.click_testid(id, T).await
}

async fn choose(b: &Browser, id: &str, value: &str) -> Result<()> {
    let select = b.testid(id, T).await?;
    // The options may still be loading.
    b.until(&format!("option {value} in {id}"), T, || {
        let select = select.clone();
        async move { Ok(select.find(Locator::Css(&format!("option[value='{value}']"))).await.ok().map(|_| ())) }
    })
    .await?;
    select.select_by_value(value).await.with_context(|| format!("choosing {value} in {id}"))?;
    Ok(())
}

/// The `data-testid`s starting with `prefix` shown on the page, sorted.
async fn shown(b: &Browser, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for el in b.client.find_all(Locator::Css(&format!("[data-testid^='{prefix}']"))).await? {
        out.push(el.attr("data-testid").await?.unwrap_or_default().trim_start_matches(prefix).to_owned());
    }
    out.sort();
    Ok(out)
}

/// Waits until the VM rows on ASSETS are exactly those the API lists for `query`.
async fn rows_match_api(b: &Browser, server: &Server, query: &str) -> Result<Vec<String>> {
    let api = server.get_json(&format!("/api/v1/vm-contexts?{query}"))?;
    let mut want: Vec<String> = api["items"].as_array().context("items")?.iter().map(|v| v["name"].as_str().unwrap_or_default().to_owned()).collect();
    want.sort();
    b.until(&format!("the rows of ?{query}"), T, || async {
        let got = shown(b, "vm-row-").await?;
        Ok((got == want).then_some(()))
    })
    .await?;
    Ok(want)
}

/// Waits until the restore point table holds the API's total for `query`.
async fn points_match_api(b: &Browser, server: &Server, query: &str) -> Result<u64> {
    let total = server.get_json(&format!("/api/v1/backup/list?{query}"))?["total"].as_u64().context("total")?;
    b.until(&format!("the restore points of ?{query}"), T, || async {
        let rows = b.client.find_all(Locator::Css("[data-testid='restore-points'] tbody tr")).await?.len() as u64;
        let empty = b.client.find(Locator::Css("[data-testid='no-restore-points']")).await.is_ok();
        Ok(((total == 0 && empty) || (total > 0 && rows == total)).then_some(()))
    })
    .await?;
    Ok(total)
}

fn job_of(report: &Value, vm: &str) -> Option<String> {
    report["items"].as_array()?.iter().find(|i| i["vm_name"] == vm)?["job_id"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_filters_bulk_actions_and_restore_point_upkeep() -> Result<()> {
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let prod = server.wait_platform(&token, "lab-prod", Duration::from_secs(180))?;
    let found = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": prod})), 200)?;
    let ids: Vec<Value> = found["vms"]
        .as_array()
        .context("vms")?
        .iter()
        .filter(|v| ["web-02", "files-01", "app-01"].contains(&v["vm"]["name"].as_str().unwrap_or_default()))
        .map(|v| v["vm"]["id"].clone())
        .collect();
    ensure!(ids.len() == 3, "web-02, files-01 and app-01 in the lab");
    server.expect(&token, "POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": prod, "vm_ids": ids})), 200)?;
    let group = server.expect(&token, "POST", "/api/v1/protection-groups", Some(json!({"name": "upkeep-web"})), 201)?;
    let group_id = group["group"]["id"].as_str().context("group id")?.to_owned();
    let repo = server.get_json("/api/v1/repositories")?[0]["id"].as_str().context("repository")?.to_owned();
    server.expect(
        &token,
        "POST",
        "/api/v1/flows",
        Some(json!({"name": "upkeep-nightly", "kind": "backup", "source": {"type": "group", "group_id": group_id}, "repository_id": repo, "immutable_days": 1})),
        201,
    )?;

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/assets")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("vm-row-web-02", T).await?;

    // Filters: the rows are what the API lists for the same filter.
    // The lab's guests all run: stopped matches none, running all three.
    choose(&b, "filter-power", "stopped").await?;
    ensure!(rows_match_api(&b, &server, "power=stopped").await?.is_empty());
    b.testid("no-vms-match", T).await?;
    let count = b.testid("filter-count", T).await?.text().await?;
    ensure!(count.starts_with("0 of 3"), "the count says what matches: {count:?}");
    choose(&b, "filter-power", "running").await?;
    choose(&b, "filter-platform", &prod).await?;
    ensure!(rows_match_api(&b, &server, &format!("power=running&platform={prod}")).await?.len() == 3);
    click(&b, "filter-clear").await?;
    choose(&b, "filter-protection", "unprotected").await?;
    rows_match_api(&b, &server, "protection=unprotected").await?;
    click(&b, "filter-clear").await?;
    rows_match_api(&b, &server, "").await?;

    // Bulk: add web-02 and app-01 to the group; each VM's outcome shows.
    click(&b, "vm-check-web-02").await?;
    click(&b, "vm-check-app-01").await?;
    ensure!(b.testid("bulk-count", T).await?.text().await? == "2 selected");
    choose(&b, "bulk-group", &group_id).await?;
    click(&b, "bulk-add-to-group").await?;
    let summary = b.testid("bulk-summary", T).await?.text().await?;
    ensure!(summary.contains("2 done"), "{summary:?}");
    for vm in ["web-02", "app-01"] {
        let row = b.testid(&format!("bulk-result-{vm}"), T).await?;
        ensure!(row.attr("data-outcome").await?.as_deref() == Some("done"), "{vm}: {}", row.text().await?);
    }
    let g = server.get_json(&format!("/api/v1/protection-groups/{group_id}"))?;
    ensure!(g["group"]["vm_count"] == 2, "the server holds both in the group: {}", g["group"]);
    // The group filter now shows them.
    choose(&b, "filter-group", &group_id).await?;
    ensure!(rows_match_api(&b, &server, &format!("group={group_id}")).await? == ["app-01", "web-02"]);
    click(&b, "filter-clear").await?;
    rows_match_api(&b, &server, "").await?;

    // Back up now: web-02 through the group's flow, files-01 in no flow
    // (a changed filter emptied the selection).
    ensure!(b.testid("bulk-count", T).await?.text().await? == "0 selected");
    click(&b, "vm-check-web-02").await?;
    click(&b, "vm-check-files-01").await?;
    click(&b, "bulk-backup-now").await?;
    b.until("the back up now results", T, || async {
        Ok(b.testid("bulk-summary", T).await?.text().await?.starts_with("Back up now").then_some(()))
    })
    .await?;
    let summary = b.testid("bulk-summary", T).await?.text().await?;
    ensure!(summary.contains("1 done") && summary.contains("1 refused"), "{summary:?}");
    let files = b.testid("bulk-result-files-01", T).await?;
    ensure!(files.attr("data-outcome").await?.as_deref() == Some("refused"));
    ensure!(files.text().await?.contains("In no backup flow"), "files-01 says why: {}", files.text().await?);
    let web = b.testid("bulk-result-web-02", T).await?;
    ensure!(web.text().await?.contains("upkeep-nightly"), "web-02 names its flow: {}", web.text().await?);
    b.screenshot("assets-upkeep-1440x900").await?;
    ensure!(!b.overflows().await?, "ASSETS scrolls sideways at 1440 px");
    // At each size: web-02 added to its group again reads "unchanged".
    for (name, w, h) in &SIZES[1..] {
        b.resize(*w, *h).await?;
        b.client.goto(&server.url("/assets")).await?;
        click(&b, "vm-check-web-02").await?;
        choose(&b, "bulk-group", &group_id).await?;
        click(&b, "bulk-add-to-group").await?;
        let row = b.testid("bulk-result-web-02", T).await?;
        ensure!(row.attr("data-outcome").await?.as_deref() == Some("unchanged"), "{}", row.text().await?);
        b.client.execute("document.querySelector('[data-testid=bulk-bar]').scrollIntoView()", vec![]).await?;
        b.screenshot(&format!("assets-upkeep-{name}")).await?;
        ensure!(!b.overflows().await?, "ASSETS scrolls sideways at {w} px");
    }
    b.resize(1440, 900).await?;
    // The first backup of web-02 runs for real; a second one reads from it.
    let jobs = server.get_json("/api/v1/jobs?kind=backup&limit=10")?;
    let first = jobs["items"].as_array().context("jobs")?.iter().find(|j| j["vm_name"] == "web-02").context("web-02's job")?["id"]
        .as_str()
        .context("job id")?
        .to_owned();
    let done = server.wait_job(&token, &first, Duration::from_secs(300))?;
    ensure!(done["job"]["status"] == "completed", "first backup: {}", done["job"]);
    let web_id = server.get_json("/api/v1/vm-contexts?search=web-02")?["items"][0]["id"].as_str().context("web-02 id")?.to_owned();
    let report = server.expect(&token, "POST", "/api/v1/vm-contexts/bulk/backup-now", Some(json!({"vm_ids": [web_id]})), 200)?;
    let second = job_of(&report, "web-02").with_context(|| format!("second backup queued: {report}"))?;
    let done = server.wait_job(&token, &second, Duration::from_secs(300))?;
    ensure!(done["job"]["status"] == "completed", "second backup: {}", done["job"]);

    // RECOVERY: the filters show what the API counts.
    b.client.goto(&server.url("/recovery")).await?;
    b.testid("point-filters", T).await?;
    ensure!(points_match_api(&b, &server, "").await? == 2);
    choose(&b, "point-filter-vm", &web_id).await?;
    points_match_api(&b, &server, &format!("vm={web_id}")).await?;
    choose(&b, "point-filter-immutable", "false").await?;
    ensure!(points_match_api(&b, &server, &format!("vm={web_id}&immutable=false")).await? == 0, "both are immutable for a day");
    choose(&b, "point-filter-immutable", "true").await?;
    points_match_api(&b, &server, &format!("vm={web_id}&immutable=true")).await?;
    choose(&b, "point-filter-type", "full").await?;
    points_match_api(&b, &server, &format!("vm={web_id}&immutable=true&type=full")).await?;
    choose(&b, "point-filter-type", "").await?;
    choose(&b, "point-filter-status", "corrupt").await?;
    ensure!(points_match_api(&b, &server, &format!("vm={web_id}&immutable=true&status=corrupt")).await? == 0);
    click(&b, "point-filter-clear").await?;
    points_match_api(&b, &server, "").await?;

    // The newest point's chain: it reads from the first.
    let list = server.get_json(&format!("/api/v1/backup/list?vm={web_id}"))?;
    let newest = list["items"][0]["id"].as_str().context("newest")?.to_owned();
    let oldest = list["items"][1]["id"].as_str().context("oldest")?.to_owned();
    let until = list["items"][1]["immutable_until"].as_str().context("immutable until")?.to_owned();
    click(&b, &format!("chain-{newest}")).await?;
    b.testid("point-chain", T).await?;
    let links = b
        .until("the chain's links", T, || async {
            let mut out = Vec::new();
            for l in b.client.find_all(Locator::Css("[data-testid='chain-link']")).await? {
                out.push((l.attr("data-relation").await?.unwrap_or_default(), l.attr("data-id").await?.unwrap_or_default()));
            }
            Ok((!out.is_empty()).then_some(out))
        })
        .await?;
    ensure!(
        links == [("ancestor".to_string(), oldest.clone()), ("this".to_string(), newest.clone())],
        "the chain reads from the first point: {links:?}"
    );
    b.screenshot("recovery-chain-1440x900").await?;
    click(&b, "point-chain-close").await?;

    // Delete the immutable full: refused, with the date it ends.
    let row = b.testid(&format!("point-{oldest}"), T).await?;
    row.find(Locator::Css("[data-testid='point-delete']")).await?.click().await?;
    b.testid("point-delete-confirm", T).await?.click().await?;
    let error = b.testid("point-delete-error", T).await?.text().await?;
    ensure!(error.contains("immutable until") && error.contains(&until[..10]), "the refusal gives the date: {error:?} (until {until})");
    ensure!(server.get_json(&format!("/api/v1/backup/list?vm={web_id}"))?["total"] == 2, "nothing was deleted");
    b.screenshot("recovery-points-1440x900").await?;
    ensure!(!b.overflows().await?, "RECOVERY scrolls sideways at 1440 px");
    for (name, w, h) in &SIZES[1..] {
        b.resize(*w, *h).await?;
        b.client.goto(&server.url("/recovery")).await?;
        points_match_api(&b, &server, "").await?;
        b.client.execute("document.querySelector('[data-testid=point-filters]').scrollIntoView()", vec![]).await?;
        b.screenshot(&format!("recovery-points-{name}")).await?;
        ensure!(!b.overflows().await?, "RECOVERY scrolls sideways at {w} px");
    }
    b.close().await?;
    Ok(())
}
