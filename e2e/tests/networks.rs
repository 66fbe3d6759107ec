//! Networks page end to end, in a real browser against the real server with
//! the demo lab: the production and DR hosts added (through the API), the
//! page opened from the secondary navigation, the pair chosen, the
//! recommendations applied (the stored mappings checked through the API), a
//! row saved with an isolated network for a failover refused by the server
//! with its message beside that row, one mapping deleted after the
//! confirmation, and validation run for one VM (ready) and for every VM (the
//! now unmapped network blocks). Screenshots at 1440x900 and 820x1180, with
//! no horizontal overflow on the tablet.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use fantoccini::elements::Element;
use fantoccini::Locator;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);

fn post(server: &Server, token: &str, path: &str, body: Value) -> Result<Value> {
    let mut resp = ureq::post(&server.url(path))
        .header("authorization", &format!("Bearer {token}"))
        .send_json(body)
        .with_context(|| format!("POST {path}"))?;
    Ok(resp.body_mut().read_json()?)
}

async fn css(b: &Browser, selector: &str) -> Result<Element> {
    b.client
        .wait()
        .at_most(T)
        .for_element(Locator::Css(selector))
        .await
        .with_context(|| format!("no element {selector} appeared within {T:?}"))
}

async fn click(b: &Browser, id: &str) -> Result<()> {
    click_css(b, &format!("[data-testid='{id}']")).await
}

async fn click_css(b: &Browser, selector: &str) -> Result<()> {
    let el = css(b, selector).await?;
    b.until(&format!("{selector} enabled"), T, || {
        let el = el.clone();
        async move { Ok(el.is_enabled().await?.then_some(())) }
    })
    .await?;
    el.click().await.with_context(|| format!("clicking {selector}"))?;
    Ok(())
}

/// Chooses the option `value` of the select `testid`, as a person would.
async fn choose(b: &Browser, testid: &str, value: &str) -> Result<()> {
    click_css(b, &format!("[data-testid='{testid}'] option[value='{value}']")).await?;
    let select = b.testid(testid, T).await?;
    b.until(&format!("{testid} = {value}"), T, || {
        let select = select.clone();
        async move { Ok((select.prop("value").await?.as_deref() == Some(value)).then_some(())) }
    })
    .await
}

async fn attr(el: &Element, name: &str) -> Result<String> {
    Ok(el.attr(name).await?.unwrap_or_default())
}

async fn count(b: &Browser, selector: &str) -> Result<usize> {
    Ok(b.client.find_all(Locator::Css(selector)).await?.len())
}

/// Waits until the text of `testid` satisfies `ok`; returns it.
async fn text_until(b: &Browser, testid: &str, what: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
    b.until(what, T, || async {
        let t = match b.client.find(Locator::Css(&format!("[data-testid='{testid}']"))).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => return Ok(None),
        };
        Ok(ok(&t).then_some(t))
    })
    .await
}

/// The failover mappings stored from `source` to `target`: (source network, target network, flow).
fn stored(server: &Server, source: &str, target: &str) -> Result<Vec<(String, String, Option<String>)>> {
    let list = server.get_json(&format!("/api/v1/network-mappings?source_platform_id={source}&target_platform_id={target}&purpose=failover"))?;
    let mut out: Vec<_> = list
        .as_array()
        .context("mappings are a list")?
        .iter()
        .map(|m| (m["source_network"].as_str().unwrap_or("").to_string(), m["target_network"].as_str().unwrap_or("").to_string(), m["flow_id"].as_str().map(String::from)))
        .collect();
    out.sort();
    Ok(out)
}

/// No horizontal scrolling: the document and the main area fit the viewport.
async fn check_no_overflow(b: &Browser, label: &str) -> Result<()> {
    let dims = b
        .client
        .execute(
            "const m = document.querySelector('main');
             const edge = m.getBoundingClientRect().right;
             const page = document.documentElement.scrollWidth > window.innerWidth;
             const wide = [...document.querySelectorAll(page ? 'body *' : 'main *')]
                 .filter(e => e.getBoundingClientRect().right > (page ? window.innerWidth : edge) + 0.5)
                 .slice(0, 6).map(e => (e.dataset.testid || e.className || e.tagName) + ':' + e.getBoundingClientRect().right.toFixed(1));
             return [document.documentElement.scrollWidth, window.innerWidth, m.scrollWidth, m.clientWidth, wide.join(', ')];",
            vec![],
        )
        .await?;
    let n = |i: usize| dims[i].as_u64().unwrap_or(0);
    ensure!(n(0) <= n(1), "{label}: the page scrolls sideways (document {} px wide, viewport {}); too wide: {}", n(0), n(1), dims[4]);
    ensure!(n(2) <= n(3), "{label}: the main area scrolls sideways ({} px of content in {}); too wide: {}", n(2), n(3), dims[4]);
    Ok(())
}

async fn screenshots(b: &Browser, size: &str) -> Result<()> {
    for (part, testid) in [
        ("top", "page-networks"),
        ("mappings", "mapping-table"),
        ("recommendations", "network-recommendations"),
        ("validation", "network-validation"),
    ] {
        b.client
            .execute(&format!("document.querySelector(\"[data-testid='{testid}']\").scrollIntoView({{block: 'start'}});"), vec![])
            .await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let path = b.screenshot(&format!("networks-{size}-{part}")).await?;
        println!("screenshot {}", path.display());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_mapping_from_recommendations_to_validation() -> Result<()> {
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    // Both lab hosts (libvirt, added by the server once their guests are up),
    // discovered (their networks recorded); the production VMs managed.
    let prod = server.wait_platform(&token, "lab-prod", Duration::from_secs(180))?;
    let dr = server.wait_platform(&token, "lab-dr", Duration::from_secs(30))?;
    let found = post(&server, &token, "/api/v1/discovery/discover-vms", json!({"platform_id": prod}))?;
    let vm_ids: Vec<Value> = found["vms"].as_array().context("discovered VMs")?.iter().map(|v| v["vm"]["id"].clone()).collect();
    ensure!(vm_ids.len() == 6, "the lab's production host has 6 VMs, discovery found {}", vm_ids.len());
    post(&server, &token, "/api/v1/discovery/bulk-add", json!({"platform_id": prod, "vm_ids": vm_ids}))?;
    post(&server, &token, "/api/v1/discovery/discover-vms", json!({"platform_id": dr}))?;
    let topology = server.get_json("/api/v1/networks/topology")?;
    let lan_vms = topology["platforms"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"] == prod.as_str()))
        .and_then(|p| p["networks"].as_array()?.iter().find(|n| n["name"] == "lan").map(|n| n["vm_count"].as_u64()))
        .flatten()
        .context("lan in the topology")?;
    ensure!(lan_vms == 6, "every lab VM has a NIC on lan; the topology counts {lan_vms}");
    let lan_subnet = topology["platforms"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"] == prod.as_str()))
        .and_then(|p| p["networks"].as_array()?.iter().find(|n| n["name"] == "lan").and_then(|n| n["cidr"].as_str().map(String::from)))
        .context("lan's subnet in the topology")?;

    let browser = Browser::start(1440, 900).await?;
    let b = &browser;
    b.client.goto(&server.url("/command")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    // "Networks" is in the secondary navigation, beside Repositories and Platforms.
    click(b, "nav-networks").await?;
    b.testid("page-networks", T).await?;
    ensure!(b.client.current_url().await?.path() == "/networks", "the Networks link leads to /networks");

    // The pair: production → DR, failover, the default scope.
    choose(b, "source-platform", &prod).await?;
    choose(b, "target-platform", &dr).await?;
    click(b, "purpose-failover").await?;
    let lan = b.testid("net-source-lan", T).await?;
    ensure!(attr(&lan, "data-vlan").await?.is_empty(), "lan has no VLAN tag (a libvirt Linux-bridge network)");
    ensure!(attr(&lan, "data-vms").await? == lan_vms.to_string(), "lan shows the topology's VM count");
    ensure!(lan.text().await?.contains(&lan_subnet), "lan shows its subnet {lan_subnet}: {}", lan.text().await?);
    let iso = b.testid("net-target-isolated", T).await?;
    ensure!(attr(&iso, "data-isolated").await? == "true" && iso.text().await?.contains("ISOLATED"), "the DR host's isolated network is badged");
    ensure!(count(b, "[data-testid^='net-target-']").await? == 4, "the DR host has four networks");
    b.testid("no-mappings", T).await?;

    // The recommendations: every production network to its namesake, on one
    // addressing pattern: score 94.
    for net in ["lan", "dmz", "storage"] {
        let row = b.testid(&format!("rec-row-{net}"), T).await?;
        b.until(&format!("{net} recommended"), T, || {
            let row = row.clone();
            async move { Ok((attr(&row, "data-recommended").await? == net).then_some(())) }
        })
        .await?;
        ensure!(attr(&row, "data-score").await? == "94", "{net} scores {}", attr(&row, "data-score").await?);
        ensure!(row.text().await?.contains(&format!("same name '{net}'")), "{net}'s reasons: {}", row.text().await?);
    }
    ensure!(count(b, "[data-testid='unmatched']").await? == 0, "nothing is unmatched for a failover");
    let apply = b.testid("apply-recommendations", T).await?;
    ensure!(apply.text().await? == "Apply 3 recommendations", "apply button: {:?}", apply.text().await?);
    click(b, "apply-recommendations").await?;
    let result = text_until(b, "mapping-result", "the bulk mapping stored", |t| !t.is_empty()).await?;
    ensure!(result.contains("Stored 3 mappings: 3 new, 0 replaced"), "result: {result:?}");
    let want: Vec<(String, String, Option<String>)> = ["dmz", "lan", "storage"].iter().map(|n| (n.to_string(), n.to_string(), None)).collect();
    ensure!(stored(&server, &prod, &dr)? == want, "stored mappings: {:?}", stored(&server, &prod, &dr)?);
    b.until("three mapping rows", T, || async { Ok((count(b, "[data-testid='mapping-row']").await? == 3).then_some(())) }).await?;
    text_until(b, "apply-recommendations", "apply done", |t| t == "Recommendations applied").await?;
    ensure!(!b.testid("apply-recommendations", T).await?.is_enabled().await?, "nothing left to apply");
    ensure!(b.testid("net-source-dmz", T).await?.text().await?.contains("→ dmz (default)"), "the topology shows dmz's mapping");

    // An isolated network for a failover: the shared rule warns, the server refuses, its message sits under the row.
    choose(b, "rec-select-dmz", "isolated").await?;
    let hint = b.testid("rec-hint-dmz", T).await?.text().await?;
    ensure!(hint.contains("unreachable"), "client hint: {hint:?}");
    text_until(b, "save-rows", "one change", |t| t == "Save 1 change").await?;
    click(b, "save-rows").await?;
    let row_error = text_until(b, "rec-error-dmz", "the server's error under the dmz row", |t| !t.is_empty()).await?;
    ensure!(row_error.contains("'isolated' is an isolated network") && row_error.contains("unreachable"), "row error: {row_error:?}");
    ensure!(b.testid("mapping-error", T).await?.text().await?.contains("none was"), "the summary says nothing was stored");
    ensure!(count(b, "[data-testid='rec-error-lan']").await? == 0, "only the row the server named shows an error");
    ensure!(stored(&server, &prod, &dr)? == want, "a refused bulk request changed nothing");
    click(b, "reset-rows").await?;
    ensure!(b.testid("rec-select-dmz", T).await?.prop("value").await?.as_deref() == Some("dmz"), "reset shows the stored mapping");

    // Delete storage's mapping, after the confirmation.
    click_css(b, "[data-testid='mapping-row'][data-source='storage'] [data-testid='mapping-delete']").await?;
    let modal = b.testid("mapping-delete-modal", T).await?;
    ensure!(modal.text().await?.contains("storage"), "the confirmation names the mapping: {}", modal.text().await?);
    ensure!(count(b, "[data-testid='mapping-row']").await? == 3, "nothing is deleted before the confirmation");
    click(b, "mapping-delete-confirm").await?;
    b.until("two mapping rows", T, || async { Ok((count(b, "[data-testid='mapping-row']").await? == 2).then_some(())) }).await?;
    ensure!(count(b, "[data-testid='mapping-delete-modal']").await? == 0, "the confirmation closed");
    let after: Vec<_> = want.iter().filter(|m| m.0 != "storage").cloned().collect();
    ensure!(stored(&server, &prod, &dr)? == after, "after the delete: {:?}", stored(&server, &prod, &dr)?);
    ensure!(b.testid("rec-row-storage", T).await?.text().await?.contains("not mapped"), "storage's row says it is not mapped");

    // Validation of one chosen VM: web-01 (dmz, lan) is ready.
    click(b, "validate-all").await?;
    click(b, "validate-vm-web-01").await?;
    text_until(b, "validate-run", "one VM chosen", |t| t == "Validate 1 VM").await?;
    click(b, "validate-run").await?;
    let report = b.testid("validation-report", T).await?;
    ensure!(attr(&report, "data-ok").await? == "true", "web-01: {}", report.text().await?);
    ensure!(count(b, "[data-testid='validation-vm']").await? == 1, "one VM validated");
    let nic = css(b, "[data-testid='validation-nic'][data-vm='web-01'][data-source='lan']").await?;
    ensure!(attr(&nic, "data-target").await? == "lan" && attr(&nic, "data-blocked").await? == "false", "web-01's lan NIC lands on lan");

    // Every VM: the NICs on storage (db-01, files-01) are unmapped now: blockers, in red.
    click(b, "validate-all").await?;
    text_until(b, "validate-run", "all six VMs", |t| t == "Validate 6 VMs").await?;
    click(b, "validate-run").await?;
    let report = b
        .until("the report of six VMs", T, || async {
            let Ok(r) = b.client.find(Locator::Css("[data-testid='validation-report']")).await else { return Ok(None) };
            Ok((count(b, "[data-testid='validation-vm']").await? == 6).then_some(r))
        })
        .await?;
    ensure!(attr(&report, "data-ok").await? == "false", "validation passed with storage unmapped");
    let blockers: u64 = attr(&report, "data-blockers").await?.parse()?;
    ensure!(blockers == 2, "two NICs on storage (db-01, files-01), {blockers} blockers");
    for vm in ["db-01", "files-01"] {
        let nic = css(b, &format!("[data-testid='validation-nic'][data-vm='{vm}'][data-source='storage']")).await?;
        ensure!(attr(&nic, "data-blocked").await? == "true" && attr(&nic, "data-target").await?.is_empty(), "{vm}'s storage NIC is not blocked");
        let issue = nic.find(Locator::Css("[data-testid='validation-issue'][data-severity='blocker']")).await?.text().await?;
        ensure!(issue.contains("'storage'") && issue.contains("no failover mapping"), "{vm}'s blocker: {issue:?}");
        let color = nic.find(Locator::Css(".sev-blocker")).await?.css_value("color").await?;
        ensure!(color.contains("252, 165, 165"), "a blocker is red, not {color}");
    }
    let first = b.client.find_all(Locator::Css("[data-testid='validation-vm']")).await?;
    ensure!(attr(&first[0], "data-ok").await? == "false", "blocked VMs are listed first");
    let vm_ok = css(b, "[data-testid='validation-vm'][data-vm='web-01']").await?;
    ensure!(attr(&vm_ok, "data-ok").await? == "true", "web-01 stays ready");
    ensure!(b.testid("validation-summary", T).await?.text().await?.starts_with("2 blockers"), "summary");
    check_no_overflow(b, "1440x900").await?;
    screenshots(b, "desktop-1440x900").await?;

    // Test purpose: the DR host's only isolated network is recommended for every network.
    click(b, "purpose-test").await?;
    ensure!(b.testid("purpose-help", T).await?.text().await?.contains("may only use isolated networks"), "test purpose explained");
    let row = b.testid("rec-row-lan", T).await?;
    b.until("isolated recommended for a test", T, || {
        let row = row.clone();
        async move { Ok((attr(&row, "data-recommended").await? == "isolated").then_some(())) }
    })
    .await?;
    ensure!(attr(&row, "data-score").await? == "60", "test score {}", attr(&row, "data-score").await?);
    ensure!(count(b, "[data-testid='validation-report']").await? == 0, "a report of another purpose is not kept");
    click(b, "purpose-failover").await?;

    // Tablet, loaded at that size (the instrument panel open beside the page): nothing scrolls sideways.
    b.resize(820, 1180).await?;
    b.client.goto(&server.url("/networks")).await?;
    b.testid("page-networks", T).await?;
    choose(b, "source-platform", &prod).await?;
    choose(b, "target-platform", &dr).await?;
    b.until("recommendations at 820", T, || async {
        let row = b.testid("rec-row-storage", T).await?;
        Ok((attr(&row, "data-recommended").await? == "storage").then_some(()))
    })
    .await?;
    click(b, "validate-run").await?;
    b.testid("validation-report", T).await?;
    check_no_overflow(b, "820x1180").await?;
    screenshots(b, "tablet-820x1180").await?;
    // Both side panels open leave the page 320 px: still nothing sideways.
    click(b, "toggle-right").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    check_no_overflow(b, "820x1180, both panels open").await?;
    let path = b.screenshot("networks-tablet-820x1180-panels-open").await?;
    println!("screenshot {}", path.display());
    browser.close().await?;
    Ok(())
}
