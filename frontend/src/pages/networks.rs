//! Networks: which network of a target platform each network of a source
//! platform becomes at failover or in a test failover, as the default of
//! the platform pair or for one flow. The operator picks the pair, the
//! purpose and the scope; sees both platforms' networks and the mappings
//! between them; applies the server's recommendations or edits each row
//! (each as one bulk-mapping request, all or nothing); deletes a mapping;
//! and checks chosen VMs against the target before a failover.

use leptos::prelude::*;
use shared_types::networks::{MappingPurpose, Topology};

use crate::components::network_recommendations::RecommendationsCard;
use crate::components::network_route::{purpose_help, NetRoute};
use crate::components::network_topology::TopologyCard;
use crate::components::network_validation::ValidationCard;
use crate::nav;
use crate::pages::planned::PageHeader;

#[component]
pub fn NetworksPage() -> impl IntoView {
    let d = nav::for_path("/networks").expect("Networks is in the navigation table");
    let route = NetRoute::new();
    // A first choice once the topology is read: the platform with the most
    // VMs on its networks as the source, a DR platform (else another) as the target.
    Effect::new(move |_| {
        route.topology.with(|t| {
            if let Some(t) = t {
                if route.source.get_untracked().is_empty() {
                    if let Some((s, t)) = default_pair(t) {
                        route.source.set(s);
                        route.target.set(t);
                    }
                }
            }
        })
    });
    view! {
        <section class="page networks-page" data-testid="page-networks">
            <PageHeader label=d.label purpose=d.purpose />
            {move || route.topology_error.get().map(|e| view! { <p class="notice warning" data-testid="topology-error">{e.message}</p> })}
            <RoutePicker route=route />
            <Show
                when=move || route.ready()
                fallback=move || view! {
                    <div class="card">
                        <p class="muted" data-testid="networks-choose">
                            {move || if route.topology.with(|t| t.as_ref().is_some_and(|t| t.platforms.len() < 2)) {
                                "Mapping needs two platforms: add the target platform in ASSETS (+ Add VMs) and discover it."
                            } else {
                                "Choose a source and a different target platform."
                            }}
                        </p>
                    </div>
                }
            >
                <TopologyCard route=route />
                <RecommendationsCard route=route />
                <ValidationCard route=route />
            </Show>
        </section>
    }
}

/// (source, target) platform ids for a first view.
fn default_pair(t: &Topology) -> Option<(String, String)> {
    let vms = |p: &shared_types::networks::TopologyPlatform| p.networks.iter().map(|n| n.vm_count).sum::<u64>();
    let source = t.platforms.iter().max_by_key(|p| vms(p))?;
    let others = || t.platforms.iter().filter(|p| p.id != source.id);
    let target = others().find(|p| p.name.to_lowercase().contains("dr")).or_else(|| others().next())?;
    Some((source.id.clone(), target.id.clone()))
}

/// Source, target, purpose and scope, each with what the server said about it.
#[component]
fn RoutePicker(route: NetRoute) -> impl IntoView {
    let platforms = move || route.topology.with(|t| t.as_ref().map(|t| t.platforms.clone()).unwrap_or_default());
    let field_note = move |field: &'static str| {
        move || route.field_error(field).map(|m| view! { <span class="field-error" data-testid=format!("field-error-{field}")>{m}</span> })
    };
    let platform_select = move |signal: RwSignal<String>, testid: &'static str| {
        view! {
            <select data-testid=testid on:change=move |ev| signal.set(event_target_value(&ev))>
                <option value="" prop:selected=move || signal.get().is_empty()>"— choose —"</option>
                {move || platforms().into_iter().map(|p| {
                    let id = p.id.clone();
                    view! {
                        <option value=p.id.clone() prop:selected=move || signal.get() == id>
                            {format!("{} ({})", p.name, p.kind.label())}
                        </option>
                    }
                }).collect_view()}
            </select>
        }
    };
    let purpose_button = move |p: MappingPurpose, label: &'static str| {
        view! {
            <button type="button" class="seg-button" data-testid=format!("purpose-{}", p.as_str())
                aria-pressed=move || (route.purpose.get() == p).to_string() on:click=move |_| route.purpose.set(p)>{label}</button>
        }
    };
    view! {
        <div class="card" data-testid="network-route">
            <h2>"ROUTE"</h2>
            <div class="route-grid">
                <label>"Source platform"
                    {platform_select(route.source, "source-platform")}
                    {field_note("source_platform_id")}
                </label>
                <span class="route-arrow" aria-hidden="true">"→"</span>
                <label>"Target platform"
                    {platform_select(route.target, "target-platform")}
                    {field_note("target_platform_id")}
                </label>
                <label>"Scope"
                    <select data-testid="scope-select" on:change=move |ev| {
                        let v = event_target_value(&ev);
                        route.scope.set((!v.is_empty()).then_some(v));
                    }>
                        <option value="" prop:selected=move || route.scope.get().is_none()>"Default of the platform pair"</option>
                        {move || route.flow_names.get().into_iter().map(|(id, name)| {
                            let mine = id.clone();
                            view! { <option value=id prop:selected=move || route.scope.get().as_deref() == Some(mine.as_str())>{format!("Flow: {name}")}</option> }
                        }).collect_view()}
                    </select>
                    {field_note("flow_id")}
                </label>
            </div>
            <div class="purpose-row">
                <div class="seg" role="group" aria-label="Purpose">
                    {purpose_button(MappingPurpose::Failover, "Failover")}
                    {purpose_button(MappingPurpose::Test, "Test failover")}
                </div>
                <p class="muted small purpose-help" data-testid="purpose-help">{move || purpose_help(route.purpose.get())}</p>
            </div>
            <p class="muted small">
                {move || if route.scope.get().is_some() {
                    "A flow's own mapping overrides the default of the pair for that flow only; the flow's other networks keep the defaults."
                } else {
                    "Defaults apply to every flow between these platforms that has no mapping of its own. Nothing falls back to a network of the same name: every NIC must be mapped."
                }}
            </p>
        </div>
    }
}
