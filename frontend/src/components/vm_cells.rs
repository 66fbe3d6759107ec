//! Small cells of VM tables: protection status, last backup age, power.

use leptos::prelude::*;
use shared_types::platform::PowerState;
use shared_types::vms::ProtectionStatus;

use crate::format::ago;

#[component]
pub fn ProtectionPill(p: ProtectionStatus) -> impl IntoView {
    let class = match p {
        ProtectionStatus::Protected => "operational",
        ProtectionStatus::Partial => "caution",
        ProtectionStatus::Unprotected => "warning",
    };
    view! { <span class=format!("status-pill {class}") data-testid="vm-protection">{p.as_str()}</span> }
}

/// Age of the last backup, ticking with the browser clock.
#[component]
pub fn LastBackup(at: Option<chrono::DateTime<chrono::Utc>>, now: RwSignal<f64>) -> impl IntoView {
    match at {
        Some(at) => view! { <span class="mono" title=crate::format::when(at)>{move || ago(at, now.get())}</span> }.into_any(),
        None => view! { <span class="muted">"never"</span> }.into_any(),
    }
}

/// A VM's power state and, when Sendense saw it begin, for how long
/// (`running · up 2h 5m`).
#[component]
pub fn Power(p: PowerState, since: Option<chrono::DateTime<chrono::Utc>>, now: RwSignal<f64>) -> impl IntoView {
    let (class, text) = match p {
        PowerState::Running => ("operational", "running"),
        PowerState::Stopped => ("offline", "stopped"),
        PowerState::Suspended => ("caution", "suspended"),
    };
    let uptime = match (p, since) {
        (PowerState::Running, Some(at)) => Some(view! {
            <span class="muted small mono" data-testid="vm-uptime" title=format!("running since {} (seen by Sendense)", crate::format::when(at))>
                {move || format!(" · up {}", shared_types::health::format_duration(((now.get() - at.timestamp_millis() as f64) / 1000.0).max(0.0) as u64))}
            </span>
        }),
        _ => None,
    };
    view! { <span class=format!("power {class}")><span class="power-dot"></span>{text}{uptime}</span> }
}
