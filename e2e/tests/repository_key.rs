//! The Repositories page of a new install: the local repository shows as
//! encrypted with its key's fingerprint; "Download key" opens a warning that
//! says what the key allows and what losing it means, and offers the download
//! only once the admin confirms; a viewer's button is disabled, saying why.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_of_the_encrypted_local_repository_downloads_after_a_warning() -> Result<()> {
    let server = Server::start()?;
    server.create_user("vera", "vera-password-1", "viewer")?;
    let browser = Browser::start(1440, 900).await?;
    browser.client.goto(&server.url("/repositories")).await?;
    browser.sign_in("admin", ADMIN_PASSWORD).await?;
    browser.testid("repo-local", Duration::from_secs(20)).await?;
    let enc = browser.testid("repo-encryption", Duration::from_secs(5)).await?.text().await?;
    ensure!(enc.starts_with("AES-256-GCM, key "), "encryption fact: {enc:?}");

    browser.testid("repo-key-download", Duration::from_secs(5)).await?.click().await?;
    let warning = browser.testid("repo-key-warning", Duration::from_secs(5)).await?.text().await?;
    ensure!(warning.contains("read every backup"), "warning: {warning:?}");
    let dialog = browser.testid("repo-key-dialog", Duration::from_secs(5)).await?.text().await?;
    ensure!(dialog.contains("nothing in the repository can be restored"), "dialog: {dialog:?}");
    ensure!(
        browser.client.find_all(fantoccini::Locator::Css("[data-testid='repo-key-confirm']")).await?.is_empty(),
        "the download is offered before the admin confirms"
    );
    browser.screenshot("repository-key-dialog-1440x900").await?;
    browser.testid("repo-key-understood", Duration::from_secs(5)).await?.click().await?;
    let link = browser.testid("repo-key-confirm", Duration::from_secs(5)).await?;
    let href = link.attr("href").await?.context("no href")?;
    ensure!(href.starts_with("/api/v1/repositories/") && href.ends_with("/key"), "href {href:?}");
    browser.resize(820, 1180).await?;
    browser.screenshot("repository-key-dialog-820x1180").await?;

    // The same page for a viewer: the button is there, disabled, with the reason.
    browser.client.goto(&server.url("/repositories")).await?;
    browser.testid("user-menu", Duration::from_secs(10)).await?.click().await?;
    browser.testid("sign-out", Duration::from_secs(5)).await?.click().await?;
    browser.sign_in("vera", "vera-password-1").await?;
    let button = browser.testid("repo-key-download", Duration::from_secs(20)).await?;
    ensure!(!button.is_enabled().await?, "a viewer may download the key");
    let why = button.attr("title").await?.unwrap_or_default();
    ensure!(why.contains("admin"), "no reason given: {why:?}");
    browser.resize(1440, 900).await?;
    browser.screenshot("repositories-viewer-1440x900").await?;
    browser.close().await
}
