//! Systems → Server (admins): the settings the server applies (from
//! `GET /api/v1/settings`), its TLS certificate and its licence tier with
//! what each tier unlocks. Every setting is set when the server starts: the
//! page names the flag and environment variable that sets it.

use leptos::prelude::*;
use shared_types::health::{format_bytes, format_duration};
use shared_types::recovery::LicenseTier;
use shared_types::settings::{feature_label, source, tier_table, ServerSettings, TlsMode};

use crate::api;
use crate::session::use_session;

#[component]
pub fn ServerSettingsCards() -> impl IntoView {
    let session = use_session();
    let settings = LocalResource::new(move || async move { session.watch(api::settings().await) });
    view! {
        <Transition fallback=|| view! { <div class="card"><p class="muted">"Reading the server's settings…"</p></div> }>
            {move || settings.get().map(|result| match result {
                Err(e) => view! { <div class="card"><p class="bad">"The settings could not be read: " {e.message}</p></div> }.into_any(),
                Ok(s) => view! {
                    <SettingsCard settings=s.clone() />
                    <TlsCard settings=s.clone() />
                    <LicenceCard tier=s.license.tier />
                }.into_any(),
            })}
        </Transition>
    }
}

/// One setting: its label, value, and the flag and variable that set it.
fn row(key: &'static str, value: String) -> impl IntoView {
    let src = source(key);
    let label = src.map_or(key, |s| s.label);
    view! {
        <dt>{label}</dt>
        <dd data-testid=format!("setting-{key}")>
            <span class="mono">{value}</span>
            {src.map(|s| view! { <span class="setting-source muted small">{s.flag} " · " {s.env}</span> })}
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
    view! {
        <div class="card" data-testid="server-settings">
            <h2>"SETTINGS"</h2>
            <p class="muted small">"Set when the server starts, by the flag of " <span class="mono">"sendense serve"</span> " or the environment variable beside each; restart the server to change one."</p>
            <dl class="facts wide settings-facts">
                {row("listen", s.listen.clone())}
                {row("data_dir", s.data_dir.clone())}
                {row("web_dir", s.web_dir.clone())}
                {row("catalog", format!("{} — {}", s.catalog.kind, s.catalog.location))}
                {row("session_ttl_minutes", format_duration(s.session_ttl_minutes.max(0) as u64 * 60))}
                {row("job_history_retention_days", format!("{} days", s.job_history_retention_days))}
                {row("audit_retention_days", format!("{} days", s.audit_retention_days))}
                {row("gc_grace_seconds", format_duration(s.gc_grace_seconds))}
                {row("read_limit_bytes_per_second", read_limit)}
                {row("restore_roots", list(&s.restore_roots, "none"))}
                {row("platform_roots", list(&s.platform_roots, "none"))}
                {row("tool_timeouts", timeouts)}
                {row("metrics.token_set", metrics_token)}
                {row("metrics.allow", list(&s.metrics.allow, "no address (token only)"))}
                {row("demo_lab", if s.demo_lab { "on" } else { "off" }.to_owned())}
            </dl>
        </div>
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
