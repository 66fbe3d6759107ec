//! `GET /settings` (admins): the settings the running server applies, read
//! from where they take effect (the runner's limits and retention, the
//! sign-in lifetime, the confinement roots, the tool time limits, the
//! metrics access, the licence tier) plus what was fixed at start (listen
//! address, directories, catalog, TLS certificate). Secrets never appear:
//! the catalog URL loses its credentials, the metrics token is only said to
//! be set, the admin password is not kept at all.

use axum::extract::State;
use shared_types::error::ErrorBody;
use shared_types::recovery::LicenseFeatures;
use shared_types::settings::{CatalogSettings, MetricsSettings, ServerSettings, TlsMode, TlsSettings, ToolTimeout};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiJson;
use crate::config::ServeConfig;
use crate::db::CatalogKind;
use crate::platforms::tools::ToolClass;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings))
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
        session_ttl_minutes: state.session_ttl.num_minutes(),
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
