//! The alert center in a real browser against the real server: the local
//! repository's key file is taken away and a verify fails, so the server
//! raises a critical alert; the bell shows it on every page; the alert
//! center lists it, an operator acknowledges it (the bell clears, the row
//! says who); with the key back the next verify resolves it. Systems →
//! Notifications adds a webhook through the form and "Send test" reaches a
//! receiver the test runs on loopback. Screenshots at 1440x900 and 820x1180.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use fantoccini::Locator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(10);

/// Answers every HTTP request with 204 and counts them.
async fn receiver() -> Result<(String, std::sync::Arc<std::sync::atomic::AtomicUsize>, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/sendense-hook", listener.local_addr()?);
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let g = got.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then the body by its Content-Length.
                loop {
                    let Ok(n) = s.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                g.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await;
            });
        }
    });
    Ok((url, got, task))
}

/// Closes the side panels (at tablet width they cover the page).
async fn close_panels(b: &Browser) -> Result<()> {
    for id in ["toggle-left", "toggle-right"] {
        let t = b.testid(id, T).await?;
        if t.attr("aria-pressed").await?.as_deref() == Some("true") {
            t.click().await?;
        }
    }
    Ok(())
}

async fn badge(b: &Browser) -> Result<Option<String>> {
    let found = b.client.find_all(Locator::Css("[data-testid='alert-count']")).await?;
    match found.first() {
        Some(el) => Ok(Some(el.text().await?)),
        None => Ok(None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verify_rings_the_bell_is_acknowledged_resolved_and_notifications_send_a_test() -> Result<()> {
    let server = Server::start()?;
    server.create_user("olga", "olga-password-1", "operator")?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let repos = server.expect(&token, "GET", "/api/v1/repositories", None, 200)?;
    let repo = repos.as_array().and_then(|a| a.first()).context("the local repository")?;
    let repo_id = repo["id"].as_str().context("repository id")?.to_string();

    // The key file goes away: the verify cannot read the repository and fails.
    let key = server.data_path().join("keys").join(format!("{repo_id}.key"));
    let aside = server.data_path().join("key-aside");
    std::fs::rename(&key, &aside).with_context(|| format!("moving {} aside", key.display()))?;
    let job = server.expect(&token, "POST", &format!("/api/v1/repositories/{repo_id}/verify"), None, 202)?;
    let job_id = job["id"].as_str().or_else(|| job["job"]["id"].as_str()).context("verify job id")?.to_string();
    let done = server.wait_job(&token, &job_id, Duration::from_secs(60))?;
    ensure!(done["job"]["status"] == "failed", "the verify without its key: {done}");

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/flows")).await?;
    b.sign_in("olga", "olga-password-1").await?;
    b.testid("page-flows", Duration::from_secs(20)).await?;
    let n = match b.until("the bell's count", T, || async { badge(&b).await }).await {
        Ok(n) => n,
        Err(e) => {
            b.screenshot("alert-bell-missing").await?;
            return Err(e);
        }
    };
    ensure!(n == "1", "the bell shows {n:?}");
    b.testid("alerts-button", T).await?.click().await?;
    b.testid("alerts-panel", T).await?;
    b.screenshot("alert-bell-1440x900").await?;
    b.testid("open-alert-center", T).await?.click().await?;
    b.testid("page-alerts", T).await?;
    let row = b.testid("alert-row", T).await?;
    let text = row.text().await?;
    ensure!(text.contains("verify of repository local failed"), "the alert row: {text:?}");
    ensure!(row.attr("data-state").await?.as_deref() == Some("open"), "state");
    b.screenshot("alert-center-open-1440x900").await?;

    b.testid("acknowledge", T).await?.click().await?;
    let said = b.testid("alerts-message", T).await?.text().await?;
    ensure!(said.contains("acknowledged by olga"), "after acknowledging: {said:?}");
    b.until("the bell to clear", T, || async { Ok(badge(&b).await?.is_none().then_some(())) }).await?;
    // Filters: the acknowledged alert is listed under its state with who took it.
    b.client.find(Locator::Css("[data-testid='filter-state'] option[value='acknowledged']")).await?.click().await?;
    let row = b
        .until("the acknowledged row", T, || async {
            let rows = b.client.find_all(Locator::Css("[data-testid='alert-row'][data-state='acknowledged']")).await?;
            Ok(match rows.first() {
                Some(r) => Some(r.text().await?),
                None => None,
            })
        })
        .await?;
    ensure!(row.contains("acknowledged") && row.contains("by olga"), "acknowledged row: {row:?}");

    // The key is back: the next verify completes and resolves the alert.
    std::fs::rename(&aside, &key)?;
    let job = server.expect(&token, "POST", &format!("/api/v1/repositories/{repo_id}/verify"), None, 202)?;
    let job_id = job["id"].as_str().or_else(|| job["job"]["id"].as_str()).context("verify job id")?.to_string();
    let done = server.wait_job(&token, &job_id, Duration::from_secs(60))?;
    ensure!(done["job"]["status"] == "completed", "the verify with its key: {done}");
    b.client.find(Locator::Css("[data-testid='filter-state'] option[value='resolved']")).await?.click().await?;
    let row = b
        .until("the resolved row", Duration::from_secs(20), || async {
            let rows = b.client.find_all(Locator::Css("[data-testid='alert-row'][data-state='resolved']")).await?;
            Ok(match rows.first() {
                Some(r) => Some(r.text().await?),
                None => None,
            })
        })
        .await?;
    ensure!(row.contains("completed"), "resolved row: {row:?}");
    b.screenshot("alert-center-resolved-1440x900").await?;
    b.resize(820, 1180).await?;
    close_panels(&b).await?;
    b.screenshot("alert-center-resolved-820x1180").await?;

    // Notifications: an admin adds a webhook and sends a test to it.
    let (url, got, task) = receiver().await?;
    b.testid("user-menu", T).await?.click().await?;
    b.testid("sign-out", T).await?.click().await?;
    b.client.goto(&server.url("/systems/notifications")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("no-targets", Duration::from_secs(20)).await?;
    b.testid("target-name", T).await?.send_keys("ops hook").await?;
    b.testid("target-url", T).await?.send_keys(&url).await?;
    b.testid("target-secret", T).await?.send_keys("short").await?;
    b.testid("add-target-submit", T).await?.click().await?;
    let e = b.testid("add-target-error", T).await?.text().await?;
    ensure!(e.contains("16 characters"), "a short secret is refused with the rule: {e:?}");
    b.testid("target-secret", T).await?.send_keys("-and-now-long-enough").await?;
    b.testid("add-target-submit", T).await?.click().await?;
    b.testid("target-row", T).await?;
    b.testid("target-test", T).await?.click().await?;
    let said = b
        .until("the test's outcome", T, || async {
            let t = b.testid("notifications-message", T).await?.text().await?;
            Ok(t.contains("Test delivered").then_some(t))
        })
        .await?;
    ensure!(got.load(std::sync::atomic::Ordering::SeqCst) == 1, "the receiver got {} requests ({said})", got.load(std::sync::atomic::Ordering::SeqCst));
    let last = b
        .until("the target's latest delivery", T, || async {
            let t = b.testid("target-last", T).await?.text().await?;
            Ok(t.contains("delivered").then_some(t))
        })
        .await?;
    ensure!(last.contains("test"), "latest delivery: {last:?}");
    close_panels(&b).await?;
    b.screenshot("notifications-820x1180").await?;
    b.resize(1440, 900).await?;
    b.screenshot("notifications-1440x900").await?;

    // What it receives changes in place; disabled, it says so; removal takes a second click.
    b.client.find(Locator::Css("[data-testid='target-receives'] option[value='critical']")).await?.click().await?;
    b.until("the routing change", T, || async {
        let t = b.testid("notifications-message", T).await?.text().await?;
        Ok(t.contains("now receives critical and worse").then_some(()))
    })
    .await?;
    b.testid("target-toggle", T).await?.click().await?;
    b.until("the target disabled", T, || async {
        let t = b.testid("notifications-message", T).await?.text().await?;
        Ok(t.contains("disabled").then_some(()))
    })
    .await?;
    let targets = server.expect(&token, "GET", "/api/v1/notification-targets", None, 200)?;
    ensure!(targets[0]["min_severity"] == "critical" && targets[0]["enabled"] == false, "after the changes: {targets}");
    ensure!(targets[0]["has_secret"] == true, "the secret stays: {targets}");
    b.testid("target-remove", T).await?.click().await?;
    let label = b.testid("target-remove", T).await?.text().await?;
    ensure!(label.contains("again"), "the first click asks for a second: {label:?}");
    b.testid("target-remove", T).await?.click().await?;
    b.testid("no-targets", T).await?;
    task.abort();
    b.close().await
}
