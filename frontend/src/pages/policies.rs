//! Policies: named rules that backup flows and protection groups follow
//! (retention, immutability, an encrypted repository required, a verify
//! schedule, a copy target), what each keeps and where it applies. A new or changed
//! retention is previewed before it is saved: the restore points it would
//! delete from the flows it will apply to, decided by the server with the
//! same code as its retention runs. Removal of a policy in use is refused
//! with the server's reason. Anyone signed in may look; operators change.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::flow::{Flow, RetentionPolicy};
use shared_types::groups::ProtectionGroup;
use shared_types::policies::{summary, CreatePolicyRequest, Policy, PolicyPreview, PolicyPreviewRequest, UpdatePolicyRequest};
use shared_types::search::route;

use crate::api;
use crate::api::ApiError;
use crate::components::act::{Act, ActError};
use crate::components::copy_target::{CopyTargetFields, CopyTargetLine, CopyTargetState};
use crate::fetch::Fetch;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::session::{needs, use_session};

#[component]
pub fn PoliciesPage() -> impl IntoView {
    let d = nav::for_path("/policies").expect("Policies is in the navigation table");
    let session = use_session();
    let version = RwSignal::new(0u32);
    let policies = Fetch::new(move || {
        version.track();
        async move { session.watch(api::policies().await) }
    });
    let flows = Fetch::new(move || {
        version.track();
        async move { session.watch(api::flows().await) }
    });
    let groups = Fetch::new(move || {
        version.track();
        async move { session.watch(api::groups().await) }
    });
    // `Some(None)`: a new policy; `Some(Some(p))`: editing p.
    let editing = RwSignal::new(None::<Option<Policy>>);
    let message = RwSignal::new(None::<(bool, String)>);
    let operator = move || session.can(Role::Operator);
    let why = move || needs(Role::Operator, session.user.get().as_ref());
    let reload = move || version.update(|v| *v += 1);
    let confirm_remove = RwSignal::new(None::<String>);
    let remove = Act::new();
    let on_done = Callback::new(move |m: String| {
        editing.set(None);
        message.set(Some((true, m)));
        reload();
    });
    view! {
        <section class="page" data-testid="page-policies">
            <PageHeader label=d.label purpose=d.purpose />
            {move || message.get().map(|(ok, text)| view! {
                <p class=if ok { "notice operational" } else { "notice warning" } role="status" data-testid="policies-message">{text}</p>
            })}
            <div class="card">
                <div class="card-head">
                    <h2>"POLICIES"</h2>
                    <button class="button small primary" data-testid="policy-new" disabled=move || !operator()
                        title=move || if operator() { "A new policy".to_string() } else { why() }
                        on:click=move |_| { message.set(None); editing.set(Some(None)) }>"New policy"</button>
                </div>
                <ActError act=remove testid="policy-remove-error" />
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || policies.get().map(|r| match r {
                        Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                        Ok(list) if list.is_empty() => view! {
                            <p class="muted" data-testid="no-policies">
                                "No policy yet: each flow keeps its own retention. A policy gives many flows the same rules and changes them all at once."
                            </p>
                        }.into_any(),
                        Ok(list) => view! {
                            <div class="policy-list" data-testid="policy-list">
                                {list.into_iter().map(|p| {
                                    let (pe, pr) = (p.clone(), p.clone());
                                    let id = p.id.clone();
                                    let armed = Signal::derive(move || confirm_remove.get().as_deref() == Some(id.as_str()));
                                    view! {
                                        <div class="policy-row" data-testid="policy-row" data-name=p.name.clone()>
                                            <div class="policy-main">
                                                <strong>{p.name.clone()}</strong>
                                                {p.description.clone().map(|d| view! { <span class="muted small">{format!(" · {d}")}</span> })}
                                                <div data-testid="policy-keeps">{summary(&p.retention, p.immutable_days, p.require_encryption)}</div>
                                                <div class="small"><CopyTargetLine target=p.copy_target.clone() testid="policy-copy" prefix="3-2-1: " /></div>
                                                <div class="small muted">{match (&p.verify_schedule, &p.verify_schedule_description) {
                                                    (Some(s), Some(d)) => format!("Verify {s} (UTC): {d}"),
                                                    (Some(s), None) => format!("Verify {s} (UTC)"),
                                                    _ => "No verify schedule of its own (each repository's applies)".to_string(),
                                                }}</div>
                                            </div>
                                            <div class="policy-uses small" data-testid="policy-uses">
                                                <div>
                                                    <span class="muted">{format!("Flows ({}): ", p.flows.len())}</span>
                                                    {if p.flows.is_empty() { view! { <span class="muted">"none"</span> }.into_any() } else {
                                                        p.flows.iter().map(|f| view! { <a class="chip-link" href=route::flow(&f.id)>{f.name.clone()}</a>" " }).collect_view().into_any()
                                                    }}
                                                </div>
                                                <div>
                                                    <span class="muted">{format!("Groups ({}): ", p.groups.len())}</span>
                                                    {if p.groups.is_empty() { view! { <span class="muted">"none"</span> }.into_any() } else {
                                                        p.groups.iter().map(|g| view! { <a class="chip-link" href=route::group(&g.id)>{g.name.clone()}</a>" " }).collect_view().into_any()
                                                    }}
                                                </div>
                                            </div>
                                            <div class="policy-actions">
                                                <button class="button small" data-testid="policy-edit" disabled=move || !operator()
                                                    title=move || if operator() { String::new() } else { why() }
                                                    on:click=move |_| { message.set(None); editing.set(Some(Some(pe.clone()))) }>"Edit"</button>
                                                <button class="button small danger" data-testid="policy-remove" disabled=move || !operator()
                                                    title=move || if operator() { "Remove this policy".to_string() } else { why() }
                                                    on:click=move |_| {
                                                        if armed.get_untracked() {
                                                            confirm_remove.set(None);
                                                            let name = pr.name.clone();
                                                            remove.run(api::delete_policy(pr.id.clone()), move |_| {
                                                                message.set(Some((true, format!("The policy {name} was removed."))));
                                                                reload();
                                                            });
                                                        } else {
                                                            confirm_remove.set(Some(pr.id.clone()));
                                                        }
                                                    }>
                                                    {move || if armed.get() { "Click again to remove" } else { "Remove" }}
                                                </button>
                                            </div>
                                        </div>
                                    }
                                }).collect_view()}
                            </div>
                        }.into_any(),
                    })}
                </Transition>
                <p class="muted small" data-testid="policy-copies-note">
                    "A policy's copy target (3-2-1) is every following flow's: each new restore point is copied there after its backup, kept by the target's own retention and immutable days. "
                    "A group's policy goes to every backup flow of the group and to flows created from it later (Assets → the group)."
                </p>
            </div>
            {move || editing.get().map(|p| {
                let all_flows = flows.get().and_then(|r| r.ok()).unwrap_or_default();
                let all_groups = groups.get().and_then(|r| r.ok()).unwrap_or_default();
                view! { <PolicyForm editing=p flows=all_flows groups=all_groups on_done=on_done on_cancel=Callback::new(move |_| editing.set(None)) /> }
            })}
        </section>
    }
}

fn number(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

/// A whole number or nothing; the message names the field.
fn count(s: &str, what: &str) -> Result<Option<u32>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u32>().map(Some).map_err(|_| format!("{what}: give a whole number, or leave it empty."))
}

const RULES: [(&str, &str); 6] = [
    ("keep_last", "Keep last"),
    ("keep_hourly", "Hourly"),
    ("keep_daily", "Daily"),
    ("keep_weekly", "Weekly"),
    ("keep_monthly", "Monthly"),
    ("keep_yearly", "Yearly"),
];

/// Create or change a policy, choose the flows that follow it, preview what
/// its retention deletes, then save.
#[component]
fn PolicyForm(editing: Option<Policy>, flows: Vec<Flow>, groups: Vec<ProtectionGroup>, on_done: Callback<String>, on_cancel: Callback<()>) -> impl IntoView {
    let act = Act::new();
    let preview_act = Act::new();
    let original = StoredValue::new(editing.clone());
    let name = RwSignal::new(editing.as_ref().map(|p| p.name.clone()).unwrap_or_default());
    let description = RwSignal::new(editing.as_ref().and_then(|p| p.description.clone()).unwrap_or_default());
    let r = editing.as_ref().map(|p| p.retention.clone()).unwrap_or(RetentionPolicy { keep_last: Some(7), keep_daily: Some(14), ..Default::default() });
    let keeps: [RwSignal<String>; 6] = r.rules().map(|(_, n)| RwSignal::new(number(n)));
    let immutable = RwSignal::new(editing.as_ref().map(|p| p.immutable_days.to_string()).unwrap_or_else(|| "0".into()));
    let encrypted = RwSignal::new(editing.as_ref().is_some_and(|p| p.require_encryption));
    let verify = RwSignal::new(editing.as_ref().and_then(|p| p.verify_schedule.clone()).unwrap_or_default());
    let copy = CopyTargetState::new(editing.as_ref().and_then(|p| p.copy_target.as_ref()));
    let followers: Vec<String> = editing.as_ref().map(|p| p.flows.iter().map(|f| f.id.clone()).collect()).unwrap_or_default();
    let chosen = RwSignal::new(followers.clone());
    let followers = StoredValue::new(followers);
    let group_followers: Vec<String> = editing.as_ref().map(|p| p.groups.iter().map(|g| g.id.clone()).collect()).unwrap_or_default();
    let chosen_groups = RwSignal::new(group_followers.clone());
    let group_followers = StoredValue::new(group_followers);
    // Each backup flow's group, to preview the flows a chosen group gives the policy to.
    let flow_groups: StoredValue<Vec<(String, Option<String>)>> = StoredValue::new(
        flows.iter().map(|f| (f.id.clone(), f.group.as_ref().map(|g| g.id.clone()))).collect(),
    );
    // The flows that will follow the policy once saved.
    let affected = move || -> Vec<String> {
        let direct = chosen.get();
        let groups = chosen_groups.get();
        let mut all: Vec<String> = flow_groups.with_value(|fg| {
            fg.iter().filter(|(id, g)| direct.contains(id) || g.as_ref().is_some_and(|g| groups.contains(g))).map(|(id, _)| id.clone()).collect()
        });
        all.sort();
        all
    };
    // The policy once saved (a retry after a failed assignment changes it).
    let saved_id = RwSignal::new(editing.as_ref().map(|p| p.id.clone()));
    let local_error = RwSignal::new(None::<String>);
    let preview = RwSignal::new(None::<(String, PolicyPreview)>);

    let retention = move || -> Result<RetentionPolicy, String> {
        let n = |i: usize| count(&keeps[i].get_untracked(), RULES[i].1);
        Ok(RetentionPolicy { keep_last: n(0)?, keep_hourly: n(1)?, keep_daily: n(2)?, keep_weekly: n(3)?, keep_monthly: n(4)?, keep_yearly: n(5)? })
    };
    // What the preview depends on: the retention and the flows.
    let key = move || {
        let r: Vec<String> = keeps.iter().map(|k| k.get().trim().to_string()).collect();
        format!("{}|{}", r.join(","), affected().join(","))
    };
    let fresh = Memo::new(move |_| {
        let k = key();
        affected().is_empty() || preview.with(|p| p.as_ref().is_some_and(|(pk, _)| *pk == k))
    });
    let run_preview = move |_| {
        local_error.set(None);
        match retention() {
            Err(e) => local_error.set(Some(e)),
            Ok(retention) => {
                let k = key();
                let req = PolicyPreviewRequest { retention, policy_id: None, flow_ids: untrack(affected) };
                preview_act.run(api::preview_policy(req), move |p| preview.set(Some((k, p))));
            }
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        local_error.set(None);
        if !fresh.get_untracked() {
            local_error.set(Some("Preview what the retention deletes first: the rules or the flows changed since the last preview.".into()));
            return;
        }
        let retention = match retention() {
            Ok(r) => r,
            Err(e) => return local_error.set(Some(e)),
        };
        let immutable_days = match count(&immutable.get_untracked(), "Immutable days") {
            Ok(d) => d.unwrap_or(0),
            Err(e) => return local_error.set(Some(e)),
        };
        let copy_v = match copy.read() {
            Ok(c) => c,
            Err(e) => return local_error.set(Some(e)),
        };
        let name_v = name.get_untracked().trim().to_string();
        let desc_v = description.get_untracked().trim().to_string();
        let verify_v = Some(verify.get_untracked().trim().to_string()).filter(|s| !s.is_empty());
        let enc_v = encrypted.get_untracked();
        let id = saved_id.get_untracked();
        let old = original.get_value();
        let chosen_v = chosen.get_untracked();
        let before = followers.get_value();
        let groups_v = chosen_groups.get_untracked();
        let groups_before = group_followers.get_value();
        let fut = async move {
            let policy = match (&id, &old) {
                (Some(id), Some(old)) => {
                    let req = UpdatePolicyRequest {
                        name: (name_v != old.name).then(|| name_v.clone()),
                        description: (Some(desc_v.clone()).filter(|d| !d.is_empty()) != old.description).then(|| desc_v.clone()),
                        retention: (retention != old.retention).then(|| retention.clone()),
                        immutable_days: (immutable_days != old.immutable_days).then_some(immutable_days),
                        require_encryption: (enc_v != old.require_encryption).then_some(enc_v),
                        verify_schedule: (verify_v != old.verify_schedule).then(|| verify_v.clone()),
                        copy_target: (copy_v != old.copy_target).then(|| copy_v.clone()),
                    };
                    api::update_policy(id.clone(), req).await?
                }
                (Some(id), None) => {
                    let req = UpdatePolicyRequest {
                        name: Some(name_v.clone()),
                        description: Some(desc_v.clone()),
                        retention: Some(retention.clone()),
                        immutable_days: Some(immutable_days),
                        require_encryption: Some(enc_v),
                        verify_schedule: Some(verify_v.clone()),
                        copy_target: Some(copy_v.clone()),
                    };
                    api::update_policy(id.clone(), req).await?
                }
                (None, _) => {
                    let req = CreatePolicyRequest {
                        name: name_v.clone(),
                        description: Some(desc_v.clone()).filter(|d| !d.is_empty()),
                        retention: retention.clone(),
                        immutable_days,
                        require_encryption: enc_v,
                        verify_schedule: verify_v.clone(),
                        copy_target: copy_v.clone(),
                    };
                    api::create_policy(req).await?
                }
            };
            saved_id.try_set(Some(policy.id.clone()));
            let mut assigned = 0;
            for f in chosen_v.iter().filter(|f| !policy.flows.iter().any(|p| &p.id == *f)) {
                api::set_flow_policy(f.clone(), Some(policy.id.clone())).await.map_err(|e| ApiError {
                    message: format!("The policy {} was saved, but a flow could not follow it: {}", policy.name, e.message),
                    ..e
                })?;
                assigned += 1;
            }
            let mut detached = 0;
            for f in before.iter().filter(|f| !chosen_v.contains(f)) {
                api::set_flow_policy(f.clone(), None).await?;
                detached += 1;
            }
            for g in groups_v.iter().filter(|g| !policy.groups.iter().any(|p| &p.id == *g)) {
                api::set_group_policy(g.clone(), Some(policy.id.clone())).await.map_err(|e| ApiError {
                    message: format!("The policy {} was saved, but a group could not take it: {}", policy.name, e.message),
                    ..e
                })?;
            }
            for g in groups_before.iter().filter(|g| !groups_v.contains(g)) {
                api::set_group_policy(g.clone(), None).await?;
            }
            Ok::<_, ApiError>((policy, assigned, detached))
        };
        act.run(fut, move |(p, assigned, detached)| {
            let mut m = format!("The policy {} was saved: {}.", p.name, summary(&p.retention, p.immutable_days, p.require_encryption));
            if assigned > 0 {
                m.push_str(&format!(" {assigned} flow(s) follow it now."));
            }
            if detached > 0 {
                m.push_str(&format!(" {detached} flow(s) no longer follow it (they keep its retention as their own)."));
            }
            on_done.run(m);
        });
    };
    let field_error = move |f: &'static str| move || act.field(f).map(|m| view! { <span class="field-error">{m}</span> });
    let backup_flows: Vec<Flow> = flows;
    view! {
        <form class="card" data-testid="policy-form" on:submit=submit>
            <h2>{if original.with_value(Option::is_some) { "EDIT POLICY" } else { "NEW POLICY" }}</h2>
            <div class="form-row">
                <label>"Name"
                    <input type="text" data-testid="policy-name" placeholder="gold" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                    {field_error("name")}
                </label>
                <label class="grow">"Description"
                    <input type="text" data-testid="policy-description" prop:value=move || description.get() on:input=move |ev| description.set(event_target_value(&ev)) />
                    {field_error("description")}
                </label>
            </div>
            <fieldset class="policy-rules">
                <legend>"Retention per VM (empty: no such rule; no rule at all: keep every restore point)"</legend>
                <div class="form-row">
                    {RULES.iter().enumerate().map(|(i, (field, label))| {
                        let sig = keeps[i];
                        let full = format!("retention.{field}");
                        view! {
                            <label class="narrow">{*label}
                                <input type="text" inputmode="numeric" data-testid=format!("policy-{}", field.replace('_', "-"))
                                    prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
                                {move || act.field(&full).map(|m| view! { <span class="field-error">{m}</span> })}
                            </label>
                        }
                    }).collect_view()}
                </div>
            </fieldset>
            <div class="form-row">
                <label class="narrow">"Immutable days"
                    <input type="text" inputmode="numeric" data-testid="policy-immutable" prop:value=move || immutable.get() on:input=move |ev| immutable.set(event_target_value(&ev)) />
                    {field_error("immutable_days")}
                </label>
                <label>"Verify schedule (cron, UTC; empty: none of its own)"
                    <input type="text" class="mono" data-testid="policy-verify" placeholder="0 4 * * 0" prop:value=move || verify.get() on:input=move |ev| verify.set(event_target_value(&ev)) />
                    {field_error("verify_schedule")}
                </label>
                <label class="check">
                    <input type="checkbox" data-testid="policy-encryption" prop:checked=move || encrypted.get() on:change=move |ev| encrypted.set(event_target_checked(&ev)) />
                    "Encrypted repositories only"
                </label>
            </div>
            <CopyTargetFields state=copy exclude=Signal::derive(String::new)
                error=Signal::derive(move || act.field("copy_target.repository_id").or_else(|| act.field("copy_target"))) />
            <fieldset>
                <legend>"Flows that follow this policy"</legend>
                {if backup_flows.is_empty() {
                    view! { <p class="muted small">"No backup flow yet (FLOWS → New flow)."</p> }.into_any()
                } else {
                    view! {
                        <div class="check-grid" data-testid="policy-flows">
                            {backup_flows.into_iter().map(|f| {
                                let (id, id2) = (f.id.clone(), f.id.clone());
                                let other = f.policy.as_ref().filter(|p| Some(&p.id) != original.with_value(|o| o.as_ref().map(|o| o.id.clone())).as_ref()).map(|p| format!(" (now {})", p.name));
                                view! {
                                    <label class="check" data-testid="policy-flow" data-name=f.name.clone()>
                                        <input type="checkbox" prop:checked=move || chosen.with(|c| c.contains(&id))
                                            on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                chosen.update(|c| { c.retain(|x| x != &id2); if on { c.push(id2.clone()); } });
                                            } />
                                        {f.name.clone()}
                                        {other.map(|o| view! { <span class="muted small">{o}</span> })}
                                    </label>
                                }
                            }).collect_view()}
                        </div>
                    }.into_any()
                }}
            </fieldset>
            {(!groups.is_empty()).then(|| view! {
                <fieldset>
                    <legend>"Groups that give it to their flows (now and to flows created later)"</legend>
                    <div class="check-grid" data-testid="policy-groups">
                        {groups.into_iter().map(|g| {
                            let (id, id2) = (g.id.clone(), g.id.clone());
                            view! {
                                <label class="check" data-testid="policy-group" data-name=g.name.clone()>
                                    <input type="checkbox" prop:checked=move || chosen_groups.with(|c| c.contains(&id))
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            chosen_groups.update(|c| { c.retain(|x| x != &id2); if on { c.push(id2.clone()); } });
                                        } />
                                    {format!("{} ({} flow(s))", g.name, g.flow_count)}
                                </label>
                            }
                        }).collect_view()}
                    </div>
                </fieldset>
            })}
            <div class="form-row">
                <button class="button" type="button" data-testid="policy-preview-run" disabled=move || preview_act.busy.get() on:click=run_preview>
                    "Preview deletions"
                </button>
                <span class="muted small">{move || if affected().is_empty() {
                    "No flow chosen: nothing can be deleted.".to_string()
                } else if fresh.get() {
                    "The preview below is for these rules and flows.".to_string()
                } else {
                    "Preview before saving: the rules or flows changed.".to_string()
                }}</span>
            </div>
            <ActError act=preview_act testid="policy-preview-error" />
            {move || preview.get().filter(|_| fresh.get()).map(|(_, p)| view! { <PreviewView p=p /> })}
            {move || local_error.get().map(|e| view! { <p class="notice warning" data-testid="policy-form-error">{e}</p> })}
            <ActError act=act testid="policy-error" />
            <div class="modal-actions">
                <button class="button" type="button" data-testid="policy-cancel" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                <button class="button primary" type="submit" data-testid="policy-save" disabled=move || act.busy.get() || !fresh.get()>
                    {move || match preview.get().filter(|_| fresh.get() && !affected().is_empty()) {
                        Some((_, p)) if p.deleted_total > 0 => format!("Save (deletes {} restore point(s) at the next retention run)", p.deleted_total),
                        _ => "Save policy".to_string(),
                    }}
                </button>
            </div>
        </form>
    }
}

/// The restore points a candidate retention would delete, flow by flow.
#[component]
fn PreviewView(p: PolicyPreview) -> impl IntoView {
    let headline = if p.flows.is_empty() {
        "The policy applies to no flow: nothing would be deleted.".to_string()
    } else if p.deleted_total == 0 {
        format!("Keeps {}: nothing would be deleted from {} flow(s).", p.keeps, p.flows.len())
    } else {
        format!(
            "Keeps {}: {} restore point(s) would be deleted at the flows' next retention run (after their next backup, or a prune).",
            p.keeps, p.deleted_total
        )
    };
    let summary_class = if p.deleted_total > 0 { "notice caution" } else { "notice" };
    let immutable = (p.kept_immutable_total > 0).then(|| format!(" {} more stay because they are immutable.", p.kept_immutable_total));
    view! {
        <div class="card inset" data-testid="policy-preview" data-deleted=p.deleted_total.to_string()>
            <p class=summary_class data-testid="policy-preview-summary">{headline}{immutable}</p>
            {p.flows.into_iter().map(|f| {
                let title = format!("{} → {}: {} restore point(s), {} kept, {} deleted", f.flow.name, f.repository.name, f.total, f.kept, f.deleted.len());
                let pinned = (!f.kept_pinned.is_empty()).then(|| format!("{} kept while an instant recovery runs on them.", f.kept_pinned.len()));
                view! {
                    <div class="preview-flow" data-testid="preview-flow" data-flow=f.flow.name.clone()>
                        <h4 class="small">{title}</h4>
                        {(!f.deleted.is_empty()).then(|| view! {
                            <div class="table-wrap scroll">
                                <table class="table" data-testid="preview-deleted">
                                    <thead><tr><th>"VM"</th><th>"Taken (UTC)"</th><th>"Restore point"</th></tr></thead>
                                    <tbody>
                                        {f.deleted.into_iter().map(|d| view! {
                                            <tr data-testid="preview-deleted-row">
                                                <td>{d.vm.name.clone()}</td>
                                                <td class="mono">{d.created_at.format("%Y-%m-%d %H:%M").to_string()}</td>
                                                <td class="mono small">{d.backup_id.chars().take(8).collect::<String>()}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                        })}
                        {(!f.kept_immutable.is_empty()).then(|| view! {
                            <p class="small muted" data-testid="preview-immutable">
                                {format!("Immutable, kept: {}", f.kept_immutable.iter().map(|k| format!(
                                    "{} {}{}",
                                    k.vm.name,
                                    k.created_at.format("%Y-%m-%d %H:%M"),
                                    k.immutable_until.map(|u| format!(" (until {})", u.format("%Y-%m-%d"))).unwrap_or_default()
                                )).collect::<Vec<_>>().join(", "))}
                            </p>
                        })}
                        {pinned.map(|t| view! { <p class="small muted">{t}</p> })}
                    </div>
                }
            }).collect_view()}
        </div>
    }
}
