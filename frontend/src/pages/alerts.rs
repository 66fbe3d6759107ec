//! The alert center: every alert the server raised, newest first, with
//! filters (state, severity, source), how often it repeated, who
//! acknowledged it and when, and how it was resolved; operators
//! acknowledge open ones. Reloads when the bell's count changes.

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared_types::alerts::{AlertRecord, AlertSeverity, AlertSourceKind, AlertState};
use shared_types::auth::Role;

use crate::api;
use crate::fetch::Fetch;
use crate::live::use_live;
use crate::pages::planned::PageHeader;
use crate::session::{needs, use_session};

const PAGE: u64 = 50;

fn severity_pill(s: AlertSeverity) -> &'static str {
    match s {
        AlertSeverity::Critical => "warning",
        AlertSeverity::Warning => "caution",
        AlertSeverity::Info => "info",
    }
}

fn state_pill(s: AlertState) -> &'static str {
    match s {
        AlertState::Open => "warning",
        AlertState::Acknowledged => "caution",
        AlertState::Resolved => "operational",
    }
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A filter `<select>`: "any" or one word of the enum.
#[component]
fn Filter(label: &'static str, testid: &'static str, options: Vec<&'static str>, value: RwSignal<String>) -> impl IntoView {
    view! {
        <label>{label}
            <select data-testid=testid on:change=move |ev| value.set(event_target_value(&ev))>
                <option value="" selected=move || value.get().is_empty()>"any"</option>
                {options.into_iter().map(|o| view! { <option value=o selected=move || value.get() == o>{o}</option> }).collect_view()}
            </select>
        </label>
    }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let live = use_live();
    let session = use_session();
    let state = RwSignal::new("open".to_string());
    let severity = RwSignal::new(String::new());
    let source = RwSignal::new(String::new());
    let offset = RwSignal::new(0u64);
    let version = RwSignal::new(0u32);
    let message = RwSignal::new(None::<(bool, String)>);
    // A new filter starts at the first page.
    Effect::new(move |_| {
        state.track();
        severity.track();
        source.track();
        offset.set(0);
    });
    let page = Fetch::new(move || {
        version.track();
        live.alert_count.track();
        let mut q = vec![format!("limit={PAGE}"), format!("offset={}", offset.get())];
        for (k, v) in [("state", state.get()), ("severity", severity.get()), ("source_kind", source.get())] {
            if !v.is_empty() {
                q.push(format!("{k}={v}"));
            }
        }
        async move { session.watch(api::alerts(q.join("&")).await) }
    });
    let acknowledge = Callback::new(move |a: AlertRecord| {
        spawn_local(async move {
            match session.watch(api::acknowledge_alert(a.id.clone()).await) {
                Ok(r) => message.set(Some((true, format!("“{}” acknowledged by {}.", r.title, r.acknowledged_by.unwrap_or_default())))),
                Err(e) => message.set(Some((false, e.message))),
            }
            version.update(|v| *v += 1);
        });
    });
    let operator = move || session.can(Role::Operator);
    view! {
        <section class="page" data-testid="page-alerts">
            <PageHeader label="ALERTS" purpose="Everything the server raised: repeats folded, who acknowledged what, and what resolved by itself." />
            <div class="card">
                <form class="form-row" on:submit=|ev| ev.prevent_default()>
                    <Filter label="State" testid="filter-state" options=AlertState::ALL.iter().map(|s| s.as_str()).collect() value=state />
                    <Filter label="Severity" testid="filter-severity" options=AlertSeverity::ALL.iter().map(|s| s.as_str()).collect() value=severity />
                    <Filter label="Source" testid="filter-source" options=AlertSourceKind::ALL.iter().map(|s| s.as_str()).collect() value=source />
                </form>
            </div>
            {move || message.get().map(|(ok, text)| view! {
                <p class=if ok { "notice operational" } else { "notice warning" } role="status" data-testid="alerts-message">{text}</p>
            })}
            <div class="card">
                <h2>"ALERT HISTORY"</h2>
                <Transition fallback=|| view! { <p class="muted">"Loading alerts…"</p> }>
                    {move || page.get().map(|result| match result {
                        Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                        Ok(p) if p.alerts.is_empty() => view! {
                            <p class="muted" data-testid="no-alerts">"No alert matches these filters."</p>
                        }.into_any(),
                        Ok(p) => {
                            let total = p.total;
                            let from = offset.get_untracked();
                            view! {
                                <div class="table-wrap">
                                <table class="table" data-testid="alerts-table">
                                    <thead><tr>
                                        <th>"Severity"</th><th>"Alert"</th><th>"Source"</th><th>"Seen (UTC)"</th>
                                        <th>"Times"</th><th>"State"</th>
                                    </tr></thead>
                                    <tbody>
                                        {p.alerts.into_iter().map(|a| {
                                            let state_text = match a.state {
                                                AlertState::Open => String::new(),
                                                AlertState::Acknowledged => format!(
                                                    "by {} at {}",
                                                    a.acknowledged_by.clone().unwrap_or_default(),
                                                    a.acknowledged_at.map(when).unwrap_or_default()
                                                ),
                                                AlertState::Resolved => format!(
                                                    "at {}{}",
                                                    a.resolved_at.map(when).unwrap_or_default(),
                                                    a.resolution.clone().map(|r| format!(": {r}")).unwrap_or_default()
                                                ),
                                            };
                                            let can_ack = a.state == AlertState::Open;
                                            let row = a.clone();
                                            view! {
                                                <tr data-testid="alert-row" data-state=a.state.as_str()>
                                                    <td><span class=format!("status-pill {}", severity_pill(a.severity))>{a.severity.as_str()}</span></td>
                                                    <td><strong>{a.title.clone()}</strong><br /><span class="small muted">{a.message.clone()}</span></td>
                                                    <td class="small"><span>{a.source_kind.as_str()}</span><br /><span class="mono muted">{a.source_id.clone().unwrap_or_default()}</span></td>
                                                    <td class="mono small">{format!("first {}", when(a.first_seen))}<br />{format!("last {}", when(a.last_seen))}</td>
                                                    <td class="mono" data-testid="alert-count-cell">{a.count}</td>
                                                    <td class="small">
                                                        <span class=format!("status-pill {}", state_pill(a.state))>{a.state.as_str()}</span>
                                                        <br /><span class="muted">{state_text}</span>
                                                        <Show when=move || can_ack>
                                                            <button
                                                                class="button small"
                                                                data-testid="acknowledge"
                                                                disabled=move || !operator()
                                                                title=move || if operator() { "Take this alert on".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) }
                                                                on:click={
                                                                    let row = row.clone();
                                                                    move |_| acknowledge.run(row.clone())
                                                                }
                                                            >
                                                                "Acknowledge"
                                                            </button>
                                                        </Show>
                                                    </td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                </div>
                                <div class="pager">
                                    <span class="muted small">{format!("{}–{} of {total}", (from + 1).min(total), (from + PAGE).min(total))}</span>
                                    <button class="button small" disabled=from == 0 on:click=move |_| offset.update(|o| *o = o.saturating_sub(PAGE))>"Newer"</button>
                                    <button class="button small" disabled={from + PAGE >= total} on:click=move |_| offset.update(|o| *o += PAGE)>"Older"</button>
                                </div>
                            }.into_any()
                        }
                    })}
                </Transition>
            </div>
        </section>
    }
}
