//! Systems → Server in Chromium against the real server: the settings it
//! started with (listen address, data directory, catalog, retention), TLS
//! off, the licence tier and its table, as the API answers them; the
//! runtime settings changed from the form (the server's answer and the
//! rows follow; a value out of bounds is refused beside its field); a
//! viewer is told settings are for admins; no sideways scrolling;
//! screenshots at three sizes.

use std::time::Duration;

use anyhow::{ensure, Result};
use e2e::{Browser, Server, ADMIN_PASSWORD};

const T: Duration = Duration::from_secs(20);

async fn text(b: &Browser, id: &str) -> Result<String> {
    Ok(b.testid(id, T).await?.text().await?)
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_tab_shows_settings_tls_and_licence() -> Result<()> {
    let server = Server::start()?;
    let api = server.get_json("/api/v1/settings")?;
    ensure!(api["listen"] == format!("127.0.0.1:{}", server.port), "listen: {}", api["listen"]);
    ensure!(api["data_dir"] == server.data_path().display().to_string(), "data dir: {}", api["data_dir"]);

    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/systems")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("server-settings", T).await?;
    let listen = text(&b, "setting-listen").await?;
    ensure!(listen.contains(&format!("127.0.0.1:{}", server.port)) && listen.contains("SENDENSE_LISTEN"), "listen row: {listen:?}");
    let data = text(&b, "setting-data_dir").await?;
    ensure!(data.contains(&server.data_path().display().to_string()), "data dir row: {data:?}");
    let catalog = text(&b, "setting-catalog").await?;
    ensure!(catalog.contains("sqlite") && catalog.contains("catalog.sqlite"), "catalog row: {catalog:?}");
    let audit = text(&b, "setting-audit_retention_days").await?;
    ensure!(audit.contains(&format!("{} days", api["audit_retention_days"])), "audit row {audit:?} vs {}", api["audit_retention_days"]);
    let token = text(&b, "setting-metrics.token_set").await?;
    ensure!(token.contains("not set"), "metrics token row: {token:?}");
    let tls = text(&b, "tls-mode").await?;
    ensure!(tls.contains("Off"), "TLS: {tls:?}");
    let tier = text(&b, "licence-tier").await?;
    ensure!(tier == "Enterprise", "tier: {tier:?}");
    let cross = text(&b, "licence-cross_platform_restore").await?;
    ensure!(cross.contains("—") && cross.contains("✓"), "cross-platform restore is Enterprise only: {cross:?}");
    b.screenshot("server-settings-desktop-1440x900").await?;

    // Runtime settings: a read cap under 1 MiB/s is refused beside its field.
    let set = |id: &'static str, value: &'static str| {
        let b = &b;
        async move {
            let input = b.testid(id, T).await?;
            input.clear().await?;
            input.send_keys(value).await?;
            anyhow::Ok(())
        }
    };
    set("edit-read_limit_bytes_per_second", "0.5").await?;
    b.click_testid("runtime-settings-save", T).await?;
    let refused = text(&b, "runtime-settings-error").await?;
    ensure!(refused.contains("1048576"), "the refusal says the bound: {refused:?}");
    ensure!(server.get_json("/api/v1/settings")?["read_limit_bytes_per_second"] == 0, "nothing applied");
    // Audit log 45 days, read cap 25 MiB/s, convert limit 1500 s: applied at once.
    set("edit-read_limit_bytes_per_second", "25").await?;
    set("edit-audit_retention_days", "45").await?;
    set("edit-tool-convert", "1500").await?;
    b.click_testid("runtime-settings-save", T).await?;
    b.testid("runtime-settings-saved", T).await?;
    let now = server.get_json("/api/v1/settings")?;
    ensure!(now["audit_retention_days"] == 45 && now["read_limit_bytes_per_second"] == 25 * 1_048_576, "applied: {now}");
    ensure!(now["tool_timeouts"].as_array().is_some_and(|t| t.iter().any(|t| t["class"] == "convert" && t["seconds"] == 1500)), "{now}");
    let row = b
        .until("the audit row shows the new value", T, || async {
            let t = text(&b, "setting-audit_retention_days").await?;
            Ok(t.contains("45 days").then_some(t))
        })
        .await?;
    ensure!(row.contains("changed here"), "the row says it was changed here: {row:?}");
    ensure!(text(&b, "setting-listen").await?.contains("restart to change"), "listen is a start setting");
    b.client.execute("document.querySelector('[data-testid=runtime-settings]').scrollIntoView()", vec![]).await?;
    b.screenshot("server-settings-runtime-desktop-1440x900").await?;
    b.client.goto(&server.url("/systems")).await?;
    b.testid("server-settings", T).await?;
    b.client.execute("document.querySelector('[data-testid=server-tls]').scrollIntoView()", vec![]).await?;
    b.screenshot("server-settings-tls-licence-desktop-1440x900").await?;

    for (w, h, name) in [(820, 1180, "server-settings-tablet-820x1180"), (390, 844, "server-settings-phone-390x844")] {
        b.resize(w, h).await?;
        b.client.goto(&server.url("/systems")).await?;
        b.testid("server-licence", T).await?;
        b.screenshot(name).await?;
        b.client.execute("document.querySelector('[data-testid=runtime-settings]').scrollIntoView()", vec![]).await?;
        b.screenshot(&format!("{name}-runtime")).await?;
        b.client.execute("document.querySelector('[data-testid=server-licence]').scrollIntoView()", vec![]).await?;
        b.screenshot(&format!("{name}-licence")).await?;
        if b.overflows().await? {
            let wide = b
                .client
                .execute(
                    "const w = document.documentElement.clientWidth; return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > w + 1).slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + (e.dataset.testid || '')).join(' | ')",
                    vec![],
                )
                .await?;
            anyhow::bail!("the Server tab scrolls sideways at {w} px: {wide}");
        }
    }
    b.close().await?;

    // A viewer sees the server's health, not its settings.
    server.create_user("viewer1", "viewer1-password-long", "viewer")?;
    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/systems")).await?;
    b.sign_in("viewer1", "viewer1-password-long").await?;
    let why = b.testid("role-required", T).await?.text().await?;
    ensure!(why.to_lowercase().contains("admin"), "{why:?}");
    ensure!(b.client.find_all(fantoccini::Locator::Css("[data-testid=server-settings]")).await?.is_empty(), "settings shown to a viewer");
    b.close().await?;
    Ok(())
}
