//! Bottom navigation for phones (≤ 480 px): the five primary destinations.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::nav;

#[component]
pub fn BottomNav() -> impl IntoView {
    view! {
        <nav class="bottom-nav" aria-label="Primary (mobile)">
            {nav::primary()
                .map(|d| {
                    view! {
                        <A href=d.path attr:class="bottom-link">
                            <span class="glyph" aria-hidden="true">{d.glyph}</span>
                            <span class="label">{d.label}</span>
                        </A>
                    }
                })
                .collect_view()}
        </nav>
    }
}
