//! Systems → Notifications in Chromium against the real server: Edit
//! opens a target's form filled in (the kind fixed, the secret blank);
//! a short secret is refused with the rule; name, what it receives and the
//! URL are saved with the stored secret kept (the API reads them back) and
//! "Send test" reaches the new URL. Screenshots at 1440x900, 820x1180 and
//! 390x844, without sideways scrolling.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(10);

/// Answers every request with 204 once its headers arrived; counts them.
async fn receiver() -> Result<(String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/new-hook", listener.local_addr()?);
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                g.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").await;
            });
        }
    });
    Ok((url, got, task))
}


async fn value(b: &Browser, id: &str) -> Result<String> {
    Ok(b.testid(id, T).await?.prop("value").await?.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_is_edited_in_the_cockpit() -> Result<()> {
    let server = Server::start()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let created = server.expect(
        &token,
        "POST",
        "/api/v1/notification-targets",
        Some(json!({"name": "ops hook", "kind": "webhook", "min_severity": "warning",
                    "webhook": {"url": "http://127.0.0.1:9/old-hook"}, "secret": "the-original-secret-0123"})),
        201,
    )?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let (url, got, task) = receiver().await?;

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/systems/notifications")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("target-row", Duration::from_secs(20)).await?;
    b.testid("target-edit", T).await?.click().await?;
    b.testid("edit-target", T).await?;
    ensure!(value(&b, "target-name").await? == "ops hook", "the name is filled in");
    ensure!(value(&b, "target-url").await? == "http://127.0.0.1:9/old-hook", "the URL is filled in");
    ensure!(value(&b, "target-secret").await?.is_empty(), "the secret is never shown");
    let placeholder = b.testid("target-secret", T).await?.attr("placeholder").await?.unwrap_or_default();
    ensure!(placeholder.contains("keep"), "the secret field says blank keeps it: {placeholder:?}");
    ensure!(b.testid("target-kind", T).await?.attr("disabled").await?.is_some(), "the kind cannot change");
    ensure!(b.client.find_all(fantoccini::Locator::Css("[data-testid=add-target]")).await?.is_empty(), "the add form stays hidden while editing");

    // A short secret: the rule, nothing saved.
    b.testid("target-secret", T).await?.send_keys("short").await?;
    b.testid("edit-target-submit", T).await?.click().await?;
    let e = b.testid("edit-target-error", T).await?.text().await?;
    ensure!(e.contains("16 characters"), "{e:?}");
    b.testid("target-secret", T).await?.clear().await?;

    // Name, what it receives and the URL; the secret left blank.
    let name = b.testid("target-name", T).await?;
    name.clear().await?;
    name.send_keys("ops pager").await?;
    let u = b.testid("target-url", T).await?;
    u.clear().await?;
    u.send_keys(&url).await?;
    b.client.find(fantoccini::Locator::Css("[data-testid='edit-target'] [data-testid='target-min-severity'] option[value='critical']")).await?.click().await?;
    b.screenshot("notification-edit-1440x900").await?;
    b.testid("edit-target-submit", T).await?.click().await?;
    b.until("the edit saved", T, || async {
        let t = b.testid("notifications-message", T).await?.text().await?;
        Ok(t.contains("ops pager saved").then_some(()))
    })
    .await?;
    b.testid("add-target", T).await?;
    let saved = server.expect(&token, "GET", &format!("/api/v1/notification-targets/{id}"), None, 200)?;
    ensure!(
        saved["name"] == "ops pager" && saved["min_severity"] == "critical" && saved["webhook"]["url"] == url.as_str() && saved["has_secret"] == true,
        "saved: {saved}"
    );
    b.testid("target-test", T).await?.click().await?;
    b.until("the test delivered", T, || async {
        let t = b.testid("notifications-message", T).await?.text().await?;
        Ok(t.contains("Test delivered").then_some(()))
    })
    .await?;
    ensure!(got.load(Ordering::SeqCst) == 1, "the new URL got {} requests", got.load(Ordering::SeqCst));

    for (w, h, shot) in [(820, 1180, "notification-edit-820x1180"), (390, 844, "notification-edit-390x844")] {
        b.resize(w, h).await?;
        b.client.goto(&server.url("/systems/notifications")).await?;
        b.testid("target-edit", Duration::from_secs(20)).await?.click().await?;
        b.testid("edit-target", T).await?;
        b.screenshot(shot).await?;
        ensure!(!b.overflows().await?, "Notifications scrolls sideways at {w} px");
        b.testid("edit-target-cancel", T).await?.click().await?;
        b.testid("add-target", T).await?;
    }
    task.abort();
    b.close().await
}
