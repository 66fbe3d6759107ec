//! Where a restore point exists (3-2-1): one small badge per repository it
//! is in, its primary first, coloured by state (present, copying, failed,
//! missing), with the repository, role, copy time and immutability in the
//! badge's title.

use leptos::prelude::*;
use shared_types::backups::{Backup, LocationRole, LocationState, RestorePointLocation};

use crate::format::when;

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
    if let Some(u) = l.immutable_until {
        t.push_str(&format!("; immutable there until {}", when(u)));
    }
    t
}

/// The badges of `b`'s locations (its repository alone when the server sent none).
#[component]
pub fn PointLocations(b: Backup) -> impl IntoView {
    if b.locations.is_empty() {
        return view! { <span data-testid="point-locations">{b.repository.name.clone()}</span> }.into_any();
    }
    view! {
        <span class="point-locations" data-testid="point-locations" data-count=b.locations.len().to_string()>
            {b.locations.iter().map(|l| {
                let role = if l.role == LocationRole::Copy { "copy: " } else { "" };
                view! {
                    <span class=class(l.state) data-testid="point-location" data-role=l.role.as_str() data-state=l.state.as_str()
                        data-repository=l.repository_id.clone() title=title(l)>
                        {format!("{role}{}", l.repository_name)}
                    </span>
                    " "
                }
            }).collect_view()}
        </span>
    }
    .into_any()
}
