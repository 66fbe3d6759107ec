//! The app: router, shared state and the cockpit layout.

use leptos::prelude::*;
use leptos::prelude::AnyView;
use leptos_router::components::{Redirect, Route, Router, Routes};
use leptos_router::hooks::use_location;
use leptos::wasm_split::SplitLoaderError;
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

/// A part of the cockpit loaded on demand: a split point (wasm_split, the
/// mechanism under Leptos's `#[lazy]`), so scripts/lib.sh `build_web_wasm`
/// (wasm-split-cli) moves the code only it reaches into a wasm file of its
/// own, `split_<name>-<hash>.wasm`, fetched the first time it is shown.
/// `fallible`: a file that cannot be fetched (the server was updated since
/// the cockpit loaded, and the old build's files are gone, or the link
/// dropped) shows [`not_loaded`] instead of aborting the whole app.
macro_rules! split_view {
    ($($name:ident => $view:ident;)*) => {$(
        #[leptos::wasm_split::wasm_split($name, wasm_split_path = ::leptos::wasm_split, fallible)]
        fn $name() -> Result<AnyView, SplitLoaderError> {
            Ok(view! { <$view /> }.into_any())
        }
    )*};
}

/// Pages loaded on demand; COMMAND and FLOWS (the first pages) and the shell
/// stay in the main file.
macro_rules! lazy_pages {
    ($($route:ident => $name:ident => $page:ident;)*) => {$(
        split_view! { $name => $page; }
        struct $route;
        impl LazyRoute for $route {
            fn data() -> Self {
                Self
            }
            async fn view(_: Self) -> AnyView {
                $name().await.unwrap_or_else(|_| not_loaded(false))
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

// The restore and replication modals (the restore wizard, the file browser,
// restore points and their chain; a replication's details and the New
// replication form), loaded the first time one of them opens.
split_view! {
    restore_modals => RestoreModals;
    replication_modals => ReplicationModals;
}

/// Shown instead of a part whose code could not be fetched: the way back is
/// loading the cockpit again (its page names the current build's files).
fn not_loaded(modal: bool) -> AnyView {
    let reload = |_| {
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
    };
    let notice = view! {
        <div class="notice warning" role="alert" data-testid="code-not-loaded">
            <p>"This part of the cockpit could not be loaded: the server may have been updated since this page was opened, or the connection dropped."</p>
            <button class="button small" data-testid="code-not-loaded-reload" on:click=reload>"Reload the cockpit"</button>
        </div>
    };
    if modal {
        view! {
            <div class="modal-backdrop">
                <div class="modal" role="dialog" aria-modal="true" aria-label="Not loaded">
                    <div class="modal-body">{notice}</div>
                </div>
            </div>
        }
        .into_any()
    } else {
        notice.into_any()
    }
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
    let restore = provide_restore_hub();
    let replication = provide_replication_hub();
    // Once true, true for good: the modals stay mounted after they loaded.
    let restore_wanted = Memo::new(move |was: Option<&bool>| {
        let open = restore.points_of.with(Option::is_some)
            | restore.chain_of.with(Option::is_some)
            | restore.browsing.with(Option::is_some)
            | restore.restoring.with(Option::is_some);
        was.copied().unwrap_or(false) || open
    });
    let replication_wanted = Memo::new(move |was: Option<&bool>| {
        let open = replication.details.with(Option::is_some)
            | replication.create.with(Option::is_some)
            | replication.job.with(Option::is_some);
        was.copied().unwrap_or(false) || open
    });
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
            {move || restore_wanted.get().then(|| Suspend::new(async { restore_modals().await.unwrap_or_else(|_| not_loaded(true)) }))}
            {move || replication_wanted.get().then(|| Suspend::new(async { replication_modals().await.unwrap_or_else(|_| not_loaded(true)) }))}
        </div>
    }
}
