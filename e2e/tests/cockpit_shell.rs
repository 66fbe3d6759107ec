//! The cockpit shell in a real browser against the real server: it loads,
//! every navigation item routes, live health arrives, the link survives a
//! server restart, deep links load, the Content Security Policy blocks
//! nothing the cockpit does, and screenshots at three sizes.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server};
use fantoccini::Locator;

const NAV: &[(&str, &str)] = &[
    ("command", "/command"),
    ("flows", "/flows"),
    ("assets", "/assets"),
    ("recovery", "/recovery"),
    ("telemetry", "/telemetry"),
    ("repositories", "/repositories"),
    ("platforms", "/platforms"),
    ("schedules", "/schedules"),
    ("policies", "/policies"),
    ("systems", "/systems"),
];

async fn attr(browser: &Browser, testid: &str, name: &str) -> Result<String> {
    let el = browser.testid(testid, Duration::from_secs(10)).await?;
    Ok(el.attr(name).await?.unwrap_or_default())
}

async fn updates(browser: &Browser) -> Result<u64> {
    Ok(attr(browser, "link-indicator", "data-updates").await?.parse().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_navigation_live_health_and_reconnect() -> Result<()> {
    let mut server = Server::start()?;
    let browser = Browser::start(1440, 900).await?;
    // The Content Security Policy blocks nothing the cockpit does: watched
    // from before the first script of every page.
    browser.watch_csp().await?;

    browser.client.goto(&server.url("/")).await?;
    browser.sign_in("admin", e2e::ADMIN_PASSWORD).await?;

    // The shell loads (signed in: the session cookie is kept); time to first render.
    let started = Instant::now();
    browser.client.goto(&server.url("/")).await?;
    browser.testid("cockpit", Duration::from_secs(20)).await?;
    let shell_visible = started.elapsed();
    let paint = browser
        .client
        .execute(
            "const m = performance.getEntriesByName('sendense-shell-mounted')[0]; return m ? m.startTime : null",
            vec![],
        )
        .await?;
    let mounted_ms = paint.as_f64().context("the app recorded no 'sendense-shell-mounted' mark")?;
    e2e::metric("navigation_to_shell_render_ms", format!("{mounted_ms:.0}"));
    e2e::metric("navigation_to_shell_visible_ms", shell_visible.as_millis());
    let url = browser.client.current_url().await?;
    ensure!(url.path() == "/command", "/ should lead to COMMAND, got {url}");

    // Every navigation item routes to its page. The first visit to a page
    // other than COMMAND and FLOWS fetches its code (its own wasm file and
    // the chunks it shares, frontend/src/app.rs `lazy_pages!`): 15 s, not 5,
    // for a machine under load.
    for (name, path) in NAV {
        browser.testid(&format!("nav-{name}"), Duration::from_secs(5)).await?.click().await?;
        browser.testid(&format!("page-{name}"), Duration::from_secs(15)).await?;
        let url = browser.client.current_url().await?;
        ensure!(url.path() == *path, "clicking {name} went to {url}, expected {path}");
        let current = attr(&browser, &format!("nav-{name}"), "aria-current").await?;
        ensure!(current == "page", "nav-{name} is not marked current after clicking it");
    }

    // Every page visited (sign-in, the shell, each navigation item): no CSP violation.
    let violations = browser.csp_violations().await?;
    ensure!(violations.is_empty(), "the Content Security Policy blocked something: {violations:?}");
    // The policy is enforced and the watch sees it: an injected inline script is blocked and recorded.
    browser
        .client
        .execute("const s = document.createElement('script'); s.textContent = 'window.__injected = 1'; document.head.appendChild(s); return 0", vec![])
        .await?;
    let injected = browser.client.execute("return window.__injected === undefined", vec![]).await?;
    ensure!(injected == serde_json::json!(true), "an injected inline script ran: the CSP is not enforced");
    let violations = browser
        .until("the injected script's violation to be recorded", Duration::from_secs(5), || async {
            let v = browser.csp_violations().await?;
            Ok((!v.is_empty()).then_some(v))
        })
        .await?;
    ensure!(violations.iter().any(|v| v.starts_with("script-src")), "unexpected violation record: {violations:?}");

    // Live health: the status bar updates at least twice, with real figures.
    let first = updates(&browser).await?;
    let cpu_before = browser.testid("status-cpu", Duration::from_secs(5)).await?.text().await?;
    browser
        .until("two more live updates", Duration::from_secs(10), || async {
            Ok((updates(&browser).await? >= first + 2).then_some(()))
        })
        .await?;
    let cpu = browser.testid("status-cpu", Duration::from_secs(5)).await?.text().await?;
    ensure!(cpu.ends_with('%') && cpu != "CPU —", "status bar CPU shows no figure: {cpu:?} (before: {cpu_before:?})");
    let mem = browser.testid("status-mem", Duration::from_secs(5)).await?.text().await?;
    ensure!(mem.contains("iB"), "status bar memory shows no figure: {mem:?}");
    let version = browser.testid("server-version", Duration::from_secs(5)).await?.text().await?;
    ensure!(version.trim() == format!("v{}", env!("CARGO_PKG_VERSION")), "unexpected version text {version:?}");
    ensure!(attr(&browser, "link-indicator", "data-color").await? == "operational", "link is not green while live");

    // The server restarts: the indicator turns amber, then green again by itself.
    let status = server.stop()?;
    ensure!(status.success(), "graceful shutdown exited with {status}");
    browser
        .until("the indicator to turn amber", Duration::from_secs(10), || async {
            Ok((attr(&browser, "link-indicator", "data-color").await? == "caution").then_some(()))
        })
        .await?;
    browser.testid("alert-strip", Duration::from_secs(5)).await.context("no alert while the server is down")?;
    browser.screenshot("reconnecting-1440x900").await?;
    server.launch()?;
    let back = Instant::now();
    browser
        .until("the indicator to turn green again", Duration::from_secs(15), || async {
            Ok((attr(&browser, "link-indicator", "data-color").await? == "operational").then_some(()))
        })
        .await?;
    e2e::metric("reconnect_after_restart_ms", back.elapsed().as_millis());

    // A deep link loads the app on that page.
    browser.client.goto(&server.url("/recovery")).await?;
    browser.testid("page-recovery", Duration::from_secs(20)).await?;
    ensure!(attr(&browser, "nav-recovery", "aria-current").await? == "page", "deep link did not mark RECOVERY current");

    // An unknown cockpit path shows the in-app not-found page, not a blank one.
    browser.client.goto(&server.url("/no/such/page")).await?;
    browser.testid("page-not-found", Duration::from_secs(20)).await?;
    let violations = browser.csp_violations().await?;
    ensure!(violations.is_empty(), "the Content Security Policy blocked something after a reload: {violations:?}");

    browser.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_at_desktop_tablet_and_phone_sizes() -> Result<()> {
    let server = Server::start()?;
    for (name, width, height) in [("desktop", 1440, 900), ("tablet", 820, 1180), ("phone", 390, 844)] {
        let browser = Browser::start(width, height).await?;
        browser.client.goto(&server.url("/telemetry")).await?;
        if name == "desktop" {
            browser.testid("sign-in", Duration::from_secs(20)).await?;
            browser.screenshot(&format!("sign-in-{name}-{width}x{height}")).await?;
        }
        browser.sign_in("admin", e2e::ADMIN_PASSWORD).await?;
        browser.testid("page-telemetry", Duration::from_secs(20)).await?;
        // Wait for live figures so the screenshot shows real data.
        browser
            .until("live figures", Duration::from_secs(10), || async {
                Ok((updates(&browser).await? >= 3).then_some(()))
            })
            .await?;
        let status = browser.testid("status-bar", Duration::from_secs(5)).await?;
        ensure!(status.is_displayed().await?, "status bar hidden at {width}x{height}");
        if width <= 480 {
            let bottom = browser.client.find(Locator::Css(".bottom-nav")).await?;
            ensure!(bottom.is_displayed().await?, "no bottom navigation at {width}x{height}");
        } else {
            let nav = browser.testid("nav-flows", Duration::from_secs(5)).await?;
            ensure!(nav.is_displayed().await?, "primary navigation hidden at {width}x{height}");
        }
        let path = browser.screenshot(&format!("telemetry-{name}-{width}x{height}")).await?;
        println!("screenshot {}", path.display());
        browser.client.goto(&server.url("/command")).await?;
        browser.testid("page-command", Duration::from_secs(20)).await?;
        browser.screenshot(&format!("command-{name}-{width}x{height}")).await?;
        browser.client.goto(&server.url("/systems/users")).await?;
        browser.testid("user-row-admin", Duration::from_secs(20)).await?;
        browser.screenshot(&format!("users-{name}-{width}x{height}")).await?;
        browser.close().await?;
    }
    Ok(())
}
