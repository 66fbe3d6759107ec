//! The demo lab inside `sendense serve --demo-lab`: created on first start,
//! and optionally written to every
//! `--lab-activity-seconds`. Both run on blocking threads and never hold up
//! the server; a failure is logged and leaves the server serving.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::manifest::INCOMPLETE_MARKER;
use super::{InitOptions, InitOutcome};

/// Starts the lab task: init (first start), then activity rounds.
pub fn spawn(dir: PathBuf, activity_every: Option<Duration>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    spawn_with(dir, activity_every, shutdown, None)
}

/// What the server hands the lab task so the libvirt lab's hosts become
/// platforms (added and discovered like any other, watched for power).
#[derive(Clone)]
pub struct Register {
    pub db: sea_orm::DatabaseConnection,
    pub events: tokio::sync::broadcast::Sender<shared_types::ws::ServerMessage>,
    pub watches: std::sync::Arc<crate::catalog::power_watch::PowerWatches>,
}

/// [`spawn`]; with `register`, also starts the lab on real libvirt hosts
/// where it can run (root, libvirt, the guest kit), adds its hosts as
/// platforms, and stops them when the server shuts down (await the handle).
pub fn spawn_with(dir: PathBuf, activity_every: Option<Duration>, shutdown: CancellationToken, register: Option<Register>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // A shutdown ends the lab's start too (the hosts are stopped under it).
        tokio::select! {
            _ = run(dir.clone(), activity_every, shutdown.clone(), register.clone()) => {}
            _ = shutdown.cancelled() => {}
        }
        if register.is_some() && dir.join("libvirt").exists() {
            // The server stops: so do the lab's hosts and guests.
            shutdown.cancelled().await;
            let d = dir.clone();
            match tokio::task::spawn_blocking(move || super::libvirt_lab::stop(&d)).await {
                Ok(Ok(())) => tracing::info!("the demo lab's libvirt hosts are stopped"),
                Ok(Err(e)) => tracing::warn!(error = %e, "stopping the demo lab's libvirt hosts"),
                Err(e) => tracing::warn!(error = %e, "stopping the demo lab's libvirt hosts"),
            }
        }
    })
}

async fn run(dir: PathBuf, activity_every: Option<Duration>, shutdown: CancellationToken, register: Option<Register>) {
    {
        let init_dir = dir.clone();
        let created = tokio::task::spawn_blocking(move || {
            // A start-up that was stopped while building leaves a marker: rebuild.
            let options = InitOptions { force: init_dir.join(INCOMPLETE_MARKER).exists() };
            super::init(&init_dir, &options, &mut |line| tracing::info!(target: "sendense::lab", "{line}"))
        })
        .await;
        match created {
            Ok(Ok(InitOutcome::Created(m))) => {
                tracing::info!(dir = %dir.display(), hosts = m.hosts.len(), "demo lab created")
            }
            Ok(Ok(InitOutcome::Exists(_))) => tracing::info!(dir = %dir.display(), "demo lab present"),
            Ok(Err(e)) => {
                tracing::error!(dir = %dir.display(), error = %e, "unable to create the demo lab");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "the demo lab task failed");
                return;
            }
        }
        if let Some(reg) = &register {
            start_libvirt_lab(&dir, reg).await;
        }
        let Some(every) = activity_every else { return };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let round_dir = dir.clone();
            let on_guests = register.is_some() && super::guest_activity::running(&dir);
            let round = tokio::task::spawn_blocking(move || {
                if on_guests {
                    super::guest_activity::round(&round_dir).map(|r| (r.bytes_written, r.guests.len()))
                } else {
                    super::round(&round_dir).map(|r| (r.bytes_written, r.vms.len())).map_err(anyhow::Error::from)
                }
            });
            match round.await {
                Ok(Ok((bytes_written, vms))) => tracing::info!(bytes_written, vms, on_guests, "demo lab activity"),
                Ok(Err(e)) => tracing::warn!(error = %e, "demo lab activity failed"),
                Err(e) => tracing::warn!(error = %e, "demo lab activity task failed"),
            }
        }
    }
}

/// Starts the lab's libvirt hosts and guests and adds the hosts as platforms
/// (once: an address already added is left as it is).
async fn start_libvirt_lab(dir: &std::path::Path, reg: &Register) {
    if let Some(why) = super::libvirt_lab::unavailable() {
        tracing::warn!(reason = %why, "the demo lab runs without real guests");
        return;
    }
    let d = dir.to_path_buf();
    let started = tokio::task::spawn_blocking(move || super::libvirt_lab::init(&d, &mut |line| tracing::info!(target: "sendense::lab", "{line}"))).await;
    let lab = match started {
        Ok(Ok(lab)) => lab,
        Ok(Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "unable to start the demo lab's libvirt hosts");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "the libvirt lab task failed");
            return;
        }
    };
    tracing::info!(guests = lab.booted.len(), seconds = lab.seconds, "demo lab guests are up");
    for (_, uri) in &lab.uris {
        if let Err(e) = add_platform(reg, uri).await {
            tracing::warn!(%uri, error = %e, "adding a demo lab host as a platform");
        }
    }
}

async fn add_platform(reg: &Register, uri: &str) -> Result<(), String> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use crate::db::entities::platforms;
    use shared_types::platform::PlatformKind;
    let existing = platforms::Entity::find().filter(platforms::Column::Address.eq(uri)).one(&reg.db).await.map_err(|e| e.to_string())?;
    let row = match existing {
        Some(row) => row,
        None => {
            let inv = crate::catalog::inventory::read(PlatformKind::Kvm, uri.to_string()).await?;
            let row = crate::catalog::inventory::insert_platform(&reg.db, &inv.host.name, PlatformKind::Kvm, uri).await.map_err(|e| e.to_string())?;
            let row = crate::catalog::inventory::apply(&reg.db, row, &inv).await.map_err(|e| e.to_string())?.0;
            tracing::info!(platform = %row.name, %uri, vms = inv.vms.len(), "added a demo lab host as a platform");
            row
        }
    };
    reg.watches.watch(&reg.db, &reg.events, &row.id, &row.address);
    Ok(())
}
