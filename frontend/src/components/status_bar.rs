//! Bottom status bar: link state, server version, live CPU and memory, and
//! the age of the last update. Green while fresh, amber when the link drops.

use leptos::prelude::*;

use crate::format::{age, format_bytes, format_duration, percent};
use crate::live::{use_live, LinkState};

#[component]
pub fn StatusBar() -> impl IntoView {
    let live = use_live();
    let indicator = move || {
        if live.healthy() {
            "operational"
        } else if live.state.get() == LinkState::Connecting {
            "offline"
        } else {
            "caution"
        }
    };
    view! {
        <footer class="status-bar" data-testid="status-bar">
            <span
                class=move || format!("link-indicator {}", indicator())
                data-testid="link-indicator"
                data-state=move || live.state.get().key()
                data-color=indicator
                data-updates=move || live.updates.get().to_string()
            >
                <span class="status-dot"></span>
                {move || live.state.get().label()}
            </span>
            <span class="status-item" data-testid="server-version">
                "v" {move || live.version.get().unwrap_or_else(|| "—".into())}
            </span>
            <span class="status-item mono" data-testid="status-cpu">
                "CPU " {move || live.health.get().map(|h| percent(h.cpu_percent)).unwrap_or_else(|| "—".into())}
            </span>
            <span class="status-item mono" data-testid="status-mem">
                "MEM "
                {move || {
                    live.health
                        .get()
                        .map(|h| format!("{} ({})", format_bytes(h.memory_used_bytes), percent(h.memory_percent())))
                        .unwrap_or_else(|| "—".into())
                }}
            </span>
            <span class="status-item mono hide-narrow">
                "UP " {move || live.uptime_seconds.get().map(format_duration).unwrap_or_else(|| "—".into())}
            </span>
            <span class="status-item mono status-age" data-testid="status-age">
                "Updated " {move || live.age_ms().map(age).map(|a| format!("{a} ago")).unwrap_or_else(|| "never".into())}
            </span>
        </footer>
    }
}
