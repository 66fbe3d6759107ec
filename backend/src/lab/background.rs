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
    tokio::spawn(async move {
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
        let Some(every) = activity_every else { return };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let round_dir = dir.clone();
            match tokio::task::spawn_blocking(move || super::round(&round_dir)).await {
                Ok(Ok(r)) => tracing::info!(bytes_written = r.bytes_written, vms = r.vms.len(), "demo lab activity"),
                Ok(Err(e)) => tracing::warn!(error = %e, "demo lab activity failed"),
                Err(e) => tracing::warn!(error = %e, "demo lab activity task failed"),
            }
        }
    })
}
