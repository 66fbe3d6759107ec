//! Power in the cockpit against the real lab: the server runs the demo lab
//! on its libvirt hosts (`--lab-guests`, as scripts/run.sh does); web-01, a
//! booted guest, is managed; its Power… dialog shows the guest's console
//! (its own boot line) and what each action does; Stop, confirmed, stops the
//! QEMU process and the row says stopped; Start boots it again and the row
//! follows (the lifecycle event, no reload). PLATFORMS lists the lab's two
//! hosts with their VM counts, refuses to add an address whose test fails,
//! and rediscovers a host. Screenshots at desktop and tablet size.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use fantoccini::Locator;

const T: Duration = Duration::from_secs(10);

fn qemu_of(server: &Server, vm: &str) -> bool {
    let lab = server.lab_dir().to_string_lossy().into_owned();
    std::fs::read_dir("/proc").map(|d| {
        d.flatten().filter_map(|e| std::fs::read(e.path().join("cmdline")).ok()).map(|c| String::from_utf8_lossy(&c).replace('\0', " ")).any(|c| {
            c.contains("qemu-system") && c.contains(&lab) && c.contains(&format!("guest={vm},"))
        })
    })
    .unwrap_or(false)
}

/// The power cell of `vm`'s row. ASSETS makes a row again when what it
/// shows changes (rows keyed by content), so a row found just before may be
/// gone (a stale element): read again from the new one.
async fn power_text(b: &Browser, vm: &str) -> Result<String> {
    let mut tries = 0;
    loop {
        let row = b.testid(&format!("vm-row-{vm}"), T).await?;
        let read = async { Ok::<_, anyhow::Error>(row.find(Locator::Css("td:nth-child(3)")).await?.text().await?) }.await;
        match read {
            Ok(t) => return Ok(t),
            Err(e) if tries < 5 && e.to_string().contains("stale element") => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_guest_is_stopped_and_started_from_its_power_dialog() -> Result<()> {
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    // The lab's production host is a platform once its guests are up.
    let prod = server.wait_platform(&token, "lab-prod", Duration::from_secs(180))?;
    let found = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(serde_json::json!({"platform_id": prod})), 200)?;
    let web = found["vms"].as_array().context("vms")?.iter().find(|v| v["vm"]["name"] == "web-01").context("web-01 discovered")?.clone();
    ensure!(web["vm"]["power"] == "running", "{web}");
    server.expect(&token, "POST", "/api/v1/discovery/bulk-add", Some(serde_json::json!({"platform_id": prod, "vm_ids": [web["vm"]["id"]]})), 200)?;
    ensure!(qemu_of(&server, "web-01"), "web-01 is a running QEMU process");

    let browser = Browser::start(1440, 900).await?;
    browser.client.goto(&server.url("/assets")).await?;
    browser.sign_in("admin", ADMIN_PASSWORD).await?;
    browser.testid("vm-row-web-01", T).await?;
    ensure!(power_text(&browser, "web-01").await?.contains("running"));

    browser.testid("power-web-01", T).await?.click().await?;
    browser.testid("power-dialog-web-01", T).await?;
    let console = browser
        .until("the console tail", T, || async {
            let t = browser.testid("console-tail", T).await?.text().await?;
            Ok(t.contains("SENDENSE-GUEST-UP name=web-01").then_some(t))
        })
        .await?;
    ensure!(console.contains("mounts=vda1:ext4"), "{console}");
    browser.testid("power-choice-stop", T).await?.click().await?;
    let what = browser.testid("power-what", T).await?.text().await?;
    ensure!(what.contains("at once"), "{what}");
    browser.screenshot("power-dialog-desktop-1440x900").await?;
    browser.resize(820, 1180).await?;
    browser.screenshot("power-dialog-tablet-820x1180").await?;
    browser.resize(1440, 900).await?;

    browser.testid("power-confirm", T).await?.click().await?;
    browser
        .until("web-01 stopped in its row", Duration::from_secs(30), || async { Ok(power_text(&browser, "web-01").await?.contains("stopped").then_some(())) })
        .await?;
    ensure!(!qemu_of(&server, "web-01"), "the QEMU process of web-01 is gone");

    browser.testid("power-web-01", T).await?.click().await?;
    browser.testid("power-choice-start", T).await?.click().await?;
    browser.testid("power-confirm", T).await?.click().await?;
    browser
        .until("web-01 running in its row", Duration::from_secs(30), || async { Ok(power_text(&browser, "web-01").await?.contains("running").then_some(())) })
        .await?;
    ensure!(qemu_of(&server, "web-01"), "web-01 runs again");
    // Its uptime counts from the start Sendense saw.
    let vms = server.expect(&token, "GET", "/api/v1/vm-contexts", None, 200)?;
    let since = vms["items"].as_array().and_then(|a| a.iter().find(|v| v["name"] == "web-01")).map(|v| v["power_since"].clone()).unwrap_or_default();
    ensure!(since.is_string(), "the catalog says when web-01 started: {since}; the row shows {:?}", power_text(&browser, "web-01").await?);
    let uptime = browser
        .until("web-01's uptime", T, || async {
            let row = browser.testid("vm-row-web-01", T).await?;
            match row.find(Locator::Css("[data-testid='vm-uptime']")).await {
                // A row made again since it was found: the next try reads the new one.
                Ok(el) => Ok(el.text().await.ok()),
                Err(_) => Ok(None),
            }
        })
        .await
        .with_context(|| format!("the catalog has power_since {since}"))?;
    ensure!(uptime.contains("up "), "the uptime cell says {uptime:?}");
    browser.screenshot("assets-lab-guests-desktop-1440x900").await?;
    let audit = server.expect(&token, "GET", "/api/v1/audit?limit=20", None, 200)?;
    let actions: Vec<&str> = audit["entries"].as_array().context("entries")?.iter().filter_map(|e| e["action"].as_str()).collect();
    ensure!(actions.contains(&"vm.power.stop") && actions.contains(&"vm.power.start"), "{actions:?}");

    // PLATFORMS: the lab's two hosts with their VM counts; an address the
    // test refuses is never offered for adding; Rediscover reads the host again.
    browser.client.goto(&server.url("/platforms")).await?;
    browser.testid("page-platforms", T).await?;
    browser
        .until("both lab hosts listed", T, || async {
            let l = browser.testid("platform-list", T).await?;
            Ok((l.attr("data-count").await?.as_deref() == Some("2")).then_some(()))
        })
        .await?;
    let card = browser.client.find(Locator::Css("[data-testid='platform-card'][data-platform='lab-prod']")).await.context("the production host's card")?;
    let vms = card.find(Locator::Css("[data-testid='platform-vms']")).await?;
    let (found_n, managed) = (vms.attr("data-found").await?.unwrap_or_default(), vms.attr("data-managed").await?.unwrap_or_default());
    ensure!(managed == "1" && found_n.parse::<u32>().unwrap_or(0) >= 5, "lab-prod: {found_n} VMs found, {managed} managed");
    ensure!(card.attr("data-status").await?.as_deref() == Some("online"));
    let address = browser.testid("platform-address", T).await?;
    address.send_keys("qemu+unix:///system?socket=/nonexistent/libvirt-sock").await?;
    browser.testid("platform-test", T).await?.click().await?;
    let refused = browser.testid("platform-test-error", T).await?.text().await?;
    ensure!(refused.contains("platform-root") || refused.contains("outside"), "the test names the problem: {refused}");
    ensure!(!browser.testid("platform-add", T).await?.is_enabled().await?, "Add waits for a passing test");
    card.find(Locator::Css("[data-testid='platform-rediscover']")).await?.click().await?;
    let said = browser
        .until("the rediscovery's result", Duration::from_secs(60), || async {
            let c = browser.client.find(Locator::Css("[data-testid='platform-card'][data-platform='lab-prod']")).await?;
            match c.find(Locator::Css("[data-testid='platform-rediscovered']")).await {
                Ok(el) => Ok(Some(el.text().await?)),
                Err(_) => Ok(None),
            }
        })
        .await?;
    ensure!(said.contains(&format!("Discovered {found_n} VMs")), "{said}");
    browser.screenshot("platforms-desktop-1440x900").await?;
    browser.resize(820, 1180).await?;
    browser.screenshot("platforms-tablet-820x1180").await?;
    browser.close().await?;
    Ok(())
}
