//! `sendense serve`: checks, catalog, listener, background tasks, graceful
//! shutdown on SIGINT / SIGTERM.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::{bail, Context};
use axum::Router;
use tokio::net::TcpListener;

use crate::config::ServeConfig;
use crate::db::{self, entities::settings};
use crate::state::AppState;

/// The whole application: API first, then the cockpit for every other path;
/// every response carries the security headers.
pub fn app(state: AppState, web_dir: &Path) -> Router {
    let headers = crate::web_security::SecurityHeaders::new(web_dir, state.tls);
    crate::api::router(state.clone())
        .merge(crate::api::metrics::router(state))
        .merge(crate::spa::router(web_dir))
        .layer(axum::middleware::map_response(move |response| {
            let headers = headers.clone();
            async move { headers.apply(response) }
        }))
}

pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // Signals first: a SIGTERM during start-up still ends in a clean stop.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        on_signal.cancel();
    });

    prepare_data_dir(&config.data_dir)?;
    // Certificate problems stop the start, before anything listens.
    let tls = match config.tls_source() {
        Some(source) => Some(crate::tls::load(&source)?),
        None => None,
    };
    let listener = bind(&config).await?;
    let addr = listener.local_addr()?;

    let (url, kind) = db::catalog_url(&config.data_dir, config.database_url.as_deref())?;
    let catalog = db::open(&url, kind).await?;
    let install_id = settings::get_or_init(&catalog, settings::INSTALL_ID, || uuid::Uuid::new_v4().to_string())
        .await
        .context("unable to read the install id from the catalog")?;
    tracing::info!(catalog = kind.as_str(), %install_id, data_dir = %config.data_dir.display(), "catalog ready");

    crate::auth::bootstrap::ensure_admin(&catalog, &config.data_dir, config.admin_password.as_deref()).await?;
    crate::catalog::repositories::ensure_local(&catalog, &config.data_dir).await?;
    // Repository spec files of children started by the last run (each read them at its start).
    let stale_specs = crate::catalog::spec_files::clear(&config.data_dir);
    if stale_specs > 0 {
        tracing::info!(count = stale_specs, "removed repository spec files left by the last run");
    }
    // Index caches of repositories no longer in the catalog (DATA_DIR/cache only).
    if crate::catalog::index_caches::root_is_own(&config.data_dir) {
        let root = crate::engine::index_cache::root();
        match crate::catalog::index_caches::remove_stale(&catalog, &root).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "removed the index caches of repositories no longer in the catalog"),
            Err(e) => tracing::warn!(error = %e, "cleaning the index caches"),
        }
    }
    let repositories = crate::catalog::repositories::local_paths(&catalog).await?;
    let catalog_file = (kind == db::CatalogKind::Sqlite).then(|| db::sqlite_file(&url)).flatten();
    let roots = crate::confinement::Roots::configure(&config.data_dir, &config.restore_roots, &config.platform_roots, catalog_file.as_deref(), &repositories)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(restore_roots = ?roots.restore_roots(), platform_roots = ?roots.platform_roots(), "confinement roots");

    // Restores interrupted by the last stop are failed by the runner's recovery; their staging goes here.
    let stale = crate::runner::restore_job::clear_staging(&config.data_dir);
    if stale > 0 {
        tracing::warn!(directories = stale, "removed the staging of restores interrupted by the last stop");
    }
    let repaired = crate::runner::restore_job::recover_replacements(&catalog).await;
    if repaired > 0 {
        tracing::warn!(vms = repaired, "finished or undid VM replacements interrupted by the last stop");
    }
    let (mut state, health_tx) = AppState::new(catalog, kind, config.data_dir.clone());
    apply_config(&mut state, &config);
    // What admins changed at runtime replaces the flags (api/settings.rs).
    crate::api::settings::apply_saved(&state);
    state.tls = tls.is_some();
    state.roots = std::sync::Arc::new(roots);
    state.start_facts = std::sync::Arc::new(crate::api::settings::StartFacts::new(&config, addr, &url, kind, tls.as_ref()));
    // A signal stops everything the state started (the job runner included).
    let stop_all = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stop_all.cancel();
    });
    let sampler = tokio::spawn(crate::telemetry::system::run_sampler(state.clone(), health_tx));
    // Idle file-level restore sessions close even when nobody asks.
    let (sessions, stop) = (state.restore_sessions.clone(), state.shutdown.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => { sessions.sweep(chrono::Utc::now()); }
            }
        }
    });
    // Power changes on platforms that report them reach the catalog live.
    match <crate::db::entities::platforms::Entity as sea_orm::EntityTrait>::find().all(&state.db).await {
        Ok(rows) => {
            for p in rows {
                state.power_watches.watch(&state.db, &state.events, &p.id, &p.address);
                // What a stopped server left running on the platform ends now.
                let (kind, address, name) = (crate::catalog::from_wire(&p.kind), p.address.clone(), p.name.clone());
                tokio::task::spawn_blocking(move || {
                    let Some(kind) = kind else { return };
                    match crate::catalog::inventory::connect(kind, &address).and_then(|pl| pl.clean_up_after_restart()) {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(platform = %name, ended = n, "ended backup jobs the previous run left on the platform"),
                        Err(e) => tracing::info!(platform = %name, error = %e, "could not check the platform for leftovers at start"),
                    }
                });
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing platforms to watch"),
    }
    let lab = config.demo_lab.then(|| {
        let every = (config.lab_activity_seconds > 0).then(|| std::time::Duration::from_secs(config.lab_activity_seconds));
        let register = crate::lab::background::Register { db: state.db.clone(), events: state.events.clone(), watches: state.power_watches.clone() };
        crate::lab::background::spawn_with(config.lab_dir(), every, state.shutdown.clone(), config.lab_guests.then_some(register))
    });

    // Instant recoveries the last run left (undone or served again) and the
    // later boot stages of its site failovers.
    let runner = state.runner.clone();
    tokio::spawn(async move {
        let n = crate::runner::instant_job::recover(&runner).await;
        if n > 0 {
            tracing::warn!(instant_recoveries = n, "put the instant recoveries of the last run back in order");
        }
        crate::runner::site_failover::resume(&runner).await;
    });

    // Printed on stdout for people and scripts; everything else goes to the log.
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("Sendense {} is running at {scheme}://{addr}/", crate::VERSION);
    if let Some(tls) = &tls {
        println!("TLS certificate {} SHA-256 fingerprint {}", tls.cert_path.display(), tls.fingerprint);
        tracing::info!(cert = %tls.cert_path.display(), fingerprint = %tls.fingerprint, "serving HTTPS");
    }
    tracing::info!(%addr, scheme, "listening");

    let done = state.shutdown.clone();
    let service = app(state.clone(), &config.web_dir).into_make_service_with_connect_info::<std::net::SocketAddr>();
    match tls {
        Some(tls) => {
            use axum::serve::ListenerExt;
            // `tap_io` only to get axum's `ConnectInfo<SocketAddr>` for a custom listener.
            let listener = crate::tls::TlsListener::new(listener, tls.config, state.shutdown.clone())?.tap_io(|_| {});
            axum::serve(listener, service)
                .with_graceful_shutdown(async move { done.cancelled().await })
                .await
        }
        None => axum::serve(listener, service).with_graceful_shutdown(async move { done.cancelled().await }).await,
    }
    .context("the HTTP server failed")?;
    let _ = sampler.await;
    if let Some(lab) = lab {
        // The demo lab's hosts and guests stop with the server, and so do
        // the exports of instant VMs (on a real host they outlive it).
        if tokio::time::timeout(std::time::Duration::from_secs(60), lab).await.is_err() {
            tracing::warn!("the demo lab did not stop within 60 s");
        }
        crate::runner::instant_job::end_with_lab(&state.runner).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Applies the limits, retention, sign-in lifetime, licence tier, metrics
/// access and tool time limits of `config` to `state` (and the process's
/// tool runs); `GET /settings` reads them back from where they act.
pub fn apply_config(state: &mut AppState, config: &ServeConfig) {
    state.set_session_ttl_minutes(config.session_ttl_minutes);
    state.runner.set_read_limit(config.read_limit_bps);
    state.runner.set_gc_grace_secs(config.gc_grace_seconds);
    state.runner.set_catalog_retention(crate::catalog::housekeeping::Retention {
        job_history_days: config.job_history_retention_days,
        audit_days: config.audit_retention_days,
    });
    state.license_tier = config.license_tier;
    state.metrics_access =
        std::sync::Arc::new(crate::api::metrics::MetricsAccess::new(config.metrics_token.clone(), config.metrics_allow.clone().map(|n| n.0)));
    crate::platforms::tools::set_timeouts(config.tool_timeouts.clone());
}

/// Creates the data directory and proves it is writable.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!("unable to create the data directory '{}' - choose another with --data-dir or SENDENSE_DATA_DIR", dir.display())
    })?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"sendense")
        .and_then(|_| std::fs::remove_file(&probe))
        .with_context(|| {
            format!("the data directory '{}' is not writable - fix its permissions or choose another with --data-dir", dir.display())
        })?;
    Ok(())
}

async fn bind(config: &ServeConfig) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(config.listen).await {
        Ok(listener) => Ok(listener),
        Err(err) if err.kind() == ErrorKind::AddrInUse => bail!(
            "unable to listen on {} - the port is already in use (is Sendense already running?); \
             choose another with --listen or SENDENSE_LISTEN",
            config.listen
        ),
        Err(err) => Err(err).with_context(|| format!("unable to listen on {}", config.listen)),
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "unable to listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "unable to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
