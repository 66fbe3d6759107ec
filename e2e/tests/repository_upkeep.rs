//! Repositories page upkeep in Chromium: a lab VM backed up, then "Verify
//! now" starts a verify job whose progress and end show on the card, and
//! the card's last verify reads the result the server recorded; the
//! restore point shows as verified in RECOVERY, and TELEMETRY's job history
//! counts both jobs as the API does. Screenshots at 1440x900 and 820x1180.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

/// The attributes `names` of the element with `testid`, or `None` while it
/// is absent or being re-rendered.
async fn attrs(b: &Browser, testid: &str, names: &[&str]) -> Option<Vec<String>> {
    let el = b.client.find(fantoccini::Locator::Css(&format!("[data-testid='{testid}']"))).await.ok()?;
    let mut out = Vec::new();
    for n in names {
        out.push(el.attr(n).await.ok()?.unwrap_or_default());
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_now_runs_and_the_page_shows_the_result() -> Result<()> {
    let server = Server::start_with_lab_guests()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let vm = server.manage_lab_vm(&token, "lab-prod", "web-02")?;
    let queued = server.expect(&token, "POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vm], "backup_type": "full"})), 202)?;
    let job = queued["jobs"][0]["id"].as_str().context("job id")?.to_owned();
    let done = server.wait_job(&token, &job, Duration::from_secs(240))?;
    ensure!(done["job"]["status"] == "completed", "backup: {}", done["job"]);

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/repositories")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("repo-local", T).await?;
    let before = b.testid("repo-last-verify", T).await?.attr("data-outcome").await?.unwrap_or_default();
    ensure!(before == "never", "last verify before any: {before:?}");
    let next = b.testid("repo-next-verify", T).await?.text().await?;
    ensure!(next.contains("0 3 * * 0"), "the default weekly schedule shows: {next:?}");

    b.testid("repo-verify-now", T).await?.click().await?;
    // The job appears on the card, live, and ends completed.
    let status = b
        .until("the verify job to complete on the card", Duration::from_secs(120), || async {
            Ok(attrs(&b, "repo-job", &["data-kind", "data-status"]).await.filter(|a| a[0] == "verify" && a[1] == "completed").map(|a| a[1].clone()))
        })
        .await?;
    ensure!(status == "completed");
    let bytes = b.testid("repo-job-bytes", T).await?.text().await?;
    ensure!(bytes.contains("checked") && !bytes.starts_with("0 B"), "progress names the bytes checked: {bytes:?}");
    // The card's last verify now reads the server's result.
    let text = b
        .until("the last verify to show the result", Duration::from_secs(30), || async {
            if attrs(&b, "repo-last-verify", &["data-outcome"]).await.is_some_and(|a| a[0] == "ok") {
                return Ok(b.testid("repo-last-verify", T).await?.text().await.ok());
            }
            Ok(None)
        })
        .await?;
    ensure!(text.contains("every restore point intact"), "{text:?}");
    let repo = &server.get_json("/api/v1/repositories")?[0];
    ensure!(repo["upkeep"]["last_verify"]["outcome"] == "ok" && repo["upkeep"]["last_verify"]["damaged"] == 0, "{}", repo["upkeep"]);
    b.screenshot("repositories-upkeep-1440x900").await?;

    // RECOVERY lists the restore point as verified.
    b.client.goto(&server.url("/recovery")).await?;
    let cell = b.testid("point-verify", T).await?;
    ensure!(cell.attr("data-state").await?.as_deref() == Some("verified"), "restore point state: {:?}", cell.text().await?);

    b.resize(820, 1180).await?;
    b.client.goto(&server.url("/repositories")).await?;
    b.testid("repo-upkeep", T).await?;
    b.screenshot("repositories-upkeep-820x1180").await?;
    ensure!(!b.overflows().await?, "the Repositories page scrolls sideways at 820 px");

    // TELEMETRY's job history: the backup and the verify among the day's
    // jobs, on the local repository, as the API counts them.
    let history = server.get_json("/api/v1/telemetry/history?window=24h")?;
    let completed = history["totals"]["completed"].as_u64().context("totals.completed")?;
    ensure!(completed >= 2, "the backup and the verify completed today: {}", history["totals"]);
    b.client.goto(&server.url("/telemetry")).await?;
    let shown = b
        .until("the job history", T, || async {
            Ok(match b.testid("history-completed", T).await {
                Ok(el) => el.text().await.ok().filter(|t| !t.is_empty()),
                Err(_) => None,
            })
        })
        .await?;
    ensure!(shown == completed.to_string(), "TELEMETRY shows {shown} completed, the API {completed}");
    let repos = b.testid("history-repositories", T).await?.text().await?;
    ensure!(repos.contains("local"), "the local repository's row: {repos:?}");
    b.screenshot("telemetry-history-820x1180").await?;
    b.resize(1440, 900).await?;
    b.client.goto(&server.url("/telemetry")).await?;
    b.testid("history-7d", T).await?.click().await?;
    b.until("the 7-day window", T, || async {
        Ok(b.testid("history-7d", T).await?.attr("aria-pressed").await?.filter(|p| p == "true"))
    })
    .await?;
    b.testid("history-throughput", T).await?;
    b.screenshot("telemetry-history-1440x900").await?;
    b.close().await?;
    Ok(())
}
