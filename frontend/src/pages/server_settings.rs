//! Systems → Server (admins): the settings the server applies (from
//! `GET /api/v1/settings`), its TLS certificate and its licence tier with
//! what each tier unlocks. Every setting is set when the server starts: the
//! page names the flag and environment variable that sets it. The runtime
//! ones (sign-in lifetime, retention, GC grace, read cap, tool time limits)
//! an admin also changes here (`PATCH /api/v1/settings`), without a restart.

use leptos::prelude::*;
use shared_types::health::{format_bytes, format_duration};
use shared_types::recovery::LicenseTier;
use shared_types::settings::{feature_label, runtime, source, tier_table, ServerSettings, SettingsUpdate, TlsMode, ToolTimeout};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::session::use_session;

#[component]
pub fn ServerSettingsCards() -> impl IntoView {
    let session = use_session();
    let version = RwSignal::new(0u32);
    // Outlives the cards, which are drawn again from the settings a save answers.
    let saved = RwSignal::new(false);
    let settings = Fetch::new(move || {
        version.get();
        async move { session.watch(api::settings().await) }
    });
    view! {
        <Transition fallback=|| view! { <div class="card"><p class="muted">"Reading the server's settings…"</p></div> }>
            {move || settings.get().map(|result| match result {
                Err(e) => view! { <div class="card"><p class="bad">"The settings could not be read: " {e.message}</p></div> }.into_any(),
                Ok(s) => view! {
                    <SettingsCard settings=s.clone() />
                    <RuntimeSettingsCard settings=s.clone() version=version saved=saved />
                    <TlsCard settings=s.clone() />
                    <LicenceCard tier=s.license.tier />
                }.into_any(),
            })}
        </Transition>
    }
}

/// One setting: its label, value, the flag and variable that set it, and
/// whether it changes here without a restart (and was).
fn row(key: &'static str, value: String, changed: &[String]) -> impl IntoView {
    let src = source(key);
    let label = src.map_or(key, |s| s.label);
    let how = if changed.iter().any(|c| c == key) {
        " · changed here: replaces the flag"
    } else if runtime(key) {
        " · or below, no restart"
    } else {
        " · restart to change"
    };
    view! {
        <dt>{label}</dt>
        <dd data-testid=format!("setting-{key}")>
            <span class="mono">{value}</span>
            {src.map(|s| view! { <span class="setting-source muted small">{s.flag} " · " {s.env} {how}</span> })}
        </dd>
    }
}

fn list(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}

#[component]
fn SettingsCard(settings: ServerSettings) -> impl IntoView {
    let s = settings;
    let read_limit = if s.read_limit_bytes_per_second == 0 {
        "no cap".to_owned()
    } else {
        format!("{}/s", format_bytes(s.read_limit_bytes_per_second))
    };
    let timeouts = s.tool_timeouts.iter().map(|t| format!("{} {}", t.class, format_duration(t.seconds))).collect::<Vec<_>>().join(", ");
    let metrics_token = if s.metrics.token_set { "set (not shown)" } else { "not set" }.to_owned();
    let c = s.changed_at_runtime.clone();
    view! {
        <div class="card" data-testid="server-settings">
            <h2>"SETTINGS"</h2>
            <p class="muted small">"Set when the server starts, by the flag of " <span class="mono">"sendense serve"</span> " or the environment variable beside each. Those marked “no restart” change below at once; the others take a restart with their flag."</p>
            <dl class="facts wide settings-facts">
                {row("listen", s.listen.clone(), &c)}
                {row("data_dir", s.data_dir.clone(), &c)}
                {row("web_dir", s.web_dir.clone(), &c)}
                {row("catalog", format!("{} — {}", s.catalog.kind, s.catalog.location), &c)}
                {row("session_ttl_minutes", format_duration(s.session_ttl_minutes.max(0) as u64 * 60), &c)}
                {row("job_history_retention_days", format!("{} days", s.job_history_retention_days), &c)}
                {row("audit_retention_days", format!("{} days", s.audit_retention_days), &c)}
                {row("gc_grace_seconds", format_duration(s.gc_grace_seconds), &c)}
                {row("read_limit_bytes_per_second", read_limit, &c)}
                {row("restore_roots", list(&s.restore_roots, "none"), &c)}
                {row("platform_roots", list(&s.platform_roots, "none"), &c)}
                {row("tool_timeouts", timeouts, &c)}
                {row("metrics.token_set", metrics_token, &c)}
                {row("metrics.allow", list(&s.metrics.allow, "no address (token only)"), &c)}
                {row("demo_lab", if s.demo_lab { "on" } else { "off" }.to_owned(), &c)}
            </dl>
        </div>
    }
}

/// The settings that change without a restart: a form over their values
/// now; saving sends what changed, the server applies and keeps it.
#[component]
fn RuntimeSettingsCard(settings: ServerSettings, version: RwSignal<u32>, saved: RwSignal<bool>) -> impl IntoView {
    let s = settings;
    let act = Act::new();
    let field = |v: String| RwSignal::new(v);
    let ttl = field(s.session_ttl_minutes.to_string());
    let jobs = field(s.job_history_retention_days.to_string());
    let audit = field(s.audit_retention_days.to_string());
    let grace = field(s.gc_grace_seconds.to_string());
    // MiB/s, as operators think of a read cap (0: none).
    let mib = |b: u64| if b % 1_048_576 == 0 { (b / 1_048_576).to_string() } else { format!("{:.2}", b as f64 / 1_048_576.0) };
    let read = field(mib(s.read_limit_bytes_per_second));
    let tools: Vec<(String, RwSignal<String>)> = s.tool_timeouts.iter().map(|t| (t.class.clone(), field(t.seconds.to_string()))).collect();
    let local_error = RwSignal::new(None::<String>);
    let before = s.clone();
    let tools_form = tools.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        saved.set(false);
        local_error.set(None);
        let number = |label: &str, v: RwSignal<String>| -> Result<u64, String> {
            v.get_untracked().trim().parse::<u64>().map_err(|_| format!("{label}: write a whole number."))
        };
        let build = || -> Result<SettingsUpdate, String> {
            let mut u = SettingsUpdate::default();
            let m = number("Sign-in lasts", ttl)? as i64;
            u.session_ttl_minutes = (m != before.session_ttl_minutes).then_some(m);
            let d = number("Job history kept", jobs)? as u32;
            u.job_history_retention_days = (d != before.job_history_retention_days).then_some(d);
            let d = number("Audit log kept", audit)? as u32;
            u.audit_retention_days = (d != before.audit_retention_days).then_some(d);
            let g = number("GC grace", grace)?;
            u.gc_grace_seconds = (g != before.gc_grace_seconds).then_some(g);
            let r = read.get_untracked().trim().parse::<f64>().ok().filter(|r| *r >= 0.0).ok_or("Backup read limit: write MiB/s, 0 for no cap.")?;
            let r = (r * 1_048_576.0).round() as u64;
            u.read_limit_bytes_per_second = (r != before.read_limit_bytes_per_second).then_some(r);
            let mut limits = Vec::new();
            for (class, v) in &tools_form {
                let secs = number(class, *v)?;
                if before.tool_timeouts.iter().any(|t| &t.class == class && t.seconds != secs) {
                    limits.push(ToolTimeout { class: class.clone(), seconds: secs });
                }
            }
            u.tool_timeouts = (!limits.is_empty()).then_some(limits);
            Ok(u)
        };
        match build() {
            Err(e) => local_error.set(Some(e)),
            Ok(u) if u.keys().is_empty() => local_error.set(Some("Nothing changed: edit a value first.".into())),
            Ok(u) => act.run(api::update_settings(u), move |_| {
                saved.set(true);
                version.update(|v| *v += 1);
            }),
        }
    };
    let input = move |label: &'static str, unit: &'static str, testid: &'static str, value: RwSignal<String>| {
        view! {
            <label>{label}
                <span class="input-unit">
                    <input type="text" inputmode="decimal" data-testid=testid prop:value=move || value.get()
                        on:input=move |ev| value.set(event_target_value(&ev)) />
                    <span class="muted small">{unit}</span>
                </span>
                {move || act.field(testid.trim_start_matches("edit-")).map(|e| view! { <span class="field-error">{e}</span> })}
            </label>
        }
    };
    view! {
        <form class="card" data-testid="runtime-settings" on:submit=submit>
            <h2>"CHANGE WITHOUT RESTART"</h2>
            <p class="muted small">"Applied at once (jobs and sign-ins from now on), kept in the data directory's settings.json and laid over the flags at every start. Every change is in the audit log."</p>
            <div class="form-row">
                {input("Sign-in lasts", "minutes", "edit-session_ttl_minutes", ttl)}
                {input("Job history kept", "days", "edit-job_history_retention_days", jobs)}
                {input("Audit log kept", "days", "edit-audit_retention_days", audit)}
                {input("GC grace", "seconds", "edit-gc_grace_seconds", grace)}
                {input("Backup read limit", "MiB/s (0: none)", "edit-read_limit_bytes_per_second", read)}
            </div>
            <h3 class="form-subhead">"TOOL TIME LIMITS"</h3>
            <div class="form-row">
                {tools.into_iter().map(|(class, v)| {
                    let testid = format!("edit-tool-{class}");
                    view! {
                        <label>{class.clone()}
                            <span class="input-unit">
                                <input type="text" inputmode="numeric" data-testid=testid prop:value=move || v.get()
                                    on:input=move |ev| v.set(event_target_value(&ev)) />
                                <span class="muted small">"s"</span>
                            </span>
                        </label>
                    }
                }).collect_view()}
            </div>
            <div class="action-row">
                <button class="button primary" type="submit" data-testid="runtime-settings-save" disabled=move || act.busy.get()>
                    {move || if act.busy.get() { "Saving…" } else { "Save" }}
                </button>
                <Show when=move || saved.get()>
                    <span class="ok small" role="status" data-testid="runtime-settings-saved">"Saved and applied."</span>
                </Show>
            </div>
            {move || local_error.get().map(|e| view! { <p class="notice warning" role="alert" data-testid="runtime-settings-invalid">{e}</p> })}
            <ActError act=act testid="runtime-settings-error" />
        </form>
    }
}

#[component]
fn TlsCard(settings: ServerSettings) -> impl IntoView {
    let tls = settings.tls;
    let date = |d: Option<chrono::DateTime<chrono::Utc>>| d.map_or("unknown".to_owned(), |d| d.format("%Y-%m-%d %H:%M UTC").to_string());
    let pill = if tls.mode == TlsMode::Off { "status-pill caution" } else { "status-pill operational" };
    view! {
        <div class="card" data-testid="server-tls">
            <h2>"TLS"</h2>
            <dl class="facts wide settings-facts">
                <dt>"HTTPS"</dt>
                <dd data-testid="tls-mode">
                    <span class=pill>{tls.mode.label()}</span>
                    <span class="setting-source muted small">"--tls self-signed · SENDENSE_TLS, or --tls-cert and --tls-key"</span>
                </dd>
                {tls.certificate.map(|c| view! {
                    <dt>"Certificate file"</dt><dd class="mono">{c.path}</dd>
                    <dt>"Subject"</dt><dd class="mono" data-testid="tls-subject">{c.subject}</dd>
                    <dt>"Issuer"</dt><dd class="mono">{c.issuer}</dd>
                    <dt>"Names"</dt><dd class="mono">{list(&c.names, "none")}</dd>
                    <dt>"Valid from"</dt><dd class="mono">{date(c.not_before)}</dd>
                    <dt>"Valid until"</dt><dd class="mono" data-testid="tls-not-after">{date(c.not_after)}</dd>
                    <dt>"SHA-256 fingerprint"</dt><dd class="mono fingerprint" data-testid="tls-fingerprint">{c.fingerprint_sha256}</dd>
                })}
            </dl>
            {(tls.mode == TlsMode::Off).then(|| view! {
                <p class="muted small">"Passwords and session tokens cross the network in the clear: serve HTTPS, or put the server behind a TLS proxy."</p>
            })}
        </div>
    }
}

#[component]
fn LicenceCard(tier: LicenseTier) -> impl IntoView {
    let table = tier_table();
    let features: Vec<_> = table.first().map(|(_, f)| f.iter().map(|(f, _)| *f).collect()).unwrap_or_default();
    view! {
        <div class="card" data-testid="server-licence">
            <h2>"LICENCE"</h2>
            <p>
                "This server runs the " <strong data-testid="licence-tier">{tier.label()}</strong> " tier. "
                <span class="setting-source muted small">"--license-tier · SENDENSE_LICENSE_TIER"</span>
            </p>
            <div class="table-wrap">
                <table class="table" data-testid="licence-table">
                    <thead>
                        <tr>
                            <th>"Feature"</th>
                            {table.iter().map(|(t, _)| view! {
                                <th class=if *t == tier { "current-tier" } else { "" }>{t.label()}{(*t == tier).then_some(" (this server)")}</th>
                            }).collect_view()}
                        </tr>
                    </thead>
                    <tbody>
                        {features.into_iter().map(|f| view! {
                            <tr data-testid=format!("licence-{}", f.as_str())>
                                <td>{feature_label(f)}</td>
                                {table.iter().map(|(t, fs)| {
                                    let on = fs.iter().any(|(g, on)| *g == f && *on);
                                    view! {
                                        <td class=format!("{}{}", if on { "ok" } else { "muted" }, if *t == tier { " current-tier" } else { "" })>
                                            {if on { "✓ included" } else { "—" }}
                                        </td>
                                    }
                                }).collect_view()}
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </div>
    }
}
