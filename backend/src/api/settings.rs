//! `GET /settings` (admins): the settings the running server applies, read
//! from where they take effect (the runner's limits and retention, the
//! sign-in lifetime, the confinement roots, the tool time limits, the
//! metrics access, the licence tier) plus what was fixed at start (listen
//! address, directories, catalog, TLS certificate). Secrets never appear:
//! the catalog URL loses its credentials, the metrics token is only said to
//! be set, the admin password is not kept at all.
//!
//! `PATCH /settings` (admins, audited) changes the ones that act without a
//! restart (`shared_types::settings::RUNTIME`: sign-in lifetime, catalog
//! retention, GC grace, backup read cap, tool time limits): applied at once
//! where they act, and saved to `DATA_DIR/settings.json`, which every start
//! lays over the flags. Listen address, directories, catalog, roots, TLS,
//! metrics access and licence stay with the flags (a restart): they decide
//! what the server may reach or who may reach it.

use std::path::Path;
use std::sync::Mutex;

use axum::extract::State;
use axum::response::Response;
use shared_types::error::ErrorBody;
use shared_types::recovery::LicenseFeatures;
use shared_types::settings::{CatalogSettings, MetricsSettings, ServerSettings, SettingsUpdate, TlsMode, TlsSettings, ToolTimeout};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::noted;
use super::{ApiError, ApiJson};
use crate::auth::audit::AuditNote;
use crate::config::ServeConfig;
use crate::db::CatalogKind;
use crate::platforms::tools::ToolClass;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, update_settings))
}

/// What the server fixed when it started.
#[derive(Debug, Clone)]
pub struct StartFacts {
    pub listen: String,
    pub web_dir: String,
    pub catalog: CatalogSettings,
    pub tls: TlsSettings,
    pub demo_lab: bool,
}

impl StartFacts {
    /// Before a server listens (tests build states without one).
    pub fn unstarted(catalog_kind: CatalogKind) -> StartFacts {
        StartFacts {
            listen: String::new(),
            web_dir: String::new(),
            catalog: CatalogSettings { kind: catalog_kind.as_str().to_owned(), location: String::new() },
            tls: TlsSettings { mode: TlsMode::Off, certificate: None },
            demo_lab: false,
        }
    }

    /// The facts of a server started with `config`, listening on `listen`
    /// with the catalog at `catalog_url` and the certificate `tls`.
    pub fn new(config: &ServeConfig, listen: std::net::SocketAddr, catalog_url: &str, kind: CatalogKind, tls: Option<&crate::tls::Tls>) -> StartFacts {
        let mode = match (tls, config.tls_source()) {
            (Some(_), Some(crate::tls::TlsSource::SelfSigned { .. })) => TlsMode::SelfSigned,
            (Some(_), _) => TlsMode::CertificateFiles,
            (None, _) => TlsMode::Off,
        };
        StartFacts {
            listen: listen.to_string(),
            web_dir: config.web_dir.display().to_string(),
            catalog: CatalogSettings { kind: kind.as_str().to_owned(), location: catalog_location(catalog_url, kind) },
            tls: TlsSettings { mode, certificate: tls.map(|t| t.info.clone()) },
            demo_lab: config.demo_lab,
        }
    }
}

/// Where the catalog is, without credentials or options: the SQLite file,
/// or `postgres://host:port/database` (everything up to the last `@` and
/// after a `?` dropped, so a password with odd characters cannot leak).
pub fn catalog_location(url: &str, kind: CatalogKind) -> String {
    if kind == CatalogKind::Sqlite {
        return crate::db::sqlite_file(url).map(|p| p.display().to_string()).unwrap_or_else(|| "in memory".to_owned());
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{rest}")
}

/// The server's effective settings, TLS certificate and licence tier.
#[utoipa::path(get, path = "/settings", tag = "settings", responses(
    (status = 200, body = ServerSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn get_settings(State(state): State<AppState>) -> ApiJson<ServerSettings> {
    ApiJson(effective(&state))
}

/// Changes the settings that act without a restart; answers the settings
/// then in force. Saved in the data directory: a restart keeps them.
#[utoipa::path(patch, path = "/settings", tag = "settings", request_body = SettingsUpdate, responses(
    (status = 200, body = ServerSettings), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn update_settings(State(state): State<AppState>, ApiJson(change): ApiJson<SettingsUpdate>) -> Result<Response, ApiError> {
    if let Some((field, message)) = change.invalid() {
        return Err(ApiError::invalid_field(field, message));
    }
    let keys = change.keys();
    if keys.is_empty() {
        return Err(ApiError::bad_request(
            "nothing_to_change",
            "Give at least one of session_ttl_minutes, job_history_retention_days, audit_retention_days, gc_grace_seconds, \
             read_limit_bytes_per_second, tool_timeouts.",
        ));
    }
    {
        // One change at a time reads, merges and writes the file.
        let _one = SAVING.lock().unwrap_or_else(|e| e.into_inner());
        let saved = load_saved(&state.data_dir).map_err(|e| ApiError::unavailable("settings_unreadable", e))?;
        let all = saved.merged(&change);
        save(&state.data_dir, &all).map_err(|e| ApiError::unavailable("settings_not_saved", e))?;
        apply(&state, &change);
    }
    let settings = effective(&state);
    let target = keys.iter().map(|k| format!("{k}={}", value_of(&settings, k))).collect::<Vec<_>>().join(", ");
    Ok(noted(ApiJson(settings), AuditNote::new("settings.update", target)))
}

static SAVING: Mutex<()> = Mutex::new(());

/// The file in the data directory holding what admins changed at runtime.
pub const SAVED_FILE: &str = "settings.json";

/// What admins changed at runtime (nothing when the file does not exist).
pub fn load_saved(data_dir: &Path) -> Result<SettingsUpdate, String> {
    let path = data_dir.join(SAVED_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not valid settings ({e}): fix or remove it; the flags then apply", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SettingsUpdate::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `all` whole (a new file renamed over the old: never half-written).
fn save(data_dir: &Path, all: &SettingsUpdate) -> Result<(), String> {
    let path = data_dir.join(SAVED_FILE);
    let tmp = data_dir.join(format!("{SAVED_FILE}.tmp"));
    let body = serde_json::to_vec_pretty(all).map_err(|e| format!("cannot encode the settings: {e}"))?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Puts `change` where each setting acts (jobs and sign-ins from now on).
pub fn apply(state: &AppState, change: &SettingsUpdate) {
    if let Some(m) = change.session_ttl_minutes {
        state.set_session_ttl_minutes(m);
    }
    if change.job_history_retention_days.is_some() || change.audit_retention_days.is_some() {
        let mut r = state.runner.catalog_retention();
        r.job_history_days = change.job_history_retention_days.unwrap_or(r.job_history_days);
        r.audit_days = change.audit_retention_days.unwrap_or(r.audit_days);
        state.runner.set_catalog_retention(r);
    }
    if let Some(g) = change.gc_grace_seconds {
        state.runner.set_gc_grace_secs(g);
    }
    if let Some(r) = change.read_limit_bytes_per_second {
        state.runner.set_read_limit(r);
    }
    if let Some(limits) = &change.tool_timeouts {
        let mut t = crate::platforms::tools::timeouts();
        for limit in limits {
            if let Some(class) = ToolClass::ALL.into_iter().find(|c| c.as_str() == limit.class) {
                t.set(class, std::time::Duration::from_secs(limit.seconds));
            }
        }
        crate::platforms::tools::set_timeouts(t);
    }
}

/// At start, after the flags: lays what admins saved over them. A file
/// that cannot be read or holds values out of bounds is left aside with a
/// warning (the flags apply).
pub fn apply_saved(state: &AppState) {
    match load_saved(&state.data_dir) {
        Ok(saved) => match saved.invalid() {
            Some((field, message)) => {
                tracing::warn!(file = %state.data_dir.join(SAVED_FILE).display(), field, %message, "saved settings left aside: the flags apply")
            }
            None => {
                if !saved.keys().is_empty() {
                    tracing::info!(settings = ?saved.keys(), "settings changed in the cockpit replace their flags");
                }
                apply(state, &saved);
            }
        },
        Err(e) => tracing::warn!(error = %e, "saved settings left aside: the flags apply"),
    }
}

/// One setting's value as the audit log states it.
fn value_of(s: &ServerSettings, key: &str) -> String {
    match key {
        "session_ttl_minutes" => s.session_ttl_minutes.to_string(),
        "job_history_retention_days" => s.job_history_retention_days.to_string(),
        "audit_retention_days" => s.audit_retention_days.to_string(),
        "gc_grace_seconds" => s.gc_grace_seconds.to_string(),
        "read_limit_bytes_per_second" => s.read_limit_bytes_per_second.to_string(),
        "tool_timeouts" => s.tool_timeouts.iter().map(|t| format!("{}:{}", t.class, t.seconds)).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// The settings as `state` applies them now.
pub fn effective(state: &AppState) -> ServerSettings {
    let facts = &state.start_facts;
    let retention = state.runner.catalog_retention();
    let timeouts = crate::platforms::tools::timeouts();
    let paths = |ps: &[std::path::PathBuf]| ps.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
    ServerSettings {
        listen: facts.listen.clone(),
        data_dir: state.data_dir.display().to_string(),
        web_dir: facts.web_dir.clone(),
        catalog: facts.catalog.clone(),
        session_ttl_minutes: state.session_ttl().num_minutes(),
        job_history_retention_days: retention.job_history_days,
        audit_retention_days: retention.audit_days,
        gc_grace_seconds: state.runner.gc_grace_secs(),
        read_limit_bytes_per_second: state.runner.read_limit(),
        restore_roots: paths(state.roots.restore_roots()),
        platform_roots: paths(state.roots.platform_roots()),
        tool_timeouts: ToolClass::ALL
            .iter()
            .map(|&c| ToolTimeout { class: c.as_str().to_owned(), seconds: timeouts.of(c).as_secs() })
            .collect(),
        metrics: MetricsSettings { token_set: state.metrics_access.token_set(), allow: state.metrics_access.allowed() },
        demo_lab: facts.demo_lab,
        tls: facts.tls.clone(),
        license: LicenseFeatures::for_tier(state.license_tier),
        changed_at_runtime: load_saved(&state.data_dir).map(|s| s.keys().into_iter().map(str::to_owned).collect()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_location_drops_credentials_and_options() {
        let pg = |u: &str| catalog_location(u, CatalogKind::Postgres);
        assert_eq!(pg("postgres://sendense:s3cret@db.example:5432/catalog?sslmode=require"), "postgres://db.example:5432/catalog");
        assert_eq!(pg("postgresql://u:p@ss/w@rd@db/c"), "postgresql://db/c");
        assert_eq!(pg("postgres://db/c?password=s3cret"), "postgres://db/c");
        assert_eq!(catalog_location("sqlite:///var/lib/sendense/catalog.sqlite?mode=rwc", CatalogKind::Sqlite), "/var/lib/sendense/catalog.sqlite");
    }
}
