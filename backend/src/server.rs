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

/// The whole application: API first, then the cockpit for every other path.
pub fn app(state: AppState, web_dir: &Path) -> Router {
    crate::api::router(state).merge(crate::spa::router(web_dir))
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
    state.session_ttl = chrono::Duration::minutes(config.session_ttl_minutes);
    state.runner.set_read_limit(config.read_limit_bps);
    state.license_tier = config.license_tier;
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
    if config.demo_lab {
        let every = (config.lab_activity_seconds > 0).then(|| std::time::Duration::from_secs(config.lab_activity_seconds));
        crate::lab::background::spawn(config.lab_dir(), every, state.shutdown.clone());
    }

    // Printed on stdout for people and scripts; everything else goes to the log.
    println!("Sendense {} is running at http://{addr}/", crate::VERSION);
    tracing::info!(%addr, "listening");

    let done = state.shutdown.clone();
    let service = app(state, &config.web_dir).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move { done.cancelled().await })
        .await
        .context("the HTTP server failed")?;
    let _ = sampler.await;
    tracing::info!("stopped");
    Ok(())
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
