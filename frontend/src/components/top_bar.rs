//! Top bar (brand, primary navigation, panel toggles, quick actions) and the
//! context bar under it (secondary navigation).

use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::later::Later;
use crate::components::layout::use_layout;
use crate::components::global_search::GlobalSearch;
use crate::components::quick_actions::QuickActions;
use crate::nav;

#[component]
pub fn TopBar() -> impl IntoView {
    let layout = use_layout();
    view! {
        <header class="top-bar">
            <button
                class="icon-button panel-toggle"
                aria-label="Instrument panel"
                data-testid="toggle-left"
                aria-pressed=move || layout.left_open.get().to_string()
                on:click=move |_| layout.left_open.update(|o| *o = !*o)
            >
                "☰"
            </button>
            <A href="/command" attr:class="brand">
                <span class="brand-mark">"S"</span>
                <span class="brand-name">"SENDENSE"</span>
            </A>
            <nav class="primary-nav" aria-label="Primary">
                {nav::primary()
                    .map(|d| {
                        view! {
                            <A href=d.path attr:class="nav-link" attr:data-testid=format!("nav-{}", d.label.to_lowercase())>
                                {d.label}
                            </A>
                        }
                    })
                    .collect_view()}
            </nav>
            // Built after the bar and the page, each in a task of its own
            // (components/later.rs): the first render stays short.
            <Later><QuickActions /></Later>
            <button
                class="icon-button panel-toggle"
                aria-label="Context panel"
                data-testid="toggle-right"
                aria-pressed=move || layout.right_open.get().to_string()
                on:click=move |_| layout.right_open.update(|o| *o = !*o)
            >
                "◧"
            </button>
        </header>
        <nav class="context-bar" aria-label="Secondary">
            {nav::secondary()
                .map(|d| {
                    view! {
                        <A href=d.path attr:class="nav-link secondary" attr:data-testid=format!("nav-{}", d.label.to_lowercase())>
                            <span class="glyph" aria-hidden="true">{d.glyph}</span>
                            {d.label}
                        </A>
                    }
                })
                .collect_view()}
            <Later><GlobalSearch /></Later>
        </nav>
    }
}
