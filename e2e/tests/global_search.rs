//! Global search in a real browser against the real server and the demo
//! lab on its libvirt hosts (the production host's VMs managed through the
//! API): `/` from anywhere puts the cursor in the top bar's search, two
//! keystrokes of a VM's name find it first, Enter opens it on ASSETS with
//! its row marked; the whole name also finds its restore point (opened
//! among its VM's on RECOVERY) and its backup job (its details on FLOWS);
//! up/down choose among hits, Escape leaves, `/` typed in a
//! text field stays there, pages are found too. Screenshots at desktop,
//! tablet and phone size (where a button unfolds the search).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::Locator;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);
const ENTER: char = '\u{e007}';
const ESCAPE: char = '\u{e00c}';
const ARROW_DOWN: char = '\u{e015}';

/// Types `keys` on the keyboard, to whatever has the focus (as a person does).
async fn press(b: &Browser, keys: &str) -> Result<()> {
    let mut actions = KeyActions::new("keyboard".into());
    for c in keys.chars() {
        actions = actions.then(KeyAction::Down { value: c }).then(KeyAction::Up { value: c });
    }
    b.client.perform_actions(actions).await?;
    Ok(())
}

async fn focused_testid(b: &Browser) -> Result<String> {
    let v = b.client.execute("return document.activeElement && document.activeElement.dataset.testid || ''", vec![]).await?;
    Ok(v.as_str().unwrap_or_default().to_string())
}

/// The hits shown: (kind, title, selected).
async fn hits(b: &Browser) -> Result<Vec<(String, String, bool)>> {
    let mut out = Vec::new();
    for el in b.client.find_all(Locator::Css("[data-testid='search-hit']")).await? {
        let kind = el.attr("data-kind").await?.unwrap_or_default();
        let title = el.attr("data-title").await?.unwrap_or_default();
        let selected = el.attr("aria-selected").await?.as_deref() == Some("true");
        out.push((kind, title, selected));
    }
    Ok(out)
}

/// Waits until the first hit is `(kind, title)`; all hits then.
async fn first_hit(b: &Browser, kind: &str, title: &str) -> Result<Vec<(String, String, bool)>> {
    b.until(&format!("{kind} {title} as the first hit"), T, || async {
        let h = hits(b).await?;
        Ok(h.first().is_some_and(|(k, t, _)| k == kind && t == title).then_some(h))
    })
    .await
}

async fn search_value(b: &Browser) -> Result<String> {
    Ok(b.testid("global-search", T).await?.prop("value").await?.unwrap_or_default())
}

/// Waits for ASSETS to show `vm`'s row marked as opened, the address naming its id.
async fn opened_vm(b: &Browser, vm: &str, id: &str) -> Result<()> {
    b.testid("page-assets", T).await?;
    b.until(&format!("{vm}'s row marked"), T, || async {
        let row = b.testid(&format!("vm-row-{vm}"), T).await?;
        Ok(row.attr("class").await?.unwrap_or_default().split(' ').any(|c| c == "focused").then_some(()))
    })
    .await?;
    let url = b.client.current_url().await?;
    ensure!(url.path() == "/assets" && url.query() == Some(&format!("vm={id}")), "opened {url}, expected /assets?vm={id}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_two_keystrokes_and_enter_open_a_vm() -> Result<()> {
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let prod = server.wait_platform(&token, "lab-prod", Duration::from_secs(180))?;
    let found = server.expect(&token, "POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": prod})), 200)?;
    let vm_ids: Vec<Value> = found["vms"].as_array().context("vms")?.iter().map(|v| v["vm"]["id"].clone()).collect();
    let added = server.expect(&token, "POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": prod, "vm_ids": vm_ids})), 200)?;
    let id_of = |name: &str| -> Result<String> {
        added["added"]
            .as_array()
            .and_then(|a| a.iter().find(|v| v["name"] == name))
            .and_then(|v| v["id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("{name} managed: {added}"))
    };
    let (db, web1, web2) = (id_of("db-01")?, id_of("web-01")?, id_of("web-02")?);
    // A real backup of db-01: a restore point and a job to find.
    let queued = server.expect(&token, "POST", "/api/v1/backup/start", Some(json!({"vm_ids": [db], "backup_type": "full"})), 202)?;
    let job = queued["jobs"][0]["id"].as_str().context("a queued job")?.to_string();
    let done = server.wait_job(&token, &job, Duration::from_secs(300))?;
    ensure!(done["job"]["status"] == "completed", "the backup of db-01: {}", done["job"]);
    let points = server.expect(&token, "GET", &format!("/api/v1/backup/list?vm={db}"), None, 200)?;
    let point = points["items"][0]["id"].as_str().context("db-01's restore point")?.to_string();

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/command")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("page-command", Duration::from_secs(20)).await?;

    // `/` anywhere puts the cursor in the search; two keystrokes find db-01 first.
    press(&b, "/").await?;
    b.until("the search to have the focus", T, || async { Ok((focused_testid(&b).await? == "global-search").then_some(())) }).await?;
    ensure!(search_value(&b).await?.is_empty(), "the `/` that focused the search was typed into it");
    let typed = Instant::now();
    press(&b, "db").await?;
    let shown = first_hit(&b, "vm", "db-01").await?;
    e2e::metric("search_two_keystrokes_to_first_hit_ms", typed.elapsed().as_millis());
    ensure!(shown[0].2, "the first hit is not selected: {shown:?}");
    let subtitle = b.client.find(Locator::Css("[data-testid='search-hit'] small")).await?.text().await?;
    ensure!(subtitle.starts_with("lab-prod · "), "db-01's subtitle names its platform: {subtitle:?}");
    b.screenshot("search-db-1440x900").await?;
    press(&b, &ENTER.to_string()).await?;
    opened_vm(&b, "db-01", &db).await?;
    ensure!(search_value(&b).await?.is_empty(), "the search is not cleared after opening a hit");
    ensure!(b.client.find_all(Locator::Css("[data-testid='search-results']")).await?.is_empty(), "results stay open");
    b.screenshot("search-opened-db-01-1440x900").await?;

    // Its whole name also finds its restore point and its job, in that
    // order; each opens where it is shown.
    press(&b, "/db-01").await?;
    let shown = first_hit(&b, "vm", "db-01").await?;
    let kinds: Vec<&str> = shown.iter().map(|h| h.0.as_str()).collect();
    ensure!(kinds == ["vm", "restore_point", "job"], "db-01's hits: {shown:?}");
    ensure!(shown[1].1.starts_with("db-01 · ") && shown[2].1 == "Backup · db-01", "{shown:?}");
    b.screenshot("search-kinds-1440x900").await?;
    press(&b, &format!("{ARROW_DOWN}{ENTER}")).await?;
    b.testid("vm-points", T).await?;
    b.until("the restore point marked", T, || async {
        let row = b.testid(&format!("point-{point}"), T).await?;
        Ok(row.attr("class").await?.unwrap_or_default().split(' ').any(|c| c == "focused").then_some(()))
    })
    .await?;
    ensure!(b.client.current_url().await?.path() == "/recovery", "a restore point opens on RECOVERY");
    b.screenshot("search-opened-restore-point-1440x900").await?;
    b.testid("vm-points-close", T).await?.click().await?;
    press(&b, "/db-01").await?;
    first_hit(&b, "vm", "db-01").await?;
    press(&b, &format!("{ARROW_DOWN}{ARROW_DOWN}{ENTER}")).await?;
    b.testid("flow-details", T).await?;
    b.until("the job's panel", T, || async {
        let panel = b.testid("job-panel", T).await?;
        Ok((panel.attr("data-job-id").await?.as_deref() == Some(job.as_str())).then_some(()))
    })
    .await?;
    ensure!(b.client.current_url().await?.path() == "/flows", "a job opens on FLOWS");
    b.testid("flow-details-close", T).await?.click().await?;

    // Up/down choose: "we" finds web-01 then web-02; down and Enter open web-02.
    press(&b, "/we").await?;
    let shown = first_hit(&b, "vm", "web-01").await?;
    ensure!(shown.get(1).is_some_and(|(k, t, _)| k == "vm" && t == "web-02"), "web-02 second: {shown:?}");
    press(&b, &ARROW_DOWN.to_string()).await?;
    b.until("web-02 selected", T, || async { Ok(hits(&b).await?.get(1).is_some_and(|h| h.2).then_some(())) }).await?;
    press(&b, &ENTER.to_string()).await?;
    opened_vm(&b, "web-02", &web2).await?;

    // A mouse click opens a hit too; the mark moves to it.
    press(&b, "/web-01").await?;
    first_hit(&b, "vm", "web-01").await?;
    b.client.find(Locator::Css("[data-testid='search-hit'][data-title='web-01']")).await?.click().await?;
    opened_vm(&b, "web-01", &web1).await?;
    let rows = b.client.find_all(Locator::Css("tr.focused")).await?;
    ensure!(rows.len() == 1, "{} rows marked", rows.len());

    // Escape leaves; `/` typed in a text field stays in it.
    press(&b, "/zz").await?;
    b.until("nothing matches", T, || async {
        let empty = b.client.find_all(Locator::Css("[data-testid='search-empty']")).await?;
        Ok(match empty.first() {
            Some(e) => (e.text().await? == "Nothing matches.").then_some(()),
            None => None,
        })
    })
    .await?;
    press(&b, &ESCAPE.to_string()).await?;
    ensure!(search_value(&b).await?.is_empty() && focused_testid(&b).await? != "global-search", "Escape did not leave the search");
    press(&b, "/a/b").await?;
    b.until("a/b typed", T, || async { Ok((search_value(&b).await? == "a/b").then_some(())) }).await?;
    press(&b, &ESCAPE.to_string()).await?;

    // Pages are found beside the catalog's objects, settings pages too.
    // "repo" is also the start of Reports: "repos" names one page.
    press(&b, "/repos").await?;
    first_hit(&b, "page", "Repositories").await?;
    press(&b, &ENTER.to_string()).await?;
    b.testid("page-repositories", T).await?;
    press(&b, "/users").await?;
    first_hit(&b, "page", "Users").await?;
    press(&b, &ENTER.to_string()).await?;
    b.testid("user-row-admin", T).await?;

    // Tablet size: the same search, the same result.
    b.resize(820, 1180).await?;
    b.client.goto(&server.url("/flows")).await?;
    b.testid("page-flows", Duration::from_secs(20)).await?;
    press(&b, "/db").await?;
    first_hit(&b, "vm", "db-01").await?;
    b.screenshot("search-db-820x1180").await?;
    press(&b, &ENTER.to_string()).await?;
    opened_vm(&b, "db-01", &db).await?;
    b.screenshot("search-opened-db-01-820x1180").await?;

    // Phone size: the box is folded into a button; the button unfolds it
    // over the context bar, and a hit opens as on the desktop.
    b.resize(390, 844).await?;
    b.client.goto(&server.url("/flows")).await?;
    b.testid("page-flows", Duration::from_secs(20)).await?;
    ensure!(!b.testid("global-search", T).await?.is_displayed().await?, "the search box is folded on a phone");
    b.testid("global-search-open", T).await?.click().await?;
    b.until("the search to have the focus", T, || async { Ok((focused_testid(&b).await? == "global-search").then_some(())) }).await?;
    ensure!(b.testid("global-search", T).await?.is_displayed().await?, "the button did not unfold the box");
    press(&b, "db").await?;
    first_hit(&b, "vm", "db-01").await?;
    b.screenshot("search-db-390x844").await?;
    press(&b, &ENTER.to_string()).await?;
    opened_vm(&b, "db-01", &db).await?;
    ensure!(!b.testid("global-search", T).await?.is_displayed().await?, "the box folds again once a hit opens");
    b.close().await?;
    Ok(())
}


/// Without the lab: at phone and tablet size the search is a button at the
/// context bar's right edge (no sideways scrolling), `/` still unfolds and
/// focuses it, and pages reached from the bell or the Systems tabs (Alerts,
/// Schedules, Notifications) are found and opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_searches_through_the_search_button_and_slash() -> Result<()> {
    let server = Server::start()?;
    let b = Browser::start(390, 844).await?;
    b.client.goto(&server.url("/command")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("page-command", Duration::from_secs(20)).await?;
    let button = b.testid("global-search-open", T).await?;
    ensure!(button.is_displayed().await?, "no search button on a phone");
    let inside = b
        .client
        .execute(
            "const r = document.querySelector('[data-testid=global-search-open]').getBoundingClientRect(); return r.left >= 0 && r.right <= document.documentElement.clientWidth",
            vec![],
        )
        .await?;
    ensure!(inside.as_bool() == Some(true), "the search button is off screen");
    ensure!(!b.overflows().await?, "the cockpit scrolls sideways at 390 px");
    b.screenshot("search-button-390x844").await?;

    // `/` unfolds and focuses it; "alerts" finds the alert center.
    press(&b, "/").await?;
    b.until("the search to have the focus", T, || async { Ok((focused_testid(&b).await? == "global-search").then_some(())) }).await?;
    ensure!(search_value(&b).await?.is_empty(), "the `/` was typed into the box");
    press(&b, "alerts").await?;
    first_hit(&b, "page", "Alerts").await?;
    b.screenshot("search-alerts-390x844").await?;
    press(&b, &ENTER.to_string()).await?;
    b.until("the alert center", T, || async { Ok((b.client.current_url().await?.path() == "/alerts").then_some(())) }).await?;

    // The button, then Systems tabs and secondary pages.
    for (typed, title, path) in [("notif", "Notifications", "/systems/notifications"), ("sched", "Schedules", "/schedules")] {
        b.testid("global-search-open", T).await?.click().await?;
        b.until("the search to have the focus", T, || async { Ok((focused_testid(&b).await? == "global-search").then_some(())) }).await?;
        press(&b, typed).await?;
        first_hit(&b, "page", title).await?;
        press(&b, &ENTER.to_string()).await?;
        b.until(&format!("{path} opened"), T, || async { Ok((b.client.current_url().await?.path() == path).then_some(())) }).await?;
    }
    // Escape folds it again.
    press(&b, "/zz").await?;
    press(&b, &ESCAPE.to_string()).await?;
    ensure!(!b.testid("global-search", T).await?.is_displayed().await?, "Escape did not fold the box");

    // Tablet: the button too, and no sideways scrolling.
    b.resize(820, 1180).await?;
    b.client.goto(&server.url("/systems")).await?;
    b.testid("page-systems", Duration::from_secs(20)).await?;
    ensure!(b.testid("global-search-open", T).await?.is_displayed().await?, "no search button at 820 px");
    ensure!(!b.overflows().await?, "the cockpit scrolls sideways at 820 px");
    press(&b, "/users").await?;
    first_hit(&b, "page", "Users").await?;
    b.screenshot("search-users-820x1180").await?;
    b.close().await?;
    Ok(())
}
