//! "+ Add VMs" (seed 004): choose or add a platform → discover its VMs (with
//! the server's `discovery_progress` events as a progress bar) → select →
//! bulk add, optionally into a group.

use leptos::prelude::*;
use shared_types::discovery::{AddPlatformRequest, BulkAddRequest, DiscoverVmsResponse};
use shared_types::platform::PlatformKind;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::format::format_bytes;
use crate::live::use_live;

#[component]
pub fn AddVmsModal(open: RwSignal<bool>, #[prop(into)] on_added: Callback<()>) -> impl IntoView {
    view! {
        <Show when=move || open.get()>
            <div class="modal-backdrop" on:click=move |_| open.set(false)>
                <div class="modal wide" role="dialog" aria-modal="true" aria-label="Add VMs" data-testid="add-vms"
                    on:click=|ev| ev.stop_propagation()>
                    <header class="modal-head">
                        <h2>"ADD VMS"</h2>
                        <button class="icon-button" aria-label="Close" on:click=move |_| open.set(false)>"✕"</button>
                    </header>
                    <div class="modal-body"><AddVmsSteps open=open on_added=on_added /></div>
                </div>
            </div>
        </Show>
    }
}

#[component]
fn AddVmsSteps(open: RwSignal<bool>, on_added: Callback<()>) -> impl IntoView {
    let version = RwSignal::new(0u32);
    let platforms = Fetch::new(move || {
        version.get();
        api::platforms()
    });
    let groups = Fetch::new(api::groups);
    let platform = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(Ok(p)) = platforms.get() {
            if platform.get_untracked().is_empty() {
                if let Some(first) = p.first() {
                    platform.set(first.id.clone());
                }
            }
        }
    });

    // Step 1b: a new KVM host by its directory.
    let add = Act::new();
    let address = RwSignal::new(String::new());
    let add_platform = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let req = AddPlatformRequest { name: None, kind: PlatformKind::Kvm, address: address.get_untracked().trim().to_string() };
        add.run(api::add_platform(req), move |p| {
            platform.set(p.id);
            address.set(String::new());
            version.update(|v| *v += 1);
        });
    };

    // Step 2: discover.
    let discover = Act::new();
    let found = RwSignal::new(None::<DiscoverVmsResponse>);
    let chosen = RwSignal::new(Vec::<String>::new());
    let run_discovery = move |_| {
        found.set(None);
        chosen.set(Vec::new());
        discover.run(api::discover_vms(platform.get_untracked()), move |r| {
            chosen.set(r.vms.iter().filter(|v| !v.managed).map(|v| v.vm.id.clone()).collect());
            found.set(Some(r));
        });
    };

    // Step 3: bulk add.
    let bulk = Act::new();
    let group = RwSignal::new(String::new());
    let result = RwSignal::new(None::<String>);
    let add_selected = move |_| {
        let req = BulkAddRequest {
            platform_id: platform.get_untracked(),
            vm_ids: chosen.get_untracked(),
            group_id: Some(group.get_untracked()).filter(|g| !g.is_empty()),
        };
        bulk.run(api::bulk_add(req), move |r| {
            result.set(Some(format!(
                "Added {} VM(s){}.",
                r.added.len(),
                if r.already_managed.is_empty() { String::new() } else { format!("; {} were managed already", r.already_managed.len()) }
            )));
            found.set(None);
            chosen.set(Vec::new());
            on_added.run(());
        });
    };

    view! {
        <section class="step">
            <h3>"1 · PLATFORM"</h3>
            <div class="form-row">
                <label class="grow">"Known platforms"
                    <select data-testid="platform-select" prop:value=move || platform.get() on:change=move |ev| platform.set(event_target_value(&ev))>
                        {move || {
                            let list = platforms.get().and_then(|r| r.ok()).unwrap_or_default();
                            if list.is_empty() {
                                view! { <option value="">"No platform yet: add a KVM host below"</option> }.into_any()
                            } else {
                                list.into_iter().map(|p| view! {
                                    <option value=p.id.clone()>{format!("{} — {} · {} VMs found, {} managed", p.name, p.kind.label(), p.discovered_vms, p.managed_vms)}</option>
                                }).collect_view().into_any()
                            }
                        }}
                    </select>
                </label>
            </div>
            <form class="form-row" on:submit=add_platform>
                <label class="grow">"Add a KVM host: its libvirt URI"
                    <input type="text" placeholder="qemu+ssh://root@kvm-01/system" data-testid="platform-address"
                        prop:value=move || address.get() on:input=move |ev| address.set(event_target_value(&ev)) />
                </label>
                <button class="button" type="submit" data-testid="platform-add" disabled=move || add.busy.get() || address.with(|a| a.trim().is_empty())>
                    {move || if add.busy.get() { "Connecting…" } else { "Add host" }}
                </button>
            </form>
            <ActError act=add testid="platform-error" />
        </section>
        <section class="step">
            <h3>"2 · DISCOVER"</h3>
            <div class="form-row">
                <button class="button primary" data-testid="discover" disabled=move || discover.busy.get() || platform.with(|p| p.is_empty()) on:click=run_discovery>
                    "Discover VMs"
                </button>
                <Show when=move || discover.busy.get()>
                    <span class="working" data-testid="discover-working"><span class="spinner"></span>"Discovering VMs on the platform…"</span>
                </Show>
                <DiscoveryBar platform=platform />
                {move || found.with(|f| f.as_ref().map(|r| view! {
                    <span class="muted small" data-testid="discover-summary">{format!("{} VMs found in {} ms", r.vms.len(), r.duration_ms)}</span>
                    {(!r.storage_pools.is_empty()).then(|| view! {
                        <span class="muted small" data-testid="discover-pools">
                            {format!("storage: {}", r.storage_pools.iter().map(|p| if p.active {
                                format!("{} ({}) {} free of {}", p.name, p.kind, format_bytes(p.available_bytes), format_bytes(p.capacity_bytes))
                            } else {
                                format!("{} ({}) inactive", p.name, p.kind)
                            }).collect::<Vec<_>>().join(", "))}
                        </span>
                    })}
                }))}
            </div>
            <ActError act=discover testid="discover-error" />
        </section>
        {move || found.get().map(|r| view! {
            <section class="step">
                <h3>"3 · SELECT AND ADD"</h3>
                <div class="table-wrap scroll">
                    <table class="table" data-testid="discovered-vms">
                        <thead><tr><th></th><th>"VM"</th><th>"Power"</th><th class="hide-narrow">"CPU / memory"</th><th>"Disks"</th><th>"State"</th></tr></thead>
                        <tbody>
                            {r.vms.into_iter().map(|v| {
                                let id = v.vm.id.clone();
                                let id2 = id.clone();
                                let managed = v.managed;
                                view! {
                                    <tr data-testid=format!("discovered-{}", v.vm.name)>
                                        <td><input type="checkbox" disabled=managed data-testid=format!("discovered-check-{}", v.vm.name)
                                            prop:checked=move || chosen.with(|c| c.contains(&id))
                                            on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                chosen.update(|c| { c.retain(|x| x != &id2); if on { c.push(id2.clone()); } });
                                            } /></td>
                                        <td>{v.vm.name.clone()}</td>
                                        <td>{format!("{:?}", v.vm.power).to_lowercase()}</td>
                                        <td class="mono hide-narrow">{format!("{} vCPU · {} MiB", v.vm.vcpus, v.vm.memory_mib)}</td>
                                        <td class="mono">{format!("{} · {}", v.vm.disks.len(), format_bytes(v.vm.capacity_bytes()))}</td>
                                        <td>{if managed { v.group.as_ref().map(|g| format!("managed ({})", g.name)).unwrap_or_else(|| "managed".into()) } else { "new".into() }}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
                <div class="form-row">
                    <label>"Into group (optional)"
                        <select data-testid="bulk-group" on:change=move |ev| group.set(event_target_value(&ev))>
                            <option value="">"No group: ungrouped"</option>
                            {move || groups.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().map(|g| view! {
                                <option value=g.id.clone()>{g.name.clone()}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <button class="button primary" data-testid="bulk-add" disabled=move || bulk.busy.get() || chosen.with(|c| c.is_empty()) on:click=add_selected>
                        {move || format!("Add {} VM(s)", chosen.with(|c| c.len()))}
                    </button>
                </div>
            </section>
        })}
        <ActError act=bulk testid="bulk-add-error" />
        {move || result.get().map(|m| view! { <p class="notice operational" data-testid="bulk-add-result">{m}</p> })}
        <div class="modal-actions"><button class="button" data-testid="add-vms-done" on:click=move |_| open.set(false)>"Done"</button></div>
    }
}

/// The newest discovery progress of the chosen platform, from the WebSocket.
#[component]
fn DiscoveryBar(platform: RwSignal<String>) -> impl IntoView {
    use shared_types::discovery::DiscoveryPhase;
    let live = use_live();
    let progress = move || live.discovery.get().filter(|p| platform.with(|id| *id == p.platform_id));
    move || {
        progress().map(|p| {
            let percent = if p.total > 0 { p.done as f64 * 100.0 / p.total as f64 } else { 0.0 };
            let text = match p.phase {
                DiscoveryPhase::Connecting => format!("Connecting to {}…", p.platform_name),
                DiscoveryPhase::Reading => format!("Reading VM definitions: {} of {}", p.done, p.total),
                DiscoveryPhase::Applying => format!("Recording {} VMs in the catalog…", p.total),
                DiscoveryPhase::Done => format!("Discovered {} VMs", p.total),
                DiscoveryPhase::Failed => "Discovery failed".to_string(),
            };
            let class = match p.phase {
                DiscoveryPhase::Done => "operational",
                DiscoveryPhase::Failed => "warning",
                _ => "",
            };
            view! {
                <div class="grow discovery-bar" data-testid="discovery-progress" data-phase=p.phase.as_str()
                    data-done=p.done.to_string() data-total=p.total.to_string()>
                    <div class="progress-track"><div class=format!("progress-fill {class}") style:width=format!("{percent:.1}%")></div></div>
                    <div class="progress-caption"><span>{text}</span></div>
                </div>
            }
        })
    }
}
