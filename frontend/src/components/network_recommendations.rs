//! The recommendation for every source network (target, score, reasons,
//! from the server's `shared_types::networks::recommend`), unmatched
//! networks called out, and one editable row per source network. "Apply N
//! recommendations" and "Save N changes" each send one bulk-mapping
//! request (all or nothing); what the server says about a row is shown
//! under that row's select.

use std::collections::HashMap;

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::networks::{BulkMappingRequest, BulkMappingResult, MappingPurpose, NetworkPair, Recommendation, TopologyNetwork};

use crate::api;
use crate::components::act::ActError;
use crate::components::network_route::{changed_rows, network_facts, network_info, pending_recommendations, row_errors, NetRoute};
use crate::fetch::Fetch;
use crate::session::{needs, use_session};

#[component]
pub fn RecommendationsCard(route: NetRoute) -> impl IntoView {
    let session = use_session();
    let operator = move || session.can(Role::Operator);
    let title = move || if operator() { String::new() } else { needs(Role::Operator, session.user.get().as_ref()) };
    let recs = Fetch::new(move || {
        let (s, t, p) = (route.source.get(), route.target.get(), route.purpose.get());
        async move {
            if s.is_empty() || t.is_empty() || s == t {
                return Ok(None);
            }
            api::network_recommendations(s, t, p).await.map(Some)
        }
    });
    // The last recommendations read, kept while the next are read.
    let current = Memo::new(move |prev: Option<&Option<shared_types::networks::Recommendations>>| match recs.get() {
        Some(Ok(r)) => r,
        Some(Err(_)) => None,
        None => prev.cloned().flatten(),
    });
    // Source network → the target chosen in its row, until saved or reset.
    let edits = RwSignal::new(HashMap::<String, String>::new());
    // Source networks of the last request, in its order: `mappings[i]` in an error names sent[i].
    let sent = RwSignal::new(Vec::<String>::new());
    let result = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        route.source.track();
        route.target.track();
        route.purpose.track();
        route.scope.track();
        edits.set(HashMap::new());
        result.set(None);
        route.save.error.set(None);
        route.save.fields.set(Vec::new());
    });
    // A mapping deleted or stored elsewhere on the page: an earlier refusal no longer applies.
    Effect::new(move |_| {
        route.version.track();
        route.save.error.set(None);
        route.save.fields.set(Vec::new());
    });
    let reset = move |_| {
        edits.set(HashMap::new());
        route.save.error.set(None);
        route.save.fields.set(Vec::new());
    };
    let order = move || route.source_platform().map(|p| p.networks.into_iter().map(|n| n.name).collect::<Vec<_>>()).unwrap_or_default();
    let pending = Memo::new(move |_| current.with(|r| r.as_ref().map(|r| pending_recommendations(&r.recommendations, &route.stored())).unwrap_or_default()));
    let changed = Memo::new(move |_| edits.with(|e| changed_rows(&order(), e, &route.stored())));
    let send = move |pairs: Vec<NetworkPair>| {
        let names: Vec<String> = pairs.iter().map(|p| p.source_network.clone()).collect();
        sent.set(names.clone());
        result.set(None);
        let req = BulkMappingRequest {
            source_platform_id: route.source.get_untracked(),
            target_platform_id: route.target.get_untracked(),
            flow_id: route.scope.get_untracked(),
            mappings: pairs,
            purpose: route.purpose.get_untracked(),
        };
        route.save.run(api::bulk_mapping(req), move |r: BulkMappingResult| {
            result.set(Some(format!("Stored {} mapping{}: {} new, {} replaced.", r.mappings.len(), plural(r.mappings.len()), r.created, r.replaced)));
            edits.update(|e| e.retain(|k, _| !names.contains(k)));
            route.version.update(|v| *v += 1);
        });
    };
    view! {
        <div class="card" data-testid="network-recommendations">
            <div class="card-head">
                <h2>"RECOMMENDATIONS AND MAPPING"</h2>
                <span class="muted small">{move || format!("{} · {}", route.purpose.get(), route.scope_label(route.scope.get().as_deref()))}</span>
            </div>
            <p class="muted small">
                "The strongest signal sets the score: the same name, the same VLAN, names alike once site words (dr-, prod-, -net) are set aside, subnets of one pattern. "
                {move || if route.purpose.get() == MappingPurpose::Test { "A test is offered isolated networks only." } else { "A failover is never offered an isolated network." }}
            </p>
            {move || recs.get().and_then(|r| r.err()).map(|e| view! { <p class="notice warning" data-testid="recommendations-error">{e.message}</p> })}
            {move || current.get().filter(|r| !r.unmatched.is_empty()).map(|r| view! {
                <p class="notice caution" data-testid="unmatched">
                    {format!(
                        "No network of {} suits {}: map {} by hand below{}.",
                        r.target_platform.name,
                        r.unmatched.join(", "),
                        if r.unmatched.len() == 1 { "it" } else { "them" },
                        if r.purpose == MappingPurpose::Test { " (a test needs an isolated network on the target)" } else { "" }
                    )}
                </p>
            })}
            <div class="rec-rows" data-testid="recommendation-rows">
                <div class="rec-row rec-head" aria-hidden="true">
                    <span>"Source network"</span><span>"Recommended"</span><span>"Maps to"</span>
                </div>
                {move || {
                    let Some(source) = route.source_platform() else { return ().into_any() };
                    let targets = route.target_platform().map(|p| p.networks).unwrap_or_default();
                    let r = current.get();
                    source.networks.into_iter().map(|n| {
                        let rec = r.as_ref().and_then(|r| r.recommendations.iter().find(|x| x.source_network == n.name).cloned());
                        let unmatched = r.as_ref().is_some_and(|r| r.unmatched.contains(&n.name));
                        view! { <RecRow network=n rec=rec unmatched=unmatched targets=targets.clone() route=route edits=edits sent=sent /> }
                    }).collect_view().into_any()
                }}
            </div>
            <div class="action-row">
                <button class="button primary" data-testid="apply-recommendations" title=title
                    disabled=move || !operator() || route.save.busy.get() || pending.with(|p| p.is_empty())
                    on:click=move |_| send(pending.get_untracked())>
                    {move || match pending.with(Vec::len) {
                        0 if current.with(|r| r.as_ref().is_some_and(|r| !r.recommendations.is_empty())) => "Recommendations applied".to_string(),
                        0 => "No recommendation".to_string(),
                        n => format!("Apply {n} recommendation{}", plural(n)),
                    }}
                </button>
                <button class="button" data-testid="save-rows" title=title
                    disabled=move || !operator() || route.save.busy.get() || changed.with(|c| c.is_empty())
                    on:click=move |_| send(changed.get_untracked())>
                    {move || match changed.with(Vec::len) { 0 => "No changes".to_string(), n => format!("Save {n} change{}", plural(n)) }}
                </button>
                <button class="button" data-testid="reset-rows" disabled=move || edits.with(|e| e.is_empty()) && route.save.error.with(Option::is_none) on:click=reset>"Reset"</button>
                <Show when=move || route.save.busy.get()>
                    <span class="working"><span class="spinner"></span>"Storing…"</span>
                </Show>
            </div>
            {move || result.get().map(|m| view! { <p class="notice operational" data-testid="mapping-result">{m}</p> })}
            <ActError act=route.save testid="mapping-error" />
        </div>
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn score_class(score: u8) -> &'static str {
    match score {
        80.. => "operational",
        50.. => "caution",
        _ => "warning",
    }
}

/// One source network: its recommendation and the select of the target's networks.
#[component]
fn RecRow(
    network: TopologyNetwork,
    rec: Option<Recommendation>,
    unmatched: bool,
    targets: Vec<TopologyNetwork>,
    route: NetRoute,
    edits: RwSignal<HashMap<String, String>>,
    sent: RwSignal<Vec<String>>,
) -> impl IntoView {
    let name = StoredValue::new(network.name.clone());
    let stored = Memo::new(move |_| route.stored().get(&name.get_value()).map(|m| m.target_network.clone()));
    let inherited = Memo::new(move |_| {
        if route.scope.get().is_none() {
            return None;
        }
        route.defaults().get(&name.get_value()).map(|m| m.target_network.clone())
    });
    let value = Memo::new(move |_| edits.with(|e| e.get(&name.get_value()).cloned()).unwrap_or_else(|| stored.get().unwrap_or_default()));
    let changed = move || value.get() != stored.get().unwrap_or_default();
    let targets = StoredValue::new(targets);
    // The shared rule, before the server is asked: a test only isolated networks, a failover none.
    let hint = move || {
        let v = value.get();
        if v.is_empty() {
            return None;
        }
        let t = targets.with_value(|ts| ts.iter().find(|t| t.name == v).cloned())?;
        route.purpose.get().admits(&network_info(&t)).err()
    };
    let server = move || route.save.fields.with(|f| row_errors(f, &sent.get(), &name.get_value()));
    let testid = network.name.clone();
    let recommended = rec.as_ref().map(|r| r.target_network.clone()).unwrap_or_default();
    let score = rec.as_ref().map(|r| r.score.to_string()).unwrap_or_default();
    view! {
        <div class="rec-row" class:unmatched=unmatched class:changed=changed data-testid=format!("rec-row-{testid}")
            data-recommended=recommended data-score=score
            data-stored=move || stored.get().unwrap_or_default()>
            <div class="rec-source">
                <span class="net-name mono">{network.name.clone()}</span>
                {network.isolated.then(|| view! { <span class="iso-badge">"ISOLATED"</span> })}
                <div class="mono small muted">{network_facts(&network)}</div>
            </div>
            <div class="rec-suggestion">
                {match rec {
                    Some(r) => view! {
                        <div class="rec-target">
                            <span class="muted">"→ "</span><span class="mono">{r.target_network.clone()}</span>
                            <span class=format!("score {}", score_class(r.score)) title="Confidence, 0 to 100">{r.score}</span>
                        </div>
                        <ul class="reasons small muted">{r.reasons.into_iter().map(|m| view! { <li>{m}</li> }).collect_view()}</ul>
                    }.into_any(),
                    None => view! {
                        <span class="status-pill caution" data-testid=format!("rec-unmatched-{testid}")>
                            {if unmatched { "no match: map by hand" } else { "—" }}
                        </span>
                    }.into_any(),
                }}
            </div>
            <div class="rec-edit">
                <select data-testid=format!("rec-select-{testid}") class:field-bad=move || !server().is_empty()
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        edits.update(|e| { e.insert(name.get_value(), v); });
                    }>
                    <option value="" prop:selected=move || value.get().is_empty()>"— not mapped —"</option>
                    {targets.get_value().into_iter().map(|t| {
                        let n = t.name.clone();
                        let label = format!(
                            "{}{}{}",
                            t.name,
                            t.vlan.map(|v| format!(" · VLAN {v}")).unwrap_or_default(),
                            if t.isolated { " · isolated" } else { "" }
                        );
                        view! { <option value=t.name.clone() prop:selected=move || value.get() == n>{label}</option> }
                    }).collect_view()}
                </select>
                <span class="small muted" data-testid=format!("rec-state-{testid}")>
                    {move || match (stored.get(), inherited.get()) {
                        (Some(s), _) if changed() => format!("stored: {s} · unsaved change"),
                        (Some(_), _) => "stored".to_string(),
                        (None, Some(d)) => format!("uses the default: {d}"),
                        (None, None) if changed() => "not mapped yet · unsaved change".to_string(),
                        (None, None) => "not mapped".to_string(),
                    }}
                </span>
                {move || {
                    let errors = server();
                    if errors.is_empty() {
                        hint().map(|h| view! { <span class="field-hint" data-testid=format!("rec-hint-{}", name.get_value())>{h}</span> }).into_any()
                    } else {
                        view! { <span class="field-error" role="alert" data-testid=format!("rec-error-{}", name.get_value())>{errors.join(" ")}</span> }.into_any()
                    }
                }}
            </div>
        </div>
    }
}
