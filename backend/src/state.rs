//! The one `Clone` application state every handler receives.

use std::sync::Arc;
use std::time::Instant;

use sea_orm::DatabaseConnection;
use shared_types::health::SystemHealth;
use shared_types::ws::ServerMessage;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::db::CatalogKind;

/// How long a sign-in lasts unless configured otherwise.
pub const DEFAULT_SESSION_TTL_MINUTES: i64 = 12 * 60;

/// How many events a slow WebSocket client may fall behind before it skips.
const EVENT_BACKLOG: usize = 256;

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub catalog_kind: CatalogKind,
    pub started: Instant,
    /// Every live event for WebSocket clients goes through this bus.
    pub events: broadcast::Sender<ServerMessage>,
    /// The most recent system health sample, for clients that just connected.
    pub latest_health: watch::Receiver<Option<SystemHealth>>,
    /// Cancelled when the server shuts down: long-lived tasks and sockets end.
    pub shutdown: CancellationToken,
    pub data_dir: Arc<std::path::PathBuf>,
    /// Failed sign-ins per username and address.
    pub throttle: crate::auth::throttle::Shared,
    /// How long a new sign-in lasts, in minutes (an admin changes it at
    /// runtime: see [`AppState::session_ttl`]).
    pub session_ttl_minutes: Arc<std::sync::atomic::AtomicI64>,
    /// Ids of sessions just ended, so their WebSockets close.
    pub revocations: broadcast::Sender<Arc<Vec<String>>>,
    /// The job runner (queue, limits, pause / resume / stop).
    pub runner: crate::runner::Runner,
    /// Alerts (raise, fold, acknowledge, resolve) and their notifications.
    pub alerts: crate::alerts::AlertCenter,
    /// Open file-level restore sessions.
    pub restore_sessions: Arc<crate::restore::sessions::Sessions>,
    /// Repository statistics, recomputed only when a repository changes.
    pub repo_stats: Arc<crate::engine::stats::StatsCache>,
    /// The licence tier (`--license-tier`): which restores are allowed.
    pub license_tier: shared_types::recovery::LicenseTier,
    /// Whether the server speaks HTTPS: cookies are `Secure`, responses
    /// carry HSTS, and the browser's origin is `https://`.
    pub tls: bool,
    /// Where restored files may land and platforms may live
    /// (`--restore-root`, `--platform-root`).
    pub roots: Arc<crate::confinement::Roots>,
    /// Lifecycle-event watches of the platforms that report them.
    pub power_watches: Arc<crate::catalog::power_watch::PowerWatches>,
    /// Who may read `GET /metrics`.
    pub metrics_access: Arc<crate::api::metrics::MetricsAccess>,
    /// What the server fixed at start (listen address, catalog, TLS), for `GET /settings`.
    pub start_facts: Arc<crate::api::settings::StartFacts>,
}

impl AppState {
    /// A state with a fresh event bus; returns the sender half of the health
    /// channel for the sampler to feed.
    pub fn new(
        db: DatabaseConnection,
        catalog_kind: CatalogKind,
        data_dir: std::path::PathBuf,
    ) -> (Self, watch::Sender<Option<SystemHealth>>) {
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let (health_tx, latest_health) = watch::channel(None);
        let (revocations, _) = broadcast::channel(64);
        let shutdown = CancellationToken::new();
        let runner = crate::runner::Runner::start(db.clone(), events.clone(), shutdown.clone(), crate::runner::Limits::default());
        runner.set_data_dir(data_dir.clone());
        let alerts = runner.alerts().clone();
        crate::alerts::delivery::spawn(alerts.clone(), data_dir.clone(), shutdown.clone());
        let state = Self {
            db,
            catalog_kind,
            started: Instant::now(),
            events,
            latest_health,
            shutdown,
            data_dir: Arc::new(data_dir.clone()),
            throttle: Arc::default(),
            session_ttl_minutes: Arc::new(std::sync::atomic::AtomicI64::new(DEFAULT_SESSION_TTL_MINUTES)),
            revocations,
            runner: runner.clone(),
            alerts,
            restore_sessions: Arc::default(),
            repo_stats: runner.repo_stats(),
            license_tier: shared_types::recovery::LicenseTier::Enterprise,
            tls: false,
            roots: Arc::new(crate::confinement::Roots::defaults(&data_dir)),
            power_watches: Arc::default(),
            metrics_access: Arc::default(),
            start_facts: Arc::new(crate::api::settings::StartFacts::unstarted(catalog_kind)),
        };
        (state, health_tx)
    }

    /// Tells open WebSockets that these sessions have ended.
    pub fn revoked(&self, session_ids: Vec<String>) {
        if !session_ids.is_empty() {
            let _ = self.revocations.send(Arc::new(session_ids));
        }
    }

    /// How long a sign-in made now lasts.
    pub fn session_ttl(&self) -> chrono::Duration {
        chrono::Duration::minutes(self.session_ttl_minutes.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn set_session_ttl_minutes(&self, minutes: i64) {
        self.session_ttl_minutes.store(minutes, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}
