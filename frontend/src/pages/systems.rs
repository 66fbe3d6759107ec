//! Systems: this server (from `GET /api/v1/health`), its settings, TLS and
//! licence (admins, `server_settings`), users and the audit log.

use leptos::prelude::*;
use leptos_router::components::A;

use shared_types::auth::Role;

use crate::components::require_role::RequireRole;
use crate::fetch::Fetch;
use crate::format::format_duration;
use crate::pages::server_settings::ServerSettingsCards;
use crate::nav;
use crate::pages::planned::{PageHeader, PlannedList};

/// Tabs shared by the Systems pages.
#[component]
pub fn SystemsTabs() -> impl IntoView {
    view! {
        <nav class="tabs" aria-label="Systems">
            {nav::SYSTEMS_TABS
                .iter()
                .map(|t| view! { <A href=t.path exact=true attr:class="tab" attr:data-testid=t.testid>{t.label}</A> })
                .collect_view()}
        </nav>
    }
}

#[component]
pub fn SystemsPage() -> impl IntoView {
    let d = nav::for_path("/systems").expect("Systems is in the navigation table");
    let health = Fetch::new(crate::api::health);
    view! {
        <section class="page" data-testid="page-systems">
            <PageHeader label=d.label purpose=d.purpose />
            <SystemsTabs />
            <div class="card">
                <h2>"SERVER"</h2>
                <Transition fallback=|| view! { <p class="muted">"Asking the server…"</p> }>
                    {move || health.get().map(|result| match result {
                        Ok(h) => view! {
                            <dl class="facts wide">
                                <dt>"Version"</dt><dd class="mono">{h.version}</dd>
                                <dt>"Uptime"</dt><dd class="mono">{format_duration(h.uptime_seconds)}</dd>
                                <dt>"Server time"</dt><dd class="mono">{h.server_time.format("%Y-%m-%d %H:%M:%S UTC").to_string()}</dd>
                                <dt>"Catalog"</dt>
                                <dd>{h.catalog.backend} " — " {if h.catalog.ok { "answering".to_string() } else { h.catalog.error.unwrap_or_default() }}</dd>
                            </dl>
                        }.into_any(),
                        Err(e) => view! { <p class="bad">"The server did not answer: " {e}</p> }.into_any(),
                    })}
                </Transition>
            </div>
            <RequireRole role=Role::Admin>
                <ServerSettingsCards />
            </RequireRole>
            <PlannedList holds=d.holds />
        </section>
    }
}
