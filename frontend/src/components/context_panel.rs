//! Right context panel: what the current page is for, and where to go next.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_location;

use crate::nav;

#[component]
pub fn ContextPanel() -> impl IntoView {
    let location = use_location();
    let here = Memo::new(move |_| nav::for_path(&location.pathname.get()));
    view! {
        <div class="panel-title">"CONTEXT"</div>
        {move || match here.get() {
            Some(d) => view! {
                <section class="context-section" data-testid="context-panel">
                    <h3>{d.glyph} " " {d.label}</h3>
                    <p>{d.purpose}</p>
                </section>
            }
            .into_any(),
            None => view! { <section class="context-section"><p class="muted">"No page selected."</p></section> }.into_any(),
        }}
        <section class="context-section">
            <h3>"Go to"</h3>
            <ul class="context-links">
                {nav::DESTINATIONS
                    .iter()
                    .map(|d| view! { <li><A href=d.path><span class="glyph">{d.glyph}</span> {d.label}</A></li> })
                    .collect_view()}
            </ul>
        </section>
    }
}
