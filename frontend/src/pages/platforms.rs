//! Platforms: every hypervisor host Sendense reaches, with its kind,
//! address, health (the last discovery's outcome and error), when it was
//! last discovered and how many VMs it has and Sendense manages; add one
//! (the connection is tested before it is saved), rediscover, and remove
//! (the server refuses while restore points or running jobs of its VMs
//! exist, and says why).

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::discovery::{AddPlatformRequest, Platform, PlatformStatus, PlatformTest, TestPlatformRequest};
use shared_types::platform::PlatformKind;

use crate::api;
use crate::components::act::{Act, ActError};
use crate::fetch::Fetch;
use crate::format::when;
use crate::nav;
use crate::pages::planned::PageHeader;
use crate::session::use_session;

#[component]
pub fn PlatformsPage() -> impl IntoView {
    let d = nav::for_path("/platforms").expect("Platforms is in the navigation table");
    let version = RwSignal::new(0u32);
    // What the last rediscovery of each platform found (kept here: the
    // cards are made again when the list is read again after it).
    let rediscovered = RwSignal::new(std::collections::HashMap::<String, String>::new());
    let platforms = Fetch::new(move || {
        version.get();
        api::platforms()
    });
    crate::components::open_param::scroll_to_opened(shared_types::search::route::PLATFORM);
    view! {
        <section class="page" data-testid="page-platforms">
            <PageHeader label=d.label purpose=d.purpose />
            <AddPlatform version=version />
            <Transition fallback=|| view! { <p class="muted">"Reading the platforms…"</p> }>
                {move || platforms.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted" data-testid="no-platforms">"No platform yet: add a KVM host by its libvirt URI above."</p>
                    }.into_any(),
                    Ok(list) => {
                        let count = list.len().to_string();
                        view! {
                        <div class="card-grid" data-testid="platform-list" data-count=count>
                            {list.into_iter().map(|p| view! { <PlatformCard p=p version=version rediscovered=rediscovered /> }).collect_view()}
                        </div>
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

/// Add a KVM host: test the URI first; Add is offered once a test passed
/// for exactly the address in the field.
#[component]
fn AddPlatform(version: RwSignal<u32>) -> impl IntoView {
    let session = use_session();
    let address = RwSignal::new(String::new());
    let name = RwSignal::new(String::new());
    let tested = RwSignal::new(None::<(String, PlatformTest)>);
    let test = Act::new();
    let add = Act::new();
    let run_test = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let a = address.get_untracked().trim().to_string();
        tested.set(None);
        test.run(api::test_platform(TestPlatformRequest { kind: PlatformKind::Kvm, address: a.clone() }), move |t| tested.set(Some((a, t))));
    };
    let passed = Memo::new(move |_| tested.with(|t| t.as_ref().is_some_and(|(a, t)| t.ok && *a == address.get().trim())));
    let run_add = move |_| {
        let req = AddPlatformRequest {
            name: Some(name.get_untracked().trim().to_string()).filter(|n| !n.is_empty()),
            kind: PlatformKind::Kvm,
            address: address.get_untracked().trim().to_string(),
        };
        add.run(api::add_platform(req), move |_| {
            address.set(String::new());
            name.set(String::new());
            tested.set(None);
            version.update(|v| *v += 1);
        });
    };
    view! {
        <div class="card" data-testid="platform-add-card">
            <h2>"ADD A KVM HOST"</h2>
            <form class="form-row" on:submit=run_test>
                <label class="grow">"libvirt URI"
                    <input type="text" placeholder="qemu+ssh://root@kvm-01/system" data-testid="platform-address"
                        prop:value=move || address.get() on:input=move |ev| address.set(event_target_value(&ev)) />
                </label>
                <label>"Name (optional)"
                    <input type="text" placeholder="the host's own name" data-testid="platform-name"
                        prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                </label>
                <button class="button" type="submit" data-testid="platform-test"
                    disabled=move || !session.can(Role::Operator) || test.busy.get() || address.with(|a| a.trim().is_empty())>
                    {move || if test.busy.get() { "Testing…" } else { "Test connection" }}
                </button>
                <button class="button primary" type="button" data-testid="platform-add"
                    disabled=move || !session.can(Role::Operator) || add.busy.get() || !passed.get()
                    title="Test the connection first"
                    on:click=run_add>
                    {move || if add.busy.get() { "Adding…" } else { "Add host" }}
                </button>
            </form>
            <ActError act=test testid="platform-test-error" />
            <ActError act=add testid="platform-error" />
            {move || tested.get().map(|(_, t)| view! {
                <p class=if t.ok { "notice" } else { "notice warning" } data-testid="platform-test-result" data-ok=t.ok.to_string()>
                    {format!("{} ({} ms)", t.message, t.duration_ms)}
                </p>
            })}
        </div>
    }
}

fn status_class(s: PlatformStatus) -> &'static str {
    match s {
        PlatformStatus::Online => "operational",
        PlatformStatus::Error => "warning",
    }
}

#[component]
fn PlatformCard(p: Platform, version: RwSignal<u32>, rediscovered: RwSignal<std::collections::HashMap<String, String>>) -> impl IntoView {
    let session = use_session();
    let rediscover = Act::new();
    let remove = Act::new();
    let confirming = RwSignal::new(false);
    let editing = RwSignal::new(false);
    let edit_from = StoredValue::new(p.clone());
    let id = p.id.clone();
    let id_found = id.clone();
    let found = Memo::new(move |_| rediscovered.with(|m| m.get(&id_found).cloned()));
    let (id_r, id_d) = (id.clone(), id.clone());
    let name = p.name.clone();
    let opened = crate::components::open_param::use_open_param(shared_types::search::route::PLATFORM);
    let this = p.id.clone();
    view! {
        <div class="card platform-card" data-open-id=p.id.clone() class:focused=move || opened.with(|o| o.as_ref() == Some(&this)) data-testid="platform-card" data-platform=p.name.clone() data-status=p.status.as_str()>
            <div class="card-head">
                <h2>{p.name.clone()}</h2>
                <span class=format!("status-pill {}", status_class(p.status)) data-testid="platform-status">{p.status.as_str().to_uppercase()}</span>
            </div>
            <dl class="facts">
                <dt>"Kind"</dt><dd>{p.kind.label()}</dd>
                <dt>"Address"</dt><dd class="mono" data-testid="platform-address-shown">{p.address.clone()}</dd>
                <dt>"Last discovery"</dt><dd class="mono">{p.last_discovery_at.map(when).unwrap_or_else(|| "never".into())}</dd>
                <dt>"VMs found / managed"</dt>
                <dd class="mono" data-testid="platform-vms" data-found=p.discovered_vms.to_string() data-managed=p.managed_vms.to_string()>
                    {format!("{} / {}", p.discovered_vms, p.managed_vms)}
                </dd>
                <dt>"Networks"</dt><dd>{p.networks.iter().map(|n| n.name.clone()).collect::<Vec<_>>().join(", ")}</dd>
            </dl>
            {p.last_error.clone().map(|e| view! { <p class="notice warning" data-testid="platform-last-error">{e}</p> })}
            <div class="action-row">
                <button class="button small" data-testid="platform-rediscover"
                    disabled=move || !session.can(Role::Operator) || rediscover.busy.get()
                    on:click=move |_| {
                        let id = id_r.clone();
                        rediscovered.update(|m| {
                            m.remove(&id);
                        });
                        rediscover.run(api::rediscover_platform(id.clone()), move |r| {
                            rediscovered.update(|m| {
                                m.insert(id, format!("Discovered {} VMs.", r.vms.len()));
                            });
                            version.update(|v| *v += 1);
                        })
                    }>
                    {move || if rediscover.busy.get() { "Discovering…" } else { "Rediscover" }}
                </button>
                <Show when=move || !editing.get()>
                    <button class="button small" data-testid="platform-edit"
                        disabled=move || !session.can(Role::Operator) on:click=move |_| editing.set(true)>
                        "Edit…"
                    </button>
                </Show>
                <Show when=move || !confirming.get()>
                    <button class="button small danger" data-testid="platform-remove"
                        disabled=move || !session.can(Role::Operator) on:click=move |_| confirming.set(true)>
                        "Remove…"
                    </button>
                </Show>
                <Show when=move || confirming.get()>
                    <span class="small">{format!("Remove '{name}' and its managed VMs from Sendense? The host itself is not touched.")}</span>
                    <button class="button small danger" data-testid="platform-remove-confirm"
                        disabled=move || remove.busy.get()
                        on:click={
                            let id = id_d.clone();
                            move |_| remove.run(api::delete_platform(id.clone()), move |_| version.update(|v| *v += 1))
                        }>
                        "Remove"
                    </button>
                    <button class="button small" on:click=move |_| confirming.set(false)>"Cancel"</button>
                </Show>
            </div>
            <Show when=move || editing.get()>
                <EditPlatform p=edit_from.get_value() editing=editing version=version />
            </Show>
            {move || found.get().map(|m| view! { <p class="muted small" data-testid="platform-rediscovered">{m}</p> })}
            <ActError act=rediscover testid="platform-rediscover-error" />
            <ActError act=remove testid="platform-remove-error" />
        </div>
    }
}

/// Rename the platform, or reach it another way (its libvirt URI: another
/// user, key file or socket path). A new address is tested first; the server
/// saves it only when it reaches the same host (the managed VMs are there).
#[component]
fn EditPlatform(p: Platform, editing: RwSignal<bool>, version: RwSignal<u32>) -> impl IntoView {
    let name = RwSignal::new(p.name.clone());
    let address = RwSignal::new(p.address.clone());
    let tested = RwSignal::new(None::<(String, PlatformTest)>);
    let (test, save) = (Act::new(), Act::new());
    let old = StoredValue::new(p.clone());
    let changed_address = Memo::new(move |_| address.with(|a| a.trim() != old.with_value(|p| p.address.clone())));
    let passed = Memo::new(move |_| tested.with(|t| t.as_ref().is_some_and(|(a, t)| t.ok && *a == address.get().trim())));
    let run_test = move |_| {
        let a = address.get_untracked().trim().to_string();
        tested.set(None);
        test.run(api::test_platform(TestPlatformRequest { kind: PlatformKind::Kvm, address: a.clone() }), move |t| tested.set(Some((a, t))));
    };
    let run_save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let p = old.get_value();
        let new_name = name.get_untracked().trim().to_string();
        let new_address = address.get_untracked().trim().to_string();
        let req = shared_types::discovery::UpdatePlatformRequest {
            name: Some(new_name).filter(|n| *n != p.name),
            address: Some(new_address).filter(|a| *a != p.address),
        };
        save.run(api::update_platform(p.id, req), move |_| {
            editing.set(false);
            version.update(|v| *v += 1);
        });
    };
    view! {
        <form class="platform-edit" data-testid="platform-edit-form" on:submit=run_save>
            <label>"Name"
                <input type="text" data-testid="platform-edit-name" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
            </label>
            <label>"libvirt URI (user, key file or socket for this same host)"
                <input type="text" data-testid="platform-edit-address" prop:value=move || address.get()
                    on:input=move |ev| address.set(event_target_value(&ev)) />
            </label>
            <div class="action-row">
                <button class="button small" type="button" data-testid="platform-edit-test"
                    disabled=move || test.busy.get() || !changed_address.get() on:click=run_test>
                    {move || if test.busy.get() { "Testing…" } else { "Test connection" }}
                </button>
                <button class="button small primary" type="submit" data-testid="platform-edit-save"
                    title="A new address is tested first"
                    disabled=move || save.busy.get() || (changed_address.get() && !passed.get())>
                    {move || if save.busy.get() { "Saving…" } else { "Save" }}
                </button>
                <button class="button small" type="button" on:click=move |_| editing.set(false)>"Cancel"</button>
            </div>
            {move || tested.get().map(|(_, t)| view! {
                <p class=if t.ok { "notice" } else { "notice warning" } data-testid="platform-edit-test-result">{format!("{} ({} ms)", t.message, t.duration_ms)}</p>
            })}
            <ActError act=test testid="platform-edit-test-error" />
            <ActError act=save testid="platform-edit-error" />
        </form>
    }
}
