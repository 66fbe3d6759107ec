//! The cockpit's lazily loaded parts (scripts/lib.sh build_web_wasm,
//! frontend/src/app.rs `split_view!`) in Chromium against the real server:
//! COMMAND loads without fetching any page's split file, a lazy page's file
//! is fetched when it is first shown, every lazy part's file is prefetched
//! once the page has settled (nothing instantiated), and a split file that
//! is gone (the server was updated while the cockpit was open) shows a
//! notice with a reload button instead of killing the app, which keeps
//! working.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server};

/// The names of the wasm files the app has fetched so far (its loaders: not
/// index.html's prefetch links, whose initiator is `link`).
async fn fetched_wasm(browser: &Browser) -> Result<Vec<String>> {
    wasm_entries(browser, "e.initiatorType !== 'link'").await
}

async fn wasm_entries(browser: &Browser, filter: &str) -> Result<Vec<String>> {
    let names = browser
        .client
        .execute(
            &format!(
                "return performance.getEntriesByType('resource').filter((e) => {filter})\
                 .map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.wasm'))"
            ),
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
    // The audit page's file is gone, as after the server was updated while
    // the cockpit was open (a new build's files have other names). Gone
    // from the start: index.html's prefetch would otherwise have it cached.
    for file in &audit {
        std::fs::remove_file(file)?;
    }
    // The server reads the directory from the environment when it starts.
    std::env::set_var("SENDENSE_WEB_DIR", web.path());
    let server = Server::start()?;
    let browser = Browser::start(1440, 900).await?;
    browser.client.goto(&server.url("/")).await?;
    browser.sign_in("admin", e2e::ADMIN_PASSWORD).await?;
    browser.client.goto(&server.url("/command")).await?;
    browser.testid("page-command", Duration::from_secs(20)).await?;
    // Room for every request of this test (the default keeps 250).
    browser.client.execute("performance.setResourceTimingBufferSize(5000); return 0", vec![]).await?;

    // COMMAND: the main wasm only.
    let first = fetched_wasm(&browser).await?;
    ensure!(first.iter().any(|p| p.ends_with("_bg.wasm")), "COMMAND fetched no main wasm: {first:?}");
    ensure!(!first.iter().any(|p| p.contains("split_")), "COMMAND fetched a lazy part: {first:?}");
    e2e::metric("command_wasm_files_fetched", first.len());

    // Once the page has settled, index.html's loader prefetches every lazy
    // part's file (into the HTTP cache, nothing instantiated).
    let listed: Vec<String> = serde_json::from_str(&std::fs::read_to_string(
        std::fs::read_dir(web.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("split-files-") && n.ends_with(".json")))
            .context("the build lists no split files (split-files-<hash>.json)")?,
    )?)?;
    ensure!(listed.iter().any(|n| n.starts_with("split_assets_page-")), "the list misses ASSETS: {listed:?}");
    let prefetched = browser
        .until("the lazy parts' files prefetched", Duration::from_secs(30), || async {
            let got = wasm_entries(&browser, "e.initiatorType === 'link'").await?;
            Ok((got.len() >= listed.len()).then_some(got))
        })
        .await?;
    ensure!(
        listed.iter().all(|n| prefetched.iter().any(|p| p.ends_with(n.as_str()))),
        "not every listed file was prefetched: {prefetched:?}"
    );
    ensure!(fetched_wasm(&browser).await? == first, "the prefetch instantiated something");

    // ASSETS: its file comes when the page is first shown.
    let clicked = Instant::now();
    browser.click_testid("nav-assets", Duration::from_secs(5)).await?;
    browser.testid("page-assets", Duration::from_secs(20)).await?;
    e2e::metric("assets_first_visit_ms", clicked.elapsed().as_millis());
    let after = fetched_wasm(&browser).await?;
    ensure!(after.iter().any(|p| p.contains("split_assets_page-")), "ASSETS shown without fetching its file: {after:?}");
    e2e::metric("assets_wasm_files_fetched", after.len() - first.len());

    // The audit page, whose file is gone: the page says so and offers a
    // reload; the rest of the cockpit goes on working.
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
