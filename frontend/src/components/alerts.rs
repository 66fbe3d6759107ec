//! Alerts the shell can raise from what it knows for certain: the live link,
//! the catalog, the data directory and memory. Later slices add job alerts
//! from the server.

use leptos::prelude::*;

use crate::format::format_bytes;
use crate::live::{LinkState, Live};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Caution,
    Warning,
}

impl Level {
    pub fn class(self) -> &'static str {
        match self {
            Level::Caution => "caution",
            Level::Warning => "warning",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub level: Level,
    pub text: String,
}

/// Alerts in force now, most severe first.
pub fn current(live: &Live) -> Vec<Alert> {
    let mut out = Vec::new();
    match live.state.get() {
        LinkState::Reconnecting { polling: false } => out.push(Alert {
            level: Level::Caution,
            text: "Connection to the server lost: reconnecting. Figures on screen are not updating.".into(),
        }),
        LinkState::Reconnecting { polling: true } => out.push(Alert {
            level: Level::Caution,
            text: "Live updates interrupted: the server answers but its WebSocket does not; polling instead.".into(),
        }),
        LinkState::Connecting | LinkState::Live => {}
    }
    if live.catalog_ok.get() == Some(false) {
        out.push(Alert {
            level: Level::Warning,
            text: "The catalog database does not answer: the server cannot record or show protection data.".into(),
        });
    }
    if let Some(h) = live.health.get() {
        let used = h.data_dir_used_percent();
        if h.data_dir_total_bytes > 0 && used >= 80.0 {
            out.push(Alert {
                level: if used >= 90.0 { Level::Warning } else { Level::Caution },
                text: format!(
                    "The data directory's file system is {used:.0}% full ({} free).",
                    format_bytes(h.data_dir_free_bytes)
                ),
            });
        }
        if h.memory_percent() >= 90.0 {
            out.push(Alert { level: Level::Caution, text: format!("Memory is {:.0}% used.", h.memory_percent()) });
        }
    }
    // Alerts the server raised (a failed job...) in the last ten minutes.
    let now = live.now_ms.get();
    live.server_alerts.with(|alerts| {
        for a in alerts.iter().rev().filter(|a| (now - a.at.timestamp_millis() as f64) < 600_000.0).take(3) {
            let level = match a.severity {
                shared_types::ws::AlertSeverity::Critical => Level::Warning,
                _ => Level::Caution,
            };
            out.push(Alert { level, text: format!("{}: {}", a.title, a.message) });
        }
    });
    out.sort_by(|a, b| b.level.cmp(&a.level));
    out
}

/// The strip under the top bar: shown only while alerts are in force.
#[component]
pub fn AlertStrip() -> impl IntoView {
    let live = crate::live::use_live();
    let alerts = Memo::new(move |_| current(&live));
    view! {
        <Show when=move || !alerts.get().is_empty()>
            <div class="alert-strip" role="alert" data-testid="alert-strip">
                <For each=move || alerts.get() key=|a| a.text.clone() let:alert>
                    <div class=format!("alert {}", alert.level.class())>
                        <span class="alert-dot"></span>
                        {alert.text}
                    </div>
                </For>
            </div>
        </Show>
    }
}
