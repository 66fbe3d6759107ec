//! Where a restore point exists (3-2-1): one small badge per repository it
//! is in, its primary first, coloured by state (present, copying, failed,
//! missing), with the repository, role, copy time and immutability in the
//! badge's title (a copy the storage locks: its Object Lock date also in the
//! badge); and, for operators, "Copy…": the restore point copied
//! to another repository now (a copy job; only the chunks it lacks are sent),
//! and "×" on a badge: the restore point removed from that repository alone
//! after a confirmation (refused while immutable there or the last location).

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::backups::{Backup, CopyRestorePointRequest, LocationRole, LocationState, LockEnforcer, RestorePointLocation};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::components::modal::Modal;
use crate::components::restore_points::{lock_ahead, lock_title, use_restore_hub};
use crate::fetch::Fetch;
use crate::format::when;
use crate::session::use_session;

fn class(state: LocationState) -> &'static str {
    match state {
        LocationState::Present => "status-pill operational",
        LocationState::Copying => "status-pill info",
        LocationState::Failed => "status-pill warning",
        LocationState::Missing => "status-pill caution",
    }
}

fn title(l: &RestorePointLocation) -> String {
    let role = match l.role {
        LocationRole::Primary => "Written to",
        LocationRole::Copy => "Copy in",
    };
    let state = match l.state {
        LocationState::Present => "present",
        LocationState::Copying => "being copied now",
        LocationState::Failed => "the copy failed (see its job)",
        LocationState::Missing => "missing: the repository or the snapshot could not be read",
    };
    let mut t = format!("{role} '{}': {state}", l.repository_name);
    if let Some(at) = l.copied_at {
        t.push_str(&format!("; copied {}", when(at)));
    }
    match lock_ahead(&l.lock).filter(|k| k.enforced_by == LockEnforcer::Storage) {
        Some(lock) => t.push_str(&format!("; {}", lock_title(&lock))),
        None => {
            if let Some(u) = l.immutable_until {
                t.push_str(&format!("; immutable there until {}", when(u)));
            }
        }
    }
    t
}

/// A copy the storage locks says so in its badge: "locked until D" (S3
/// Object Lock, the date the storage reported); the primary's lock is in
/// the Lock column, Sendense's own immutability in the badge's title.
fn lock_words(l: &RestorePointLocation) -> Option<String> {
    let lock = lock_ahead(&l.lock).filter(|k| l.role == LocationRole::Copy && k.enforced_by == LockEnforcer::Storage)?;
    Some(format!(" · locked until {}", lock.until.format("%Y-%m-%d")))
}

/// The badges of `b`'s locations (its repository alone when the server sent none).
#[component]
pub fn PointLocations(b: Backup) -> impl IntoView {
    if b.locations.is_empty() {
        return view! { <span data-testid="point-locations">{b.repository.name.clone()}</span> }.into_any();
    }
    let have: Vec<String> = b.locations.iter().filter(|l| l.state != LocationState::Failed).map(|l| l.repository_id.clone()).collect();
    let several = b.locations.len() > 1;
    let removing = RwSignal::new(None::<(RestorePointLocation, Vec<String>)>);
    let readable = |l: &RestorePointLocation| l.state == LocationState::Present;
    view! {
        <span class="point-locations" data-testid="point-locations" data-count=b.locations.len().to_string()>
            {b.locations.iter().map(|l| {
                let role = if l.role == LocationRole::Copy { "copy: " } else { "" };
                let lock = lock_ahead(&l.lock);
                view! {
                    <span class=class(l.state) data-testid="point-location" data-role=l.role.as_str() data-state=l.state.as_str()
                        data-repository=l.repository_id.clone() title=title(l)
                        data-lock-by=lock.as_ref().map(|k| k.enforced_by.as_str())
                        data-lock-until=lock.as_ref().map(|k| k.until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))>
                        {format!("{role}{}", l.repository_name)}
                        {lock_words(l).map(|w| view! { <span class="location-lock" data-testid="point-location-lock">{w}</span> })}
                    </span>
                    {several.then(|| {
                        let others: Vec<String> = b.locations.iter()
                            .filter(|o| o.repository_id != l.repository_id && readable(o))
                            .map(|o| o.repository_name.clone())
                            .collect();
                        view! { <RemoveLocation l=l.clone() others=others removing=removing /> }
                    })}
                    " "
                }
            }).collect_view()}
            <CopyTo backup_id=b.id.clone() have=have />
            <RemoveDialog backup_id=b.id.clone() removing=removing />
        </span>
    }
    .into_any()
}

/// "Copy…" → a repository the restore point is not in → a copy job.
#[component]
fn CopyTo(backup_id: String, have: Vec<String>) -> impl IntoView {
    let session = use_session();
    let hub = use_restore_hub();
    let open = RwSignal::new(false);
    let chosen = RwSignal::new(String::new());
    let act = Act::new();
    let repos = Fetch::new(move || async move {
        if open.get() {
            api::repositories().await.ok()
        } else {
            None
        }
    });
    let have = StoredValue::new(have);
    let id = StoredValue::new(backup_id.clone());
    let copy = move |_| {
        let target = chosen.get_untracked();
        if target.is_empty() {
            return;
        }
        let req = CopyRestorePointRequest { repository_id: target, immutable_days: 0 };
        act.run(api::copy_restore_point(id.get_value(), req), move |job| {
            hub.copy_queued.set(Some((id.get_value(), format!("copy queued (job {})", job.id))));
            open.set(false);
            hub.points_version.update(|v| *v += 1);
        });
    };
    view! {
        <Show when=move || session.can(Role::Operator)>
            <button class="button small" type="button" data-testid=format!("copy-point-{}", id.get_value())
                title="Copy this restore point to another repository now" on:click=move |_| open.update(|o| *o = !*o)>"Copy…"</button>
        </Show>
        <Show when=move || open.get()>
            <span class="copy-to" data-testid="copy-to">
                <select data-testid="copy-to-repo" prop:value=move || chosen.get() on:change=move |ev| chosen.set(event_target_value(&ev))>
                    <option value="">"to repository…"</option>
                    {move || repos.get().flatten().unwrap_or_default().into_iter()
                        .filter(|r| !have.with_value(|h| h.contains(&r.id)))
                        .map(|r| view! { <option value=r.id.clone()>{r.name.clone()}</option> })
                        .collect_view()}
                </select>
                " "
                <button class="button small primary" type="button" data-testid="copy-to-start" disabled=move || act.busy.get() || chosen.get().is_empty() on:click=copy>"Copy"</button>
            </span>
        </Show>
        {move || hub.copy_queued.get().filter(|(point, _)| *point == id.get_value())
            .map(|(_, m)| view! { <span class="muted small" data-testid="copy-queued">" "{m}</span> })}
        <ActError act=act testid="copy-error" />
    }
}

/// Why a location cannot be removed now, if it cannot (the server says the
/// same with a 409).
fn removal_blocked(l: &RestorePointLocation, others: &[String]) -> Option<String> {
    if l.state == LocationState::Copying {
        return Some("A copy is being made there: wait for its job to end".into());
    }
    if let Some(lock) = lock_ahead(&l.lock) {
        return Some(format!("{}: it cannot be removed before then", lock_title(&lock)));
    }
    if others.is_empty() && l.state != LocationState::Failed {
        return Some("The last readable location of this restore point: delete the restore point instead".into());
    }
    None
}

/// "×" on a location's badge (operators): asks to remove the restore
/// point from that repository alone ([`RemoveDialog`] confirms).
#[component]
fn RemoveLocation(l: RestorePointLocation, others: Vec<String>, removing: RwSignal<Option<(RestorePointLocation, Vec<String>)>>) -> impl IntoView {
    let session = use_session();
    let blocked = removal_blocked(&l, &others);
    let what = if l.role == LocationRole::Copy { "copy" } else { "primary location" };
    let title = blocked.clone().unwrap_or_else(|| format!("Remove this restore point's {what} from '{}'", l.repository_name));
    let testid = format!("remove-location-{}", l.repository_id);
    let pick = StoredValue::new((l, others));
    view! {
        <Show when=move || session.can(Role::Operator)>
            <button class="location-remove" type="button" data-testid=testid.clone() aria-label=title.clone() title=title.clone()
                disabled=blocked.is_some() on:click=move |_| removing.set(Some(pick.get_value()))>"×"</button>
        </Show>
    }
}

/// The confirmation of a location's removal: its manifest there is
/// deleted, its chunks left for that repository's next GC; the restore
/// point stays in the others.
#[component]
fn RemoveDialog(backup_id: String, removing: RwSignal<Option<(RestorePointLocation, Vec<String>)>>) -> impl IntoView {
    let hub = use_restore_hub();
    let open = RwSignal::new(false);
    let act = Act::new();
    let id = StoredValue::new(backup_id);
    // Each side set only when it changes: a set notifies even with the same
    // value, and these two effects would wake each other for ever.
    Effect::new(move |_| {
        let asked = removing.with(|r| r.is_some());
        if open.get_untracked() != asked {
            open.set(asked);
        }
    });
    Effect::new(move |_| {
        if !open.get() && removing.with_untracked(|r| r.is_some()) {
            removing.set(None);
        }
    });
    let remove = move |_| {
        let Some((l, _)) = removing.get_untracked() else { return };
        let name = l.repository_name.clone();
        act.run(api::delete_location(id.get_value(), l.repository_id.clone()), move |_| {
            open.set(false);
            hub.copy_queued.set(Some((id.get_value(), format!("removed from '{name}'"))));
            hub.points_version.update(|v| *v += 1);
        });
    };
    view! {
        <Modal open=open title="Remove a copy of a restore point" testid="remove-location-dialog">
            {move || removing.get().map(|(l, others)| {
                let what = if l.role == LocationRole::Copy { "copy" } else { "primary location" };
                let stays = if others.is_empty() {
                    String::new()
                } else {
                    format!(" It stays restorable from {}.", others.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(", "))
                };
                view! {
                    <div class="location-confirm" data-repository=l.repository_id.clone()>
                        <p>{format!("Remove the {what} of this restore point from '{}'?", l.repository_name)}</p>
                        <p class="small muted">{format!(
                            "Its manifest in '{}' is deleted now; the data only it used there is given back at that repository's next garbage collection.{stays}",
                            l.repository_name
                        )}</p>
                    </div>
                }
            })}
            <ActError act=act testid="remove-location-error" />
            <div class="action-row">
                <button class="button small" type="button" on:click=move |_| open.set(false)>"Cancel"</button>
                <button class="button small danger" type="button" data-testid="remove-location-confirm" disabled=move || act.busy.get() on:click=remove>"Remove"</button>
            </div>
        </Modal>
    }
}
