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

#[component]
pub fn Power(p: PowerState) -> impl IntoView {
    let (class, text) = match p {
        PowerState::Running => ("operational", "running"),
        PowerState::Stopped => ("offline", "stopped"),
        PowerState::Suspended => ("caution", "suspended"),
    };
    view! { <span class=format!("power {class}")><span class="power-dot"></span>{text}</span> }
}
