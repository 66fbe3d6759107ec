//! Systems → Notifications: where alerts are sent. Webhooks (JSON POST
//! signed with HMAC-SHA256 of a shared secret) and SMTP mailboxes
//! (STARTTLS or TLS, AUTH), each with the least severity it receives, its
//! latest delivery (when, delivered or why not), deliveries waiting for a
//! retry and those given up, a Send test button, a change of what it
//! receives, disable / enable, and removal (a second click confirms). Anyone signed
//! in may look; admins add, test and remove.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared_types::alerts::{AlertSeverity, NotificationTarget, SmtpSecurity, SmtpSettings, TargetKind, TargetRequest, WebhookSettings};
use shared_types::auth::Role;

use crate::api;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::pages::systems::SystemsTabs;
use crate::session::{needs, use_session};

#[component]
pub fn NotificationsPage() -> impl IntoView {
    let d = nav::for_path("/systems").expect("Systems is in the navigation table");
    let session = use_session();
    let version = RwSignal::new(0u32);
    let targets = LocalResource::new(move || {
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
                                        let (tt, tr, te) = (t.clone(), t.clone(), t.clone());
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
                <AddTarget on_done=Callback::new(move |r: Result<String, String>| {
                    message.set(Some(match r { Ok(m) => (true, m), Err(m) => (false, m) }));
                    reload();
                }) />
            </Show>
        </section>
    }
}

#[component]
fn AddTarget(on_done: Callback<Result<String, String>>) -> impl IntoView {
    let kind = RwSignal::new(TargetKind::Webhook);
    let name = RwSignal::new(String::new());
    let min = RwSignal::new(AlertSeverity::Warning);
    let url = RwSignal::new(String::new());
    let secret = RwSignal::new(String::new());
    let host = RwSignal::new(String::new());
    let port = RwSignal::new("587".to_string());
    let security = RwSignal::new(SmtpSecurity::Starttls);
    let username = RwSignal::new(String::new());
    let from = RwSignal::new(String::new());
    let to = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
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
                    ca_pem: None,
                }))
            }
        };
        let s = secret.get_untracked();
        let req = TargetRequest {
            name: name.get_untracked().trim().to_owned(),
            kind: k,
            enabled: true,
            min_severity: min.get_untracked(),
            webhook,
            smtp,
            secret: (!s.is_empty()).then_some(s),
        };
        // The same rule the server applies, so the message comes at once.
        if let Err((field, m)) = req.validate(false) {
            error.set(Some(format!("{field}: {m}")));
            return;
        }
        error.set(None);
        spawn_local(async move {
            match api::create_notification_target(req).await {
                Ok(t) => {
                    name.set(String::new());
                    url.set(String::new());
                    secret.set(String::new());
                    on_done.run(Ok(format!("{} added: use Send test to check it.", t.name)));
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let text = |label: &'static str, testid: &'static str, kind: &'static str, value: RwSignal<String>| view! {
        <label>{label}
            <input type=kind data-testid=testid prop:value=move || value.get() on:input=move |ev| value.set(event_target_value(&ev)) />
        </label>
    };
    view! {
        <form class="card" on:submit=submit data-testid="add-target">
            <h2>"ADD A NOTIFICATION TARGET"</h2>
            <div class="form-row">
                <label>"Kind"
                    <select data-testid="target-kind" on:change=move |ev| if let Some(k) = TargetKind::parse(&event_target_value(&ev)) { kind.set(k) }>
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
                    {text("Signing secret (16+ characters)", "target-secret", "password", secret)}
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
                    {text("Password", "target-secret", "password", secret)}
                </div>
                <div class="form-row">
                    {text("From", "target-from", "text", from)}
                    {text("To (comma-separated)", "target-to", "text", to)}
                </div>
            </Show>
            <div class="form-row">
                <button class="button primary" type="submit" data-testid="add-target-submit">"Add target"</button>
                {move || error.get().map(|e| view! { <p class="notice warning" role="alert" data-testid="add-target-error">{e}</p> })}
            </div>
        </form>
    }
}
