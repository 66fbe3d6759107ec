//! Lighthouse (npm, run in Debian's Chromium) on the real server: COMMAND
//! and FLOWS, signed in, on Lighthouse's mobile profile (a mid-range phone on
//! a slow 4G link, simulated) with a cold cache. Fails below accessibility
//! 95, when the page is not painted within 1 s on loopback (observed, not
//! simulated), when its first load transfers more than 500 KB of wasm, or
//! below performance 70. The target is performance
//! 90. The server paints the page's name and purpose into the loading shell
//! (backend/src/spa.rs), which is the largest paint, and the loader script
//! (index.html) fetches the wasm only after that paint, so Lighthouse's
//! simulation never puts the wasm before it: first paint 0.9 s and largest
//! paint 1.4 s simulated on every run (measured 94 and 91). What still varies
//! is total blocking time (the wasm's start and the first render, 280 to 370
//! ms simulated on a quiet machine, about double on a busy one, which costs
//! up to 15 points); the floor catches a regression without failing on that.
//! The scores are printed on every run.
//!
//! Needs `SENDENSE_LIGHTHOUSE` (scripts/lib.sh need_lighthouse, which the
//! README's test command runs). The reports are kept in target/lighthouse/.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use e2e::Server;
use serde_json::Value;

/// A floor against regressions, not the target (90): see above.
const MIN_PERFORMANCE: f64 = 0.70;
const MIN_ACCESSIBILITY: f64 = 0.95;
/// First contentful paint on loopback, cold cache, no throttling.
const MAX_OBSERVED_PAINT_MS: f64 = 1000.0;
/// The target for the compressed wasm: what a first load of the page
/// transfers (the main module; lazy pages' files come when they are opened).
const MAX_FIRST_LOAD_WASM_BYTES: f64 = 500_000.0;

fn lighthouse() -> Result<PathBuf> {
    let path = std::env::var_os("SENDENSE_LIGHTHOUSE")
        .map(PathBuf::from)
        .context("SENDENSE_LIGHTHOUSE is not set: run the README's test command (scripts/lib.sh need_lighthouse installs Lighthouse)")?;
    ensure!(path.exists(), "{} is missing: scripts/lib.sh need_lighthouse installs it", path.display());
    Ok(path)
}

/// One Lighthouse run of `url` with the session cookie; its report (JSON).
fn audit(server: &Server, token: &str, page: &str) -> Result<Value> {
    let dir = e2e::workspace_root().join("target/lighthouse");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join(format!("{page}.json"));
    let headers = serde_json::json!({ "Cookie": format!("sendense_session={token}") }).to_string();
    let profile = tempfile::Builder::new().prefix("sendense-lighthouse-").tempdir()?;
    let run = Command::new(lighthouse()?)
        .arg(server.url(&format!("/{page}")))
        .args(["--quiet", "--output=json", "--only-categories=performance,accessibility"])
        .arg(format!("--output-path={}", out.display()))
        .arg(format!("--extra-headers={headers}"))
        .arg(format!("--chrome-flags=--headless=new --no-sandbox --user-data-dir={}", profile.path().display()))
        .env("CHROME_PATH", "/usr/bin/chromium")
        .output()
        .context("running Lighthouse")?;
    if !run.status.success() {
        bail!("Lighthouse failed on /{page} ({}): {}", run.status, String::from_utf8_lossy(&run.stderr));
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&out)?).context("reading Lighthouse's report")?;
    if let Some(error) = report.get("runtimeError").and_then(|e| e["message"].as_str()) {
        bail!("Lighthouse could not audit /{page}: {error}");
    }
    Ok(report)
}

fn score(report: &Value, category: &str) -> Result<f64> {
    report["categories"][category]["score"].as_f64().with_context(|| format!("the report has no {category} score"))
}

/// The audits that cost points and the largest paint's element, for the
/// failure message (the whole report is in target/lighthouse/).
fn lost_points(report: &Value) -> String {
    let Some(audits) = report["audits"].as_object() else { return String::new() };
    let lcp = &report["audits"]["largest-contentful-paint-element"]["details"]["items"][0]["items"][0]["node"];
    let mut lost: Vec<String> = audits
        .values()
        .filter(|a| a["score"].as_f64().is_some_and(|s| s < 0.9))
        .map(|a| format!("{} ({})", a["title"].as_str().unwrap_or("?"), a["displayValue"].as_str().unwrap_or("")))
        .collect();
    lost.sort();
    format!("{}; largest paint: {} ({})", lost.join("; "), lcp["selector"].as_str().unwrap_or("?"), lcp["nodeLabel"].as_str().unwrap_or(""))
}

#[test]
fn command_and_flows_score_well_on_a_phone() -> Result<()> {
    let server = Server::start()?;
    let token = server.token("admin", e2e::ADMIN_PASSWORD)?;
    let mut failures = Vec::new();
    for page in ["command", "flows"] {
        let report = audit(&server, &token, page)?;
        let final_url = report["finalDisplayedUrl"].as_str().unwrap_or_default();
        ensure!(final_url.ends_with(&format!("/{page}")), "Lighthouse audited {final_url}, not /{page}");
        let performance = score(&report, "performance")?;
        let accessibility = score(&report, "accessibility")?;
        let metric = |id: &str| report["audits"][id]["numericValue"].as_f64().unwrap_or(f64::NAN);
        let observed_paint = report["audits"]["metrics"]["details"]["items"][0]["observedFirstContentfulPaint"]
            .as_f64()
            .context("the report has no observed first contentful paint")?;
        e2e::metric(&format!("lighthouse_{page}_performance"), format!("{:.0}", performance * 100.0));
        e2e::metric(&format!("lighthouse_{page}_accessibility"), format!("{:.0}", accessibility * 100.0));
        e2e::metric(&format!("lighthouse_{page}_simulated_fcp_ms"), format!("{:.0}", metric("first-contentful-paint")));
        e2e::metric(&format!("lighthouse_{page}_simulated_lcp_ms"), format!("{:.0}", metric("largest-contentful-paint")));
        e2e::metric(&format!("lighthouse_{page}_total_blocking_ms"), format!("{:.0}", metric("total-blocking-time")));
        e2e::metric(&format!("{page}_loopback_cold_paint_ms"), format!("{observed_paint:.0}"));
        // The loader asks for the wasm only after the shell's paint (both
        // times from the navigation's start).
        let wasm_asked = report["audits"]["network-requests"]["details"]["items"]
            .as_array()
            .and_then(|requests| requests.iter().find(|r| r["url"].as_str().is_some_and(|u| u.ends_with("_bg.wasm"))))
            .and_then(|r| r["networkRequestTime"].as_f64())
            .context("the report shows no request for the cockpit's wasm")?;
        e2e::metric(&format!("{page}_wasm_requested_ms"), format!("{wasm_asked:.0}"));
        let wasm_bytes: f64 = report["audits"]["network-requests"]["details"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["url"].as_str().is_some_and(|u| u.ends_with(".wasm")))
            .filter_map(|r| r["transferSize"].as_f64())
            .sum();
        e2e::metric(&format!("{page}_first_load_wasm_bytes"), format!("{wasm_bytes:.0}"));
        if wasm_bytes > MAX_FIRST_LOAD_WASM_BYTES {
            failures.push(format!(
                "/{page}: a first load transferred {wasm_bytes:.0} bytes of wasm (max {MAX_FIRST_LOAD_WASM_BYTES:.0}): \
                 move pages out of the main module (frontend/src/app.rs split_view!)"
            ));
        }
        if wasm_asked < observed_paint {
            failures.push(format!("/{page}: the wasm was requested at {wasm_asked:.0} ms, before the shell's paint at {observed_paint:.0} ms"));
        }
        if performance < MIN_PERFORMANCE || accessibility < MIN_ACCESSIBILITY || observed_paint > MAX_OBSERVED_PAINT_MS {
            failures.push(format!(
                "/{page}: performance {:.0} (min {:.0}), accessibility {:.0} (min {:.0}), painted after {observed_paint:.0} ms \
                 (max {MAX_OBSERVED_PAINT_MS:.0}); lost points: {}",
                performance * 100.0,
                MIN_PERFORMANCE * 100.0,
                accessibility * 100.0,
                MIN_ACCESSIBILITY * 100.0,
                lost_points(&report)
            ));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
