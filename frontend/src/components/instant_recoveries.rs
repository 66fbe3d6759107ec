//! INSTANT RECOVERIES (RECOVERY page): VMs running straight from a restore
//! point. Each shows its state, how long the guest took to come up and its
//! boot line, the pin on its restore point, and while it finalizes the
//! bytes copied (refreshed every second while one starts or finalizes).
//! Finalize (optionally capped in MiB/s) and Discard (confirmed: the
//! guest's writes are lost) act on it.

use leptos::prelude::*;
use shared_types::instant::{InstantRecovery, InstantState};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::format::{format_bytes, when};
use crate::live::use_live;

fn state_class(s: InstantState) -> &'static str {
    match s {
        InstantState::Running | InstantState::Finalized => "operational",
        InstantState::Starting | InstantState::Finalizing => "caution",
        InstantState::Failed => "warning",
    }
}

/// The card; `version` is bumped by whoever starts one (the wizard).
#[component]
pub fn InstantRecoveries(#[prop(optional)] version: Option<RwSignal<u64>>) -> impl IntoView {
    let live = use_live();
    let version = version.unwrap_or_else(|| RwSignal::new(0));
    let busy = RwSignal::new(false);
    let tick = Memo::new(move |_| (live.now_ms.get() / 1000.0) as u64);
    let list = Fetch::new(move || {
        version.get();
        live.jobs_version.get();
        if busy.get() {
            tick.get();
        }
        api::instant_list()
    });
    // Rendered from memos: a refresh that changes nothing keeps the DOM.
    let items = Memo::new(move |_| list.get().map(|r| r.map_err(|e| e.message)));
    Effect::new(move |_| {
        if let Some(Ok(l)) = items.get() {
            busy.set(l.iter().any(|i| matches!(i.state, InstantState::Starting | InstantState::Finalizing)));
        }
    });
    let act = Act::new();
    let confirm = RwSignal::new(None::<String>);
    let cap = RwSignal::new(String::new());
    view! {
        <div class="card" data-testid="instant-recoveries">
            <h2>"INSTANT RECOVERIES"</h2>
            <p class="muted small">"VMs running straight from a restore point: up in seconds, nothing copied first. Finalize moves the disks onto the host while the guest runs; until then the restore point is pinned."</p>
            <ActError act=act testid="instant-error" />
            {move || items.get().map(|r| match r {
                Err(e) => view! { <p class="notice warning">{e}</p> }.into_any(),
                Ok(l) if l.is_empty() => view! {
                    <p class="muted small" data-testid="no-instant">"None: Instant recovery in a restore point's Restore VM wizard starts one."</p>
                }.into_any(),
                Ok(l) => view! {
                    <ul class="feed" data-testid="instant-list">
                        {l.into_iter().map(|i| row(i, act, version, confirm, cap)).collect_view()}
                    </ul>
                }.into_any(),
            })}
        </div>
    }
}

fn row(i: InstantRecovery, act: Act, version: RwSignal<u64>, confirm: RwSignal<Option<String>>, cap: RwSignal<String>) -> impl IntoView {
    let refresh = move || version.update(|v| *v += 1);
    let (id, id2, id3) = (i.id.clone(), i.id.clone(), i.id.clone());
    let pct = if i.finalize_total > 0 { i.finalize_done as f64 * 100.0 / i.finalize_total as f64 } else { 0.0 };
    let up = i.up_ms.map(|ms| format!("up in {:.1} s", ms as f64 / 1000.0)).unwrap_or_else(|| "coming up…".into());
    let running = i.state == InstantState::Running;
    let finalized = i.state == InstantState::Finalized;
    let asking = {
        let id = i.id.clone();
        move || confirm.get().as_deref() == Some(id.as_str())
    };
    let asking2 = asking.clone();
    view! {
        <li class="instant-item" data-testid="instant" data-state=i.state.as_str() data-up-ms=i.up_ms.map(|m| m.to_string()).unwrap_or_default()>
            <span class=format!("status-dot {}", state_class(i.state))></span>
            <span class="feed-text">
                <span>
                    <strong>{i.name.clone()}</strong>
                    {format!(" on {} · from {} · {}", i.target_platform_name, i.source_vm_name, i.state.as_str())}
                    {i.pinned.then(|| view! { <span class="status-pill caution small" data-testid="instant-pinned" title="The restore point cannot be deleted or pruned while this VM runs on it">"restore point pinned"</span> })}
                </span>
                <span class="muted small">{format!("{up} · started {} by {}", when(i.created_at), i.created_by.clone().unwrap_or_default())}</span>
                {i.boot_line.clone().map(|l| {
                    let hover = l.clone();
                    view! { <span class="mono small boot-line" data-testid="instant-boot-line" title=hover>{l}</span> }
                })}
                {(i.state == InstantState::Finalizing || (finalized && i.finalize_total > 0)).then(|| view! {
                    <div class="progress" data-testid="instant-progress">
                        <div class="progress-track"><div class=format!("progress-fill {}", state_class(i.state)) style:width=format!("{pct:.1}%")></div></div>
                        <div class="progress-caption mono"><span>{format!("{} of {} copied onto the host ({pct:.0}%)", format_bytes(i.finalize_done), format_bytes(i.finalize_total))}</span></div>
                    </div>
                })}
                {i.error.clone().map(|e| view! { <span class="small notice warning">{e}</span> })}
            </span>
            <span class="action-row">
                {running.then(|| view! {
                    <input type="number" min="1" class="cap-input" placeholder="MiB/s" title="Cap the copy (MiB/s per disk); empty: no cap"
                        data-testid="instant-cap" prop:value=move || cap.get() on:input=move |ev| cap.set(event_target_value(&ev)) />
                    <button class="button small primary" data-testid="instant-finalize"
                        on:click=move |_| act.run(api::instant_finalize(id.clone(), cap.get_untracked().trim().parse().ok()), move |_| refresh())>"Finalize"</button>
                })}
                <Show when=move || !asking()>
                    {
                        let id = id2.clone();
                        view! {
                            <button class="button small" data-testid="instant-discard" disabled=i.state == InstantState::Finalizing
                                on:click=move |_| confirm.set(Some(id.clone()))>{if finalized { "Forget" } else { "Discard" }}</button>
                        }
                    }
                </Show>
                <Show when=asking2.clone()>
                    {
                        let id = id3.clone();
                        view! {
                            <span class="small">{if finalized { "The VM stays; forget this entry?" } else { "Stop and delete the VM and what its guest wrote?" }}</span>
                            <button class="button small danger" data-testid="instant-discard-confirm"
                                on:click=move |_| { confirm.set(None); act.run(api::instant_discard(id.clone()), move |_| refresh()); }>"Yes"</button>
                            <button class="button small" on:click=move |_| confirm.set(None)>"No"</button>
                        }
                    }
                </Show>
            </span>
        </li>
    }
}
