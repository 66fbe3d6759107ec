//! Systems → Audit log (admin): every mutating action, newest first.

use leptos::prelude::*;
use shared_types::auth::Role;

use crate::api;
use crate::fetch::Fetch;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::pages::systems::SystemsTabs;
use crate::components::require_role::RequireRole;
use crate::session::use_session;

const PAGE: u64 = 50;

#[component]
pub fn AuditPage() -> impl IntoView {
    let d = nav::for_path("/systems").expect("Systems is in the navigation table");
    let session = use_session();
    let offset = RwSignal::new(0u64);
    let page = Fetch::new(move || {
        let offset = offset.get();
        async move { session.watch(api::audit(PAGE, offset).await) }
    });
    view! {
        <section class="page" data-testid="page-audit">
            <PageHeader label=d.label purpose=d.purpose />
            <SystemsTabs />
            <RequireRole role=Role::Admin>
                <div class="card">
                    <h2>"AUDIT LOG"</h2>
                    <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                        {move || page.get().map(|result| match result {
                            Err(e) => view! { <p class="bad">{e.message}</p> }.into_any(),
                            Ok(p) => {
                                let total = p.total;
                                let from = offset.get_untracked();
                                view! {
                                    <table class="table" data-testid="audit-table">
                                        <thead><tr><th>"When (UTC)"</th><th>"Who"</th><th>"Action"</th><th>"Target"</th><th>"Result"</th><th>"From"</th></tr></thead>
                                        <tbody>
                                            {p.entries.into_iter().map(|e| {
                                                let pill = match e.result.as_str() { "ok" => "operational", "denied" => "caution", _ => "warning" };
                                                view! {
                                                <tr>
                                                    <td class="mono small">{e.at.format("%Y-%m-%d %H:%M:%S").to_string()}</td>
                                                    <td>{e.actor.unwrap_or_else(|| "—".into())}</td>
                                                    <td class="mono">{e.action}</td>
                                                    <td>{e.target}</td>
                                                    <td><span class=format!("status-pill {pill}")>{e.result} " " {e.status}</span></td>
                                                    <td class="mono small">{e.address.unwrap_or_default()}</td>
                                                </tr>
                                            }}).collect_view()}
                                        </tbody>
                                    </table>
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
            </RequireRole>
        </section>
    }
}
