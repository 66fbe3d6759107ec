//! The Reports page in Chromium against the real server, on real jobs: a
//! lab VM under a scheduled flow, backed up twice (full, incremental)
//! through the API. The page's figures are the API's; the server's SVG
//! charts load; a table's CSV downloads; the printable page holds the
//! charts and tables; the RPO report shows the VM within its RPO; no
//! sideways scrolling; screenshots at three sizes.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use serde_json::json;

const T: Duration = Duration::from_secs(30);


/// Every chart image on the page has loaded and has a size.
async fn charts_loaded(b: &Browser) -> Result<Option<u64>> {
    let v = b
        .client
        .execute(
            "const imgs = [...document.querySelectorAll('[data-testid=report-chart]')]; \
             return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0) ? imgs.length : null",
            vec![],
        )
        .await?;
    Ok(v.as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_show_real_jobs_export_csv_and_print() -> Result<()> {
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let vm = server.manage_lab_vm(&token, "lab-prod", "web-02")?;
    let repo = server.get_json("/api/v1/repositories")?[0]["id"].as_str().context("repository")?.to_owned();
    server.expect(
        &token,
        "POST",
        "/api/v1/flows",
        Some(json!({"name": "web-nightly", "kind": "backup", "source": {"type": "vms", "vm_ids": [vm]}, "repository_id": repo, "schedule": "0 2 * * *"})),
        201,
    )?;
    for kind in ["full", "incremental"] {
        let queued = server.expect(&token, "POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vm], "backup_type": kind})), 202)?;
        let job = queued["jobs"][0]["id"].as_str().context("job id")?.to_owned();
        let done = server.wait_job(&token, &job, Duration::from_secs(240))?;
        ensure!(done["job"]["status"] == "completed", "{kind} backup: {}", done["job"]);
    }
    let success = server.get_json("/api/v1/reports/success?days=30")?;
    ensure!(success["total"]["completed"] == 2, "two completed backups: {}", success["total"]);

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/reports")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("page-reports", T).await?;
    let summary = b.testid("report-summary", T).await?.text().await?;
    ensure!(summary.starts_with("100.0 % of 2 decided backups completed"), "the success line: {summary:?}");
    let table = b.testid("report-table", T).await?.text().await?;
    ensure!(table.contains("web-02"), "the VM's row: {table}");
    let n = b.until("the success charts drawn by the server", T, || async { charts_loaded(&b).await }).await?;
    ensure!(n == 2, "two success charts, {n}");
    // The table's CSV, fetched as the link would (the session cookie).
    let href = b.testid("report-csv", T).await?.attr("href").await?.context("csv href")?;
    ensure!(href.contains("format=csv"), "{href}");
    let csv = b
        .client
        .execute_async("fetch(arguments[0]).then(r => r.text()).then(arguments[1])", vec![json!(href)])
        .await?;
    let csv = csv.as_str().context("csv text")?.to_owned();
    ensure!(csv.starts_with("VM,Success rate,Completed") && csv.contains("web-02,100.00,2,0,0"), "csv: {csv}");
    b.screenshot("reports-desktop-1440x900").await?;

    // RPO: the VM is within the RPO its daily flow gives (26 h 24 min).
    b.testid("report-rpo", T).await?.click().await?;
    b.until("the RPO report", T, || async {
        let el = b.testid("report", T).await?;
        Ok(el.attr("data-kind").await?.filter(|k| k == "rpo"))
    })
    .await?;
    let rpo = b.testid("report-table", T).await?.text().await?;
    ensure!(rpo.contains("web-02") && rpo.contains("web-nightly") && rpo.contains("within RPO"), "rpo table: {rpo}");
    let line = b.testid("report-summary", T).await?.text().await?;
    ensure!(line.starts_with("0 of 1 VMs with an RPO are out of it now"), "{line}");

    // Storage over 90 days: the forecast says what it can.
    b.testid("report-storage", T).await?.click().await?;
    b.testid("report-90d", T).await?.click().await?;
    b.until("the storage report over 90 days", T, || async {
        let el = b.testid("report", T).await?;
        Ok((el.attr("data-kind").await?.as_deref() == Some("storage") && el.attr("data-days").await?.as_deref() == Some("90")).then_some(()))
    })
    .await?;
    let line = b.testid("report-summary", T).await?.text().await?;
    ensure!(line.contains("local: not enough history"), "a day-old repository has no forecast: {line}");
    b.until("the storage chart", T, || async { charts_loaded(&b).await }).await?;
    let method = b.testid("report-method", T).await?.text().await?;
    ensure!(method.contains("least-squares"), "{method}");

    // The printable page: the server's charts and the tables.
    let print = b.testid("report-print", T).await?.attr("href").await?.context("print href")?;
    ensure!(print.ends_with("/api/v1/reports/storage/print?days=90"), "{print}");
    b.client.goto(&server.url(&print)).await?;
    let svgs = b.client.execute("return document.querySelectorAll('figure svg').length", vec![]).await?;
    ensure!(svgs.as_u64() == Some(1), "one chart on the storage page: {svgs}");
    let h1 = b.client.execute("return document.querySelector('h1').textContent", vec![]).await?;
    ensure!(h1 == "Storage growth and forecast", "{h1}");
    b.screenshot("reports-print-storage").await?;

    for (w, h, name) in [(820, 1180, "reports-tablet-820x1180"), (390, 844, "reports-phone-390x844")] {
        b.resize(w, h).await?;
        b.client.goto(&server.url("/reports")).await?;
        b.testid("report-table", T).await?;
        b.until("the charts", T, || async { charts_loaded(&b).await }).await?;
        b.screenshot(name).await?;
        ensure!(!b.overflows().await?, "the Reports page scrolls sideways at {w} px");
    }
    b.close().await?;
    Ok(())
}
