//! `GET /api/v1/settings`: the values a server started with given flags
//! applies, read back; admins only; no secret in the body; every setting
//! names a flag and variable `sendense serve` really has. `PATCH`: the
//! runtime settings change where they act, are audited, refused out of
//! bounds, and come back over the flags after a restart.

mod support;

use axum::http::StatusCode;
use clap::{CommandFactory, Parser};
use sendense::api::settings::StartFacts;
use sendense::cli::{Cli, Command};
use sendense::config::ServeConfig;
use shared_types::auth::Role;
use shared_types::recovery::LicenseTier;
use shared_types::audit::AuditPage;
use shared_types::settings::{ServerSettings, TlsMode, RUNTIME, SOURCES};
use support::fixture;

const PG_PASSWORD: &str = "pg-Secret-pass-31";
const METRICS_TOKEN: &str = "metrics-token-Secret-77";
const ADMIN_PASSWORD_FLAG: &str = "admin-flag-Secret-55";

/// The tool time limits are the process's: tests that set them take turns.
static TOOL_LIMITS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn serve_config(args: &[&str]) -> ServeConfig {
    let cli = Cli::try_parse_from(["sendense", "serve"].iter().chain(args)).unwrap_or_else(|e| panic!("{e}"));
    match cli.command {
        Command::Serve(config) => config,
        other => panic!("not serve: {other:?}"),
    }
}

#[tokio::test]
async fn settings_are_what_the_server_applies_and_hold_no_secret() {
    let _turn = TOOL_LIMITS.lock().await;
    let mut f = fixture().await;
    let data = f.data.path().to_str().unwrap().to_owned();

    // A server not configured further shows the flags' defaults.
    let defaults = serve_config(&["--data-dir", &data]);
    let token = f.admin_token().await;
    let reply = f.call("GET", "/api/v1/settings", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let s: ServerSettings = reply.json();
    assert_eq!(s.session_ttl_minutes, defaults.session_ttl_minutes);
    assert_eq!(s.job_history_retention_days, defaults.job_history_retention_days);
    assert_eq!(s.audit_retention_days, defaults.audit_retention_days);
    assert_eq!(s.gc_grace_seconds, defaults.gc_grace_seconds);
    assert_eq!(s.read_limit_bytes_per_second, 0);
    assert_eq!(s.license.tier, defaults.license_tier);
    assert_eq!(s.tls.mode, TlsMode::Off);
    assert!(s.tls.certificate.is_none());
    assert!(!s.metrics.token_set);
    assert_eq!(s.metrics.allow, vec!["127.0.0.0/8".to_owned(), "::1".to_owned()]);

    // Started with every setting changed (and every secret given).
    let restore_root = tempfile::tempdir().unwrap();
    let restore_root_path = restore_root.path().to_str().unwrap().to_owned();
    let db_url = format!("postgres://sendense:{PG_PASSWORD}@db.example:5433/catalog?sslmode=require");
    let config = serve_config(&[
        "--data-dir",
        &data,
        "--listen",
        "127.0.0.1:18443",
        "--web-dir",
        "/srv/cockpit",
        "--database-url",
        &db_url,
        "--admin-password",
        ADMIN_PASSWORD_FLAG,
        "--session-ttl-minutes",
        "95",
        "--job-history-retention-days",
        "11",
        "--audit-retention-days",
        "400",
        "--gc-grace-seconds",
        "777",
        "--read-limit-bps",
        "5000000",
        "--license-tier",
        "standard",
        "--tool-timeouts",
        "convert=1800,info=30",
        "--metrics-token",
        METRICS_TOKEN,
        "--metrics-allow",
        "10.0.0.0/8,::1",
        "--restore-root",
        &restore_root_path,
        "--tls",
        "self-signed",
    ]);
    sendense::server::apply_config(&mut f.state, &config);
    let roots = sendense::confinement::Roots::configure(&config.data_dir, &config.restore_roots, &config.platform_roots, None, &[]).unwrap();
    f.state.roots = std::sync::Arc::new(roots);
    let tls = sendense::tls::load(&config.tls_source().unwrap()).unwrap();
    let (url, kind) = sendense::db::catalog_url(&config.data_dir, config.database_url.as_deref()).unwrap();
    f.state.start_facts = std::sync::Arc::new(StartFacts::new(&config, config.listen, &url, kind, Some(&tls)));

    let token = f.admin_token().await;
    let reply = f.call("GET", "/api/v1/settings", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    for secret in [PG_PASSWORD, METRICS_TOKEN, ADMIN_PASSWORD_FLAG, "sslmode", "sendense:"] {
        assert!(!reply.body.contains(secret), "'{secret}' in {}", reply.body);
    }
    let s: ServerSettings = reply.json();
    assert_eq!(s.listen, "127.0.0.1:18443");
    assert_eq!(s.data_dir, data);
    assert_eq!(s.web_dir, "/srv/cockpit");
    assert_eq!((s.catalog.kind.as_str(), s.catalog.location.as_str()), ("postgres", "postgres://db.example:5433/catalog"));
    assert_eq!(s.session_ttl_minutes, 95);
    assert_eq!(s.job_history_retention_days, 11);
    assert_eq!(s.audit_retention_days, 400);
    assert_eq!(s.gc_grace_seconds, 777);
    assert_eq!(s.read_limit_bytes_per_second, 5_000_000);
    assert_eq!(s.license.tier, LicenseTier::Standard);
    assert!(s.license.features.iter().any(|f| !f.enabled), "standard leaves features out");
    let timeout = |class: &str| s.tool_timeouts.iter().find(|t| t.class == class).map(|t| t.seconds);
    assert_eq!((timeout("convert"), timeout("info"), timeout("check")), (Some(1800), Some(30), Some(300)));
    assert!(s.metrics.token_set);
    assert_eq!(s.metrics.allow, vec!["10.0.0.0/8".to_owned(), "::1".to_owned()]);
    let resolved = sendense::confinement::resolve(restore_root.path()).display().to_string();
    assert!(s.restore_roots.contains(&resolved), "{:?} lacks {resolved}", s.restore_roots);
    assert!(!s.restore_roots.iter().any(|r| r.ends_with("/restores")), "an explicit root replaces the default: {:?}", s.restore_roots);
    assert_eq!(s.tls.mode, TlsMode::SelfSigned);
    let cert = s.tls.certificate.as_ref().expect("the certificate");
    assert_eq!(cert.fingerprint_sha256, tls.fingerprint);
    assert_eq!(cert.subject, "CN=Sendense (self-signed)");
    assert!(cert.names.contains(&"localhost".to_owned()) && cert.names.contains(&"127.0.0.1".to_owned()), "{:?}", cert.names);
    assert!(cert.path.ends_with(sendense::tls::SELF_SIGNED_CERT));
    assert!(cert.not_before.unwrap() < chrono::Utc::now() && chrono::Utc::now() < cert.not_after.unwrap());

    // The applied values are the ones that act: the runner's, not a copy.
    assert_eq!(f.state.runner.read_limit(), 5_000_000);
    assert_eq!(f.state.runner.catalog_retention().audit_days, 400);

    // Admins only.
    for role in [Role::Operator, Role::Viewer] {
        let (_, t) = f.user_with_role(&format!("{role:?}").to_lowercase(), role).await;
        let reply = f.call("GET", "/api/v1/settings", Some(&t), None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{role:?}: {}", reply.body);
        assert!(!reply.body.contains("db.example"), "{}", reply.body);
    }
    assert_eq!(f.call("GET", "/api/v1/settings", None, None).await.status, StatusCode::UNAUTHORIZED);
    // Nothing set at runtime yet.
    assert!(s.changed_at_runtime.is_empty(), "{:?}", s.changed_at_runtime);
}

#[tokio::test]
async fn an_admin_changes_runtime_settings_that_act_at_once_and_outlive_a_restart() {
    let _turn = TOOL_LIMITS.lock().await;
    let mut f = fixture().await;
    let config = serve_config(&["--data-dir", f.data.path().to_str().unwrap(), "--read-limit-bps", "5000000", "--audit-retention-days", "400"]);
    sendense::server::apply_config(&mut f.state, &config);
    let token = f.admin_token().await;
    let patch = |body: serde_json::Value| {
        let (f, token) = (&f, token.clone());
        async move { f.call("PATCH", "/api/v1/settings", Some(&token), Some(body)).await }
    };

    // Out of bounds, unknown or start-only: refused with the field named, nothing changes.
    for (body, field) in [
        (serde_json::json!({"read_limit_bytes_per_second": 1000}), "read_limit_bytes_per_second"),
        (serde_json::json!({"session_ttl_minutes": 0}), "session_ttl_minutes"),
        (serde_json::json!({"audit_retention_days": 0}), "audit_retention_days"),
        (serde_json::json!({"job_history_retention_days": 36501}), "job_history_retention_days"),
        (serde_json::json!({"gc_grace_seconds": 2_592_001u64}), "gc_grace_seconds"),
        (serde_json::json!({"tool_timeouts": [{"class": "bogus", "seconds": 60}]}), "tool_timeouts"),
        (serde_json::json!({"tool_timeouts": [{"class": "convert", "seconds": 0}]}), "tool_timeouts"),
        (serde_json::json!({}), ""),
        (serde_json::json!({"listen": "0.0.0.0:1"}), "listen"),
        (serde_json::json!({"license": "enterprise"}), "license"),
    ] {
        let reply = patch(body.clone()).await;
        assert!(reply.status.is_client_error(), "{body}: {} {}", reply.status, reply.body);
        assert!(reply.body.contains(field), "{body}: the answer names {field}: {}", reply.body);
    }
    assert_eq!(f.state.runner.read_limit(), 5_000_000);
    assert!(!f.data.path().join(sendense::api::settings::SAVED_FILE).exists(), "nothing saved");

    // Viewers and operators may not.
    for role in [Role::Operator, Role::Viewer] {
        let (_, t) = f.user_with_role(&format!("{role:?}x").to_lowercase(), role).await;
        let reply = f.call("PATCH", "/api/v1/settings", Some(&t), Some(serde_json::json!({"gc_grace_seconds": 5}))).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{role:?}: {}", reply.body);
    }

    // A change acts where the setting acts, at once.
    let reply = patch(serde_json::json!({
        "read_limit_bytes_per_second": 20_971_520u64,
        "audit_retention_days": 90,
        "gc_grace_seconds": 120,
        "session_ttl_minutes": 30,
        "tool_timeouts": [{"class": "write", "seconds": 1234}]
    }))
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let s: ServerSettings = reply.json();
    assert_eq!((s.read_limit_bytes_per_second, s.audit_retention_days, s.gc_grace_seconds, s.session_ttl_minutes), (20_971_520, 90, 120, 30));
    assert_eq!(f.state.runner.read_limit(), 20_971_520);
    assert_eq!(f.state.runner.catalog_retention().audit_days, 90);
    assert_eq!(f.state.runner.catalog_retention().job_history_days, config.job_history_retention_days, "untouched");
    assert_eq!(f.state.runner.gc_grace_secs(), 120);
    assert_eq!(sendense::platforms::tools::timeouts().of(sendense::platforms::tools::ToolClass::Write).as_secs(), 1234);
    let mut changed = s.changed_at_runtime.clone();
    changed.sort();
    assert_eq!(changed, ["audit_retention_days", "gc_grace_seconds", "read_limit_bytes_per_second", "session_ttl_minutes", "tool_timeouts"]);
    assert!(changed.iter().all(|k| RUNTIME.contains(&k.as_str())));
    // A sign-in made now lasts the new 30 minutes.
    let login: serde_json::Value = f.login("admin", support::ADMIN_PASSWORD).await.json();
    let expires: chrono::DateTime<chrono::Utc> = login["expires_at"].as_str().unwrap().parse().unwrap();
    let lasts = expires - chrono::Utc::now();
    assert!(lasts > chrono::Duration::minutes(29) && lasts <= chrono::Duration::minutes(30), "{lasts}");

    // A second change keeps the first's other values (tool limits merge by class).
    let reply = patch(serde_json::json!({"tool_timeouts": [{"class": "info", "seconds": 45}], "job_history_retention_days": 500})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // Audited, with the values.
    let audit: AuditPage = f.call("GET", "/api/v1/audit?limit=50", Some(&token), None).await.json();
    let updates: Vec<_> = audit.entries.iter().filter(|e| e.action == "settings.update").collect();
    assert_eq!(updates.len(), 2, "{:?}", audit.entries);
    assert!(updates.iter().any(|e| e.target.contains("read_limit_bytes_per_second=20971520") && e.target.contains("write:1234")), "{updates:?}");
    assert!(updates.iter().all(|e| e.actor.as_deref() == Some("admin") && e.status == 200), "{updates:?}");

    // A restart: the flags apply first, then what was saved lays over them
    // (a clone of the state shares the runner, sign-in lifetime and limits).
    let restart = |config: &ServeConfig| sendense::server::apply_config(&mut f.state.clone(), config);
    restart(&config);
    assert_eq!(f.state.runner.read_limit(), 5_000_000, "the flag, before the saved settings");
    sendense::api::settings::apply_saved(&f.state);
    assert_eq!(f.state.runner.read_limit(), 20_971_520);
    assert_eq!(f.state.runner.catalog_retention().audit_days, 90);
    assert_eq!(f.state.runner.catalog_retention().job_history_days, 500);
    assert_eq!(f.state.session_ttl().num_minutes(), 30);
    let limits = sendense::platforms::tools::timeouts();
    use sendense::platforms::tools::ToolClass;
    assert_eq!((limits.of(ToolClass::Write).as_secs(), limits.of(ToolClass::Info).as_secs()), (1234, 45));

    // A saved file broken by hand is left aside at start: the flags apply.
    std::fs::write(f.data.path().join(sendense::api::settings::SAVED_FILE), b"{\"read_limit_bytes_per_second\": 12").unwrap();
    restart(&config);
    sendense::api::settings::apply_saved(&f.state);
    assert_eq!(f.state.runner.read_limit(), 5_000_000);
    // And a change then says what is wrong instead of overwriting it.
    let reply = patch(serde_json::json!({"gc_grace_seconds": 60})).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
    assert!(reply.body.contains("settings.json"), "{}", reply.body);
    sendense::platforms::tools::set_timeouts(Default::default());
}

#[tokio::test]
async fn every_setting_names_a_flag_and_variable_of_serve() {
    let cli = Cli::command();
    let serve = cli.get_subcommands().find(|c| c.get_name() == "serve").expect("serve");
    for source in SOURCES {
        let long = source.flag.trim_start_matches("--");
        let arg = serve.get_arguments().find(|a| a.get_long() == Some(long)).unwrap_or_else(|| panic!("no flag {}", source.flag));
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(source.env), "{}", source.flag);
    }
    // Every field of the answer has its source.
    let f = fixture().await;
    let token = f.admin_token().await;
    let sample: serde_json::Value = f.call("GET", "/api/v1/settings", Some(&token), None).await.json();
    for key in sample.as_object().unwrap().keys().filter(|k| *k != "changed_at_runtime") {
        assert!(SOURCES.iter().any(|s| s.key == key || s.key.split('.').next() == Some(key.as_str())), "no source for {key}");
    }
}

#[tokio::test]
async fn settings_are_in_the_openapi_document() {
    let f = fixture().await;
    let doc: serde_json::Value = f.call("GET", "/api/v1/openapi.json", None, None).await.json();
    assert!(doc["paths"]["/settings"]["get"].is_object(), "{}", doc["paths"]);
    assert!(doc["paths"]["/settings"]["patch"].is_object(), "{}", doc["paths"]["/settings"]);
    assert!(doc["components"]["schemas"]["SettingsUpdate"].is_object());
    assert!(doc["components"]["schemas"]["ServerSettings"].is_object());
}
