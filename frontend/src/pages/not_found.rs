//! In-app 404.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_location;

#[component]
pub fn NotFoundPage() -> impl IntoView {
    let location = use_location();
    view! {
        <section class="page" data-testid="page-not-found">
            <header class="page-head">
                <h1>"NOT FOUND"</h1>
                <p class="purpose">"The cockpit has no page at " <code>{move || location.pathname.get()}</code> "."</p>
            </header>
            <A href="/command" attr:class="button">"Back to COMMAND"</A>
        </section>
    }
}
