//! The bell in the top bar, on every page: the alert center's
//! unacknowledged count (from `GET /api/v1/alerts/count`, then kept current
//! by the WebSocket's `alert_count` events), and a panel with what the shell
//! itself sees (link, catalog, disk, memory) and the way to the alert center.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;

use crate::api;
use crate::components::alerts;
use crate::live::use_live;
use crate::session::use_session;

#[component]
pub fn AlertBell() -> impl IntoView {
    let live = use_live();
    let session = use_session();
    let shell = Memo::new(move |_| alerts::current(&live));
    let open = RwSignal::new(false);
    // Asked once at start and after every reconnection (events missed while
    // the link was down are not replayed).
    Effect::new(move |_| {
        live.link_epoch.track();
        spawn_local(async move {
            if let Ok(c) = session.watch(api::alert_count().await) {
                live.alert_count.set(Some(c));
            }
        });
    });
    let count = move || live.alert_count.get().map(|c| c.unacknowledged).unwrap_or(0);
    let has_unacknowledged = move || count() > 0;
    let critical = move || live.alert_count.get().is_some_and(|c| c.critical > 0);
    let label = move || match count() {
        0 => "Alerts: none unacknowledged".to_string(),
        1 => "Alerts: 1 unacknowledged".to_string(),
        n => format!("Alerts: {n} unacknowledged"),
    };
    view! {
        <div class="dropdown">
            <button
                class="icon-button alerts-button"
                data-testid="alerts-button"
                aria-label=label
                title=label
                aria-expanded=move || open.get().to_string()
                on:click=move |_| open.update(|o| *o = !*o)
            >
                <svg class="bell-icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
                    <path d="M8 1.5a4 4 0 0 0-4 4v2.8L2.6 11h10.8L12 8.3V5.5a4 4 0 0 0-4-4zM6.3 12.5a1.8 1.8 0 0 0 3.4 0z" fill="currentColor" />
                </svg>
                <span class="label">"Alerts"</span>
                <Show when=has_unacknowledged>
                    <span
                        class="badge"
                        class:critical=critical
                        data-testid="alert-count"
                    >
                        {count}
                    </span>
                </Show>
            </button>
            <Show when=move || open.get()>
                <div class="dropdown-panel" role="menu" data-testid="alerts-panel">
                    <p>
                        {move || match count() {
                            0 => "No unacknowledged alerts.".to_string(),
                            1 => "1 alert waits for someone to acknowledge it.".to_string(),
                            n => format!("{n} alerts wait for someone to acknowledge them."),
                        }}
                    </p>
                    <For each=move || shell.get() key=|a| a.text.clone() let:a>
                        <p class=format!("alert-line {}", a.level.class())>{a.text}</p>
                    </For>
                    <A href="/alerts" attr:class="button small" attr:data-testid="open-alert-center" on:click=move |_| open.set(false)>
                        "Open the alert center"
                    </A>
                </div>
            </Show>
        </div>
    }
}
