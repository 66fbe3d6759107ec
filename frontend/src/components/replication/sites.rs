//! The DR sites (seed 000's transcend view): replicas grouped by the
//! platform they live on, with how many are in each state, and per replica
//! its state, lag against the RPO, newest point and the test VM while a test
//! runs. Live from the link's store.

use std::collections::BTreeMap;

use leptos::prelude::*;
use shared_types::replication::{ReplicationFlow, ReplicationState};
use shared_types::NamedRef;

use super::{lag_text, live_lag, sorted_flows, state_class, use_replication_hub};
use crate::format::when;
use crate::live::use_live;

#[component]
pub fn DrSites() -> impl IntoView {
    let live = use_live();
    let sites = Memo::new(move |_| {
        let mut by: BTreeMap<(String, String), Vec<ReplicationFlow>> = BTreeMap::new();
        for f in sorted_flows(&live) {
            by.entry((f.target_platform.name.clone(), f.target_platform.id.clone())).or_default().push(f);
        }
        by.into_iter().map(|((name, id), flows)| (NamedRef { id, name }, flows)).collect::<Vec<_>>()
    });
    view! {
        <div data-testid="dr-sites">
            {move || {
                let list = sites.get();
                if !live.replications_loaded.get() {
                    return view! { <p class="muted">"Loading replicas…"</p> }.into_any();
                }
                if list.is_empty() {
                    return view! { <div class="card empty"><p class="muted" data-testid="no-dr-sites">"No replica yet: a replication flow puts one on its target platform."</p></div> }.into_any();
                }
                view! {
                    <div class="card-grid sites">
                        {list.into_iter().map(|(site, flows)| view! { <Site site=site flows=flows /> }).collect_view()}
                    </div>
                }.into_any()
            }}
        </div>
    }
}

#[component]
fn Site(site: NamedRef, flows: Vec<ReplicationFlow>) -> impl IntoView {
    let live = use_live();
    let hub = use_replication_hub();
    let mut counts: Vec<(ReplicationState, usize)> = Vec::new();
    for s in ReplicationState::ALL {
        let n = flows.iter().filter(|f| f.state == *s).count();
        if n > 0 {
            counts.push((*s, n));
        }
    }
    let worst = if flows.iter().any(|f| f.state == ReplicationState::Failed) {
        "warning"
    } else if flows.iter().any(|f| matches!(f.state, ReplicationState::FailedOver | ReplicationState::Paused | ReplicationState::Idle)) {
        "caution"
    } else {
        "operational"
    };
    view! {
        <div class=format!("card site {worst}") data-testid=format!("dr-site-{}", site.name)>
            <div class="card-head">
                <h2>{format!("DR SITE · {}", site.name)}</h2>
                <span class="muted small">{format!("{} replica(s)", flows.len())}</span>
            </div>
            <div class="pill-row" data-testid="dr-site-counts">
                {counts.into_iter().map(|(s, n)| view! {
                    <span class=format!("status-pill {}", state_class(s)) data-state=s.as_str() data-count=n.to_string()>{format!("{n} {}", s.label().to_lowercase())}</span>
                }).collect_view()}
            </div>
            <div class="table-wrap">
                <table class="table" data-testid="dr-site-replicas">
                    <thead><tr><th>"Replica of"</th><th>"State"</th><th>"Lag / RPO"</th><th class="hide-narrow">"Newest point"</th></tr></thead>
                    <tbody>
                        {flows.into_iter().map(|f| {
                            let id = f.id.clone();
                            let fl = StoredValue::new(f.clone());
                            let lag = Memo::new(move |_| fl.with_value(|f| live_lag(&live, f)));
                            view! {
                                <tr data-testid=format!("dr-replica-{}", f.source_vm.name) data-state=f.state.as_str()>
                                    <td>
                                        <button class="link-button vm-name" on:click=move |_| hub.details.set(Some(id.clone()))>{f.source_vm.name.clone()}</button>
                                        <div class="muted small mono">{f.replica_vm_name.clone()}</div>
                                        {f.test_vm_name.clone().map(|n| view! { <div class="small" data-testid="dr-test-vm">"test VM " <span class="mono">{n}</span></div> })}
                                    </td>
                                    <td><span class=format!("status-pill {}", state_class(f.state))>{f.state.label()}</span></td>
                                    <td class=move || if lag.with(|l| l.rpo_missed) { "mono bad" } else { "mono" }>
                                        {move || lag.with(|l| fl.with_value(|f| lag_text(l, f.interval_seconds)))}
                                    </td>
                                    <td class="mono hide-narrow">{f.last_consistent_at.map(when).unwrap_or_else(|| "none yet".into())}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </div>
    }
}
