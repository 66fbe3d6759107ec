//! FileBrowser (seed 001): a file-level restore session's volumes and
//! directories, read from the restore point by the server. Breadcrumbs,
//! pages of 200 entries, links shown with their target, a download per
//! file (a directory downloads as a tar archive), and a selection that is
//! restored to a directory on the Sendense host or back into a VM's disk.

use leptos::prelude::*;
use shared_types::restore::{FileEntry, FileKind, FileListing, Mount};

use crate::api;
use crate::components::restore_files::RestoreFilesForm;
use crate::fetch::Fetch;
use crate::format::{format_bytes, when};

/// Entries per page.
const PAGE: u64 = 200;

/// Open while `mount` is `Some`; closing leaves the session open (it
/// expires when idle, or is closed from the sessions list).
#[component]
pub fn FileBrowserModal(mount: RwSignal<Option<Mount>>) -> impl IntoView {
    view! {
        {move || mount.get().map(|m| view! {
            <div class="modal-backdrop" on:click=move |_| mount.set(None)>
                <div class="modal wide" role="dialog" aria-modal="true" aria-label="Browse files" data-testid="file-browser"
                    on:click=|ev| ev.stop_propagation()>
                    <header class="modal-head">
                        <h2>{format!("FILES · {}", m.vm_name)}</h2>
                        <button class="icon-button" aria-label="Close" data-testid="file-browser-close" on:click=move |_| mount.set(None)>"✕"</button>
                    </header>
                    <div class="modal-body"><FileBrowser m=m /></div>
                </div>
            </div>
        })}
    }
}

fn mode_text(mode: Option<u32>) -> String {
    let Some(m) = mode else { return String::new() };
    let bit = |b: u32, c: char| if m & b != 0 { c } else { '-' };
    [bit(0o400, 'r'), bit(0o200, 'w'), bit(0o100, 'x'), bit(0o040, 'r'), bit(0o020, 'w'), bit(0o010, 'x'), bit(0o004, 'r'), bit(0o002, 'w'), bit(0o001, 'x')]
        .iter()
        .collect()
}

fn glyph(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Directory => "▸",
        FileKind::File => "·",
        FileKind::Symlink => "↪",
        FileKind::Other => "◇",
    }
}

#[component]
fn FileBrowser(m: Mount) -> impl IntoView {
    let mount_id = StoredValue::new(m.id.clone());
    let path = RwSignal::new("/".to_string());
    let offset = RwSignal::new(0u64);
    let selected = RwSignal::new(Vec::<String>::new());
    let restoring = RwSignal::new(false);
    let listing = Fetch::new(move || api::files(mount_id.get_value(), path.get(), offset.get(), PAGE));
    let go = move |p: String| {
        offset.set(0);
        path.set(p);
    };
    let crumbs = move || {
        let p = path.get();
        let mut out = vec![("restore point".to_string(), "/".to_string())];
        let mut acc = String::new();
        for part in p.split('/').filter(|s| !s.is_empty()) {
            acc.push('/');
            acc.push_str(part);
            out.push((part.to_string(), acc.clone()));
        }
        out
    };
    let volumes = m.volumes.clone();
    let form_mount = m.clone();
    view! {
        <p class="muted small">
            {format!("Restore point of {} · session expires when idle (now {})", when(m.backup_created_at), when(m.expires_at))}
        </p>
        <div class="volume-notes">
            {volumes.into_iter().filter(|v| !v.browsable).map(|v| view! {
                <p class="muted small">{format!("{} ({}): {}", v.id, v.filesystem, v.note.unwrap_or_default())}</p>
            }).collect_view()}
        </div>
        <nav class="breadcrumbs" aria-label="Path" data-testid="file-breadcrumbs">
            {move || crumbs().into_iter().map(|(label, target)| {
                let t = target.clone();
                view! { <button class="crumb" data-testid=format!("crumb-{target}") on:click=move |_| go(t.clone())>{label}</button> }
            }).collect_view()}
        </nav>
        <Show when=move || selected.with(|s| !s.is_empty())>
            <div class="toolbar selection-bar" data-testid="file-selection">
                <span class="small" data-testid="file-selection-count">{move || format!("{} selected", selected.with(Vec::len))}</span>
                <span class="muted small mono ellipsis">{move || selected.with(|s| s.join(", "))}</span>
                <span class="grow"></span>
                <button class="button small" data-testid="selection-clear" on:click=move |_| { selected.set(Vec::new()); restoring.set(false); }>"Clear"</button>
                <button class="button small primary" data-testid="restore-selected" on:click=move |_| restoring.update(|r| *r = !*r)>"Restore selected…"</button>
            </div>
        </Show>
        {move || restoring.get().then(|| view! { <RestoreFilesForm mount=form_mount.clone() paths=selected open=restoring /> })}
        <Transition fallback=|| view! { <p class="muted">"Reading the directory from the restore point…"</p> }>
            {move || listing.get().map(|r| match r {
                Err(e) => view! { <p class="notice warning" data-testid="file-error">{e.message}</p> }.into_any(),
                Ok(l) => view! { <Listing l=l mount_id=mount_id.get_value() go=Callback::new(go) offset=offset selected=selected /> }.into_any(),
            })}
        </Transition>
    }
}

#[component]
fn Listing(l: FileListing, mount_id: String, go: Callback<String>, offset: RwSignal<u64>, selected: RwSignal<Vec<String>>) -> impl IntoView {
    let total = l.total;
    let start = l.offset;
    let shown = l.entries.len() as u64;
    let at_root = l.path == "/";
    let here = l.path.clone();
    let archive = (!at_root).then(|| api::download_url(&mount_id, &here));
    view! {
        <div class="toolbar">
            <span class="muted small" data-testid="file-count" data-total=total.to_string()>
                {if total == 0 { "Empty".to_string() } else { format!("{}–{} of {} entries", start + 1, start + shown, total) }}
            </span>
            <span class="grow"></span>
            {archive.map(|url| view! { <a class="button small" href=url download="" data-testid="download-dir">"Download folder (tar)"</a> })}
            <button class="button small" data-testid="page-prev" disabled={start == 0}
                on:click=move |_| offset.set(start.saturating_sub(PAGE))>"Previous"</button>
            <button class="button small" data-testid="page-next" disabled={start + shown >= total}
                on:click=move |_| offset.set(start + PAGE)>"Next"</button>
        </div>
        <div class="table-wrap scroll">
            <table class="table files" data-testid="file-list">
                <thead><tr><th class="check"></th><th>"Name"</th><th>"Size"</th><th class="hide-narrow">"Modified"</th><th class="hide-narrow">"Mode"</th><th></th></tr></thead>
                <tbody>
                    {l.entries.into_iter().map(|e| view! { <Row e=e mount_id=mount_id.clone() go=go at_root=at_root selected=selected /> }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn Row(e: FileEntry, mount_id: String, go: Callback<String>, at_root: bool, selected: RwSignal<Vec<String>>) -> impl IntoView {
    let target = e.path.clone();
    let name = e.name.clone();
    let is_dir = e.kind == FileKind::Directory;
    let size = if is_dir && !at_root { String::new() } else { format_bytes(e.size) };
    let link = e.symlink_target.clone().map(|t| format!(" → {t}"));
    let detail = if e.attributes.is_empty() { mode_text(e.mode) } else { e.attributes.join(", ") };
    let download = (e.kind == FileKind::File).then(|| api::download_url(&mount_id, &e.path));
    // Volumes themselves are not selectable: their files are.
    let pick = (!at_root).then(|| {
        let (p1, p2) = (e.path.clone(), e.path.clone());
        view! {
            <input type="checkbox" aria-label=format!("Select {}", e.name) data-testid=format!("select-{}", e.name)
                prop:checked=move || selected.with(|s| s.contains(&p1))
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    selected.update(|s| { s.retain(|x| x != &p2); if on { s.push(p2.clone()); } });
                } />
        }
    });
    view! {
        <tr data-testid=format!("file-{}", e.name) data-kind=e.kind.as_str() data-size=e.size.to_string()>
            <td class="check">{pick}</td>
            <td>
                <span class="file-glyph">{glyph(e.kind)}</span>
                {if is_dir {
                    view! { <button class="link-button" data-testid=format!("open-{name}") on:click=move |_| go.run(target.clone())>{name.clone()}</button> }.into_any()
                } else {
                    view! { <span>{name.clone()}</span> }.into_any()
                }}
                {link.map(|l| view! { <span class="muted small">{l}</span> })}
            </td>
            <td class="mono">{size}</td>
            <td class="mono hide-narrow">{e.modified.map(when).unwrap_or_default()}</td>
            <td class="mono hide-narrow">{detail}</td>
            <td>{download.map(|url| view! { <a class="button small" href=url download="" data-testid=format!("download-{}", e.name)>"Download"</a> })}</td>
        </tr>
    }
}
