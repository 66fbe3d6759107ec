//! The cockpit's lazily loaded parts (scripts/lib.sh build_web_wasm,
//! frontend/src/app.rs `split_view!`) in Chromium against the real server:
//! COMMAND loads without fetching any page's split file, a lazy page's file
//! is fetched when it is first shown, and a split file that is gone (the
//! server was updated while the cockpit was open) shows a notice with a
//! reload button instead of killing the app, which keeps working.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server};

/// The names of the wasm files the page has fetched so far.
async fn fetched_wasm(browser: &Browser) -> Result<Vec<String>> {
    let names = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.wasm'))",
            vec![],
        )
        .await?;
    Ok(serde_json::from_value(names)?)
}

/// Copies the built cockpit (dist/) to `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_load_on_demand_and_a_missing_file_is_survived() -> Result<()> {
    // A copy of the build, so one of its files can go away.
    let web = tempfile::Builder::new().prefix("sendense-e2e-web-").tempdir()?;
    copy_dir(&Server::web_dir()?, web.path())?;
    let audit: Vec<_> = std::fs::read_dir(web.path())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("split_audit_page-")))
        .collect();
    ensure!(!audit.is_empty(), "the build has no split_audit_page file: is it split (build_web_wasm)?");
    // The server reads the directory from the environment when it starts.
    std::env::set_var("SENDENSE_WEB_DIR", web.path());
    let server = Server::start()?;
    let browser = Browser::start(1440, 900).await?;
    browser.client.goto(&server.url("/")).await?;
    browser.sign_in("admin", e2e::ADMIN_PASSWORD).await?;
    browser.client.goto(&server.url("/command")).await?;
    browser.testid("page-command", Duration::from_secs(20)).await?;

    // COMMAND: the main wasm only.
    let first = fetched_wasm(&browser).await?;
    ensure!(first.iter().any(|p| p.ends_with("_bg.wasm")), "COMMAND fetched no main wasm: {first:?}");
    ensure!(!first.iter().any(|p| p.contains("split_")), "COMMAND fetched a lazy part: {first:?}");
    e2e::metric("command_wasm_files_fetched", first.len());

    // ASSETS: its file comes when the page is first shown.
    let clicked = Instant::now();
    browser.click_testid("nav-assets", Duration::from_secs(5)).await?;
    browser.testid("page-assets", Duration::from_secs(20)).await?;
    e2e::metric("assets_first_visit_ms", clicked.elapsed().as_millis());
    let after = fetched_wasm(&browser).await?;
    ensure!(after.iter().any(|p| p.contains("split_assets_page-")), "ASSETS shown without fetching its file: {after:?}");
    e2e::metric("assets_wasm_files_fetched", after.len() - first.len());

    // The server is "updated": the audit page's file is gone. The page says
    // so and offers a reload; the rest of the cockpit goes on working.
    for file in &audit {
        std::fs::remove_file(file)?;
    }
    browser.client.goto(&server.url("/systems/audit")).await?;
    let notice = browser.testid("code-not-loaded", Duration::from_secs(20)).await?;
    let text = notice.text().await?;
    ensure!(text.contains("could not be loaded"), "the notice says: {text}");
    browser.testid("code-not-loaded-reload", Duration::from_secs(5)).await?;
    browser.screenshot("lazy-page-not-loaded-desktop-1440x900").await?;
    browser.click_testid("nav-command", Duration::from_secs(5)).await?;
    browser.testid("page-command", Duration::from_secs(20)).await?;
    browser.click_testid("nav-assets", Duration::from_secs(5)).await?;
    browser.testid("page-assets", Duration::from_secs(20)).await?;
    browser.close().await?;
    Ok(())
}
