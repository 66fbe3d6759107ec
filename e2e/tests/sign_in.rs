//! Sign-in through the cockpit: the page, the user menu, sign-out, a wrong
//! password, what a viewer may not do, and the Users page.

use std::time::Duration;

use anyhow::{ensure, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_user_menu_sign_out_and_viewer_limits() -> Result<()> {
    let server = Server::start()?;
    server.create_user("vera", "vera-password-1", "viewer")?;
    let browser = Browser::start(1440, 900).await?;

    // A deep link while signed out shows the sign-in screen, not a half page.
    browser.client.goto(&server.url("/flows")).await?;
    browser.testid("sign-in", Duration::from_secs(20)).await?;
    ensure!(browser.client.find_all(fantoccini::Locator::Css("[data-testid='cockpit']")).await?.is_empty());

    // A wrong password is refused with a message.
    browser.testid("sign-in-username", Duration::from_secs(5)).await?.send_keys("admin").await?;
    browser.testid("sign-in-password", Duration::from_secs(5)).await?.send_keys("not the password").await?;
    browser.testid("sign-in-submit", Duration::from_secs(5)).await?.click().await?;
    let error = browser.testid("sign-in-error", Duration::from_secs(10)).await?.text().await?;
    ensure!(error.contains("wrong password"), "unexpected sign-in error {error:?}");
    browser.client.refresh().await?;

    // Admin signs in, lands on the page asked for, sees the user menu.
    browser.sign_in("admin", ADMIN_PASSWORD).await?;
    browser.testid("page-flows", Duration::from_secs(10)).await?;
    browser.testid("user-menu", Duration::from_secs(5)).await?.click().await?;
    let name = browser.testid("user-menu-name", Duration::from_secs(5)).await?.text().await?;
    let role = browser.testid("user-menu-role", Duration::from_secs(5)).await?.text().await?;
    ensure!((name.as_str(), role.as_str()) == ("admin", "admin"), "user menu shows {name:?} / {role:?}");
    let stop = browser.testid("emergency-stop", Duration::from_secs(5)).await?;
    ensure!(stop.is_enabled().await?, "admin's Emergency Stop is disabled");

    // The Users page lists both users.
    browser.client.goto(&server.url("/systems/users")).await?;
    browser.testid("user-row-vera", Duration::from_secs(10)).await?;
    browser.testid("user-row-admin", Duration::from_secs(5)).await?;
    browser.screenshot("users-desktop-1440x900").await?;

    // Sign out: back to the sign-in screen; the old session no longer works.
    browser.testid("user-menu", Duration::from_secs(5)).await?.click().await?;
    browser.testid("sign-out", Duration::from_secs(5)).await?.click().await?;
    browser.testid("sign-in", Duration::from_secs(10)).await?;
    browser.client.goto(&server.url("/command")).await?;
    browser.testid("sign-in", Duration::from_secs(10)).await?;

    // A viewer: Emergency Stop is there but disabled, saying why; no user admin.
    browser.sign_in("vera", "vera-password-1").await?;
    let stop = browser.testid("emergency-stop", Duration::from_secs(5)).await?;
    ensure!(!stop.is_enabled().await?, "a viewer's Emergency Stop is enabled");
    let why = stop.attr("title").await?.unwrap_or_default();
    ensure!(why.contains("operator") && why.contains("viewer"), "no reason given: {why:?}");
    browser.client.goto(&server.url("/systems/users")).await?;
    let note = browser.testid("role-required", Duration::from_secs(10)).await?.text().await?;
    ensure!(note.contains("admin"), "viewer's Users page says {note:?}");
    browser.screenshot("viewer-users-1440x900").await?;

    browser.close().await?;
    Ok(())
}
