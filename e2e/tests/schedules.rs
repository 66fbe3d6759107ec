//! The Schedules page in Chromium against the real server: the local
//! repository's verify and GC on the timeline, a schedule edited in place
//! (a bad pattern refused with the server's message, a good one saved and
//! read back from the API), no sideways scrolling, screenshots at three sizes.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};

const T: Duration = Duration::from_secs(20);


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_shows_upkeep_and_edits_a_schedule() -> Result<()> {
    let server = Server::start()?;
    let repo = server.get_json("/api/v1/repositories")?[0].clone();
    let repo_id = repo["id"].as_str().context("repository id")?.to_owned();
    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/schedules")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("page-schedules", T).await?;
    let verify = b.testid(&format!("schedule-verify:{repo_id}"), T).await?;
    let runs: usize = verify.attr("data-runs").await?.unwrap_or_default().parse().unwrap_or(0);
    ensure!(runs == 1, "the weekly verify runs once in 7 days, shown {runs}");
    b.testid(&format!("schedule-gc:{repo_id}"), T).await?;
    b.screenshot("schedules-desktop-1440x900").await?;

    b.testid(&format!("schedule-edit-verify:{repo_id}"), T).await?.click().await?;
    let input = b.testid("schedule-input", T).await?;
    input.clear().await?;
    input.send_keys("every sunday").await?;
    b.testid("schedule-save", T).await?.click().await?;
    let error = b.testid("schedule-error", T).await?.text().await?;
    ensure!(error.contains("not a valid cron pattern"), "the server's reason shows: {error:?}");
    let input = b.testid("schedule-input", T).await?;
    input.clear().await?;
    input.send_keys("0 4 * * *").await?;
    b.testid("schedule-save", T).await?.click().await?;
    // Daily now: seven runs on the row, and the API agrees.
    b.until("the daily verify on the timeline", T, || async {
        let el = b.testid(&format!("schedule-verify:{repo_id}"), T).await?;
        Ok(el.attr("data-runs").await?.filter(|r| r == "7"))
    })
    .await?;
    let saved = server.get_json("/api/v1/repositories")?[0].clone();
    ensure!(saved["upkeep"]["verify_schedule"] == "0 4 * * *", "saved: {}", saved["upkeep"]);

    for (w, h, name) in [(820, 1180, "schedules-tablet-820x1180"), (390, 844, "schedules-phone-390x844")] {
        b.resize(w, h).await?;
        b.client.goto(&server.url("/schedules")).await?;
        b.testid(&format!("schedule-verify:{repo_id}"), T).await?;
        b.screenshot(name).await?;
        ensure!(!b.overflows().await?, "the Schedules page scrolls sideways at {w} px");
    }
    b.close().await?;
    Ok(())
}
