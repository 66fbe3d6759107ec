//! The app: router, shared state and the cockpit layout.

use leptos::prelude::*;
use leptos_router::components::{Redirect, Route, Router, Routes};
use leptos_router::hooks::use_location;
use leptos_router::path;

use crate::components::alerts::AlertStrip;
use crate::components::bottom_nav::BottomNav;
use crate::components::context_panel::ContextPanel;
use crate::components::instrument_panel::InstrumentPanel;
use crate::components::later::Later;
use crate::components::layout::{panels_overlay, provide_layout};
use crate::components::replication::{provide_replication_hub, ReplicationModals};
use crate::components::restore_points::{provide_restore_hub, RestoreModals};
use crate::components::status_bar::StatusBar;
use crate::components::top_bar::TopBar;
use crate::live::provide_live;
use crate::pages::assets::AssetsPage;
use crate::pages::audit::AuditPage;
use crate::pages::flows::FlowsPage;
use crate::pages::sign_in::SignInPage;
use crate::pages::users::UsersPage;
use crate::session::{provide_session, use_session};
use crate::pages::command::CommandPage;
use crate::pages::networks::NetworksPage;
use crate::pages::not_found::NotFoundPage;
use crate::pages::reports::ReportsPage;
use crate::pages::schedules::SchedulesPage;
use crate::pages::platforms::PlatformsPage;
use crate::pages::recovery::RecoveryPage;
use crate::pages::repositories::RepositoriesPage;
use crate::pages::systems::SystemsPage;
use crate::pages::telemetry::TelemetryPage;

#[component]
pub fn App() -> impl IntoView {
    let session = provide_session();
    let signed_in = Memo::new(move |_| session.user.with(|u| u.is_some()));
    view! {
        <Router>
            {move || {
                if !session.checked.get() {
                    view! { <div class="splash">"Connecting to the server…"</div> }.into_any()
                } else if signed_in.get() {
                    view! { <Shell /> }.into_any()
                } else {
                    view! { <SignInPage /> }.into_any()
                }
            }}
        </Router>
    }
}

#[component]
fn Shell() -> impl IntoView {
    provide_live(use_session());
    let layout = provide_layout();
    provide_restore_hub();
    provide_replication_hub();
    // On small screens an open overlay panel closes when the page changes.
    let location = use_location();
    Effect::new(move |prev: Option<String>| {
        let path = location.pathname.get();
        if prev.is_some_and(|p| p != path) {
            layout.close_overlays();
        }
        path
    });
    let class = move || {
        let mut c = String::from("cockpit");
        if layout.left_open.get() {
            c.push_str(" left-open");
        }
        if layout.right_open.get() {
            c.push_str(" right-open");
        }
        c
    };
    view! {
        <div class=class data-testid="cockpit">
            <TopBar />
            <Later><AlertStrip /></Later>
            <aside class="panel left" aria-label="Instrument panel" data-testid="instrument-panel">
                <Later><InstrumentPanel /></Later>
            </aside>
            <main class="main" id="main">
                // The page in a task of its own, after the shell's frame.
                <Later><Routes fallback=NotFoundPage>
                    <Route path=path!("/") view=|| view! { <Redirect path="/command" /> } />
                    <Route path=path!("/command") view=CommandPage />
                    <Route path=path!("/flows") view=FlowsPage />
                    <Route path=path!("/assets") view=AssetsPage />
                    <Route path=path!("/recovery") view=RecoveryPage />
                    <Route path=path!("/telemetry") view=TelemetryPage />
                    <Route path=path!("/repositories") view=RepositoriesPage />
                    <Route path=path!("/platforms") view=PlatformsPage />
                    <Route path=path!("/networks") view=NetworksPage />
                    <Route path=path!("/schedules") view=SchedulesPage />
                    <Route path=path!("/reports") view=ReportsPage />
                    <Route path=path!("/policies") view=crate::pages::policies::PoliciesPage />
                    <Route path=path!("/systems") view=SystemsPage />
                    <Route path=path!("/systems/users") view=UsersPage />
                    <Route path=path!("/systems/audit") view=AuditPage />
                    <Route path=path!("/systems/notifications") view=crate::pages::notifications::NotificationsPage />
                    <Route path=path!("/alerts") view=crate::pages::alerts::AlertsPage />
                </Routes></Later>
            </main>
            <aside class="panel right" aria-label="Context panel" data-testid="context-panel-aside">
                <Later><ContextPanel /></Later>
            </aside>
            <div
                class="panel-backdrop"
                on:click=move |_| {
                    if panels_overlay() {
                        layout.left_open.set(false);
                        layout.right_open.set(false);
                    }
                }
            ></div>
            // The page first (its own task), then the rest, each in a task
            // of its own (components/later.rs).
            <Later><StatusBar /></Later>
            <Later><BottomNav /></Later>
            <Later><RestoreModals /></Later>
            <Later><ReplicationModals /></Later>
        </div>
    }
}
