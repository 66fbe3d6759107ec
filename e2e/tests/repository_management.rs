//! Adding a local repository in the cockpit against the real server: Save
//! waits for a passing test of the values in the form (a directory of other
//! files fails the location check with the server's reason); each check
//! shows; once saved the new repository's card shows its kind, location and
//! immutability, and the API agrees; "Make default" moves the default; a
//! repository a flow uses cannot be removed, and the refusal names the flow;
//! Edit renames it and sets immutable days (enforced by Sendense only there);
//! the S3 and Azure fields show per kind with password inputs for secrets;
//! nothing scrolls sideways; screenshots at 1440x900, 820x1180 and 390x844.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

async fn set(b: &Browser, testid: &str, text: &str) -> Result<()> {
    let input = b.testid(testid, T).await?;
    input.clear().await?;
    input.send_keys(text).await?;
    Ok(())
}

async fn show(b: &Browser, testid: &str) -> Result<()> {
    b.client.execute(&format!("document.querySelector(\"[data-testid='{testid}']\").scrollIntoView({{block: 'start'}})"), vec![]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_repository_is_tested_then_added_in_the_cockpit() -> Result<()> {
    let server = Server::start()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let outside = tempfile::Builder::new().prefix("sendense-e2e-repos-").tempdir()?;
    let site_b = outside.path().join("site-b");
    let photos = outside.path().join("photos");
    std::fs::create_dir_all(&photos)?;
    std::fs::write(photos.join("cat.jpg"), b"meow")?;

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/repositories")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("repo-local", T).await?;
    let default = b.testid("repo-default", T).await?.text().await?;
    ensure!(default == "default", "the local repository is the default: {default:?}");
    b.testid("repo-add", T).await?.click().await?;
    b.testid("repo-form", T).await?;
    set(&b, "repo-form-name", "site-b").await?;

    // A directory of other files: the location check fails with the reason.
    set(&b, "repo-form-path", &photos.display().to_string()).await?;
    let save = b.testid("repo-form-save", T).await?;
    ensure!(!save.is_enabled().await?, "Save is possible before a test");
    b.testid("repo-form-test", T).await?.click().await?;
    let test = b.testid("repo-test", T).await?;
    ensure!(test.attr("data-ok").await?.as_deref() == Some("false"), "a directory of photos passed the test");
    let failed = b.client.find(fantoccini::Locator::Css("[data-testid='repo-check'][data-ok='false']")).await?.text().await?;
    ensure!(failed.contains("cat.jpg") && failed.contains("location"), "the failed check: {failed:?}");
    ensure!(!b.testid("repo-form-save", T).await?.is_enabled().await?, "Save after a failed test");

    // A new directory passes every check; nothing is created by the test.
    set(&b, "repo-form-path", &site_b.display().to_string()).await?;
    b.testid("repo-form-test", T).await?.click().await?;
    b.until("a passing test", T, || async {
        Ok(b.testid("repo-test", T).await?.attr("data-ok").await?.filter(|v| v == "true"))
    })
    .await?;
    let checks = b.client.find_all(fantoccini::Locator::Css("[data-testid='repo-check'][data-ok='true']")).await?;
    ensure!(checks.len() == 5, "{} checks passed, expected location, reachable, write, read, delete", checks.len());
    ensure!(!site_b.exists(), "the test created the directory");
    ensure!(b.testid("repo-form-save", T).await?.is_enabled().await?, "Save stays disabled after a passing test");
    show(&b, "repo-form").await?;
    ensure!(!b.overflows().await?, "the page scrolls sideways at 1440x900");
    b.screenshot("repositories-add-tested-1440x900").await?;
    // Another value than the one tested: Save waits for a new test.
    set(&b, "repo-form-name", "site-b-renamed").await?;
    ensure!(!b.testid("repo-form-save", T).await?.is_enabled().await?, "Save with untested values");
    set(&b, "repo-form-name", "site-b").await?;
    ensure!(b.testid("repo-form-save", T).await?.is_enabled().await?, "the tested values again");

    // The secret fields of the other kinds are password inputs.
    for kind in ["s3", "azure"] {
        b.testid("repo-form-kind", T).await?.select_by_value(kind).await?;
        let secret = b.testid("repo-form-secret", T).await?;
        ensure!(secret.attr("type").await?.as_deref() == Some("password"), "{kind} secret input is not a password field");
        if kind == "azure" {
            set(&b, "repo-form-immutable", "7").await?;
            let note = b.testid("repo-form-immutability", T).await?.text().await?;
            ensure!(note.contains("Sendense only"), "Azure immutability note: {note:?}");
            set(&b, "repo-form-immutable", "0").await?;
        }
    }
    b.testid("repo-form-kind", T).await?.select_by_value("local").await?;
    set(&b, "repo-form-name", "site-b").await?;
    set(&b, "repo-form-path", &site_b.display().to_string()).await?;
    b.testid("repo-form-test", T).await?.click().await?;
    b.until("the test again", T, || async {
        Ok(b.testid("repo-test", T).await?.attr("data-ok").await?.filter(|v| v == "true"))
    })
    .await?;
    b.testid("repo-form-save", T).await?.click().await?;
    let message = b.testid("repo-message", T).await?.text().await?;
    ensure!(message.contains("site-b") && message.contains("created"), "message: {message:?}");
    let card = b.testid("repo-site-b", T).await?;
    let text = card.text().await?;
    ensure!(text.contains(&site_b.display().to_string()) && text.contains("local directory"), "card: {text:?}");
    let mode = card.find(fantoccini::Locator::Css("[data-testid='repo-immutability']")).await?.attr("data-mode").await?;
    ensure!(mode.as_deref() == Some("none"), "immutability {mode:?}");
    ensure!(site_b.join("config.json").exists(), "the repository was not created on disk");
    let listed = server.get_json("/api/v1/repositories")?;
    let added = listed.as_array().and_then(|a| a.iter().find(|r| r["name"] == "site-b")).context("site-b in the API")?.clone();
    ensure!(added["encrypted"] == true && added["is_default"] == false, "{added}");
    let site_b_id = added["id"].as_str().context("id")?.to_string();

    // Make it the default, in the cockpit; the API agrees.
    card.find(fantoccini::Locator::Css("[data-testid='repo-make-default']")).await?.click().await?;
    b.until("site-b is the default", T, || async {
        let r = server.get_json(&format!("/api/v1/repositories/{site_b_id}"))?;
        Ok((r["is_default"] == true).then_some(()))
    })
    .await?;
    let local_default = server.get_json("/api/v1/repositories")?.as_array().and_then(|a| a.iter().find(|r| r["name"] == "local")).map(|r| r["is_default"].clone());
    ensure!(local_default == Some(json!(false)), "two defaults: {local_default:?}");

    // A flow (of an empty protection group) writes to site-b: removing it is refused, naming the flow.
    let group = server.expect(&token, "POST", "/api/v1/protection-groups", Some(json!({"name": "site-b-vms"})), 201)?;
    let group_id = group["group"]["id"].as_str().context("group id")?.to_string();
    server.expect(
        &token,
        "POST",
        "/api/v1/flows",
        Some(json!({"name": "to-site-b", "kind": "backup", "source": {"type": "group", "group_id": group_id}, "repository_id": site_b_id})),
        201,
    )?;
    b.client.goto(&server.url("/repositories")).await?;
    let card = b.testid("repo-site-b", T).await?;
    let remove = card.find(fantoccini::Locator::Css("[data-testid='repo-remove']")).await?;
    remove.click().await?;
    let armed = remove.text().await?;
    ensure!(armed.contains("Click again"), "removal asks for a second click: {armed:?}");
    remove.click().await?;
    let refusal = b
        .until("the refusal", T, || async {
            Ok(match card.find(fantoccini::Locator::Css("[data-testid='repo-admin-error']")).await {
                Ok(e) => Some(e.text().await?),
                Err(_) => None,
            })
        })
        .await?;
    ensure!(refusal.contains("to-site-b") && refusal.contains("never deletes"), "refusal: {refusal:?}");
    ensure!(site_b.join("config.json").exists(), "data vanished");
    show(&b, "repo-site-b").await?;
    b.screenshot("repositories-remove-refused-1440x900").await?;

    // Edit: rename and keep restore points 3 days (Sendense only on a local directory).
    card.find(fantoccini::Locator::Css("[data-testid='repo-edit']")).await?.click().await?;
    set(&b, "repo-edit-name", "site-b2").await?;
    set(&b, "repo-edit-immutable", "3").await?;
    b.testid("repo-edit-save", T).await?.click().await?;
    let card = b.testid("repo-site-b2", T).await?;
    let immutability = card.find(fantoccini::Locator::Css("[data-testid='repo-immutability']")).await?.text().await?;
    ensure!(immutability.contains("3 days") && immutability.contains("Sendense only"), "immutability: {immutability:?}");
    let r = server.get_json(&format!("/api/v1/repositories/{site_b_id}"))?;
    ensure!(r["name"] == "site-b2" && r["immutable_days"] == 3 && r["immutability"] == "sendense", "{r}");
    b.resize(820, 1180).await?;
    b.client.goto(&server.url("/repositories")).await?;
    b.testid("repo-add", T).await?.click().await?;
    b.testid("repo-form", T).await?;
    ensure!(!b.overflows().await?, "the page scrolls sideways at 820x1180");
    b.screenshot("repositories-add-820x1180").await?;
    b.resize(390, 844).await?;
    b.client.goto(&server.url("/repositories")).await?;
    b.testid("repo-site-b2", T).await?;
    show(&b, "repo-site-b2").await?;
    ensure!(!b.overflows().await?, "the page scrolls sideways at 390x844");
    b.screenshot("repositories-list-390x844").await?;
    b.testid("repo-add", T).await?.click().await?;
    b.testid("repo-form-kind", T).await?.select_by_value("azure").await?;
    set(&b, "repo-form-immutable", "7").await?;
    show(&b, "repo-form").await?;
    ensure!(!b.overflows().await?, "the Azure form scrolls sideways at 390x844");
    b.screenshot("repositories-add-azure-390x844").await?;
    b.close().await
}
