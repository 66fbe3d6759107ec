//! The app: router, shared state and the cockpit layout.

use leptos::prelude::*;
use leptos::prelude::AnyView;
use leptos_router::components::{Redirect, Route, Router, Routes};
use leptos_router::hooks::use_location;
use leptos_router::{path, Lazy, LazyRoute};

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
use crate::pages::flows::FlowsPage;
use crate::pages::sign_in::SignInPage;
use crate::session::{provide_session, use_session};
use crate::pages::command::CommandPage;
use crate::pages::not_found::NotFoundPage;
use crate::pages::{
    alerts::AlertsPage, assets::AssetsPage, audit::AuditPage, networks::NetworksPage,
    notifications::NotificationsPage, platforms::PlatformsPage, policies::PoliciesPage, recovery::RecoveryPage,
    reports::ReportsPage, repositories::RepositoriesPage, schedules::SchedulesPage, systems::SystemsPage,
    telemetry::TelemetryPage, users::UsersPage,
};

/// A page loaded on demand: `#[lazy]` makes its view a split point, so
/// scripts/lib.sh `build_web` (wasm-split) moves the code only it reaches
/// into a wasm file of its own, fetched the first time the page is shown.
/// COMMAND and FLOWS (the first pages) and the shell stay in the main file.
macro_rules! lazy_pages {
    ($($route:ident => $view:ident => $page:ident;)*) => {$(
        #[leptos::lazy]
        fn $view() -> AnyView {
            view! { <$page /> }.into_any()
        }
        struct $route;
        impl LazyRoute for $route {
            fn data() -> Self {
                Self
            }
            async fn view(_: Self) -> AnyView {
                $view().await
            }
        }
    )*};
}

lazy_pages! {
    AssetsRoute => assets_page => AssetsPage;
    RecoveryRoute => recovery_page => RecoveryPage;
    TelemetryRoute => telemetry_page => TelemetryPage;
    RepositoriesRoute => repositories_page => RepositoriesPage;
    PlatformsRoute => platforms_page => PlatformsPage;
    NetworksRoute => networks_page => NetworksPage;
    SchedulesRoute => schedules_page => SchedulesPage;
    ReportsRoute => reports_page => ReportsPage;
    PoliciesRoute => policies_page => PoliciesPage;
    SystemsRoute => systems_page => SystemsPage;
    UsersRoute => users_page => UsersPage;
    AuditRoute => audit_page => AuditPage;
    NotificationsRoute => notifications_page => NotificationsPage;
    AlertsRoute => alerts_page => AlertsPage;
}

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
                    <Route path=path!("/assets") view={Lazy::<AssetsRoute>::new()} />
                    <Route path=path!("/recovery") view={Lazy::<RecoveryRoute>::new()} />
                    <Route path=path!("/telemetry") view={Lazy::<TelemetryRoute>::new()} />
                    <Route path=path!("/repositories") view={Lazy::<RepositoriesRoute>::new()} />
                    <Route path=path!("/platforms") view={Lazy::<PlatformsRoute>::new()} />
                    <Route path=path!("/networks") view={Lazy::<NetworksRoute>::new()} />
                    <Route path=path!("/schedules") view={Lazy::<SchedulesRoute>::new()} />
                    <Route path=path!("/reports") view={Lazy::<ReportsRoute>::new()} />
                    <Route path=path!("/policies") view={Lazy::<PoliciesRoute>::new()} />
                    <Route path=path!("/systems") view={Lazy::<SystemsRoute>::new()} />
                    <Route path=path!("/systems/users") view={Lazy::<UsersRoute>::new()} />
                    <Route path=path!("/systems/audit") view={Lazy::<AuditRoute>::new()} />
                    <Route path=path!("/systems/notifications") view={Lazy::<NotificationsRoute>::new()} />
                    <Route path=path!("/alerts") view={Lazy::<AlertsRoute>::new()} />
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
