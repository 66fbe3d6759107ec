//! A new server attaches the encrypted repository of another (lost) one in
//! the cockpit: without the key the test says what to give; a wrong key is
//! refused under the key field; with the old server's key file pasted the
//! test passes and "Attach repository" records what it can; "Import
//! restore points" then says how many snapshots it found and which VMs are
//! not managed here.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};

/// The key file of a server's encrypted local repository.
fn local_key(server: &Server) -> Result<String> {
    let keys = server.data_dir.path().join("data/keys");
    let entry = std::fs::read_dir(&keys)?.flatten().find(|e| e.path().extension().is_some_and(|x| x == "key")).context("no key file")?;
    Ok(std::fs::read_to_string(entry.path())?)
}

async fn wait_text(browser: &Browser, testid: &str, want: &str, secs: u64) -> Result<String> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(e) = browser.testid(testid, Duration::from_millis(500)).await {
            let t = e.text().await.unwrap_or_default();
            if t.contains(want) {
                return Ok(t);
            }
            if Instant::now() > until {
                bail!("{testid} says {t:?}, not {want:?}");
            }
        } else if Instant::now() > until {
            bail!("no {testid}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_attaches_an_encrypted_repository_with_its_key() -> Result<()> {
    // The old server's repository, with one restore point written by the engine.
    let old = Server::start()?;
    let site = old.data_dir.path().join("data/repos/local");
    ensure!(site.join("config.json").is_file(), "the old server's local repository at {}", site.display());
    let key = local_key(&old)?;
    let key_file = old.data_dir.path().join("old.key");
    std::fs::write(&key_file, &key)?;
    let img = old.data_dir.path().join("disk.raw");
    std::fs::write(&img, (0..(2u32 << 20)).map(|i| (i / 4096) as u8).collect::<Vec<u8>>())?;
    let out = Command::new(Server::binary()?)
        .args(["image", "backup", "--no-progress", "--id", "vm-lost-server-vm", "--repo"])
        .arg(&site)
        .arg("--key")
        .arg(&key_file)
        .arg(&img)
        .output()?;
    ensure!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    let other_key = {
        let other = Server::start()?;
        local_key(&other)?
    };

    let new = Server::start()?;
    let browser = Browser::start(1440, 900).await?;
    browser.client.goto(&new.url("/repositories")).await?;
    browser.sign_in("admin", ADMIN_PASSWORD).await?;
    browser.testid("repo-local", Duration::from_secs(20)).await?;
    browser.testid("repo-add", Duration::from_secs(5)).await?.click().await?;
    browser.testid("repo-form-name", Duration::from_secs(5)).await?.send_keys("old-site").await?;
    browser.testid("repo-form-path", Duration::from_secs(5)).await?.send_keys(&site.display().to_string()).await?;

    // No key: the test says what to give.
    browser.testid("repo-form-test", Duration::from_secs(5)).await?.click().await?;
    wait_text(&browser, "repo-test", "key is not on this server", 30).await?;

    // Another server's key: refused, under the key field.
    browser.testid("repo-form-key-box", Duration::from_secs(5)).await?.click().await?;
    let field = browser.testid("repo-form-key", Duration::from_secs(5)).await?;
    field.send_keys(&other_key).await?;
    browser.testid("repo-form-test", Duration::from_secs(5)).await?.click().await?;
    wait_text(&browser, "repo-test", "does not open this repository", 30).await?;

    // Its own key: the test passes, the button attaches.
    field.clear().await?;
    field.send_keys(&key).await?;
    browser.testid("repo-form-test", Duration::from_secs(5)).await?.click().await?;
    wait_text(&browser, "repo-test", "the key given opens", 30).await?;
    browser.screenshot("repository-attach-key-1440x900").await?;
    let save = browser.testid("repo-form-save", Duration::from_secs(5)).await?;
    ensure!(save.text().await?.contains("Attach"), "the button attaches: {:?}", save.text().await?);
    save.click().await?;
    wait_text(&browser, "repo-message", "attached", 30).await?;

    // Import: one snapshot, its VM not managed on this server.
    let row = browser.testid("repo-old-site", Duration::from_secs(10)).await?;
    row.find(fantoccini::Locator::Css("[data-testid='repo-import']")).await?.click().await?;
    let said = wait_text(&browser, "repo-message", "snapshot(s) in the repository", 30).await?;
    ensure!(said.contains("1 snapshot(s)") && said.contains("Not managed on this server: vm-lost-server-vm"), "import said {said:?}");
    browser.resize(820, 1180).await?;
    browser.screenshot("repository-attach-import-820x1180").await?;
    browser.close().await
}
