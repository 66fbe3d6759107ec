//! 3-2-1 copies set and used from the cockpit (issue 18 item 7), in Chromium
//! against the real server with the demo lab on its libvirt hosts and a
//! second local repository 'offsite':
//!
//! 1. POLICIES → New policy: a copy target (offsite, copies keep the last
//!    2, immutable there 1 day); the row says so. FLOWS → the flow's Edit:
//!    it follows the policy, the editor and then the flow's details show the
//!    policy's copy target (the API agrees). POLICIES → Edit: copying to the
//!    flow's own repository is refused with the server's 422 beside the
//!    field (nothing changed). The flow's Backup now: the restore point gets
//!    a second 'Stored in' badge that turns present once the copy job ends.
//! 2. The primary repository's directory is removed: the restore wizard's
//!    'Read from' offers the copy; reading the primary explicitly is refused
//!    with the server's reason (naming the copy), Automatic reads the copy
//!    (the check says so and why) and the restore completes from it.
//!
//! Screenshots at 1440x900 and 820x1180 of the policy's copy target and of
//! the wizard's 'Read from' step and check, without sideways overflow.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use fantoccini::Locator;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);
const SIZES: [(&str, u32, u32); 2] = [("1440x900", 1440, 900), ("820x1180", 820, 1180)];

async fn set(b: &Browser, testid: &str, text: &str) -> Result<()> {
    let input = b.testid(testid, T).await?;
    input.clear().await?;
    if text.is_empty() {
        b.client
            .execute(&format!("document.querySelector(\"[data-testid='{testid}']\").dispatchEvent(new Event('input', {{bubbles: true}}))"), vec![])
            .await?;
    } else {
        input.send_keys(text).await?;
    }
    Ok(())
}

async fn show(b: &Browser, testid: &str) -> Result<()> {
    b.client.execute(&format!("document.querySelector(\"[data-testid='{testid}']\").scrollIntoView({{block: 'start'}})"), vec![]).await?;
    Ok(())
}

/// Chooses `value` in the select `testid` once its options hold it (they load after the view).
async fn choose(b: &Browser, testid: &str, value: &str) -> Result<()> {
    let css = format!("[data-testid='{testid}'] option[value='{value}']");
    b.until(&format!("{value} among the choices of {testid}"), T, || async { Ok(b.client.find(Locator::Css(&css)).await.ok()) }).await?;
    b.testid(testid, T).await?.select_by_value(value).await?;
    Ok(())
}

/// Screenshots of what is shown now at both sizes (scrolled to `testid`), none scrolling sideways.
async fn shoot(b: &Browser, name: &str, testid: &str) -> Result<()> {
    for (size, w, h) in SIZES {
        b.resize(w, h).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        show(b, testid).await?;
        ensure!(!b.overflows().await?, "{name} scrolls sideways at {size}");
        b.screenshot(&format!("{name}-{size}")).await?;
    }
    b.resize(1440, 900).await
}

/// The badges of the restore points table: (role, state, repository id).
async fn badges(b: &Browser) -> Result<Vec<(String, String, String)>> {
    let found = b.client.find_all(Locator::Css("[data-testid='vm-points'] [data-testid='point-location']")).await?;
    let mut out = Vec::new();
    for e in found {
        out.push((
            e.attr("data-role").await?.unwrap_or_default(),
            e.attr("data-state").await?.unwrap_or_default(),
            e.attr("data-repository").await?.unwrap_or_default(),
        ));
    }
    Ok(out)
}

/// The server with web-02 managed, its first repository and a second local one, 'offsite'.
fn setup() -> Result<(Server, String, String, Value, Value)> {
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let vm = server.manage_lab_vm(&token, "lab-prod", "web-02")?;
    let primary = server.get_json("/api/v1/repositories")?.as_array().and_then(|a| a.first()).cloned().context("the local repository")?;
    let path = server.data_path().parent().context("the server's directory")?.join("offsite");
    let offsite = server.expect(
        &token,
        "POST",
        "/api/v1/repositories",
        Some(json!({"name": "offsite", "kind": "local", "path": path.display().to_string(), "encrypted": false})),
        201,
    )?;
    Ok((server, token, vm, primary, offsite))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policys_copy_target_is_set_followed_refused_and_run_from_the_cockpit() -> Result<()> {
    let started = Instant::now();
    let (server, token, vm, primary, offsite) = setup()?;
    let (primary_id, offsite_id) = (primary["id"].as_str().context("id")?.to_owned(), offsite["id"].as_str().context("id")?.to_owned());
    let flow = server.expect(
        &token,
        "POST",
        "/api/v1/flows",
        Some(json!({"name": "web-nightly", "kind": "backup", "source": {"type": "vms", "vm_ids": [vm]}, "repository_id": primary_id, "retention": {"keep_last": 7}})),
        201,
    )?;
    let flow_id = flow["id"].as_str().context("flow id")?.to_owned();

    // POLICIES → New policy with a copy target.
    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/policies")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    let note = b.testid("policy-copies-note", T).await?.text().await?;
    ensure!(!note.contains("not run by this version"), "the page says copies are not run: {note:?}");
    b.click_testid("policy-new", T).await?;
    set(&b, "policy-name", "gold").await?;
    set(&b, "policy-keep-last", "3").await?;
    set(&b, "policy-keep-daily", "").await?;
    let copy = b.testid("copy-target", T).await?;
    ensure!(!b.testid("copy-keep-last", T).await?.is_displayed().await?, "the copy's retention shows before a repository is chosen");
    choose(&b, "copy-target-repo", &offsite_id).await?;
    // A policy is not tied to one repository: the flows' own is offered too (refused later, for them).
    ensure!(copy.html(false).await?.contains(&primary_id), "the policy's copy target does not offer every repository");
    set(&b, "copy-keep-last", "2").await?;
    set(&b, "copy-immutable", "1").await?;
    shoot(&b, "copy-target-policy-form", "copy-target").await?;
    b.click_testid("policy-save", T).await?;
    let message = b.testid("policies-message", T).await?.text().await?;
    ensure!(message.contains("gold"), "saved: {message:?}");
    let line = b.testid("policy-copy", T).await?;
    let text = line.text().await?;
    ensure!(
        line.attr("data-repository").await?.as_deref() == Some(offsite_id.as_str())
            && text.contains("copied to offsite")
            && text.contains("the last 2")
            && text.contains("immutable there 1 day"),
        "the policy's row: {text:?}"
    );
    let policies = server.get_json("/api/v1/policies")?;
    let gold = policies.as_array().and_then(|a| a.iter().find(|p| p["name"] == "gold")).context("gold in the API")?.clone();
    let gold_id = gold["id"].as_str().context("id")?.to_owned();
    let want_target = json!({"repository_id": offsite_id, "retention": {"keep_last": 2}, "immutable_days": 1});
    ensure!(gold["copy_target"] == want_target, "the API's policy: {gold}");
    shoot(&b, "copy-target-policy-row", "policy-list").await?;

    // FLOWS → the flow's Edit: it follows gold, whose copy target the editor shows.
    b.client.goto(&server.url(&format!("/flows?flow={flow_id}"))).await?;
    let own = b.testid("flow-copy-target", T).await?.text().await?;
    ensure!(own.contains("no copy to a second repository"), "before: {own:?}");
    b.click_testid("flow-action-edit", T).await?;
    b.testid("edit-flow", T).await?;
    choose(&b, "flow-policy", &gold_id).await?;
    let shown = b
        .until("the policy's copy target in the editor", T, || async {
            let t = b.testid("flow-policy-copy", T).await?.text().await?;
            Ok(t.contains("offsite").then_some(t))
        })
        .await?;
    ensure!(shown.contains("the last 2") && shown.contains("immutable there 1 day"), "the editor: {shown:?}");
    ensure!(!b.testid("copy-target-repo", T).await?.is_displayed().await?, "the flow's own copy target is editable while it follows a policy");
    b.screenshot("copy-target-flow-editor-1440x900").await?;
    b.click_testid("flow-create", T).await?;
    b.until("the edited flow shown", T, || async { Ok(b.client.find(Locator::Css("[data-testid='edit-flow']")).await.is_err().then_some(())) }).await?;
    let details = b
        .until("the flow's copy target from the policy", T, || async {
            let e = b.testid("flow-copy-target", T).await?;
            let t = e.text().await?;
            // The line names the repository once the repositories' list has
            // loaded (its id until then), so wait for the name too.
            let named = t.contains("from the policy gold") && t.contains("copied to offsite");
            Ok((named && e.attr("data-repository").await?.as_deref() == Some(offsite_id.as_str())).then_some(t))
        })
        .await?;
    ensure!(details.contains("copied to offsite") && details.contains("the last 2"), "flow details: {details:?}");
    let f = server.get_json(&format!("/api/v1/flows/{flow_id}"))?["flow"].clone();
    ensure!(f["policy"]["id"] == gold_id.as_str() && f["copy_target"] == want_target, "the API's flow: {f}");
    b.screenshot("copy-target-flow-details-1440x900").await?;
    b.click_testid("flow-details-close", T).await?;

    // POLICIES → Edit: the copy to the flow's own repository is refused with the server's reason.
    b.client.goto(&server.url("/policies")).await?;
    b.click_testid("policy-edit", T).await?;
    choose(&b, "copy-target-repo", &primary_id).await?;
    b.click_testid("policy-preview-run", T).await?;
    b.testid("policy-preview", T).await?;
    let (status, body) = server.call(
        &token,
        "PATCH",
        &format!("/api/v1/policies/{gold_id}"),
        Some(json!({"copy_target": {"repository_id": primary_id, "retention": {"keep_last": 2}, "immutable_days": 1}})),
    )?;
    ensure!(status == 422, "the API takes a copy to the flow's own repository: {status} {body}");
    let reason = body["message"].as_str().context("the 422's message")?.to_owned();
    b.click_testid("policy-save", T).await?;
    let field = b
        .until("the refusal beside the copy target", T, || async {
            Ok(b.client.find(Locator::Css("[data-testid='copy-target'] .field-error")).await.ok())
        })
        .await?
        .text()
        .await?;
    ensure!(field.contains("web-nightly") && field.contains("second repository"), "the refusal beside the field: {field:?}");
    let whole = b.testid("policy-form", T).await?.text().await?;
    ensure!(whole.contains(&reason) || reason.contains(&field), "the server's message {reason:?} is not what the form shows: {field:?}");
    show(&b, "copy-target").await?;
    b.screenshot("copy-target-policy-refused-1440x900").await?;
    ensure!(server.get_json("/api/v1/policies")?[0]["copy_target"] == want_target, "the refused copy target was saved");
    b.click_testid("policy-cancel", T).await?;

    // The flow's Backup now: the restore point gets its copy's badge, which turns present.
    b.client.goto(&server.url(&format!("/flows?flow={flow_id}"))).await?;
    b.click_testid("flow-action-backup_now", T).await?;
    let backup = server.newest_job(&vm, "backup")?;
    let done = server.wait_job(&token, &backup, Duration::from_secs(600))?;
    ensure!(done["job"]["status"] == "completed", "backup: {}", done["job"]);
    e2e::metric("copy_target_ui_backup_s", format!("{:.1}", started.elapsed().as_secs_f64()));
    b.client.goto(&server.url("/assets")).await?;
    b.click_testid("restore-points-web-02", T).await?;
    b.testid("vm-points", T).await?;
    let first_seen = b
        .until("the restore point's badges", T, || async {
            let got = badges(&b).await?;
            Ok((!got.is_empty()).then_some(got))
        })
        .await?;
    println!("badges when the table opened: {first_seen:?}");
    let copy_job = server.newest_job(&vm, "copy")?;
    let copy_started = Instant::now();
    let copied = server.wait_job(&token, &copy_job, Duration::from_secs(600))?;
    ensure!(copied["job"]["status"] == "completed", "copy: {copied}");
    e2e::metric("copy_target_ui_copy_s", format!("{:.1}", copy_started.elapsed().as_secs_f64()));
    let want = vec![("primary".to_string(), "present".to_string(), primary_id.clone()), ("copy".to_string(), "present".to_string(), offsite_id.clone())];
    b.until("the copy's badge present without reopening", T, || async { Ok((badges(&b).await? == want).then_some(())) })
        .await
        .with_context(|| format!("badges {:?}", first_seen))?;
    let point = server.get_json(&format!("/api/v1/backup/list?vm={vm}"))?["items"][0].clone();
    let at_copy = point["locations"].as_array().and_then(|l| l.iter().find(|x| x["repository_id"] == offsite_id.as_str())).context("the copy's location")?.clone();
    let until = chrono::DateTime::parse_from_rfc3339(at_copy["immutable_until"].as_str().context("immutable_until of the copy")?)?;
    let hours = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    ensure!((23..=24).contains(&hours), "the copy is immutable for the policy's 1 day: {at_copy}");
    shoot(&b, "copy-target-points", "vm-points").await?;
    b.close().await?;
    println!("copy target journey: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_reads_from_the_copy_when_the_primary_is_gone() -> Result<()> {
    let started = Instant::now();
    let (server, token, vm, primary, offsite) = setup()?;
    let (primary_id, offsite_id) = (primary["id"].as_str().context("id")?.to_owned(), offsite["id"].as_str().context("id")?.to_owned());
    let dr_id = server.wait_platform(&token, "lab-dr", Duration::from_secs(60))?;
    let flow = server.expect(
        &token,
        "POST",
        "/api/v1/flows",
        Some(json!({"name": "web-3-2-1", "kind": "backup", "source": {"type": "vms", "vm_ids": [vm]}, "repository_id": primary_id,
                    "copy_target": {"repository_id": offsite_id, "retention": {"keep_last": 3}}})),
        201,
    )?;
    server.expect(&token, "POST", &format!("/api/v1/flows/{}/run", flow["id"].as_str().context("flow id")?), None, 202)?;
    let backup = server.newest_job(&vm, "backup")?;
    let done = server.wait_job(&token, &backup, Duration::from_secs(600))?;
    ensure!(done["job"]["status"] == "completed", "backup: {}", done["job"]);
    let copy = server.newest_job(&vm, "copy")?;
    let copied = server.wait_job(&token, &copy, Duration::from_secs(600))?;
    ensure!(copied["job"]["status"] == "completed", "copy: {copied}");
    let point_id = server.get_json(&format!("/api/v1/backup/list?vm={vm}"))?["items"][0]["id"].as_str().context("point id")?.to_owned();

    // The primary repository's directory is gone.
    let primary_dir = std::path::PathBuf::from(primary["path"].as_str().context("the primary's path")?);
    ensure!(primary_dir.is_dir(), "the primary {} is not a directory", primary_dir.display());
    std::fs::remove_dir_all(&primary_dir).with_context(|| format!("removing {}", primary_dir.display()))?;

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/assets")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.click_testid("restore-points-web-02", T).await?;
    b.click_testid(&format!("restore-{point_id}"), T).await?;
    b.testid("wizard-step-point", T).await?;
    let css = format!("[data-testid='wizard-source'] option[value='{offsite_id}']");
    b.until("the copy among the places to read from", T, || async { Ok(b.client.find(Locator::Css(&css)).await.ok()) }).await?;
    let options = b.testid("wizard-source", T).await?.text().await?;
    ensure!(options.contains("Automatic") && options.contains("offsite (copy") && options.contains("(primary"), "Read from offers: {options:?}");
    shoot(&b, "copy-target-wizard-read-from", "wizard-step-point").await?;

    // The primary asked for explicitly: refused with the server's reason, which names the copy.
    b.testid("wizard-source", T).await?.select_by_value(&primary_id).await?;
    let to_check = |name: &'static str| {
        let b = &b;
        let dr_id = dr_id.clone();
        async move {
            b.click_testid("wizard-next", T).await?;
            b.testid("wizard-step-target", T).await?;
            let target = b.testid("wizard-target", T).await?;
            b.until("the DR host proposed", T, || async { Ok((target.prop("value").await?.unwrap_or_default() == dr_id).then_some(())) }).await?;
            set(b, "wizard-name", name).await?;
            b.click_testid("wizard-next", T).await?;
            b.testid("wizard-step-config", T).await
        }
    };
    to_check("web-02-from-primary").await?;
    let refused = b.testid("wizard-check-error", T).await?.text().await?;
    ensure!(refused.contains("cannot be read from") && refused.contains("'offsite'"), "the refusal of the primary: {refused:?}");
    b.screenshot("copy-target-wizard-primary-refused-1440x900").await?;
    for _ in 0..2 {
        b.client.find(Locator::XPath("//section[@data-testid='wizard-step-config' or @data-testid='wizard-step-target']//button[text()='Back']")).await?.click().await?;
    }
    b.testid("wizard-step-point", T).await?.is_displayed().await?;
    b.testid("wizard-source", T).await?.select_by_value("").await?;

    // Automatic: the server reads the copy, and the check says so and why.
    to_check("web-02-from-copy").await?;
    let report = b
        .until("the compatibility check", Duration::from_secs(60), || async {
            if let Ok(e) = b.client.find(Locator::Css("[data-testid='wizard-check-error']")).await {
                if e.is_displayed().await? && !e.text().await?.is_empty() {
                    bail!("the check failed: {}", e.text().await?);
                }
            }
            Ok(b.client.find(Locator::Css("[data-testid='wizard-report']")).await.ok())
        })
        .await?;
    ensure!(report.attr("data-ok").await?.as_deref() == Some("true"), "compatibility check: {}", report.text().await?);
    let from = b.testid("wizard-read-from", T).await?;
    ensure!(
        from.attr("data-repository").await?.as_deref() == Some(offsite_id.as_str()) && from.attr("data-role").await?.as_deref() == Some("copy"),
        "reads from: {}",
        from.text().await?
    );
    let why = b.testid("wizard-read-from-why", T).await?.text().await?;
    ensure!(why.contains(&format!("the primary '{}' cannot be read", primary["name"].as_str().unwrap_or(""))), "why the copy: {why:?}");
    shoot(&b, "copy-target-wizard-reads-copy", "wizard-report").await?;
    let restore_started = Instant::now();
    b.click_testid("wizard-start", T).await?;
    b.until("the restore running", T, || async {
        if let Ok(e) = b.client.find(Locator::Css("[data-testid='wizard-start-error']")).await {
            bail!("the restore did not start: {}", e.text().await?);
        }
        Ok(b.client.find(Locator::Css("[data-testid='wizard-step-run']")).await.ok())
    })
    .await?;
    let restore = server.newest_job(&vm, "restore")?;
    let restored = server.wait_job(&token, &restore, Duration::from_secs(600))?;
    ensure!(restored["job"]["status"] == "completed", "restore from the copy: {restored}");
    ensure!(restored["job"]["repository_id"] == offsite_id.as_str(), "the restore did not read the copy: {}", restored["job"]);
    e2e::metric("copy_target_ui_restore_from_copy_s", format!("{:.1}", restore_started.elapsed().as_secs_f64()));
    let p = server.get_json(&format!("/api/v1/backup/{point_id}"))?;
    let states: Vec<(String, String)> =
        p["locations"].as_array().context("locations")?.iter().map(|l| (l["role"].as_str().unwrap_or("").to_owned(), l["state"].as_str().unwrap_or("").to_owned())).collect();
    ensure!(states == vec![("primary".into(), "missing".into()), ("copy".into(), "present".into())], "locations after: {states:?}");
    b.close().await?;
    println!("wizard fallback journey: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
