//! Systems → Notifications: where alerts are sent. Webhooks (JSON POST
//! signed with HMAC-SHA256 of a shared secret) and SMTP mailboxes
//! (STARTTLS or TLS, AUTH), each with the least severity it receives, its
//! latest delivery (when, delivered or why not), deliveries waiting for a
//! retry and those given up, a Send test button, a change of what it
//! receives, disable / enable, an edit of everything but its kind (a secret
//! left blank keeps the stored one), and removal (a second click confirms).
//! Anyone signed in may look; admins add, edit, test and remove.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use shared_types::alerts::{AlertSeverity, NotificationTarget, SmtpSecurity, SmtpSettings, TargetKind, TargetRequest, WebhookSettings};
use shared_types::auth::Role;

use crate::api;
use crate::fetch::Fetch;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::pages::systems::SystemsTabs;
use crate::session::{needs, use_session};

#[component]
pub fn NotificationsPage() -> impl IntoView {
    let d = nav::for_path("/systems").expect("Systems is in the navigation table");
    let session = use_session();
    let version = RwSignal::new(0u32);
    let targets = Fetch::new(move || {
        version.track();
        async move { session.watch(api::notification_targets().await) }
    });
    let message = RwSignal::new(None::<(bool, String)>);
    let reload = move || version.update(|v| *v += 1);
    let admin = move || session.can(Role::Admin);
    let why = move || needs(Role::Admin, session.user.get().as_ref());
    let test = Callback::new(move |t: NotificationTarget| {
        message.set(Some((true, format!("Sending a test to {}…", t.name))));
        spawn_local(async move {
            match session.watch(api::test_notification_target(t.id.clone()).await) {
                Ok(r) if r.delivered => message.set(Some((true, format!("Test delivered to {} in {} ms.", t.name, r.millis)))),
                Ok(r) => message.set(Some((false, format!("Test to {} failed: {}", t.name, r.error.unwrap_or_default())))),
                Err(e) => message.set(Some((false, e.message))),
            }
            reload();
        });
    });
    // Changes what a target receives or whether it is on; the secret stays.
    let change = Callback::new(move |(t, min, enabled): (NotificationTarget, AlertSeverity, bool)| {
        let req = TargetRequest {
            name: t.name.clone(),
            kind: t.kind,
            enabled,
            min_severity: min,
            webhook: t.webhook.clone(),
            smtp: t.smtp.clone(),
            secret: None,
        };
        spawn_local(async move {
            match session.watch(api::update_notification_target(t.id.clone(), req).await) {
                Ok(n) => message.set(Some((true, format!(
                    "{} now receives {} and worse{}.",
                    n.name,
                    n.min_severity,
                    if n.enabled { "" } else { " (disabled: nothing is sent)" }
                )))),
                Err(e) => message.set(Some((false, e.message))),
            }
            reload();
        });
    });
    // The target being edited (its form replaces the add form).
    let editing = RwSignal::new(None::<NotificationTarget>);
    // The target whose removal waits for a second click.
    let confirm_remove = RwSignal::new(None::<String>);
    let remove = Callback::new(move |t: NotificationTarget| {
        confirm_remove.set(None);
        spawn_local(async move {
            match session.watch(api::delete_notification_target(t.id.clone()).await) {
                Ok(()) => message.set(Some((true, format!("{} removed.", t.name)))),
                Err(e) => message.set(Some((false, e.message))),
            }
            reload();
        });
    });
    view! {
        <section class="page" data-testid="page-notifications">
            <PageHeader label=d.label purpose=d.purpose />
            <SystemsTabs />
            {move || message.get().map(|(ok, text)| view! {
                <p class=if ok { "notice operational" } else { "notice warning" } role="status" data-testid="notifications-message">{text}</p>
            })}
            <div class="card">
                <h2>"NOTIFICATION TARGETS"</h2>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || targets.get().map(|result| match result {
                        Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                        Ok(list) if list.is_empty() => view! {
                            <p class="muted" data-testid="no-targets">"No notification target yet: alerts show in the cockpit only. Add a webhook or a mailbox below."</p>
                        }.into_any(),
                        Ok(list) => view! {
                            <div class="table-wrap">
                            <table class="table" data-testid="targets-table">
                                <thead><tr><th>"Name"</th><th>"Sends to"</th><th>"Receives"</th><th>"Latest delivery"</th><th>"Queue"</th><th></th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|t| {
                                        let dest = match (&t.webhook, &t.smtp) {
                                            (Some(w), _) => format!("POST {}", w.url),
                                            (_, Some(s)) => format!("{} via {}:{} ({})", s.to.join(", "), s.host, s.port, s.security),
                                            _ => "—".to_string(),
                                        };
                                        let last = match &t.last_delivery {
                                            None => view! { <span class="muted">"nothing sent yet"</span> }.into_any(),
                                            Some(l) if l.ok => view! {
                                                <span class="status-pill operational">"delivered"</span>
                                                <span class="small mono">{format!(" {} UTC ({})", l.at.format("%Y-%m-%d %H:%M:%S"), l.event)}</span>
                                            }.into_any(),
                                            Some(l) => view! {
                                                <span class="status-pill warning">"failed"</span>
                                                <span class="small mono">{format!(" {} UTC ({})", l.at.format("%Y-%m-%d %H:%M:%S"), l.event)}</span>
                                                <br /><span class="small" data-testid="target-error">{l.error.clone().unwrap_or_default()}</span>
                                            }.into_any(),
                                        };
                                        let (tt, tr, te, ted) = (t.clone(), t.clone(), t.clone(), t.clone());
                                        let id = t.id.clone();
                                        let armed = Signal::derive(move || confirm_remove.get().as_deref() == Some(id.as_str()));
                                        view! {
                                            <tr data-testid="target-row">
                                                <td><strong>{t.name.clone()}</strong><br /><span class="small muted">{t.kind.as_str()}{if t.enabled { "" } else { " (disabled)" }}</span></td>
                                                <td class="small mono">{dest}</td>
                                                <td>
                                                    {
                                                        let t = t.clone();
                                                        let current = t.min_severity;
                                                        view! {
                                                            <select
                                                                data-testid="target-receives"
                                                                aria-label=format!("What {} receives", t.name)
                                                                disabled=move || !admin()
                                                                on:change=move |ev| if let Some(s) = AlertSeverity::parse(&event_target_value(&ev)) {
                                                                    change.run((t.clone(), s, t.enabled))
                                                                }
                                                            >
                                                                {AlertSeverity::ALL.iter().map(|s| view! {
                                                                    <option value=s.as_str() selected=*s == current>{format!("{s} and worse")}</option>
                                                                }).collect_view()}
                                                            </select>
                                                        }
                                                    }
                                                </td>
                                                <td data-testid="target-last">{last}</td>
                                                <td class="small">{format!("{} waiting, {} given up", t.pending, t.failed)}</td>
                                                <td>
                                                    <button class="button small" data-testid="target-test" disabled=move || !admin() title=move || if admin() { "Send a test notification now".to_string() } else { why() }
                                                        on:click=move |_| test.run(tt.clone())>"Send test"</button>
                                                    <button class="button small" data-testid="target-edit" disabled=move || !admin()
                                                        title=move || if admin() { "Change its name, what it receives and where it sends".to_string() } else { why() }
                                                        on:click=move |_| editing.set(Some(ted.clone()))>"Edit"</button>
                                                    <button class="button small" data-testid="target-toggle" disabled=move || !admin()
                                                        on:click=move |_| change.run((te.clone(), te.min_severity, !te.enabled))>
                                                        {if t.enabled { "Disable" } else { "Enable" }}
                                                    </button>
                                                    <button class="button small" data-testid="target-remove" disabled=move || !admin()
                                                        title=move || if admin() { "Remove this target and its queued notifications".to_string() } else { why() }
                                                        on:click=move |_| if armed.get() { remove.run(tr.clone()) } else { confirm_remove.set(Some(tr.id.clone())) }>
                                                        {move || if armed.get() { "Click again to remove" } else { "Remove" }}
                                                    </button>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            </div>
                        }.into_any(),
                    })}
                </Transition>
            </div>
            <Show when=admin fallback=move || view! { <p class="muted small">{why()} " to add notification targets."</p> }>
                {move || {
                    let on_done = Callback::new(move |r: Result<String, String>| {
                        if r.is_ok() {
                            editing.set(None);
                        }
                        message.set(Some(match r { Ok(m) => (true, m), Err(m) => (false, m) }));
                        reload();
                    });
                    let on_cancel = Callback::new(move |()| editing.set(None));
                    view! { <TargetForm target=editing.get() on_done=on_done on_cancel=on_cancel /> }
                }}
            </Show>
        </section>
    }
}

/// Adds a target (`target` none) or edits one: every field but its kind,
/// filled in; a secret left blank keeps the stored one.
#[component]
fn TargetForm(target: Option<NotificationTarget>, on_done: Callback<Result<String, String>>, on_cancel: Callback<()>) -> impl IntoView {
    let editing = target.clone();
    let t = target.as_ref();
    let smtp = t.and_then(|t| t.smtp.clone());
    let kind = RwSignal::new(t.map_or(TargetKind::Webhook, |t| t.kind));
    let name = RwSignal::new(t.map(|t| t.name.clone()).unwrap_or_default());
    let min = RwSignal::new(t.map_or(AlertSeverity::Warning, |t| t.min_severity));
    let url = RwSignal::new(t.and_then(|t| t.webhook.as_ref()).map(|w| w.url.clone()).unwrap_or_default());
    let secret = RwSignal::new(String::new());
    let host = RwSignal::new(smtp.as_ref().map(|s| s.host.clone()).unwrap_or_default());
    let port = RwSignal::new(smtp.as_ref().map_or("587".to_string(), |s| s.port.to_string()));
    let security = RwSignal::new(smtp.as_ref().map_or(SmtpSecurity::Starttls, |s| s.security));
    let username = RwSignal::new(smtp.as_ref().and_then(|s| s.username.clone()).unwrap_or_default());
    let from = RwSignal::new(smtp.as_ref().map(|s| s.from.clone()).unwrap_or_default());
    let to = RwSignal::new(smtp.as_ref().map(|s| s.to.join(", ")).unwrap_or_default());
    // A private CA is not edited here: it stays as stored.
    let ca_pem = smtp.and_then(|s| s.ca_pem);
    let error = RwSignal::new(None::<String>);
    let form_ref = NodeRef::<leptos::html::Form>::new();
    let is_edit = editing.is_some();
    let secret_stored = editing.as_ref().is_some_and(|t| t.has_secret);
    if is_edit {
        // The form opens below the table: bring it into view.
        request_animation_frame(move || {
            if let Some(f) = form_ref.get_untracked() {
                f.scroll_into_view();
                if let Some(input) = f.query_selector("[data-testid=target-name]").ok().flatten() {
                    if let Ok(input) = input.dyn_into::<web_sys::HtmlElement>() {
                        let _ = input.focus();
                    }
                }
            }
        });
    }
    let submit = {
        let editing = editing.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let k = kind.get_untracked();
            let (webhook, smtp) = match k {
                TargetKind::Webhook => (Some(WebhookSettings { url: url.get_untracked().trim().to_owned() }), None),
                TargetKind::Smtp => {
                    let Ok(p) = port.get_untracked().trim().parse::<u16>() else {
                        error.set(Some("The port is a number from 1 to 65535.".into()));
                        return;
                    };
                    let user = username.get_untracked().trim().to_owned();
                    (None, Some(SmtpSettings {
                        host: host.get_untracked().trim().to_owned(),
                        port: p,
                        security: security.get_untracked(),
                        username: (!user.is_empty()).then_some(user),
                        from: from.get_untracked().trim().to_owned(),
                        to: to.get_untracked().split([',', ' ', ';']).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                        ca_pem: ca_pem.clone(),
                    }))
                }
            };
            let s = secret.get_untracked();
            let req = TargetRequest {
                name: name.get_untracked().trim().to_owned(),
                kind: k,
                enabled: editing.as_ref().is_none_or(|t| t.enabled),
                min_severity: min.get_untracked(),
                webhook,
                smtp,
                // Blank: kept (edit) or none (add).
                secret: (!s.is_empty()).then_some(s),
            };
            // The same rule the server applies, so the message comes at once.
            if let Err((field, m)) = req.validate(secret_stored) {
                error.set(Some(format!("{field}: {m}")));
                return;
            }
            error.set(None);
            let id = editing.as_ref().map(|t| t.id.clone());
            spawn_local(async move {
                let result = match id {
                    Some(id) => api::update_notification_target(id, req).await.map(|t| format!("{} saved.", t.name)),
                    None => api::create_notification_target(req).await.map(|t| format!("{} added: use Send test to check it.", t.name)),
                };
                match result {
                    Ok(m) => {
                        name.set(String::new());
                        url.set(String::new());
                        secret.set(String::new());
                        on_done.run(Ok(m));
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        }
    };
    let text = |label: &'static str, testid: &'static str, kind: &'static str, value: RwSignal<String>| view! {
        <label>{label}
            <input type=kind data-testid=testid prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev))
                on:change=move |ev| value.set(event_target_value(&ev)) />
        </label>
    };
    let secret_field = move |label: &'static str| {
        let placeholder = if secret_stored { "Blank keeps the stored one" } else { "" };
        view! {
            <label>{label}
                <input type="password" data-testid="target-secret" placeholder=placeholder autocomplete="new-password"
                    prop:value=move || secret.get() on:input=move |ev| secret.set(event_target_value(&ev))
                    on:change=move |ev| secret.set(event_target_value(&ev)) />
            </label>
        }
    };
    let title = match &editing {
        Some(t) => format!("EDIT {}", t.name.to_uppercase()),
        None => "ADD A NOTIFICATION TARGET".to_string(),
    };
    let (form_id, submit_id, error_id) =
        if is_edit { ("edit-target", "edit-target-submit", "edit-target-error") } else { ("add-target", "add-target-submit", "add-target-error") };
    view! {
        <form class="card" on:submit=submit data-testid=form_id node_ref=form_ref>
            <h2>{title}</h2>
            <div class="form-row">
                <label>"Kind"
                    <select data-testid="target-kind" disabled=is_edit title=if is_edit { "The kind cannot change: add a new target instead" } else { "" }
                        on:change=move |ev| if let Some(k) = TargetKind::parse(&event_target_value(&ev)) { kind.set(k) }>
                        {TargetKind::ALL.iter().map(|k| view! { <option value=k.as_str() selected=move || kind.get() == *k>{k.as_str()}</option> }).collect_view()}
                    </select>
                </label>
                {text("Name", "target-name", "text", name)}
                <label>"Receives"
                    <select data-testid="target-min-severity" on:change=move |ev| if let Some(s) = AlertSeverity::parse(&event_target_value(&ev)) { min.set(s) }>
                        {AlertSeverity::ALL.iter().map(|s| view! { <option value=s.as_str() selected=move || min.get() == *s>{format!("{s} and worse")}</option> }).collect_view()}
                    </select>
                </label>
            </div>
            <Show when=move || kind.get() == TargetKind::Webhook>
                <div class="form-row">
                    {text("URL", "target-url", "text", url)}
                    {secret_field("Signing secret (16+ characters)")}
                </div>
            </Show>
            <Show when=move || kind.get() == TargetKind::Smtp>
                <div class="form-row">
                    {text("SMTP host", "target-host", "text", host)}
                    {text("Port", "target-port", "text", port)}
                    <label>"Security"
                        <select data-testid="target-security" on:change=move |ev| if let Some(s) = SmtpSecurity::parse(&event_target_value(&ev)) { security.set(s) }>
                            {SmtpSecurity::ALL.iter().map(|s| view! { <option value=s.as_str() selected=move || security.get() == *s>{s.as_str()}</option> }).collect_view()}
                        </select>
                    </label>
                    {text("User", "target-user", "text", username)}
                    {secret_field("Password")}
                </div>
                <div class="form-row">
                    {text("From", "target-from", "text", from)}
                    {text("To (comma-separated)", "target-to", "text", to)}
                </div>
            </Show>
            <div class="form-row">
                <button class="button primary" type="submit" data-testid=submit_id>{if is_edit { "Save" } else { "Add target" }}</button>
                {is_edit.then(|| view! {
                    <button class="button" type="button" data-testid="edit-target-cancel" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                })}
                {move || error.get().map(|e| view! { <p class="notice warning" role="alert" data-testid=error_id>{e}</p> })}
            </div>
        </form>
    }
}
