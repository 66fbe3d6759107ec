//! Systems → Users (admin): list, add, change role, disable / enable,
//! reset password, remove.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared_types::auth::{validate_password, validate_username, CreateUserRequest, Role, UpdateUserRequest, User};

use crate::api;
use crate::fetch::Fetch;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::pages::systems::SystemsTabs;
use crate::components::require_role::RequireRole;
use crate::session::use_session;

#[component]
pub fn UsersPage() -> impl IntoView {
    let d = nav::for_path("/systems").expect("Systems is in the navigation table");
    view! {
        <section class="page" data-testid="page-users">
            <PageHeader label=d.label purpose=d.purpose />
            <SystemsTabs />
            <RequireRole role=Role::Admin>
                <UserAdmin />
            </RequireRole>
        </section>
    }
}

#[component]
fn UserAdmin() -> impl IntoView {
    let session = use_session();
    let version = RwSignal::new(0u32);
    let users = Fetch::new(move || {
        version.track();
        async move { session.watch(api::users().await) }
    });
    let message = RwSignal::new(None::<(bool, String)>);
    let reload = move || version.update(|v| *v += 1);
    // Runs an API action, then reloads and reports how it went.
    let act = Callback::new(move |fut: Action| {
        spawn_local(async move {
            match session.watch(fut.await) {
                Ok(done) => message.set(Some((true, done))),
                Err(e) => message.set(Some((false, e.message))),
            }
            reload();
        });
    });

    view! {
        <AddUser on_done=Callback::new(move |result: Result<String, String>| {
            message.set(Some(match result { Ok(m) => (true, m), Err(m) => (false, m) }));
            reload();
        }) />
        {move || message.get().map(|(ok, text)| view! {
            <p class=if ok { "notice operational" } else { "notice warning" } data-testid="users-message" role="status">{text}</p>
        })}
        <div class="card">
            <h2>"USERS"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading users…"</p> }>
                {move || users.get().map(|result| match result {
                    Err(e) => view! { <p class="bad">{e.message}</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table" data-testid="users-table">
                            <thead><tr><th>"User"</th><th>"Role"</th><th>"Status"</th><th>"Last sign-in"</th><th>"Actions"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|u| view! { <UserRow user=u act=act /> }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                })}
            </Transition>
        </div>
    }
}

/// An API call whose success message is shown; see `UserAdmin`.
type Action = std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, api::ApiError>>>>;

#[component]
fn UserRow(user: User, act: Callback<Action>) -> impl IntoView {
    let session = use_session();
    let is_me = session.user.get_untracked().is_some_and(|me| me.id == user.id);
    let reset_open = RwSignal::new(false);
    let new_password = RwSignal::new(String::new());
    let (id, name) = (user.id.clone(), user.username.clone());

    let change_role = {
        let (id, name) = (id.clone(), name.clone());
        move |ev: leptos::ev::Event| {
            let Some(role) = Role::parse(&event_target_value(&ev)) else { return };
            let (id, name) = (id.clone(), name.clone());
            act.run(Box::pin(async move {
                api::update_user(id, UpdateUserRequest { role: Some(role), disabled: None }).await?;
                Ok(format!("{name} is now {role}."))
            }));
        }
    };
    let toggle = {
        let (id, name, disabled) = (id.clone(), name.clone(), user.disabled);
        move |_| {
            let (id, name) = (id.clone(), name.clone());
            act.run(Box::pin(async move {
                api::update_user(id, UpdateUserRequest { role: None, disabled: Some(!disabled) }).await?;
                Ok(format!("{name} is {}.", if disabled { "enabled" } else { "disabled; their sessions ended" }))
            }));
        }
    };
    let remove = {
        let (id, name) = (id.clone(), name.clone());
        move |_| {
            let confirmed = web_sys::window()
                .and_then(|w| w.confirm_with_message(&format!("Remove the user {name}?")).ok())
                .unwrap_or(false);
            if confirmed {
                let (id, name) = (id.clone(), name.clone());
                act.run(Box::pin(async move {
                    api::delete_user(id).await?;
                    Ok(format!("{name} was removed."))
                }));
            }
        }
    };
    let reset = {
        let (id, name) = (id.clone(), name.clone());
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let password = new_password.get_untracked();
            let (id, name) = (id.clone(), name.clone());
            reset_open.set(false);
            new_password.set(String::new());
            act.run(Box::pin(async move {
                validate_password(&password).map_err(|m| api::ApiError::new(400, m))?;
                api::set_password(id, password).await?;
                Ok(format!("{name}'s password was reset; their sessions ended."))
            }));
        }
    };
    let role = user.role;
    view! {
        <tr data-testid=format!("user-row-{}", user.username)>
            <td>
                <strong>{user.username.clone()}</strong>
                {is_me.then(|| view! { <span class="muted small">" (you)"</span> })}
            </td>
            <td>
                <select on:change=change_role aria-label=format!("Role of {}", user.username)>
                    {Role::ALL.into_iter().map(|r| view! { <option value=r.as_str() selected=r == role>{r.as_str()}</option> }).collect_view()}
                </select>
            </td>
            <td>
                {if user.disabled {
                    view! { <span class="status-pill offline">"disabled"</span> }.into_any()
                } else {
                    view! { <span class="status-pill operational">"enabled"</span> }.into_any()
                }}
            </td>
            <td class="mono small">
                {user.last_login_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "never".into())}
            </td>
            <td><div class="actions">
                <button class="button small" on:click=toggle disabled=is_me title=if is_me { "You cannot disable yourself" } else { "" }>
                    {if user.disabled { "Enable" } else { "Disable" }}
                </button>
                <button class="button small" on:click=move |_| reset_open.update(|o| *o = !*o)>"Reset password"</button>
                <button class="button small danger" on:click=remove disabled=is_me>"Remove"</button>
                <Show when=move || reset_open.get()>
                    <form class="inline-form" on:submit=reset.clone()>
                        <input
                            type="password"
                            placeholder="New password (10+ characters)"
                            aria-label="New password"
                            prop:value=move || new_password.get()
                            on:input=move |ev| new_password.set(event_target_value(&ev))
                        />
                        <button class="button small primary" type="submit">"Set"</button>
                    </form>
                </Show>
            </div></td>
        </tr>
    }
}

#[component]
fn AddUser(on_done: Callback<Result<String, String>>) -> impl IntoView {
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Viewer);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let req = CreateUserRequest { username: username.get_untracked(), password: password.get_untracked(), role: role.get_untracked() };
        if let Err(m) = validate_username(&req.username).and_then(|_| validate_password(&req.password)) {
            on_done.run(Err(m));
            return;
        }
        spawn_local(async move {
            match api::create_user(req).await {
                Ok(u) => {
                    username.set(String::new());
                    password.set(String::new());
                    on_done.run(Ok(format!("{} was added as {}.", u.username, u.role)));
                }
                Err(e) => on_done.run(Err(e.message)),
            }
        });
    };
    view! {
        <form class="card add-user" on:submit=submit data-testid="add-user">
            <h2>"ADD A USER"</h2>
            <div class="form-row">
                <label>"Username"
                    <input type="text" data-testid="add-user-name" prop:value=move || username.get() on:input=move |ev| username.set(event_target_value(&ev)) />
                </label>
                <label>"Password"
                    <input type="password" data-testid="add-user-password" prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev)) />
                </label>
                <label>"Role"
                    <select data-testid="add-user-role" on:change=move |ev| if let Some(r) = Role::parse(&event_target_value(&ev)) { role.set(r) }>
                        {Role::ALL.into_iter().map(|r| view! { <option value=r.as_str() selected=move || role.get() == r>{r.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                <button class="button primary" type="submit" data-testid="add-user-submit">"Add user"</button>
            </div>
        </form>
    }
}
