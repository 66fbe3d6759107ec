//! The cockpit's replication screens, in a real browser against the real
//! server with the demo lab on its libvirt hosts (guests booting a real
//! kernel): web-01's running guest (production host) is replicated to the
//! DR host's storage pool through the New replication form; its card shows the running
//! sync, then healthy with one point, the lag against the RPO and what the
//! sync wrote; the details modal offers exactly the actions the API lists;
//! a live failover asks for the VM's name typed and shows the server's
//! refusal (no network mapping yet); a test failover runs from the modal
//! (testing, with the test VM's name; done once the test VM's guest is up,
//! on the DR host's isolated network), the DR-site view shows it, and the
//! test is ended from the modal (the API says healthy again). RECOVERY's
//! site failover of the group in test mode reports one flow started and
//! one VM not replicated. On ASSETS, a replicated VM's row opens its flow
//! and another's opens the form with that VM chosen. Then the rest of the
//! lifecycle from the modal: the site's test ended; the guests write (lab
//! activity over their consoles) and Replicate now's incremental moves a
//! small part of what the full sync did; the networks mapped; a live
//! failover with the typed name (source off, the replica's guest up on the
//! mapped networks, the failover point equal to the source's disk); a
//! rollback with sync back (the replica off, the source's guest up again). Every state change is
//! seen without a reload (the WebSocket's `replication_update`).
//! Screenshots at 1440x900 and 820x1180, with a check that nothing
//! overflows sideways at either size.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use fantoccini::Locator;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);
const FLOW: &str = "web-01 to lab-dr";
const SIZES: &[(&str, u32, u32)] = &[("desktop-1440x900", 1440, 900), ("tablet-820x1180", 820, 1180)];

async fn click(b: &Browser, id: &str) -> Result<()> {
    b.click_testid(id, T).await
}

async fn type_into(b: &Browser, id: &str, text: &str) -> Result<()> {
    let el = b.testid(id, T).await?;
    el.clear().await?;
    el.send_keys(text).await?;
    Ok(())
}

/// Chooses `value` in the `<select>` with `id`, as a person would (a change event).
async fn choose(b: &Browser, id: &str, value: &str) -> Result<()> {
    b.testid(id, T).await?;
    b.until(&format!("option {value} in {id}"), T, || async {
        let found = b
            .client
            .execute(
                "const s = document.querySelector(`[data-testid='${arguments[0]}']`);
                 if (![...s.options].some(o => o.value === arguments[1])) return false;
                 s.value = arguments[1]; s.dispatchEvent(new Event('change', { bubbles: true })); return true;",
                vec![json!(id), json!(value)],
            )
            .await?;
        Ok(found.as_bool().unwrap_or(false).then_some(()))
    })
    .await
}

async fn attr_of(b: &Browser, id: &str, name: &str) -> Result<String> {
    Ok(b.testid(id, T).await?.attr(name).await?.unwrap_or_default())
}

async fn text_of(b: &Browser, id: &str) -> Result<String> {
    Ok(b.testid(id, T).await?.text().await?)
}

/// Waits until the element `id` has `name` = `want`.
async fn wait_attr(b: &Browser, id: &str, name: &str, want: &str, timeout: Duration) -> Result<()> {
    let css = format!("[data-testid='{id}']");
    b.until(&format!("{id} {name}={want}"), timeout, || {
        let css = css.clone();
        async move {
            let Ok(el) = b.client.find(Locator::Css(&css)).await else { return Ok(None) };
            Ok((el.attr(name).await.ok().flatten().as_deref() == Some(want)).then_some(()))
        }
    })
    .await
}

/// The page is no wider than the viewport (nothing overflows sideways).
async fn no_overflow(b: &Browser, what: &str) -> Result<()> {
    let v = b.client.execute("return [document.documentElement.scrollWidth, window.innerWidth]", vec![]).await?;
    let (scroll, inner) = (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(0));
    if scroll > inner {
        // Name the widest offenders, to fix them.
        let who = b
            .client
            .execute(
                "const w = window.innerWidth; return [...document.querySelectorAll('body *')]
                   .filter(e => e.getBoundingClientRect().right > w + 0.5)
                   .slice(0, 8).map(e => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}[${e.dataset.testid || ''}] right=${e.getBoundingClientRect().right}`);",
                vec![],
            )
            .await?;
        anyhow::bail!("{what}: the page is {scroll} px wide in a {inner} px viewport; past the edge: {who}");
    }
    Ok(())
}

async fn shoot(b: &Browser, name: &str) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(600)).await;
    let p = b.screenshot(name).await?;
    println!("screenshot {}", p.display());
    Ok(())
}

/// Loads FLOWS at `w` x `h` and opens the flow's details from its card.
async fn open_details(b: &Browser, server: &Server, card: &str, w: u32, h: u32) -> Result<()> {
    b.resize(w, h).await?;
    b.client.goto(&server.url("/flows")).await?;
    b.testid(card, Duration::from_secs(15)).await?;
    click(b, "repl-card-details").await?;
    b.testid("repl-details", T).await?;
    b.testid("repl-point-rp-1", T).await.context("point rp-1 in the points table")?;
    Ok(())
}

async fn scroll_to(b: &Browser, id: &str) -> Result<()> {
    b.testid(id, T).await?;
    b.client
        .execute("document.querySelector(`[data-testid='${arguments[0]}']`).scrollIntoView({ block: 'start' });", vec![json!(id)])
        .await?;
    Ok(())
}

/// The action buttons shown in the details modal, as API words.
async fn shown_actions(b: &Browser) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for el in b.client.find_all(Locator::Css("[data-testid='repl-actions'] button")).await? {
        let id = el.attr("data-testid").await?.unwrap_or_default();
        out.push(id.trim_start_matches("repl-action-").to_owned());
    }
    Ok(out)
}

fn api_actions(flow: &Value) -> Vec<String> {
    flow["allowed_actions"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_test_failover_fail_over_and_roll_back_from_the_cockpit() -> Result<()> {
    let server = Server::start_with_lab_guests()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let prod = server.wait_platform(&token, "lab-prod", Duration::from_secs(180))?;
    let dr = server.wait_platform(&token, "lab-dr", Duration::from_secs(30))?;
    // A VM of a lab host as libvirt has it now (power, NICs).
    let host_vm = |platform: &str, name: &str| -> Result<Value> {
        let found = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": platform})), 200)?;
        found["vms"].as_array().context("vms")?.iter().find(|v| v["vm"]["name"] == name).map(|v| v["vm"].clone()).with_context(|| format!("no VM {name} on the host"))
    };
    let dr_pool = server.lab_dir().join("libvirt/dr/images");
    let found = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": prod})), 200)?;
    let ids: Vec<Value> = found["vms"]
        .as_array()
        .context("vms")?
        .iter()
        .filter(|v| v["vm"]["name"] == "web-01" || v["vm"]["name"] == "web-02")
        .map(|v| v["vm"]["id"].clone())
        .collect();
    ensure!(ids.len() == 2, "web-01 and web-02 in the lab");
    let added = server.expect(&token, "POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": prod, "vm_ids": ids})), 200)?;
    let managed = added["added"].as_array().context("added")?;
    let web01 = managed.iter().find(|v| v["name"] == "web-01").and_then(|v| v["id"].as_str()).context("web-01 managed")?.to_owned();
    let web02 = managed.iter().find(|v| v["name"] == "web-02").and_then(|v| v["id"].as_str()).context("web-02 managed")?.to_owned();
    let all: Vec<Value> = managed.iter().map(|v| v["id"].clone()).collect();
    server.expect(&token, "POST", "/api/v1/protection-groups", Some(json!({"name": "web-tier", "vm_ids": all})), 201)?;

    let browser = Browser::start(1440, 900).await?;
    let b = &browser;
    b.client.goto(&server.url("/flows")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("page-flows", T).await?;
    b.testid("no-replications", T).await?;

    // New replication through the form: web-01 → the DR host, keep 3 points.
    click(&b, "flows-new-replication").await?;
    b.testid("repl-new", T).await?;
    choose(&b, "repl-new-vm", &web01).await?;
    choose(&b, "repl-new-target", &dr).await?;
    let targets = b.client.execute("return [...document.querySelector(`[data-testid='repl-new-target']`).options].map(o => o.value)", vec![]).await?;
    ensure!(targets == json!([dr]), "the form offers only platforms other than the VM's own: {targets}");
    type_into(&b, "repl-new-keep", "3").await?;
    click(&b, "repl-new-submit").await?;
    let card = format!("repl-card-{FLOW}");
    b.testid(&card, T).await.context("the new flow's card")?;

    // The initial sync moves on the card (live progress of its job).
    let flows = server.expect(&token, "GET", "/api/v1/replication", None, 200)?;
    let id = flows[0]["id"].as_str().context("flow id")?.to_owned();
    ensure!(flows[0]["keep_points"] == 3 && flows[0]["interval_seconds"] == 900, "the form's settings reached the server: {}", flows[0]);
    let saw = std::cell::Cell::new(0u64);
    let shot = std::cell::Cell::new(false);
    let (saw_ref, shot_ref, card_ref, server_ref, token_ref, id_ref) = (&saw, &shot, &card, &server, &token, &id);
    b.until("the card to show healthy with 1 point", Duration::from_secs(240), || async move {
        // One read of the card in the page: it is drawn again as the flow changes.
        let v = b
            .client
            .execute(
                "const c = document.querySelector(`[data-testid='${arguments[0]}']`);
                 if (!c) return null;
                 const j = c.querySelector(`[data-testid='repl-card-job']`);
                 return [c.dataset.state, c.dataset.points, j ? Number(j.dataset.done || 0) : 0];",
                vec![json!(card_ref)],
            )
            .await?;
        if v.is_null() {
            return Ok(None);
        }
        let (state, points, done) = (v[0].as_str().unwrap_or_default().to_owned(), v[1].as_str().unwrap_or_default().to_owned(), v[2].as_u64().unwrap_or(0));
        if done > saw_ref.get() {
            // The second figure: the bar and the throughput have moved.
            if saw_ref.get() > 0 && !shot_ref.replace(true) {
                shoot(b, "replication-card-syncing-desktop-1440x900").await?;
            }
            saw_ref.set(done);
        }
        ensure!(state != "failed", "the initial sync failed: {}", server_ref.expect(token_ref, "GET", &format!("/api/v1/replication/{id_ref}"), None, 200)?["flow"]);
        Ok((state == "healthy" && points == "1").then_some(()))
    })
    .await?;
    ensure!(saw.get() > 0, "the card showed the running sync's live progress");
    let api = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
    let flow = &api["flow"];
    ensure!(flow["state"] == "healthy" && flow["point_count"] == 1, "{flow}");
    let lag = text_of(&b, "repl-lag").await?;
    ensure!(lag.starts_with("lag ") && lag.ends_with("/ RPO 15m"), "lag vs RPO on the card: {lag:?}");
    ensure!(attr_of(&b, "repl-lag", "data-rpo-missed").await? == "false", "a fresh point misses no RPO");
    ensure!(text_of(&b, "repl-points").await? == "1 point");
    let written = attr_of(&b, "repl-last-sync", "data-written").await?;
    ensure!(written == flow["last_sync"]["bytes_written"].to_string() && written != "0", "card shows {written} written, API {}", flow["last_sync"]);
    ensure!(text_of(&b, "repl-last-sync").await?.contains("full"), "the first sync is full");

    for (size, w, h) in SIZES {
        b.resize(*w, *h).await?;
        b.client.goto(&server.url("/flows")).await?;
        b.testid(&card, Duration::from_secs(15)).await?;
        no_overflow(&b, &format!("FLOWS at {size}")).await?;
        shoot(&b, &format!("replication-flows-{size}")).await?;
        scroll_to(&b, "dr-sites").await?;
        shoot(&b, &format!("replication-dr-site-healthy-{size}")).await?;
    }

    // Details: state, points, network problems, exactly the allowed actions.
    // Each size is loaded afresh (the cockpit lays out for the viewport it starts in);
    // desktop last, where the test goes on.
    for (size, w, h) in SIZES.iter().rev() {
        open_details(b, &server, &card, *w, *h).await?;
        no_overflow(&b, &format!("details at {size}")).await?;
        shoot(&b, &format!("replication-details-{size}")).await?;
    }
    wait_attr(&b, "repl-state", "data-state", "healthy", T).await?;
    b.until("the actions", T, || async {
        let shown = shown_actions(&b).await?;
        Ok((shown == api_actions(flow)).then_some(()))
    })
    .await
    .with_context(|| format!("the modal shows the API's allowed actions {:?}", api_actions(flow)))?;
    ensure!(api_actions(flow).contains(&"failover".to_owned()) && !api_actions(flow).contains(&"rollback".to_owned()));
    let problems = flow["network_problems"].as_array().map(Vec::len).unwrap_or(0);
    ensure!(problems > 0, "without a network mapping the API names problems");
    let shown = b.client.find_all(Locator::Css("[data-testid='repl-network-problems'] li")).await?.len();
    ensure!(shown == problems, "the modal lists {shown} network problems, the API {problems}");
    ensure!(attr_of(&b, "repl-network-link", "href").await? == "/networks");
    b.testid("repl-job", T).await.context("the initial sync in recent jobs")?;

    // Live failover: seed 003's warning, the name typed, the server's refusal shown.
    for (size, w, h) in SIZES.iter().filter(|s| s.1 != 1440) {
        open_details(b, &server, &card, *w, *h).await?;
        click(&b, "repl-action-failover").await?;
        type_into(&b, "repl-confirm-name", "web-01").await?;
        no_overflow(&b, &format!("failover confirmation at {size}")).await?;
        shoot(&b, &format!("replication-live-failover-{size}")).await?;
    }
    open_details(b, &server, &card, 1440, 900).await?;
    click(&b, "repl-action-failover").await?;
    wait_attr(&b, "repl-confirm", "data-action", "failover", T).await?;
    let warning = text_of(&b, "repl-failover-warning").await?;
    ensure!(warning.contains("This will switch production to lab-dr"), "{warning}");
    ensure!(b.testid("repl-final-sync", T).await?.is_selected().await?, "final sync is on by default");
    let submit = b.testid("repl-confirm-submit", T).await?;
    ensure!(!submit.is_enabled().await?, "nothing typed: the button is disabled");
    type_into(&b, "repl-confirm-name", "web-0").await?;
    ensure!(!submit.is_enabled().await?, "a wrong name keeps it disabled");
    type_into(&b, "repl-confirm-name", "web-01").await?;
    b.until("failover enabled by the typed name", T, || async { Ok(submit.is_enabled().await?.then_some(())) }).await?;
    shoot(&b, "replication-live-failover-desktop-1440x900").await?;
    submit.click().await?;
    let refusal = text_of(&b, "repl-confirm-error").await?;
    ensure!(refusal.contains("web-01"), "the server's refusal is shown: {refusal:?}");
    shoot(&b, "replication-failover-refused-desktop-1440x900").await?;
    let after = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
    ensure!(after["flow"]["state"] == "healthy", "a refused failover changes nothing: {}", after["flow"]);
    click(&b, "repl-confirm-cancel").await?;

    // Test failover from the modal: testing, with the test VM's name.
    click(&b, "repl-action-test_failover").await?;
    wait_attr(&b, "repl-confirm", "data-action", "test_failover", T).await?;
    let options = b.client.execute("return [...document.querySelector(`[data-testid='repl-test-point']`).options].map(o => o.value)", vec![]).await?;
    ensure!(options == json!(["rp-1"]), "the points to test: {options}");
    ensure!(text_of(&b, "repl-confirm-text").await?.contains("isolated network"), "the test's isolation is explained");
    click(&b, "repl-confirm-submit").await?;
    wait_attr(&b, "repl-state", "data-state", "testing", Duration::from_secs(240)).await?;
    let api = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
    let test_vm = api["flow"]["test_vm_name"].as_str().context("the API names the test VM")?.to_owned();
    // Testing means its guest is up, on the isolated network only.
    let tvm = host_vm(&dr, &test_vm)?;
    ensure!(tvm["power"] == "running", "the test VM runs: {tvm}");
    let nets: Vec<&str> = tvm["nics"].as_array().context("nics")?.iter().filter_map(|n| n["network"].as_str()).collect();
    ensure!(!nets.is_empty() && nets.iter().all(|n| *n == "isolated"), "the test VM's NICs are on the isolated network: {nets:?}");
    let test_job = api["recent_jobs"].as_array().context("jobs")?.iter().find(|j| j["operation"] == "test_failover").context("the test's job")?;
    let test_log = server.expect(&token, "GET", &format!("/api/v1/jobs/{}", test_job["id"].as_str().unwrap_or_default()), None, 200)?;
    let up = test_log["logs"].as_array().context("logs")?.iter().filter_map(|l| l["message"].as_str()).find(|m| m.contains("SENDENSE-GUEST-UP")).map(str::to_owned);
    ensure!(up.as_deref().is_some_and(|l| l.contains("name=web-01")), "the test's job log shows the guest's boot line: {up:?}");
    wait_attr(&b, "repl-test-vm", "data-name", &test_vm, T).await?;
    b.until("end test and clean up offered", T, || async {
        Ok((shown_actions(&b).await? == vec!["end_test".to_owned(), "cleanup".to_owned()]).then_some(()))
    })
    .await?;
    // The modal shows the test VM as its host has it: running, how long its
    // guest took to come up, its console's last lines.
    wait_attr(&b, "repl-test-vm-status", "data-power", "running", Duration::from_secs(20)).await?;
    let up_ms: u64 = attr_of(&b, "repl-test-vm-status", "data-up-ms").await?.parse().unwrap_or(0);
    ensure!(up_ms > 0 && up_ms < 180_000, "the time until the test VM was up: {up_ms} ms");
    e2e::metric("replication_ui_test_failover_guest_up_ms", up_ms);
    let shown = match b.client.find(Locator::Css("[data-testid='repl-test-boot-line']")).await {
        Ok(el) => el.text().await?,
        Err(_) => text_of(&b, "repl-test-console").await?,
    };
    ensure!(shown.contains("SENDENSE-GUEST-UP name=web-01"), "the test VM's boot line is shown: {shown}");
    scroll_to(&b, "repl-test-console").await?;
    shoot(&b, "replication-details-testing-desktop-1440x900").await?;
    b.resize(820, 1180).await?;
    no_overflow(&b, "the test VM panel at 820x1180").await?;
    shoot(&b, "replication-details-testing-tablet-820x1180").await?;
    b.resize(1440, 900).await?;

    // The DR-site view while the test runs.
    click(&b, "repl-details-close").await?;
    let site = "dr-site-lab-dr";
    b.testid(site, T).await?;
    wait_attr(&b, "dr-replica-web-01", "data-state", "testing", T).await?;
    ensure!(text_of(&b, "dr-test-vm").await?.contains(&test_vm), "the site shows the test VM");
    let count = b.client.find(Locator::Css(&format!("[data-testid='{site}'] [data-state='testing'][data-count]"))).await?;
    ensure!(count.attr("data-count").await?.as_deref() == Some("1"), "one replica testing on the site");
    for (size, w, h) in SIZES.iter().rev() {
        b.resize(*w, *h).await?;
        b.client.goto(&server.url("/flows")).await?;
        wait_attr(&b, "dr-replica-web-01", "data-state", "testing", Duration::from_secs(15)).await?;
        scroll_to(&b, "dr-sites").await?;
        no_overflow(&b, &format!("DR sites at {size}")).await?;
        shoot(&b, &format!("replication-dr-site-{size}")).await?;
    }

    // End the test from the modal; the API says healthy again.
    open_details(b, &server, &card, 1440, 900).await?;
    click(&b, "repl-action-end_test").await?;
    wait_attr(&b, "repl-confirm", "data-action", "end_test", T).await?;
    ensure!(text_of(&b, "repl-confirm-text").await?.contains(&test_vm), "end test names the test VM");
    click(&b, "repl-confirm-submit").await?;
    wait_attr(&b, "repl-state", "data-state", "healthy", Duration::from_secs(120)).await?;
    let api = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
    ensure!(api["flow"]["state"] == "healthy" && api["flow"]["test_vm_name"].is_null(), "after the test: {}", api["flow"]);
    let ops: Vec<&str> = api["recent_jobs"].as_array().context("jobs")?.iter().filter_map(|j| j["operation"].as_str()).collect();
    ensure!(ops.contains(&"test_failover") && ops.contains(&"end_test"), "the test's jobs: {ops:?}");
    // A recent job opens the job view.
    b.until("end_test among the recent jobs", T, || async {
        Ok(b.client.find(Locator::Css("[data-testid='repl-job'][data-operation='end_test']")).await.ok())
    })
    .await?
    .find(Locator::Css("[data-testid='repl-job-open']"))
    .await?
    .click()
    .await?;
    b.testid("job-panel", T).await.context("the job view")?;
    wait_attr(&b, "job-progress", "data-status", "completed", T).await?;
    let log = b.client.find_all(Locator::Css("[data-testid='job-log'] li")).await?.len();
    ensure!(log > 0, "the job view shows the end of test's log");
    shoot(&b, "replication-job-view-desktop-1440x900").await?;
    click(&b, "flow-details-close").await?;
    click(&b, "repl-details-close").await?;

    // RECOVERY: site failover of the group; live needs the group's name.
    for (size, w, h) in SIZES.iter().rev() {
        b.resize(*w, *h).await?;
        b.client.goto(&server.url("/recovery")).await?;
        click(&b, "site-failover-open").await?;
        b.testid("site-failover", T).await?;
        b.until("web-01's flow in the preview", T, || async {
            Ok(text_of(&b, "site-preview").await?.contains("lab-dr").then_some(()))
        })
        .await?;
        click(&b, "site-mode-live").await?;
        let submit = b.testid("site-failover-submit", T).await?;
        ensure!(!submit.is_enabled().await?, "live without the group's name is disabled");
        type_into(&b, "site-confirm-name", "web-tie").await?;
        ensure!(!submit.is_enabled().await?, "a wrong group name keeps it disabled");
        type_into(&b, "site-confirm-name", "web-tier").await?;
        b.until("site failover enabled", T, || async { Ok(submit.is_enabled().await?.then_some(())) }).await?;
        no_overflow(&b, &format!("site failover at {size}")).await?;
        shoot(&b, &format!("replication-site-failover-{size}")).await?;
    }
    click(&b, "site-mode-test").await?;
    click(&b, "site-failover-submit").await?;
    let result = b.testid("site-result", Duration::from_secs(20)).await?;
    ensure!(result.attr("data-started").await?.as_deref() == Some("1"), "web-01's test started");
    ensure!(result.attr("data-unreplicated").await?.as_deref() == Some("1"), "web-02 is not replicated");
    ensure!(text_of(&b, "site-unreplicated").await?.contains("web-02"));
    shoot(&b, "replication-site-failover-result-desktop-1440x900").await?;
    let api = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
    ensure!(matches!(api["flow"]["state"].as_str(), Some("starting_test" | "testing")), "the site test runs: {}", api["flow"]);

    // ASSETS: a replicated VM's row opens its flow, another's the form with it chosen.
    b.client.goto(&server.url("/assets")).await?;
    b.until("web-01's row offers its replication", T, || async {
        Ok(text_of(b, "replicate-web-01").await.ok().filter(|t| t == "Replication").map(|_| ()))
    })
    .await?;
    click(b, "replicate-web-01").await?;
    b.testid("repl-details", T).await.context("Replication on web-01's row opens the details")?;
    click(b, "repl-details-close").await?;
    ensure!(text_of(b, "replicate-web-02").await? == "Replicate…");
    click(b, "replicate-web-02").await?;
    b.testid("repl-new", T).await?;
    // The VM list loads after the form opens; the choice shows once it has.
    let want = json!(web02);
    let chosen = b
        .until("the form to show web-02 chosen", T, || async {
            let v = b.client.execute("return document.querySelector(`[data-testid='repl-new-vm']`).value", vec![]).await?;
            Ok((v == want).then_some(v))
        })
        .await;
    ensure!(chosen.is_ok(), "the form opens with web-02 chosen: {chosen:?}");

    // The site's test ends from the modal like any test.
    b.until("the site test to run", Duration::from_secs(240), || async {
        let f = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
        Ok((f["flow"]["state"] == "testing").then_some(()))
    })
    .await?;
    b.client.goto(&server.url("/flows")).await?;
    click(&b, "repl-card-details").await?;
    wait_attr(&b, "repl-state", "data-state", "testing", T).await?;
    click(&b, "repl-action-end_test").await?;
    wait_attr(&b, "repl-confirm", "data-action", "end_test", T).await?;
    click(&b, "repl-confirm-submit").await?;
    wait_attr(&b, "repl-state", "data-state", "healthy", Duration::from_secs(120)).await?;

    // The guests write (lab activity), then Replicate now: the incremental
    // moves a small part of what the full sync did.
    let before = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
    let points_before = before["flow"]["point_count"].as_u64().unwrap_or(0);
    let full_read = before["flow"]["last_sync"]["bytes_read"].as_u64().unwrap_or(0);
    let report = server.lab_activity()?;
    let web = report["guests"].as_array().and_then(|a| a.iter().find(|g| g["vm"] == "web-01")).context("web-01 in the activity report")?;
    ensure!(web["skipped"].is_null(), "web-01 did not write: {web}");
    let activity: u64 = web["files"].as_array().map(|f| f.iter().filter_map(|f| f["bytes_written"].as_u64()).sum()).unwrap_or(0);
    ensure!(activity > 0, "the activity wrote to web-01: {web}");
    click(&b, "repl-action-replicate_now").await?;
    b.until("the incremental sync's new point", Duration::from_secs(120), || async {
        let f = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
        ensure!(f["flow"]["state"] != "failed", "the sync failed: {}", f["flow"]);
        Ok((f["flow"]["state"] == "healthy" && f["flow"]["point_count"].as_u64().unwrap_or(0) > points_before).then_some(f))
    })
    .await?;
    let after = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
    let inc = &after["flow"]["last_sync"];
    let (changed, read, written) = (inc["bytes_changed"].as_u64().unwrap_or(0), inc["bytes_read"].as_u64().unwrap_or(0), inc["bytes_written"].as_u64().unwrap_or(0));
    ensure!(inc["kind"] == "incremental", "{inc}");
    ensure!(changed > 0 && read <= changed && written <= changed && read < full_read / 4, "the incremental listed {changed} B, read {read} B, wrote {written} B after {activity} B of activity (full read {full_read} B)");
    wait_attr(&b, "repl-state", "data-state", "healthy", T).await?;
    e2e::metric("replication_ui_activity_bytes", activity);
    e2e::metric("replication_ui_incremental_changed_bytes", changed);
    e2e::metric("replication_ui_incremental_written_bytes", written);

    // Map the networks (the recommendations), then a live failover from the modal.
    let rec = server.expect(&token, "GET", &format!("/api/v1/networks/recommendations?source_platform_id={prod}&target_platform_id={dr}"), None, 200)?;
    let pairs: Vec<Value> = rec["recommendations"]
        .as_array()
        .context("recommendations")?
        .iter()
        .map(|r| json!({"source_network": r["source_network"], "target_network": r["target_network"]}))
        .collect();
    server.expect(&token, "PATCH", &format!("/api/v1/replication/{id}"), Some(json!({"network_mapping": pairs})), 200)?;
    b.until("no network problems left", T, || async {
        Ok(b.client.find(Locator::Css("[data-testid='repl-network-problems'] li")).await.is_err().then_some(()))
    })
    .await?;
    let same = |a: &std::path::Path, b: &std::path::Path| -> Result<bool> {
        Ok(std::process::Command::new("qemu-img").args(["compare", "-q", "-U"]).arg(a).arg(b).status()?.success())
    };
    let source_disk = {
        let pool = server.lab_dir().join("libvirt/prod/images");
        let mut v: Vec<_> = std::fs::read_dir(&pool)?.flatten().map(|e| e.path()).filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("web-01-") && n.ends_with(".qcow2"))).collect();
        v.sort();
        v.into_iter().next().context("web-01's volume")?
    };
    click(&b, "repl-action-failover").await?;
    wait_attr(&b, "repl-confirm", "data-action", "failover", T).await?;
    type_into(&b, "repl-confirm-name", "web-01").await?;
    let t0 = std::time::Instant::now();
    click(&b, "repl-confirm-submit").await?;
    wait_attr(&b, "repl-state", "data-state", "failed_over", Duration::from_secs(180)).await?;
    e2e::metric("replication_ui_failover_click_to_failed_over_ms", t0.elapsed().as_millis());
    ensure!(host_vm(&prod, "web-01")?["power"] == "stopped", "the source is powered off");
    let replica = host_vm(&dr, "web-01-replica")?;
    ensure!(replica["power"] == "running", "the replica runs: {replica}");
    let nets: Vec<&str> = replica["nics"].as_array().context("nics")?.iter().filter_map(|n| n["network"].as_str()).collect();
    ensure!(nets.len() == 2 && !nets.contains(&"isolated"), "the replica's NICs are on the mapped networks: {nets:?}");
    let api = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
    let fo = api["recent_jobs"].as_array().context("jobs")?.iter().find(|j| j["operation"] == "failover").context("the failover's job")?;
    let fo = server.expect(&token, "GET", &format!("/api/v1/jobs/{}", fo["id"].as_str().unwrap_or_default()), None, 200)?;
    let summary = fo["logs"].as_array().context("logs")?.iter().filter_map(|l| l["message"].as_str()).find(|m| m.starts_with("failed over to")).unwrap_or_default().to_owned();
    ensure!(summary.contains("guest up") && !summary.contains("not seen"), "the failover waited for the replica's guest: {summary}");
    e2e::metric("replication_ui_failover_summary", format!("{summary:?}"));
    let point = api["points"].as_array().and_then(|p| p.iter().find(|p| p["failover_point"] == true)).and_then(|p| p["seq"].as_u64()).context("the failover point")?;
    ensure!(same(&dr_pool.join(format!("web-01-replica/vda.rp-{point}.qcow2")), &source_disk)?, "the failover point equals the source's disk");
    b.until("roll back and clean up offered", T, || async {
        Ok((shown_actions(&b).await? == vec!["rollback".to_owned(), "cleanup".to_owned()]).then_some(()))
    })
    .await?;
    shoot(&b, "replication-details-failed-over-desktop-1440x900").await?;

    // Rollback from the modal with the replica's changes synced back.
    click(&b, "repl-action-rollback").await?;
    wait_attr(&b, "repl-confirm", "data-action", "rollback", T).await?;
    click(&b, "repl-rollback-sync").await?;
    let submit = b.testid("repl-confirm-submit", T).await?;
    ensure!(!submit.is_enabled().await?, "rollback waits for the typed name");
    type_into(&b, "repl-confirm-name", "web-01").await?;
    shoot(&b, "replication-rollback-confirm-desktop-1440x900").await?;
    click(&b, "repl-confirm-submit").await?;
    if let Err(e) = wait_attr(&b, "repl-state", "data-state", "healthy", Duration::from_secs(240)).await {
        let api = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
        let logs: Vec<String> = match api["active_job"]["id"].as_str().or_else(|| api["recent_jobs"][0]["id"].as_str()) {
            Some(job) => server.expect(&token, "GET", &format!("/api/v1/jobs/{job}"), None, 200)?["logs"]
                .as_array()
                .map(|l| l.iter().filter_map(|x| x["message"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        anyhow::bail!("{e}: the flow is {}; its job's log: {logs:#?}", api["flow"]);
    }
    ensure!(host_vm(&prod, "web-01")?["power"] == "running", "the source runs again");
    ensure!(host_vm(&dr, "web-01-replica")?["power"] == "stopped", "the replica is off again");
    let api = server.expect(&token, "GET", &format!("/api/v1/replication/{id}"), None, 200)?;
    let rb = api["recent_jobs"].as_array().context("jobs")?.iter().find(|j| j["operation"] == "rollback").context("the rollback's job")?;
    let rb = server.expect(&token, "GET", &format!("/api/v1/jobs/{}", rb["id"].as_str().unwrap_or_default()), None, 200)?;
    let report = rb["logs"].as_array().context("logs")?.iter().filter_map(|l| l["message"].as_str()?.strip_prefix("report ")).find_map(|r| serde_json::from_str::<Value>(r).ok()).context("the rollback's report")?;
    ensure!(report["boot_line"].as_str().is_some_and(|l| l.contains("name=web-01")), "the source's guest is up again: {report}");
    ensure!(report["bytes_written"].as_u64().unwrap_or(0) > 0, "the replica's writes went back: {report}");
    let ops: Vec<&str> = api["recent_jobs"].as_array().context("jobs")?.iter().filter_map(|j| j["operation"].as_str()).collect();
    ensure!(ops.contains(&"failover") && ops.contains(&"rollback"), "the lifecycle's jobs: {ops:?}");
    click(&b, "repl-details-close").await?;

    browser.close().await?;
    Ok(())
}
