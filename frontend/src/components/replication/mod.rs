//! Replication flows in the cockpit (seeds 000 and 003): cards and the
//! DR-site view on FLOWS, the details modal with exactly the actions the
//! flow's state allows (`allowed_actions`, the rule the server enforces) and
//! their confirmations, the New replication form, and RECOVERY's site
//! failover. The shell provides one [`ReplicationHub`], so every page opens
//! the same modals; the flows themselves live in the link's store
//! ([`crate::live::Live::replications`]), kept current by the WebSocket.

pub mod card;
pub mod confirm;
pub mod details;
pub mod form;
pub mod site_failover;
pub mod sites;

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared_types::replication::{lag, Lag, ReplicationFlow, ReplicationState};

use crate::api;
use crate::components::flow_details::{FlowDetailsModal, Inspect};
use crate::format::format_duration;
use crate::live::{use_live, Live};
use crate::session::use_session;

/// What is open for replication, shared by the whole cockpit.
#[derive(Clone, Copy)]
pub struct ReplicationHub {
    /// The flow (id) whose details modal is open.
    pub details: RwSignal<Option<String>>,
    /// The New replication form, open with a preselected VM id (or "").
    pub create: RwSignal<Option<String>>,
    /// A job of a flow, opened from its details (the job view).
    pub job: RwSignal<Option<Inspect>>,
}

/// Provides the hub and seeds the link's store of flows with
/// `GET /replication`, again after every reconnection.
pub fn provide_replication_hub() -> ReplicationHub {
    let hub = ReplicationHub { details: RwSignal::new(None), create: RwSignal::new(None), job: RwSignal::new(None) };
    provide_context(hub);
    let live = use_live();
    let session = use_session();
    Effect::new(move |_| {
        live.link_epoch.track();
        spawn_local(async move {
            if let Ok(list) = session.watch(api::replications().await) {
                live.seed_replications(list);
            }
        });
    });
    hub
}

pub fn use_replication_hub() -> ReplicationHub {
    expect_context::<ReplicationHub>()
}

/// The hub's modals; rendered once by the shell, after the page. The job
/// view comes last so it opens above the details it was opened from.
#[component]
pub fn ReplicationModals() -> impl IntoView {
    let hub = use_replication_hub();
    view! {
        <details::ReplicationDetailsModal />
        <form::NewReplicationModal />
        <FlowDetailsModal target=hub.job />
    }
}

/// Status colour of a state: green healthy, blue while an operation runs or
/// a test VM is up, amber paused or failed over, red failed, grey idle.
pub fn state_class(state: ReplicationState) -> &'static str {
    use ReplicationState::*;
    match state {
        Healthy => "operational",
        Syncing | StartingTest | Testing | EndingTest | FailingOver | RollingBack | CleaningUp => "info",
        Paused | FailedOver => "caution",
        Failed => "warning",
        Idle => "offline",
    }
}

/// The lag now (it grows between updates), by the shared rule, on the server's clock.
pub fn live_lag(live: &Live, flow: &ReplicationFlow) -> Lag {
    let ms = live.server_now_ms() as i64;
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(now) => lag(now, flow.last_consistent_at, flow.created_at, flow.interval_seconds),
        None => flow.lag,
    }
}

/// `15m`, `1h`, `90s`: an interval as people set it.
pub fn interval_text(seconds: u64) -> String {
    match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format_duration(s),
    }
}

/// `lag 3m 12s / RPO 15m`, or `no point yet / RPO 15m`.
pub fn lag_text(l: &Lag, interval_seconds: u64) -> String {
    let rpo = interval_text(interval_seconds);
    match l.seconds {
        Some(s) => format!("lag {} / RPO {rpo}", format_duration(s)),
        None => format!("no point yet / RPO {rpo}"),
    }
}

/// `1 point`, `3 points`.
pub fn points_text(n: u32) -> String {
    if n == 1 { "1 point".into() } else { format!("{n} points") }
}

/// The flows of the store, by name.
pub fn sorted_flows(live: &Live) -> Vec<ReplicationFlow> {
    let mut v: Vec<ReplicationFlow> = live.replications.with(|m| m.values().cloned().collect());
    v.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_lag_read_as_people_say_them() {
        assert_eq!(interval_text(900), "15m");
        assert_eq!(interval_text(3600), "1h");
        assert_eq!(interval_text(86_400), "1d");
        assert_eq!(interval_text(90), "1m 30s");
        assert_eq!(lag_text(&Lag { seconds: Some(192), rpo_missed: false }, 900), "lag 3m 12s / RPO 15m");
        assert_eq!(lag_text(&Lag { seconds: None, rpo_missed: false }, 900), "no point yet / RPO 15m");
        assert_eq!(points_text(1), "1 point");
        assert_eq!(points_text(0), "0 points");
    }

    #[test]
    fn every_state_has_a_colour() {
        for s in ReplicationState::ALL {
            assert!(!state_class(*s).is_empty());
        }
        assert_eq!(state_class(ReplicationState::Failed), "warning");
        assert_eq!(state_class(ReplicationState::Healthy), "operational");
    }
}
