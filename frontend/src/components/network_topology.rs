//! The chosen platforms' networks side by side (name, bridge, subnet,
//! VLAN, isolated, managed VMs on each) and every mapping between them,
//! default and flow-specific, each deletable after a confirmation.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::networks::{MappingPurpose, NetworkMapping, TopologyPlatform};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::modal::Modal;
use crate::components::network_route::{network_facts, NetRoute};
use crate::format::when;
use crate::session::{needs, use_session};

#[component]
pub fn TopologyCard(route: NetRoute) -> impl IntoView {
    let mappings = Memo::new(move |_| {
        let mut m = route.pair_mappings();
        // Failover before test, defaults before flows, then by source network.
        m.sort_by(|a, b| {
            (a.purpose != MappingPurpose::Failover, a.flow_id.is_some(), &a.flow_id, &a.source_network).cmp(&(
                b.purpose != MappingPurpose::Failover,
                b.flow_id.is_some(),
                &b.flow_id,
                &b.source_network,
            ))
        });
        m
    });
    let deleting = RwSignal::new(None::<NetworkMapping>);
    view! {
        <div class="card" data-testid="network-topology">
            <h2>"TOPOLOGY"</h2>
            <div class="net-pair">
                {move || route.source_platform().map(|p| view! { <PlatformNetworks platform=p side="source" route=route mappings=mappings /> })}
                <div class="net-pair-arrow" aria-hidden="true">"→"</div>
                {move || route.target_platform().map(|p| view! { <PlatformNetworks platform=p side="target" route=route mappings=mappings /> })}
            </div>
            <h3 class="section-title">{move || format!(
                "MAPPINGS · {} → {}",
                route.source_platform().map(|p| p.name).unwrap_or_default(),
                route.target_platform().map(|p| p.name).unwrap_or_default()
            )}</h3>
            <MappingTable route=route mappings=mappings deleting=deleting />
            <DeleteMapping route=route deleting=deleting />
        </div>
    }
}

/// One platform's networks; on the source side each shows where it goes
/// for the chosen purpose, on the target side what arrives.
#[component]
fn PlatformNetworks(platform: TopologyPlatform, side: &'static str, route: NetRoute, mappings: Memo<Vec<NetworkMapping>>) -> impl IntoView {
    let title = if side == "source" { "SOURCE" } else { "TARGET" };
    let empty = platform.networks.is_empty();
    view! {
        <div class="net-platform" data-testid=format!("topology-{side}")>
            <div class="net-platform-head">
                <span class="net-side">{title}</span>
                <span class="net-platform-name">{platform.name.clone()}</span>
                <span class="muted small">{platform.kind.label()}</span>
            </div>
            {empty.then(|| view! { <p class="muted small">"No networks recorded: discover this platform (ASSETS → + Add VMs)."</p> })}
            <ul class="net-list">
                {platform.networks.into_iter().map(|n| {
                    let name = n.name.clone();
                    let links = move || {
                        let purpose = route.purpose.get();
                        mappings.with(|all| {
                            all.iter()
                                .filter(|m| m.purpose == purpose && if side == "source" { m.source_network == name } else { m.target_network == name })
                                .map(|m| {
                                    let other = if side == "source" { format!("→ {}", m.target_network) } else { format!("← {}", m.source_network) };
                                    format!("{other} ({})", route.scope_label(m.flow_id.as_deref()))
                                })
                                .collect::<Vec<_>>()
                        })
                    };
                    view! {
                        <li class="net-item" class:isolated=n.isolated data-testid=format!("net-{side}-{}", n.name)
                            data-vlan=n.vlan.map(|v| v.to_string()).unwrap_or_default() data-vms=n.vm_count data-isolated=n.isolated.to_string()>
                            <div class="net-line">
                                <span class="net-name mono">{n.name.clone()}</span>
                                {n.isolated.then(|| view! { <span class="iso-badge" title="No uplink: for test failovers only">"ISOLATED"</span> })}
                                <span class="net-vms small muted">{format!("{} VM{}", n.vm_count, if n.vm_count == 1 { "" } else { "s" })}</span>
                            </div>
                            <div class="net-facts mono small muted">{network_facts(&n)}</div>
                            {move || {
                                let l = links();
                                (!l.is_empty()).then(|| view! { <div class="net-links small">{l.join(" · ")}</div> })
                            }}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </div>
    }
}

#[component]
fn MappingTable(route: NetRoute, mappings: Memo<Vec<NetworkMapping>>, deleting: RwSignal<Option<NetworkMapping>>) -> impl IntoView {
    let session = use_session();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { "Delete this mapping".to_string() } else { needs(Role::Operator, session.user.get().as_ref()) };
    view! {
        <Show
            when=move || mappings.with(|m| !m.is_empty())
            fallback=|| view! { <p class="muted small" data-testid="no-mappings">"No mapping between these platforms yet: apply the recommendations below or map each network."</p> }
        >
            <div class="table-wrap">
                <table class="table mapping-table" data-testid="mapping-table">
                    <thead><tr><th>"Source"</th><th></th><th>"Target"</th><th>"Purpose"</th><th>"Scope"</th><th class="hide-narrow">"Created"</th><th></th></tr></thead>
                    <tbody>
                        {move || mappings.get().into_iter().map(|m| {
                            let scope = route.scope_label(m.flow_id.as_deref());
                            let flow_id = m.flow_id.clone();
                            let doomed = m.clone();
                            view! {
                                <tr data-testid="mapping-row" data-id=m.id.clone() data-source=m.source_network.clone() data-target=m.target_network.clone()
                                    data-purpose=m.purpose.as_str() data-scope=m.flow_id.clone().unwrap_or_else(|| "default".into())>
                                    <td class="mono">{m.source_network.clone()}</td>
                                    <td class="muted" aria-hidden="true">"→"</td>
                                    <td class="mono">{m.target_network.clone()}</td>
                                    <td><span class=if m.purpose == MappingPurpose::Test { "status-pill caution" } else { "status-pill operational" }>{m.purpose.as_str()}</span></td>
                                    <td>
                                        <span>{scope}</span>
                                        {flow_id.map(|id| view! { <span class="muted small mono flow-id">{id}</span> })}
                                    </td>
                                    <td class="mono small hide-narrow" title=m.created_by.clone().map(|b| format!("by {b}")).unwrap_or_default()>{when(m.created_at)}</td>
                                    <td class="actions">
                                        <button class="button small danger" data-testid="mapping-delete" title=title disabled=move || !operator()
                                            on:click=move |_| deleting.set(Some(doomed.clone()))>"Delete"</button>
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </Show>
    }
}

/// The confirmation before a mapping is deleted.
#[component]
fn DeleteMapping(route: NetRoute, deleting: RwSignal<Option<NetworkMapping>>) -> impl IntoView {
    let open = RwSignal::new(false);
    let act = Act::new();
    // Open while a mapping is chosen; closing (Cancel, Escape, the backdrop) forgets it.
    Effect::new(move |_| {
        let want = deleting.with(|d| d.is_some());
        if open.get_untracked() != want {
            open.set(want);
        }
    });
    Effect::new(move |_| {
        if !open.get() && deleting.with_untracked(|d| d.is_some()) {
            deleting.set(None);
            act.error.set(None);
        }
    });
    let confirm = move |_| {
        let Some(m) = deleting.get_untracked() else { return };
        act.run(api::delete_network_mapping(m.id), move |_| {
            deleting.set(None);
            route.version.update(|v| *v += 1);
        });
    };
    view! {
        <Modal open=open title="DELETE NETWORK MAPPING" testid="mapping-delete-modal">
            {move || deleting.get().map(|m| {
                let source = route.platform(&m.source_platform_id).map(|p| p.name).unwrap_or_else(|| m.source_platform_id.clone());
                let target = route.platform(&m.target_platform_id).map(|p| p.name).unwrap_or_else(|| m.target_platform_id.clone());
                view! {
                    <p>
                        "Delete the mapping of " <strong class="mono">{m.source_network.clone()}</strong> {format!(" on {source} to ")}
                        <strong class="mono">{m.target_network.clone()}</strong> {format!(" on {target} ({}, {})?", m.purpose, route.scope_label(m.flow_id.as_deref()))}
                    </p>
                    <p class="muted small">
                        {match m.flow_id {
                            Some(_) => format!("That flow's VMs then use the default mapping of {}, if there is one.", m.source_network),
                            None => format!("A {} of VMs with a NIC on {} is then blocked until the network is mapped again.", m.purpose, m.source_network),
                        }}
                    </p>
                }
            })}
            <ActError act=act testid="mapping-delete-error" />
            <div class="modal-actions">
                <button class="button" on:click=move |_| open.set(false)>"Cancel"</button>
                <button class="button danger" data-testid="mapping-delete-confirm" disabled=move || act.busy.get() on:click=confirm>"Delete mapping"</button>
            </div>
        </Modal>
    }
}
