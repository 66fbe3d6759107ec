//! The sign-in screen, shown whenever no one is signed in.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::session::use_session;

#[component]
pub fn SignInPage() -> impl IntoView {
    let session = use_session();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let (u, p) = (username.get_untracked(), password.get_untracked());
        if u.trim().is_empty() || p.is_empty() {
            error.set(Some("Enter your username and password.".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::login(u, p).await {
                Ok(resp) => {
                    session.ended_reason.set(None);
                    password.set(String::new());
                    session.user.set(Some(resp.user));
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };

    view! {
        <div class="sign-in-screen" data-testid="sign-in">
            <form class="sign-in-card" on:submit=submit>
                <div class="brand big">
                    <span class="brand-mark">"S"</span>
                    <span class="brand-name">"SENDENSE"</span>
                </div>
                <p class="muted">"Sign in to the cockpit."</p>
                {move || session.ended_reason.get().map(|r| view! { <p class="notice caution">{r}</p> })}
                <label>
                    "Username"
                    <input
                        type="text"
                        name="username"
                        autocomplete="username"
                        data-testid="sign-in-username"
                        prop:value=move || username.get()
                        on:input=move |ev| username.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    "Password"
                    <input
                        type="password"
                        name="password"
                        autocomplete="current-password"
                        data-testid="sign-in-password"
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev))
                    />
                </label>
                {move || error.get().map(|e| view! { <p class="notice warning" role="alert" data-testid="sign-in-error">{e}</p> })}
                <button class="button primary" type="submit" data-testid="sign-in-submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
                <p class="muted small">
                    "First start: the user is admin; its password is in the data directory's "
                    <code>"initial-admin-password"</code> " file (or SENDENSE_ADMIN_PASSWORD)."
                </p>
            </form>
        </div>
    }
}
