//! A page whose features have not shipped: it says what it will hold, and
//! shows no figures.

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::nav;

#[component]
pub fn PlannedPage() -> impl IntoView {
    let location = use_location();
    let here = Memo::new(move |_| nav::for_path(&location.pathname.get()));
    move || {
        here.get().map(|d| {
            view! {
                <section class="page" data-testid=format!("page-{}", d.label.to_lowercase())>
                    <PageHeader label=d.label purpose=d.purpose />
                    <PlannedList holds=d.holds />
                </section>
            }
        })
    }
}

#[component]
pub fn PageHeader(label: &'static str, purpose: &'static str) -> impl IntoView {
    view! {
        <header class="page-head">
            <h1>{label}</h1>
            <p class="purpose">{purpose}</p>
        </header>
    }
}

/// "What this page will hold", as an honest empty state.
#[component]
pub fn PlannedList(holds: &'static [&'static str]) -> impl IntoView {
    view! {
        <div class="card planned">
            <h2>"Not available yet"</h2>
            <p class="muted">"This part of the cockpit has not shipped in this version. It will hold:"</p>
            <ul>{holds.iter().map(|h| view! { <li>{*h}</li> }).collect_view()}</ul>
        </div>
    }
}
