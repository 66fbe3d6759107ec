//! FLOWS: what runs now as FlowCards (live from the WebSocket), replication
//! flows as cards and their DR sites (live from the link's store), every
//! backup flow with its state and actions, recent runs; Pause All and
//! Emergency Stop.

use leptos::prelude::*;
use shared_types::flow::FlowAction;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::create_flow::CreateFlowModal;
use crate::components::flow_card::FlowCard;
use crate::components::later::Later;
use crate::components::flow_details::{flow_state_class, FlowDetailsModal, Inspect, JobHistory};
use crate::components::job_controls::{EmergencyStopButton, PauseAllButton};
use crate::components::open_param::open_from_param;
use crate::components::replication::card::ReplicationCard;
use crate::components::replication::sites::DrSites;
use crate::components::replication::use_replication_hub;
use crate::fetch::Fetch;
use crate::format::when;
use crate::latest::latest;
use crate::live::use_live;
use crate::nav;
use crate::pages::planned::PageHeader;

#[component]
pub fn FlowsPage() -> impl IntoView {
    let d = nav::for_path("/flows").expect("FLOWS is in the navigation table");
    let live = use_live();
    let version = RwSignal::new(0u64);
    let inspect = RwSignal::new(None::<Inspect>);
    let new_flow = RwSignal::new(None::<String>);
    let active = latest(Fetch::new(move || {
        live.jobs_version.get();
        version.get();
        api::flows_active()
    }));
    // Read again on every job_update; the views below render again only
    // when what was read changed (crate::latest).
    let flows = latest(Fetch::new(move || {
        live.jobs_version.get();
        version.get();
        api::flows()
    }));
    let history = latest(Fetch::new(move || {
        live.jobs_version.get();
        api::flows_history(15)
    }));
    let repos = Fetch::new(api::repositories);
    let repo_name = move |id: Option<String>| -> String {
        let list = repos.get().and_then(|r| r.ok()).unwrap_or_default();
        id.and_then(|id| list.into_iter().find(|r| r.id == id).map(|r| r.name)).unwrap_or_else(|| "repository".into())
    };
    let active_shape = Memo::new(move |_| {
        active.with(|a| match a {
            None => ActiveShape::Loading,
            Some(Err(e)) => ActiveShape::Failed(e.clone()),
            Some(Ok(a)) if a.flows.is_empty() && a.adhoc_jobs.iter().all(|j| j.replication_id.is_some()) => ActiveShape::Empty,
            Some(Ok(_)) => ActiveShape::Cards,
        })
    });
    let cards = Memo::new(move |_| {
        let Some(Ok(a)) = active.get() else { return Vec::new() };
        let mut cards: Vec<Card> = a.flows.into_iter().map(|af| Card { key: card_key(&af.flow.id, &af.jobs, ""), item: CardItem::Flow(af) }).collect();
        // Replication jobs show on their flow's card below.
        cards.extend(a.adhoc_jobs.into_iter().filter(|j| j.replication_id.is_none()).map(|j| {
            let target = repo_name(j.repository_id.clone());
            Card { key: card_key(&j.id, std::slice::from_ref(&j), &target), item: CardItem::Adhoc(j, target) }
        }));
        cards
    });
    let act = Act::new();
    let repl = use_replication_hub();
    // What global search opened: a flow's or a job's details.
    {
        use shared_types::search::route;
        open_from_param(route::FLOW, move |id| inspect.set(Some(Inspect::Flow(id))));
        open_from_param(route::JOB, move |id| inspect.set(Some(Inspect::Job(id))));
        open_from_param(route::REPLICATION, move |id| repl.details.set(Some(id)));
    }
    view! {
        <section class="page" data-testid="page-flows">
            <PageHeader label=d.label purpose=d.purpose />
            <div class="toolbar">
                <button class="button primary" data-testid="flows-new-flow" on:click=move |_| new_flow.set(Some(String::new()))>"+ New backup flow"</button>
                <button class="button primary" data-testid="flows-new-replication" on:click=move |_| repl.create.set(Some(String::new()))>"+ New replication"</button>
                <span class="push"></span>
                <PauseAllButton />
                <EmergencyStopButton testid="flows-emergency-stop" />
            </div>
            <h2 class="section-title">"ACTIVE"</h2>
            // Built once; a card is made again only when its jobs or their
            // states change (crate::latest), not on every job_update.
            <Show when=move || active_shape.get() == ActiveShape::Cards fallback=move || view! {
                    {move || match active_shape.get() {
                        ActiveShape::Failed(message) => view! { <p class="notice warning">{message}</p> }.into_any(),
                        ActiveShape::Empty => view! {
                            <div class="card empty" data-testid="no-active-flows"><p class="muted">"Nothing is running, queued or paused."</p></div>
                        }.into_any(),
                        _ => view! { <p class="muted">"Loading…"</p> }.into_any(),
                    }}
            }>
                <div class="card-grid" data-testid="active-flows">
                    <For each=move || cards.get() key=|c| c.key.clone() let:c>
                        {match c.item {
                            CardItem::Flow(af) => {
                                let id = af.flow.id.clone();
                                let source = af.flow.group.as_ref().map(|g| format!("group {}", g.name)).unwrap_or_else(|| format!("{} VM(s)", af.flow.vm_count));
                                view! {
                                    <FlowCard kind=af.flow.kind.as_str().to_uppercase() name=af.flow.name.clone() source=source
                                        target=af.flow.repository.name.clone() jobs=af.jobs testid=format!("flow-card-{}", af.flow.name)
                                        on_inspect=move |_| inspect.set(Some(Inspect::Flow(id.clone()))) />
                                }
                            }
                            CardItem::Adhoc(j, target) => {
                                let id = j.id.clone();
                                let kind = format!("{} · AD HOC", j.kind.as_str().to_uppercase());
                                view! {
                                    <FlowCard kind=kind name=format!("Backup now: {}", j.vm_name) source=j.vm_name.clone()
                                        target=target jobs=vec![j] testid="adhoc-card"
                                        on_inspect=move |_| inspect.set(Some(Inspect::Job(id.clone()))) />
                                }
                            }
                        }}
                    </For>
                </div>
            </Show>
            <h2 class="section-title">"REPLICATION"</h2>
            // Below the running flows: each part built in a task of its own
            // (components/later.rs), so the first render stays short.
            <Later><ReplicationCards /></Later>
            <h2 class="section-title">"DR SITES"</h2>
            <Later><DrSites /></Later>
            <h2 class="section-title">"ALL FLOWS"</h2>
            <Later><div class="card">
                {move || match flows.get() {
                        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                        Some(Err(e)) => view! { <p class="notice warning">{e}</p> }.into_any(),
                        Some(Ok(list)) if list.is_empty() => view! { <p class="muted" data-testid="no-flows">"No flow yet. Create one from a protection group on ASSETS, or with + New backup flow."</p> }.into_any(),
                        Some(Ok(list)) => view! {
                            <div class="table-wrap">
                            <table class="table" data-testid="flows-table">
                                <thead><tr><th>"Flow"</th><th>"Source → target"</th><th class="hide-narrow">"Schedule"</th><th>"State"</th><th class="hide-narrow">"Last run"</th><th></th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|f| {
                                        let id = f.id.clone();
                                        let run_id = f.id.clone();
                                        let can_run = f.allowed_actions.contains(&FlowAction::BackupNow);
                                        let source = f.group.as_ref().map(|g| format!("group {}", g.name)).unwrap_or_else(|| format!("{} VM(s)", f.vm_count));
                                        view! {
                                            <tr data-testid=format!("flow-row-{}", f.name)>
                                                <td>{f.name.clone()}</td>
                                                <td>{format!("{source} → {}", f.repository.name)}</td>
                                                <td class="hide-narrow">{f.schedule_description.clone().unwrap_or_else(|| "manual".into())}</td>
                                                <td><span class=format!("status-pill {}", flow_state_class(&f))>{f.state.label()}</span></td>
                                                <td class="mono hide-narrow">{f.last_run_at.map(when).unwrap_or_else(|| "never".into())}</td>
                                                <td class="actions">
                                                    <button class="button small" data-testid=format!("flow-inspect-{}", f.name)
                                                        on:click=move |_| inspect.set(Some(Inspect::Flow(id.clone())))>"Inspect"</button>
                                                    {can_run.then(|| view! {
                                                        <button class="button small primary" data-testid=format!("flow-run-{}", f.name) disabled=move || act.busy.get()
                                                            on:click=move |_| act.run(api::run_flow(run_id.clone()), |_| {})>"Backup now"</button>
                                                    })}
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            </div>
                        }.into_any(),
                }}
                <ActError act=act testid="flows-error" />
            </div></Later>
            <h2 class="section-title">"RECENT RUNS"</h2>
            <Later><div class="card">
                {move || match history.get() {
                    None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                    Some(Err(e)) => view! { <p class="notice warning">{e}</p> }.into_any(),
                    Some(Ok(page)) => view! { <JobHistory jobs=page.items /> }.into_any(),
                }}
            </div></Later>
            <Later><FlowDetailsModal target=inspect /></Later>
            <Later><CreateFlowModal open=new_flow on_created=move |_| version.update(|v| *v += 1) /></Later>
        </section>
    }
}

#[derive(Debug, Clone, PartialEq)]
enum ActiveShape {
    Loading,
    Failed(String),
    Empty,
    Cards,
}

/// A card of ACTIVE: a flow's run or a job started outside flows.
#[derive(Debug, Clone, PartialEq)]
struct Card {
    /// The card is made again when this changes: its id, its jobs and their
    /// states (progress itself comes from the WebSocket), its target's name.
    key: (String, Vec<(String, &'static str)>, String),
    item: CardItem,
}

#[derive(Debug, Clone, PartialEq)]
enum CardItem {
    Flow(shared_types::flow::ActiveFlow),
    Adhoc(shared_types::jobs::Job, String),
}

fn card_key(id: &str, jobs: &[shared_types::jobs::Job], target: &str) -> (String, Vec<(String, &'static str)>, String) {
    (id.to_string(), jobs.iter().map(|j| (j.id.clone(), j.status.as_str())).collect(), target.to_string())
}

/// One card per replication flow, live from the link's store: a card is
/// drawn again only when its flow changes.
#[component]
fn ReplicationCards() -> impl IntoView {
    let live = use_live();
    let repl = use_replication_hub();
    let flows = Memo::new(move |_| crate::components::replication::sorted_flows(&live));
    view! {
        <Show
            when=move || live.replications_loaded.get() && flows.with(|f| !f.is_empty())
            fallback=move || view! {
                <div class="card empty" data-testid="no-replications">
                    <p class="muted">{move || if live.replications_loaded.get() { "No replication flow yet: + New replication keeps a VM as a replica on a standby platform." } else { "Loading replication flows…" }}</p>
                    <button class="button small" on:click=move |_| repl.create.set(Some(String::new()))>"+ New replication"</button>
                </div>
            }
        >
            <div class="card-grid" data-testid="replication-cards">
                <For each=move || flows.get() key=|f| (f.id.clone(), f.updated_at, f.state, f.point_count, f.active_job_id.clone(), f.last_consistent_at) let:flow>
                    <ReplicationCard flow=flow />
                </For>
            </div>
        </Show>
    }
}
