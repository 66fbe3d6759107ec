//! The live link to the server: one WebSocket that reconnects by itself,
//! falling back to polling `GET /api/v1/health` while the socket cannot be
//! opened. Everything the shell shows about the server comes from here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared_types::health::SystemHealth;
use shared_types::jobs::Job;
use shared_types::replication::ReplicationFlow;
use shared_types::ws::{Alert, DiscoveryProgress, JobProgress, ServerMessage};

/// State of the link, as the status bar shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// First connection attempt under way.
    Connecting,
    /// The WebSocket is open and messages arrive.
    Live,
    /// The WebSocket dropped; reconnecting. `polling` when the REST API
    /// still answers.
    Reconnecting { polling: bool },
}

impl LinkState {
    pub fn label(self) -> &'static str {
        match self {
            LinkState::Connecting => "CONNECTING",
            LinkState::Live => "LIVE",
            LinkState::Reconnecting { polling: true } => "POLLING",
            LinkState::Reconnecting { polling: false } => "RECONNECTING",
        }
    }

    /// `data-state` attribute value, stable for tests.
    pub fn key(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Live => "live",
            LinkState::Reconnecting { polling: true } => "polling",
            LinkState::Reconnecting { polling: false } => "reconnecting",
        }
    }
}

/// One health sample as received, with the browser's clock at arrival.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at_ms: f64,
    pub health: SystemHealth,
}

/// How many samples the cockpit keeps (one a second: ten minutes).
pub const HISTORY: usize = 600;

/// Shared through context; every field is a signal.
#[derive(Clone, Copy)]
pub struct Live {
    pub state: RwSignal<LinkState>,
    pub version: RwSignal<Option<String>>,
    pub uptime_seconds: RwSignal<Option<u64>>,
    pub health: RwSignal<Option<SystemHealth>>,
    pub catalog_ok: RwSignal<Option<bool>>,
    /// Browser time (ms) of the last message from the server.
    pub last_update_ms: RwSignal<Option<f64>>,
    /// Messages received since the page loaded.
    pub updates: RwSignal<u64>,
    pub history: RwSignal<Vec<Sample>>,
    /// Browser clock, ticking twice a second, for ages.
    pub now_ms: RwSignal<f64>,
    /// Live figures of jobs, by job id, from `job_progress` events.
    pub jobs: RwSignal<std::collections::HashMap<String, LiveJob>>,
    /// Log lines the link brought per job (the newest [`LOG_LINES`] of the
    /// newest [`LOG_JOBS`] jobs), merged into the catalog's by the job view.
    pub job_logs: RwSignal<std::collections::HashMap<String, Vec<shared_types::jobs::JobLogLine>>>,
    /// Bumped on every `job_update`: lists of flows, jobs and VMs refetch.
    pub jobs_version: RwSignal<u64>,
    /// Bumped when a VM's power changes on its platform: VM lists reload.
    pub vms_version: RwSignal<u64>,
    /// The newest state of each job announced by `job_update`.
    pub job_states: RwSignal<std::collections::HashMap<String, Job>>,
    /// Alerts the server raised (a failed job...), newest last.
    pub server_alerts: RwSignal<Vec<Alert>>,
    /// The alert center's counts (the bell), from `alert_count` events; `None`
    /// until the first one or the first `GET /api/v1/alerts/count`.
    pub alert_count: RwSignal<Option<shared_types::alerts::AlertCount>>,
    /// The newest `discovery_progress` event.
    pub discovery: RwSignal<Option<DiscoveryProgress>>,
    /// Replication flows by id: seeded by `GET /replication` (see
    /// [`crate::components::replication::provide_replication_hub`]), kept
    /// current by `replication_update` and `replication_removed`.
    pub replications: RwSignal<std::collections::BTreeMap<String, ReplicationFlow>>,
    /// Whether `replications` has been seeded once.
    pub replications_loaded: RwSignal<bool>,
    /// Bumped on every `hello` (each new connection): what the link may have
    /// missed while down is fetched again.
    pub link_epoch: RwSignal<u64>,
    /// Server clock minus browser clock, in ms (from `hello` and `heartbeat`).
    pub server_skew_ms: RwSignal<f64>,
}

/// How much throughput history the cockpit keeps per job, in seconds.
pub const JOB_WINDOW_S: f64 = 60.0;

/// Live log lines kept per job, and jobs kept.
pub const LOG_LINES: usize = 500;
pub const LOG_JOBS: usize = 50;

/// A job as the live link knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveJob {
    pub progress: JobProgress,
    /// `performance.now()` when the newest event arrived (for latency).
    pub received_perf_ms: f64,
    /// `(server time in ms since the epoch, bytes per second)`, oldest first,
    /// the last [`JOB_WINDOW_S`] seconds.
    pub history: Vec<(f64, f64)>,
}

/// `performance.now()`, or 0 outside a browser.
pub fn perf_now() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
}

impl Live {
    /// Milliseconds since the last update, if any arrived.
    pub fn age_ms(&self) -> Option<f64> {
        let now = self.now_ms.get();
        self.last_update_ms.get().map(|t| (now - t).max(0.0))
    }

    /// Whether the link is live and fresh (an update in the last 3 s).
    pub fn healthy(&self) -> bool {
        self.state.get() == LinkState::Live && self.age_ms().is_some_and(|a| a < 3_000.0)
    }

    /// The server's clock now (browser clock corrected by the skew), ms since the epoch.
    pub fn server_now_ms(&self) -> f64 {
        self.now_ms.get() + self.server_skew_ms.get()
    }

    /// A flow as the server announced it; an older copy never replaces a newer one.
    pub fn put_replication(&self, flow: ReplicationFlow) {
        self.replications.update(|m| upsert_newer(m, flow));
    }

    /// A flow from the answer to a request: the link may have announced a
    /// later state of the same moment already, so only a strictly newer copy
    /// (or a flow the store lacks) goes in.
    pub fn offer_replication(&self, flow: ReplicationFlow) {
        self.replications.update(|m| {
            if m.get(&flow.id).is_none_or(|old| flow.updated_at > old.updated_at) {
                m.insert(flow.id.clone(), flow);
            }
        });
    }

    /// Seeds the store with a full list: flows missing from it are gone,
    /// flows the link announced since the list was read stay as announced.
    pub fn seed_replications(&self, list: Vec<ReplicationFlow>) {
        self.replications.update(|m| {
            let mut fresh = std::collections::BTreeMap::new();
            for f in list {
                let id = f.id.clone();
                match m.remove(&id) {
                    Some(old) if old.updated_at > f.updated_at => fresh.insert(id, old),
                    _ => fresh.insert(id, f),
                };
            }
            *m = fresh;
        });
        self.replications_loaded.set(true);
    }
}

fn upsert_newer(m: &mut std::collections::BTreeMap<String, ReplicationFlow>, flow: ReplicationFlow) {
    match m.get(&flow.id) {
        Some(old) if old.updated_at > flow.updated_at => {}
        _ => {
            m.insert(flow.id.clone(), flow);
        }
    }
}

pub fn use_live() -> Live {
    expect_context::<Live>()
}

/// Creates the live state, provides it as context and starts the link. The
/// link stops when the calling component is cleaned up (sign-out).
pub fn provide_live(session: crate::session::Session) -> Live {
    let live = Live {
        state: RwSignal::new(LinkState::Connecting),
        version: RwSignal::new(None),
        uptime_seconds: RwSignal::new(None),
        health: RwSignal::new(None),
        catalog_ok: RwSignal::new(None),
        last_update_ms: RwSignal::new(None),
        updates: RwSignal::new(0),
        history: RwSignal::new(Vec::new()),
        now_ms: RwSignal::new(js_sys::Date::now()),
        jobs: RwSignal::new(Default::default()),
        job_logs: RwSignal::new(Default::default()),
        jobs_version: RwSignal::new(0),
        vms_version: RwSignal::new(0),
        job_states: RwSignal::new(Default::default()),
        server_alerts: RwSignal::new(Vec::new()),
        alert_count: RwSignal::new(None),
        discovery: RwSignal::new(None),
        replications: RwSignal::new(Default::default()),
        replications_loaded: RwSignal::new(false),
        link_epoch: RwSignal::new(0),
        server_skew_ms: RwSignal::new(0.0),
    };
    provide_context(live);

    let now = live.now_ms;
    let ticker = gloo_timers::callback::Interval::new(500, move || {
        now.try_set(js_sys::Date::now());
    });
    // Dropped (and so cleared) with the component that provided the link.
    StoredValue::new_local(ticker);
    let stopped = Arc::new(AtomicBool::new(false));
    let stop = stopped.clone();
    on_cleanup(move || stop.store(true, Ordering::Relaxed));

    spawn_local(run(live, session, stopped));
    spawn_local(async move {
        if let Ok(h) = crate::api::health().await {
            live.catalog_ok.try_set(Some(h.catalog.ok));
            live.version.try_update(|v| {
                v.get_or_insert(h.version);
            });
        }
    });
    live
}

fn ws_url() -> String {
    let location = web_sys::window().expect("a browser window").location();
    let scheme = if location.protocol().as_deref() == Ok("https:") { "wss" } else { "ws" };
    let host = location.host().unwrap_or_default();
    format!("{scheme}://{host}{}", shared_types::WS_PATH)
}

/// Close code the server sends when the session behind the socket ended.
const CLOSE_SESSION_ENDED: u16 = 4401;

/// Connects, reads until the socket drops, waits, and connects again, until
/// `stopped` or the session ends.
async fn run(live: Live, session: crate::session::Session, stopped: Arc<AtomicBool>) {
    let mut failures: u32 = 0;
    while !stopped.load(Ordering::Relaxed) {
        if let Ok(socket) = WebSocket::open(&ws_url()) {
            // Keep the write half alive: dropping both halves closes the socket.
            let (_write, mut read) = socket.split();
            while let Some(msg) = read.next().await {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                match msg {
                    Ok(Message::Text(text)) => {
                        if let Ok(msg) = decode(&text) {
                            failures = 0;
                            receive(live, msg);
                        }
                    }
                    Ok(Message::Bytes(_)) => {}
                    Err(WebSocketError::ConnectionClose(ev)) if ev.code == CLOSE_SESSION_ENDED => {
                        session.ended("Your session has ended. Sign in again.");
                        return;
                    }
                    Err(_) => break,
                }
            }
        }
        if stopped.load(Ordering::Relaxed) {
            return;
        }
        failures = failures.saturating_add(1);
        live.state.set(LinkState::Reconnecting { polling: false });
        // A refused upgrade looks like any failure: ask whether we are still signed in.
        if let Err(e) = crate::api::me().await {
            if e.unauthorized() {
                session.ended("Your session has ended. Sign in again.");
                return;
            }
        }
        // While the socket stays down, see whether plain HTTP still answers.
        if failures >= 3 {
            if let Ok(h) = crate::api::health().await {
                live.state.set(LinkState::Reconnecting { polling: true });
                live.catalog_ok.set(Some(h.catalog.ok));
                live.uptime_seconds.set(Some(h.uptime_seconds));
                live.version.set(Some(h.version));
                mark_update(live);
            }
        }
        let backoff = Duration::from_millis(u64::from(250 * failures.min(8)));
        gloo_timers::future::sleep(backoff).await;
    }
}

fn mark_update(live: Live) {
    live.last_update_ms.set(Some(js_sys::Date::now()));
    live.updates.update(|n| *n += 1);
}

/// One frame's message: its `type` first, then the frame again straight
/// into that variant (shared-types' `ServerMessage::deserialize_as`), not
/// through the derive, which buffers every payload in a `Content` tree.
fn decode(text: &str) -> serde_json::Result<ServerMessage> {
    let kind = serde_json::from_str::<shared_types::ws::MessageType>(text)?.kind;
    let mut de = serde_json::Deserializer::from_str(text);
    let msg = ServerMessage::deserialize_as(&kind, &mut de)?;
    de.end()?;
    Ok(msg)
}

fn receive(live: Live, msg: ServerMessage) {
    live.state.set(LinkState::Live);
    match msg {
        ServerMessage::Hello { version, uptime_seconds, server_time } => {
            live.version.set(Some(version));
            live.uptime_seconds.set(Some(uptime_seconds));
            live.server_skew_ms.set(server_time.timestamp_millis() as f64 - js_sys::Date::now());
            live.link_epoch.update(|e| *e += 1);
        }
        ServerMessage::Heartbeat { uptime_seconds, health, server_time } => {
            let skew = server_time.timestamp_millis() as f64 - js_sys::Date::now();
            // Network delay jitters the estimate: follow real clock moves only.
            if (skew - live.server_skew_ms.get_untracked()).abs() > 1_000.0 {
                live.server_skew_ms.set(skew);
            }
            live.uptime_seconds.set(Some(uptime_seconds));
            live.history.update(|h| {
                if h.len() >= HISTORY {
                    h.remove(0);
                }
                h.push(Sample { at_ms: js_sys::Date::now(), health: health.clone() });
            });
            live.health.set(Some(health));
        }
        ServerMessage::JobProgress(p) => {
            let received = perf_now();
            let at = p.at.timestamp_millis() as f64;
            live.jobs.update(|jobs| {
                let entry = jobs.entry(p.job_id.clone()).or_insert_with(|| LiveJob {
                    progress: p.clone(),
                    received_perf_ms: received,
                    history: Vec::new(),
                });
                entry.history.retain(|(t, _)| *t >= at - JOB_WINDOW_S * 1000.0);
                entry.history.push((at, p.throughput_bps as f64));
                entry.progress = p;
                entry.received_perf_ms = received;
            });
        }
        ServerMessage::JobUpdate { job } => {
            live.job_states.update(|m| {
                m.insert(job.id.clone(), job);
            });
            live.jobs_version.update(|v| *v += 1);
        }
        ServerMessage::JobLog { job_id, line } => live.job_logs.update(|m| {
            if !m.contains_key(&job_id) && m.len() >= LOG_JOBS {
                // Forget the job whose newest line is oldest.
                let oldest = m.iter().min_by_key(|(_, v)| v.last().map(|l| l.at)).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    m.remove(&k);
                }
            }
            let lines = m.entry(job_id).or_default();
            if lines.len() >= LOG_LINES {
                lines.remove(0);
            }
            lines.push(line);
        }),
        ServerMessage::DiscoveryProgress(p) => live.discovery.set(Some(p)),
        ServerMessage::ReplicationUpdate { flow } => live.put_replication(*flow),
        ServerMessage::ReplicationRemoved { id } => live.replications.update(|m| {
            m.remove(&id);
        }),
        ServerMessage::VmPower { .. } => live.vms_version.update(|v| *v += 1),
        ServerMessage::AlertCount(count) => live.alert_count.set(Some(count)),
        ServerMessage::Alert(alert) => {
            live.server_alerts.update(|a| {
                if a.len() >= 20 {
                    a.remove(0);
                }
                a.push(alert);
            });
        }
    }
    mark_update(live);
}
