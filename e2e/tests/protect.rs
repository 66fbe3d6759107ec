//! Protect and recover end to end, in a real browser against the real
//! server with the demo lab on its libvirt hosts (`--lab-guests`, what
//! scripts/run.sh runs: guests booting a real kernel, doing their own
//! writes): hosts that cannot be added are refused with the reason, the
//! production host is discovered, bulk add, a group and a backup flow,
//! Backup Now of running guests watched in the FlowDetailsModal (progress
//! and graph move; final bytes equal the catalog's), the guests write (lab
//! activity, over their consoles) and an incremental reads far less, edit
//! the flow, the COMMAND page's figures equal the overview API's, a
//! repository in maintenance refuses a backup, RECOVERY downloads the file
//! web-01 wrote from the new restore point (its SHA-256 is the one the guest
//! printed) and the old version from the older one, restores it to a host
//! directory and into the shut-off web-02's disk, restores web-01 onto the
//! DR host as a VMware disk that boots, pause and resume a running backup,
//! Emergency Stop. Measures WebSocket event → DOM latency and saves
//! screenshots of COMMAND, ASSETS, FLOWS, Repositories and the modal at
//! three sizes.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};
use sha2::{Digest, Sha256};
use fantoccini::elements::Element;
use fantoccini::Locator;
use serde_json::Value;

const T: Duration = Duration::from_secs(10);
const SIZES: &[(&str, u32, u32)] = &[("desktop-1440x900", 1440, 900), ("tablet-820x1180", 820, 1180), ("phone-390x844", 390, 844)];

/// web-01's home page, rewritten by every lab activity round.
const WEB_INDEX: &str = "/var/www/html/index.html";

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The volume of a lab guest's first disk in a lab host's pool.
fn lab_volume(server: &Server, host: &str, vm: &str) -> Result<std::path::PathBuf> {
    let pool = server.lab_dir().join("libvirt").join(host).join("images");
    let mut found: Vec<_> = std::fs::read_dir(&pool)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{vm}-")) && !n.ends_with(".log")))
        .collect();
    found.sort();
    found.into_iter().next().with_context(|| format!("no volume of {vm} in {}", pool.display()))
}

async fn click(b: &Browser, id: &str) -> Result<()> {
    b.click_testid(id, T).await
}

async fn type_into(b: &Browser, id: &str, text: &str) -> Result<()> {
    let el = b.testid(id, T).await?;
    el.clear().await?;
    el.send_keys(text).await?;
    Ok(())
}

async fn attr(el: &Element, name: &str) -> Result<String> {
    Ok(el.attr(name).await?.unwrap_or_default())
}

async fn num(el: &Element, name: &str) -> Result<u64> {
    Ok(attr(el, name).await?.parse().unwrap_or(0))
}

/// The job panels in the open details view: (job id, progress element).
async fn panels(b: &Browser) -> Result<Vec<(String, Element)>> {
    let mut out = Vec::new();
    for p in b.client.find_all(Locator::Css("[data-testid='job-panel']")).await? {
        // A panel removed between the search and the read (a new run's jobs
        // replace the last run's) is no longer shown.
        let id = match attr(&p, "data-job-id").await {
            Err(e) if stale(&e) => continue,
            r => r?,
        };
        let progress = match p.find(Locator::Css("[data-testid='job-progress']")).await {
            Err(e) if e.to_string().contains("stale element") => continue,
            r => r?,
        };
        out.push((id, progress));
    }
    Ok(out)
}

fn stale(e: &anyhow::Error) -> bool {
    e.to_string().contains("stale element")
}

async fn statuses(b: &Browser) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (_, p) in panels(b).await? {
        match attr(&p, "data-status").await {
            Err(e) if stale(&e) => continue,
            r => out.push(r?),
        }
    }
    Ok(out)
}

async fn wait_all(b: &Browser, status: &str, timeout: Duration) -> Result<()> {
    b.until(&format!("every job {status}"), timeout, || async {
        let s = statuses(b).await?;
        Ok((!s.is_empty() && s.iter().all(|x| x == status)).then_some(()))
    })
    .await
}

async fn graph_points(b: &Browser) -> Result<u64> {
    let g = b.testid("throughput-graph", T).await?;
    num(&g, "data-points").await
}

/// The UI's final figures of each shown job equal `GET /api/v1/jobs/{id}`.
async fn check_bytes_match_catalog(b: &Browser, server: &Server) -> Result<Vec<Value>> {
    let mut jobs = Vec::new();
    for (id, p) in panels(b).await? {
        let api = server.get_json(&format!("/api/v1/jobs/{id}"))?;
        let job = &api["job"];
        for (attr_name, field) in [("data-read", "bytes_read"), ("data-written", "bytes_written"), ("data-total", "bytes_total")] {
            let shown = num(&p, attr_name).await?;
            let stored = job[field].as_u64().context("job without bytes")?;
            ensure!(shown == stored, "job {id}: the modal shows {attr_name}={shown}, GET /jobs/{id} says {field}={stored}");
        }
        jobs.push(job.clone());
    }
    ensure!(!jobs.is_empty(), "no job shown");
    Ok(jobs)
}

/// Records, in the page, the delay from each job_progress event's arrival
/// (and from the server's timestamp) to the DOM attribute change it causes.
const OBSERVER: &str = r#"
window.__sdLatency = window.__sdLatency || [];
if (!window.__sdObserver) {
  window.__sdObserver = new MutationObserver((muts) => {
    const now = performance.now(), wall = Date.now();
    for (const m of muts) {
      const el = m.target;
      if (el.dataset && el.dataset.recv && el.dataset.at) {
        window.__sdLatency.push([now - Number(el.dataset.recv), wall - Number(el.dataset.at)]);
      }
    }
  });
  window.__sdObserver.observe(document.body, { attributes: true, subtree: true, attributeFilter: ['data-at'] });
}
return true;
"#;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn shoot_sizes(b: &Browser, server: &Server, path: &str, page: &str, name: &str, open_modal: Option<&str>) -> Result<()> {
    for (size, w, h) in SIZES {
        b.resize(*w, *h).await?;
        b.client.goto(&server.url(path)).await?;
        b.testid(page, Duration::from_secs(15)).await?;
        if let Some(flow) = open_modal {
            click(b, &format!("flow-inspect-{flow}")).await?;
            b.testid("job-panel", T).await?;
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        let p = b.screenshot(&format!("{name}-{size}")).await?;
        println!("screenshot {}", p.display());
    }
    b.resize(1440, 900).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protect_from_discovery_to_emergency_stop() -> Result<()> {
    let server = Server::start_with_lab_guests()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    // The lab's hosts become platforms once their guests are up.
    let prod_id = server.wait_platform(&token, "lab-prod", Duration::from_secs(180))?;
    let dr_id = server.wait_platform(&token, "lab-dr", Duration::from_secs(30))?;
    let browser = Browser::start(1440, 900).await?;
    let b = &browser;
    b.client.goto(&server.url("/assets")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("no-vms", Duration::from_secs(15)).await?;

    // + Add VMs: hosts that cannot be added are refused with the API's
    // message; the lab's production host is chosen from the known ones.
    click(b, "add-vms-open").await?;
    type_into(b, "platform-address", "qemu+unix:///system?socket=/no/such/libvirt-sock").await?;
    click(b, "platform-add").await?;
    let err = b.testid("platform-error", T).await?.text().await?;
    ensure!(err.contains("outside the platform roots") && err.contains("--platform-root"), "outside the roots: {err:?}");
    let gone = server.lab_dir().join("libvirt/no-such-host/sock/libvirt-sock");
    type_into(b, "platform-address", &format!("qemu+unix:///system?socket={}", gone.display())).await?;
    click(b, "platform-add").await?;
    b.until("an unreachable host named", T, || async {
        let err = b.testid("platform-error", T).await?.text().await?;
        Ok(err.contains("cannot reach the libvirt host").then_some(()))
    })
    .await?;
    b.client
        .execute(
            "const s = document.querySelector(\"[data-testid='platform-select']\"); s.value = arguments[0]; s.dispatchEvent(new Event('change')); return true",
            vec![Value::String(prod_id.clone())],
        )
        .await?;
    let started = Instant::now();
    click(b, "discover").await?;
    let saw_working = b.client.find(Locator::Css("[data-testid='discover-working']")).await.is_ok();
    b.testid("discovered-vms", T).await?;
    e2e::metric("discovery_click_to_list_ms", started.elapsed().as_millis());
    println!("discover working indicator seen: {saw_working}");
    let summary = b.testid("discover-summary", T).await?.text().await?;
    ensure!(summary.starts_with("6 VMs"), "discovery summary {summary:?}");
    // The server's discovery_progress events drove the progress bar to the end.
    let bar = b.testid("discovery-progress", T).await?;
    b.until("discovery progress done", T, || async { Ok((attr(&bar, "data-phase").await? == "done").then_some(())) }).await?;
    ensure!(num(&bar, "data-done").await? == 6 && num(&bar, "data-total").await? == 6, "discovery progress did not count 6 of 6");
    // The host's storage pools, from libvirt.
    let pools = b.testid("discover-pools", T).await?.text().await?;
    ensure!(pools.contains("images (dir)") && pools.contains("free of"), "storage pools shown: {pools:?}");
    click(b, "bulk-add").await?;
    let added = b.testid("bulk-add-result", T).await?.text().await?;
    ensure!(added.contains("Added 6"), "bulk add said {added:?}");
    click(b, "add-vms-done").await?;
    b.testid("vm-row-app-01", T).await?;
    let unprotected = b.testid("coverage-unprotected", T).await?.text().await?;
    ensure!(unprotected == "6", "coverage unprotected {unprotected:?}");

    // A group from two ungrouped VMs, then a backup flow (a bad schedule first).
    click(b, "ungrouped-check-app-01").await?;
    click(b, "ungrouped-check-web-01").await?;
    type_into(b, "group-name", "prod-web").await?;
    click(b, "group-create").await?;
    click(b, "group-new-flow-prod-web").await?;
    type_into(b, "flow-name", "nightly-web").await?;
    type_into(b, "flow-schedule", "every night").await?;
    click(b, "flow-create").await?;
    let err = b.testid("flow-error", T).await?.text().await?;
    println!("bad schedule refused: {err}");
    type_into(b, "flow-schedule", "0 2 * * *").await?;
    click(b, "flow-create").await?;
    b.until("the flow modal closed", T, || async {
        Ok(b.client.find(Locator::Css("[data-testid='create-flow']")).await.is_err().then_some(()))
    })
    .await?;

    // FLOWS → Inspect → Backup now: progress and graph move over time.
    b.client.goto(&server.url("/flows")).await?;
    click(b, "flow-inspect-nightly-web").await?;
    b.testid("flow-details", T).await?;
    b.client.execute(OBSERVER, vec![]).await?;
    click(b, "flow-action-backup_now").await?;
    b.until("a running job with progress", Duration::from_secs(20), || async {
        for (_, p) in panels(b).await? {
            if attr(&p, "data-status").await? == "running" && num(&p, "data-done").await? > 0 {
                return Ok(Some(()));
            }
        }
        Ok(None)
    })
    .await?;
    let first = panels(b).await?;
    let (job0, p0) = first.first().context("no job panel")?.clone();
    let done0 = num(&p0, "data-done").await?;
    let points0 = graph_points(b).await?;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let p0 = panels(b).await?.into_iter().find(|(id, _)| *id == job0).context("job panel gone")?.1;
    let done1 = num(&p0, "data-done").await?;
    let points1 = graph_points(b).await?;
    ensure!(done1 > done0, "progress did not move in 2 s: {done0} → {done1}");
    ensure!(points1 > points0, "the graph did not grow in 2 s: {points0} → {points1} points");
    let shot = b.screenshot("flow-details-running-desktop-1440x900").await?;
    println!("screenshot {}", shot.display());
    wait_all(b, "completed", Duration::from_secs(180)).await?;
    let full = check_bytes_match_catalog(b, &server).await?;
    let full_read: u64 = full.iter().map(|j| j["bytes_read"].as_u64().unwrap_or(0)).sum();

    // WebSocket event → DOM latency, from the page's observer.
    let lat = b.client.execute("return window.__sdLatency || []", vec![]).await?;
    let (mut from_arrival, mut from_server): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for pair in lat.as_array().cloned().unwrap_or_default() {
        from_arrival.push(pair[0].as_f64().unwrap_or(f64::NAN));
        from_server.push(pair[1].as_f64().unwrap_or(f64::NAN));
    }
    ensure!(from_arrival.len() >= 3, "too few progress updates observed: {}", from_arrival.len());
    e2e::metric("ws_progress_events_observed", from_arrival.len());
    e2e::metric("ws_event_to_dom_p50_ms", format!("{:.1}", percentile(&mut from_arrival, 0.5)));
    e2e::metric("ws_event_to_dom_p95_ms", format!("{:.1}", percentile(&mut from_arrival, 0.95)));
    e2e::metric("server_emit_to_dom_p50_ms", format!("{:.1}", percentile(&mut from_server, 0.5)));
    e2e::metric("server_emit_to_dom_p95_ms", format!("{:.1}", percentile(&mut from_server, 0.95)));
    ensure!(percentile(&mut from_arrival, 0.95) < 100.0, "WebSocket → DOM p95 above 100 ms");

    // The guests write (a round of lab activity, asked over their consoles:
    // web-01 writes a new home page and prints its SHA-256), then Backup now
    // again: an incremental that reads far less. RECOVERY must give back
    // the new home page from the new restore point and the old one from the
    // older.
    let activity = server.lab_activity()?;
    let web01 = activity["guests"].as_array().and_then(|a| a.iter().find(|g| g["vm"] == "web-01")).context("web-01 in the activity report")?;
    ensure!(web01["skipped"].is_null(), "web-01 did not write: {web01}");
    let index_sha_after = web01["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["path"] == WEB_INDEX))
        .and_then(|f| f["sha256"].as_str())
        .with_context(|| format!("web-01 reported no {WEB_INDEX}: {web01}"))?
        .to_string();
    e2e::metric("lab_activity_bytes_written", activity["bytes_written"].as_u64().unwrap_or(0));
    b.until("Backup now offered again", T, || async {
        Ok(b.client.find(Locator::Css("[data-testid='flow-action-backup_now']")).await.is_ok().then_some(()))
    })
    .await?;
    click(b, "flow-action-backup_now").await?;
    b.until("the incremental run shown", Duration::from_secs(20), || async {
        let ids: Vec<String> = panels(b).await?.into_iter().map(|(id, _)| id).collect();
        Ok((ids.len() >= 2 && !ids.contains(&job0)).then_some(()))
    })
    .await?;
    wait_all(b, "completed", Duration::from_secs(180)).await?;
    let incr = check_bytes_match_catalog(b, &server).await?;
    let incr_read: u64 = incr.iter().map(|j| j["bytes_read"].as_u64().unwrap_or(0)).sum();
    for j in &incr {
        ensure!(j["backup_type"] == "incremental", "second run is not incremental: {j}");
    }
    e2e::metric("full_bytes_read", full_read);
    e2e::metric("incremental_bytes_read", incr_read);
    ensure!(incr_read * 5 < full_read, "the incremental read {incr_read} bytes, the full {full_read}: not far less");
    shoot_sizes(b, &server, "/flows", "page-flows", "flow-details", Some("nightly-web")).await?;

    // Edit the flow from its details: a new schedule, saved with PATCH.
    b.client.goto(&server.url("/flows")).await?;
    click(b, "flow-inspect-nightly-web").await?;
    click(b, "flow-action-edit").await?;
    b.testid("edit-flow", T).await?;
    type_into(b, "flow-schedule", "30 3 * * *").await?;
    click(b, "flow-create").await?;
    b.until("the edited flow shown", T, || async {
        Ok(b.client.find(Locator::Css("[data-testid='edit-flow']")).await.is_err().then_some(()))
    })
    .await?;
    let flows = server.get_json("/api/v1/flows")?;
    let edited = flows.as_array().and_then(|a| a.iter().find(|f| f["name"] == "nightly-web")).context("flow gone")?;
    ensure!(edited["schedule"] == "30 3 * * *", "the schedule was not saved: {edited}");
    let head = b.testid("flow-details-head", T).await?.text().await?;
    ensure!(head.contains("03:30:00"), "the details do not show the next run at 03:30: {head:?}");

    // COMMAND: every figure is the overview API's.
    b.client.goto(&server.url("/command")).await?;
    let o = server.get_json("/api/v1/telemetry/overview")?;
    ensure!(o["fleet"]["protected"] == 2 && o["fleet"]["total"] == 6, "two of six VMs are protected: {}", o["fleet"]);
    for (id, key) in [("fleet-protected", "protected"), ("fleet-attention", "attention"), ("fleet-critical", "critical")] {
        let want = o["fleet"][key].as_u64().unwrap_or(u64::MAX);
        let el = b.testid(id, Duration::from_secs(15)).await?;
        b.until(id, T, || async { Ok((num(&el, "data-value").await.ok() == Some(want)).then_some(())) }).await?;
    }
    let done_today = o["jobs"]["completed_today"].as_u64().unwrap_or(0);
    ensure!(done_today >= 4, "four backups completed today, the overview says {done_today}");
    let el = b.testid("ops-today", T).await?;
    b.until("jobs done today", T, || async { Ok((num(&el, "data-value").await.ok() == Some(done_today)).then_some(())) }).await?;
    let dedup = b.testid("dedup-ratio", T).await?;
    let shown: f64 = attr(&dedup, "data-value").await?.parse()?;
    let api = o["storage"]["dedup_ratio"].as_f64().unwrap_or(0.0);
    ensure!(api > 1.0 && (shown - api).abs() < 0.05, "dedup ratio shown {shown}, API {api}");
    let lab_share = b.testid("platform-share-lab-prod", T).await?;
    ensure!(num(&lab_share, "data-vms").await? == 6, "platform distribution");
    let feed = b.client.find_all(Locator::Css("[data-testid='feed-item']")).await?;
    ensure!(feed.len() >= 4, "the activity feed shows {} items", feed.len());
    shoot_sizes(b, &server, "/command", "page-command", "command", None).await?;

    // A repository in maintenance refuses Backup Now with its reason; ending
    // maintenance lets backups start again.
    b.client.goto(&server.url("/repositories")).await?;
    type_into(b, "repo-maintenance-reason", "disk swap").await?;
    click(b, "repo-maintenance-enter").await?;
    b.testid("repo-maintenance", T).await?;
    shoot_sizes(b, &server, "/repositories", "page-repositories", "repositories", None).await?;
    b.client.goto(&server.url("/assets")).await?;
    click(b, "backup-now-web-02").await?;
    click(b, "start-backup-submit").await?;
    let refused = b.testid("start-backup-error", T).await?.text().await?;
    ensure!(refused.contains("maintenance (disk swap)"), "backup to a repository in maintenance: {refused:?}");
    b.client.goto(&server.url("/repositories")).await?;
    click(b, "repo-maintenance-end").await?;
    b.until("maintenance ended", T, || async {
        let card = b.testid("repo-local", T).await?;
        Ok((attr(&card, "data-status").await? == "online").then_some(()))
    })
    .await?;

    // RECOVERY: browse web-01's newest restore point and read /etc/hostname
    // through the download link, as the lab wrote it, and the home page the
    // guest wrote after the first backup: the SHA-256 the guest printed.
    let points = server.get_json("/api/v1/backup/list?limit=50")?;
    let point = points["items"].as_array().and_then(|a| a.iter().find(|p| p["vm_name"] == "web-01")).context("no web-01 restore point")?;
    let point_id = point["id"].as_str().context("restore point id")?.to_string();
    b.client.goto(&server.url("/recovery")).await?;
    click(b, &format!("browse-{point_id}")).await?;
    b.testid("file-browser", Duration::from_secs(15)).await?;
    click(b, "open-vda-p1").await?;
    click(b, "open-etc").await?;
    let row = b.testid("file-hostname", T).await?;
    ensure!(num(&row, "data-size").await? == 7, "hostname size");
    let link = b.testid("download-hostname", T).await?;
    let href = attr(&link, "href").await?;
    let got = b.client.execute("return fetch(arguments[0]).then(r => r.text())", vec![Value::String(href)]).await?;
    ensure!(got == "web-01\n", "downloaded /etc/hostname: {got:?}");
    click(b, "crumb-/vda-p1").await?;
    click(b, "open-var").await?;
    click(b, "open-www").await?;
    click(b, "open-html").await?;
    let href = attr(&b.testid("download-index.html", T).await?, "href").await?;
    let index_new = b.client.execute("return fetch(arguments[0]).then(r => r.text())", vec![Value::String(href)]).await?;
    let index_new = index_new.as_str().context("the home page as text")?.to_string();
    ensure!(sha256_hex(index_new.as_bytes()) == index_sha_after, "the new restore point's {WEB_INDEX} is not what web-01 wrote: {index_new:?}");
    shoot_sizes(b, &server, "/recovery", "page-recovery", "recovery", None).await?;
    b.client.goto(&server.url("/recovery")).await?;
    click(b, &format!("browse-{point_id}")).await?;
    click(b, "open-vda-p1").await?;
    click(b, "open-etc").await?;
    b.testid("file-hostname", T).await?;
    let p = b.screenshot("file-browser-desktop-1440x900").await?;
    println!("screenshot {}", p.display());
    b.resize(390, 844).await?;
    let p = b.screenshot("file-browser-phone-390x844").await?;
    println!("screenshot {}", p.display());
    b.resize(1440, 900).await?;

    // The older restore point (before the lab activity), opened from ASSETS:
    // its home page is the old version, downloaded and restored (to a host
    // directory and into the stopped web-02's disk) byte for byte.
    let older = points["items"]
        .as_array()
        .and_then(|a| a.iter().filter(|p| p["vm_name"] == "web-01").nth(1))
        .context("no second web-01 restore point")?;
    let older_id = older["id"].as_str().context("restore point id")?.to_string();
    // web-02 (the VM the file goes back into later) is shut down first.
    let web02 = server.get_json("/api/v1/vm-contexts")?["items"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == "web-02"))
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .context("web-02 is not managed")?;
    server.expect(&token, "POST", &format!("/api/v1/vms/{web02}/power"), Some(serde_json::json!({"action": "stop"})), 200)?;
    b.client.goto(&server.url("/assets")).await?;
    click(b, "restore-points-web-01").await?;
    b.testid("vm-points", T).await?;
    click(b, &format!("browse-{older_id}")).await?;
    b.testid("file-browser", Duration::from_secs(15)).await?;
    click(b, "open-vda-p1").await?;
    click(b, "open-var").await?;
    click(b, "open-www").await?;
    click(b, "open-html").await?;
    let href = attr(&b.testid("download-index.html", T).await?, "href").await?;
    let got = b.client.execute("return fetch(arguments[0]).then(r => r.text())", vec![Value::String(href)]).await?;
    // The version before the activity: the lab's own, as on the disk the guest was made from.
    let lab_disk = std::fs::read_dir(server.lab_dir().join("hosts/kvm-prod-01/vms/web-01"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "qcow2"))
        .context("the lab's web-01 disk")?;
    let index_before = e2e::guest_file(&lab_disk, 0, WEB_INDEX)?;
    ensure!(got == String::from_utf8_lossy(&index_before).as_ref(), "the older restore point's {WEB_INDEX} is not the version before the activity");
    ensure!(sha256_hex(got.as_str().unwrap_or("").as_bytes()) != index_sha_after, "the older restore point has the new home page");
    click(b, "select-index.html").await?;
    click(b, "restore-selected").await?;
    // Outside the restore roots: refused with the roots named; under DATA_DIR/restores: a job, followed to its result.
    let outside = tempfile::tempdir()?;
    // The form may still be settling (its VM list loading): click until the directory field shows.
    b.until("the host directory field", T, || async {
        click(b, "dest-host").await?;
        Ok(b.client.find(Locator::Css("[data-testid='dest-host-path']")).await.ok().map(|_| ()))
    })
    .await?;
    type_into(b, "dest-host-path", &outside.path().join("web-01-old").display().to_string()).await?;
    click(b, "restore-files-start").await?;
    let err = b.testid("restore-files-error", T).await?.text().await?;
    ensure!(err.contains("outside the restore roots") && err.contains("restores"), "outside the restore roots: {err:?}");
    ensure!(!outside.path().join("web-01-old").exists(), "nothing written outside the roots");
    let out_dir = server.data_path().join("restores");
    type_into(b, "dest-host-path", &out_dir.join("web-01-old").display().to_string()).await?;
    click(b, "restore-files-start").await?;
    let job = b.testid("restore-files-job", Duration::from_secs(15)).await?;
    let job_id = attr(&job, "data-job-id").await?;
    let result = b.testid("restore-files-result", Duration::from_secs(30)).await?;
    ensure!(num(&result, "data-files").await? == 1, "one file restored: {}", result.text().await?);
    let status = b.testid("restore-files-job", T).await?.attr("data-status").await?;
    ensure!(status.as_deref() == Some("completed"), "the job shows completed: {status:?}");
    let log = b.testid("restore-files-log", T).await?.text().await?;
    ensure!(log.contains("written: /vda-p1/var/www/html/index.html"), "the job's log is shown: {log:?}");
    let details = server.get_json(&format!("/api/v1/jobs/{job_id}"))?;
    ensure!(details["job"]["kind"] == "file_restore" && details["file_restore"]["files"] == 1, "the job carries the result: {details}");
    let restored = std::fs::read(out_dir.join("web-01-old/index.html"))?;
    ensure!(restored == index_before, "the file restored to the host differs from the old version");
    let p = b.screenshot("file-restore-desktop-1440x900").await?;
    println!("screenshot {}", p.display());
    b.resize(820, 1180).await?;
    let p = b.screenshot("file-restore-tablet-820x1180").await?;
    println!("screenshot {}", p.display());
    b.resize(1440, 900).await?;
    // Back into a VM's disk: a running VM is refused; web-02, shut down,
    // takes the file into its root volume (sent back through libvirt).
    click(b, "dest-vm").await?;

    b.client
        .execute(
            "const s = document.querySelector(\"[data-testid='dest-vm-select']\"); s.value = arguments[0]; s.dispatchEvent(new Event('change')); return true",
            vec![Value::String(web02)],
        )
        .await?;
    type_into(b, "dest-directory", "/restored").await?;
    click(b, "restore-files-start").await?;
    b.until("restored into web-02", Duration::from_secs(120), || async {
        if let Ok(e) = b.client.find(Locator::Css("[data-testid='restore-files-error']")).await {
            anyhow::bail!("the restore into web-02 failed: {}", e.text().await?);
        }
        if let Ok(j) = b.client.find(Locator::Css("[data-testid='restore-files-job']")).await {
            if j.attr("data-status").await?.as_deref() == Some("failed") {
                anyhow::bail!("the restore into web-02 failed: {}", j.text().await?);
            }
        }
        match b.client.find(Locator::Css("[data-testid='restore-files-result']")).await {
            Ok(r) => Ok(r.text().await?.contains("web-02").then_some(())),
            Err(_) => Ok(None),
        }
    })
    .await
    .with_context(|| {
        let jobs = server.get_json("/api/v1/jobs?limit=3").map(|j| j.to_string()).unwrap_or_default();
        let log: Vec<String> = server.log_text().lines().rev().take(25).map(str::to_string).collect();
        format!("jobs: {jobs}\nserver log (newest first):\n{}", log.join("\n"))
    })?;
    let in_guest = e2e::guest_file(&lab_volume(&server, "prod", "web-02")?, 0, "/restored/index.html")?;
    ensure!(in_guest == index_before, "the file restored into web-02's disk differs from the old version");
    click(b, "file-browser-close").await?;
    click(b, "vm-points-close").await?;

    // RecoveryWizard: web-01's restore point restored onto the lab's DR
    // host as a VMware disk, powered on: the disk equals the restore
    // point's image (qemu-img compare) and the guest boots from it.
    b.client.goto(&server.url("/recovery")).await?;
    click(b, &format!("restore-{point_id}")).await?;
    b.testid("wizard-step-point", T).await?;
    click(b, "wizard-next").await?;
    b.testid("wizard-step-target", T).await?;
    let target = b.testid("wizard-target", T).await?;
    b.until("the DR host proposed", T, || async {
        let v = target.prop("value").await?.unwrap_or_default();
        Ok((v == dr_id).then_some(()))
    })
    .await?;
    type_into(b, "wizard-name", "web-01-vmware").await?;
    click(b, "wizard-format-vmdk").await?;
    click(b, "wizard-next").await?;
    click(b, "wizard-power-on").await?;
    let report = b.testid("wizard-report", Duration::from_secs(20)).await?;
    ensure!(attr(&report, "data-ok").await? == "true", "compatibility check: {}", report.text().await?);
    let estimate = b.testid("wizard-estimate", T).await?.text().await?;
    println!("restore estimate: {estimate}");
    let p = b.screenshot("restore-wizard-desktop-1440x900").await?;
    println!("screenshot {}", p.display());
    let restore_started = Instant::now();
    click(b, "wizard-start").await?;
    b.testid("wizard-step-run", T).await?;
    let restore_job = b
        .until("the restore job done", Duration::from_secs(120), || async {
            let jobs = server.get_json("/api/v1/jobs?limit=20")?;
            let job = jobs["items"].as_array().and_then(|a| a.iter().find(|j| j["kind"] == "restore")).cloned();
            match job {
                Some(j) if j["status"] == "completed" => Ok(Some(j)),
                Some(j) if j["status"] == "failed" || j["status"] == "cancelled" => anyhow::bail!("the restore ended {j}"),
                _ => Ok(None),
            }
        })
        .await?;
    e2e::metric("wizard_restore_bytes_read", restore_job["bytes_read"].as_u64().unwrap_or(0));
    let image = server.data_path().join("restore-point.raw");
    // The local repository is encrypted: its key is the one file in DATA_DIR/keys.
    let key = std::fs::read_dir(server.data_path().join("keys"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "key"))
        .context("no key file for the local repository")?;
    let out = std::process::Command::new(Server::binary()?)
        // Its index cache beside the server's (removed with the data directory), not in ~/.cache.
        .env("SENDENSE_CACHE_DIR", server.data_path().join("cache"))
        .args(["image", "restore", "--no-progress", "--repo"])
        .arg(server.data_path().join("repos/local"))
        .arg("--key")
        .arg(&key)
        .args(["--id", point["snapshot_name"].as_str().unwrap_or(""), "--snapshot", point["snapshot_id"].as_str().unwrap_or("")])
        .arg(&image)
        .output()?;
    ensure!(out.status.success(), "engine restore: {}", String::from_utf8_lossy(&out.stderr));
    let disk = lab_volume(&server, "dr", "web-01-vmware")?;
    ensure!(disk.extension().is_some_and(|x| x == "vmdk"), "the DR host's volume is not a VMware disk: {}", disk.display());
    // The guest runs from it (QEMU holds its lock): compare with -U.
    let cmp = std::process::Command::new("qemu-img").args(["compare", "-U"]).arg(&image).arg(&disk).output()?;
    ensure!(cmp.status.success(), "restored disk differs: {}{}", String::from_utf8_lossy(&cmp.stdout), String::from_utf8_lossy(&cmp.stderr));
    let console = server.lab_dir().join("libvirt/dr/images/web-01-vmware.console.log");
    let boot = b
        .until("the restored guest's boot line", Duration::from_secs(90), || async {
            let text = std::fs::read_to_string(&console).unwrap_or_default();
            Ok(text.lines().find(|l| l.contains("SENDENSE-GUEST-UP name=web-01")).map(str::to_string))
        })
        .await?;
    e2e::metric("wizard_restore_start_to_guest_boot_s", format!("{:.1}", restore_started.elapsed().as_secs_f64()));
    println!("restored guest on the DR host: {boot}");
    std::fs::remove_file(&image)?;
    // RECOVERY lists the restore among its recent restores, completed.
    b.client.goto(&server.url("/recovery")).await?;
    let row = b.testid("restore-job", Duration::from_secs(15)).await?;
    ensure!(attr(&row, "data-status").await? == "completed", "recent restores: {}", row.text().await?);
    b.client.goto(&server.url("/repositories")).await?;
    b.until("maintenance ended", T, || async {
        let card = b.testid("repo-local", T).await?;
        Ok((attr(&card, "data-status").await? == "online").then_some(()))
    })
    .await?;

    // Backup Now on one VM (full) from ASSETS; pause and resume it on FLOWS.
    b.client.goto(&server.url("/assets")).await?;
    click(b, "backup-now-db-01").await?;
    click(b, "backup-type-full").await?;
    let estimate = b.testid("start-backup-estimate", T).await?.text().await?;
    println!("start-backup estimate: {estimate}");
    click(b, "start-backup-submit").await?;
    b.testid("backup-started", T).await?;
    b.client.goto(&server.url("/flows")).await?;
    b.testid("adhoc-card", Duration::from_secs(15)).await?;
    b.until("the ad hoc job running", Duration::from_secs(20), || async {
        let card = b.testid("adhoc-card", T).await?;
        Ok((attr(&card, "data-state").await? == "running").then_some(()))
    })
    .await?;
    let p = b.screenshot("flows-running-desktop-1440x900").await?;
    println!("screenshot {}", p.display());
    click(b, "card-pause").await?;
    b.until("the job paused", Duration::from_secs(15), || async {
        let card = b.testid("adhoc-card", T).await?;
        Ok((attr(&card, "data-state").await? == "paused").then_some(()))
    })
    .await?;
    let jobs = server.get_json("/api/v1/jobs?limit=20")?;
    let db_job = jobs["items"]
        .as_array()
        .and_then(|a| a.iter().find(|j| j["vm_name"] == "db-01" && j["status"] == "paused"))
        .context("no db-01 job")?
        .clone();
    let db_id = db_job["id"].as_str().context("job id")?.to_string();
    // Chunks already in the pipeline finish; then nothing more is read.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let read_paused = server.get_json(&format!("/api/v1/jobs/{db_id}"))?["job"]["bytes_read"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let read_later = server.get_json(&format!("/api/v1/jobs/{db_id}"))?["job"]["bytes_read"].as_u64().unwrap_or(0);
    ensure!(read_later == read_paused, "a paused job kept reading: {read_paused} → {read_later}");
    click(b, "card-resume").await?;
    b.until("the job running again", Duration::from_secs(15), || async {
        let card = b.testid("adhoc-card", T).await?;
        Ok((attr(&card, "data-state").await? == "running").then_some(()))
    })
    .await?;
    shoot_sizes(b, &server, "/flows", "page-flows", "flows", None).await?;

    // Emergency Stop from the top bar: two fresh full backups (a bulk Backup
    // Now from ASSETS) and whatever still runs stop at once.
    b.client.goto(&server.url("/assets")).await?;
    click(b, "vm-check-files-01").await?;
    click(b, "vm-check-web-02").await?;
    click(b, "backup-selected").await?;
    click(b, "backup-type-full").await?;
    click(b, "start-backup-submit").await?;
    b.testid("backup-started", T).await?;
    b.client.goto(&server.url("/flows")).await?;
    b.until("the bulk backups running", Duration::from_secs(20), || async {
        let jobs = server.get_json("/api/v1/jobs?status=running&limit=20")?;
        Ok((jobs["total"].as_u64().unwrap_or(0) >= 2).then_some(()))
    })
    .await?;
    click(b, "emergency-stop").await?;
    click(b, "emergency-stop-confirm").await?;
    let said = b.testid("emergency-stop-state", T).await?;
    b.until("emergency stop done", T, || async { Ok(said.text().await?.starts_with("Stopped").then_some(())) }).await?;
    let said = said.text().await?;
    ensure!(said != "Stopped 0 job(s).", "emergency stop stopped nothing");
    println!("emergency stop: {said}");
    b.until("no job active", Duration::from_secs(20), || async {
        let mut active = 0;
        for s in ["queued", "running", "paused"] {
            active += server.get_json(&format!("/api/v1/jobs?status={s}&limit=1"))?["total"].as_u64().unwrap_or(0);
        }
        Ok((active == 0).then_some(()))
    })
    .await?;
    let cancelled = server.get_json("/api/v1/jobs?status=cancelled&limit=1")?["total"].as_u64().unwrap_or(0);
    ensure!(cancelled >= 2, "expected the stopped jobs cancelled, {cancelled} are");
    b.client.execute("document.querySelector('.modal-backdrop')?.click(); return true", vec![]).await?;

    shoot_sizes(b, &server, "/assets", "page-assets", "assets", None).await?;
    browser.close().await?;
    Ok(())
}
