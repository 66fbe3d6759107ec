//! Repository management on the Repositories page (admins): the Add
//! repository form (a local directory, an S3 bucket or an Azure container;
//! "Test" runs every check on the server and shows each, and Save is enabled
//! only after a passing test of the very values in the form), and per
//! repository: edit (rename, rotate credentials, immutable days), make
//! default, remove (the server's refusal shown as it is; removing never
//! deletes the data). Secret fields are password inputs and are never
//! shown back: the server does not return them.

use leptos::prelude::*;
use shared_types::auth::Role;
use shared_types::repositories::{Repository, RepositoryKind};
use shared_types::repository_setup::{immutability, CreateRepository, Immutability, ObjectLockMode, RepositoryTest, UpdateRepository};

use crate::api;
use crate::components::act::{Act, ActError};
use crate::session::{needs, use_session};

fn opt(s: String) -> Option<String> {
    let t = s.trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// Whole days or nothing; the message names the field.
fn days(s: &str) -> Result<Option<u32>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u32>().map(Some).map_err(|_| "Immutable days: give a whole number of days (0 for none).".to_string())
}

/// Who keeps immutable restore points, in words.
pub fn immutability_text(r: &Repository) -> String {
    match r.immutability {
        Immutability::None => "none".into(),
        Immutability::Storage => format!(
            "{} days, enforced by the storage (S3 Object Lock{})",
            r.immutable_days,
            r.object_lock_mode.map(|m| format!(", {m}")).unwrap_or_default()
        ),
        Immutability::Sendense => format!("{} days, enforced by Sendense only", r.immutable_days),
    }
}

/// Where a repository is, in words (never a secret).
pub fn location_text(r: &Repository) -> String {
    match (&r.kind, &r.location) {
        (RepositoryKind::Local, _) | (_, None) => r.path.clone(),
        (_, Some(l)) => {
            let mut parts = Vec::new();
            if let Some(b) = &l.bucket {
                parts.push(format!("bucket {b}"));
            }
            if let (Some(a), Some(c)) = (&l.account, &l.container) {
                parts.push(format!("{a} / container {c}"));
            }
            if let Some(p) = &l.prefix {
                parts.push(format!("prefix {p}"));
            }
            parts.push(match (&l.endpoint, &l.region) {
                (Some(e), _) => format!("at {e}"),
                (None, Some(region)) => format!("AWS {region}"),
                (None, None) => "AWS".into(),
            });
            parts.join(", ")
        }
    }
}

/// The Add repository form.
#[component]
pub fn AddRepositoryForm(on_done: Callback<String>, on_cancel: Callback<()>) -> impl IntoView {
    let kind = RwSignal::new(RepositoryKind::Local);
    let name = RwSignal::new(String::new());
    let path = RwSignal::new(String::new());
    let endpoint = RwSignal::new(String::new());
    let region = RwSignal::new(String::new());
    let bucket = RwSignal::new(String::new());
    let container = RwSignal::new(String::new());
    let prefix = RwSignal::new(String::new());
    let access_key_id = RwSignal::new(String::new());
    let secret = RwSignal::new(String::new());
    let account = RwSignal::new(String::new());
    let use_sas = RwSignal::new(false);
    let virtual_hosted = RwSignal::new(false);
    let immutable = RwSignal::new(String::new());
    let lock_mode = RwSignal::new(ObjectLockMode::Governance);
    let encrypted = RwSignal::new(true);
    // The key file of an encrypted repository to attach (another server's).
    let key = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    let test_act = Act::new();
    let save_act = Act::new();
    // The last test, with the form values it ran on.
    let tested = RwSignal::new(None::<(String, RepositoryTest)>);

    let request = move || -> Result<CreateRepository, String> {
        let k = kind.get();
        let immutable_days = days(&immutable.get())?;
        let mut r = CreateRepository {
            name: name.get().trim().to_string(),
            kind: k,
            immutable_days,
            encrypted: Some(encrypted.get()),
            key: opt(key.get()),
            ..Default::default()
        };
        match k {
            RepositoryKind::Local => r.path = opt(path.get()),
            RepositoryKind::S3 => {
                r.endpoint = opt(endpoint.get());
                r.region = opt(region.get());
                r.bucket = opt(bucket.get());
                r.prefix = opt(prefix.get());
                r.access_key_id = opt(access_key_id.get());
                r.secret_access_key = opt(secret.get());
                r.virtual_hosted = virtual_hosted.get().then_some(true);
                r.object_lock_mode = immutable_days.filter(|d| *d > 0).map(|_| lock_mode.get());
            }
            RepositoryKind::Azure => {
                r.endpoint = opt(endpoint.get());
                r.account = opt(account.get());
                r.container = opt(container.get());
                r.prefix = opt(prefix.get());
                if use_sas.get() {
                    r.sas = opt(secret.get());
                } else {
                    r.account_key = opt(secret.get());
                }
            }
        }
        Ok(r)
    };
    // The form's values as the test saw them (secrets included, never shown).
    let current = move || request().ok().and_then(|r| serde_json::to_string(&r).ok()).unwrap_or_default();
    let passed = Memo::new(move |_| {
        let now = current();
        tested.with(|t| t.as_ref().is_some_and(|(k, t)| t.ok && *k == now))
    });
    let run_test = move |_| {
        local_error.set(None);
        match request() {
            Err(e) => local_error.set(Some(e)),
            Ok(req) => {
                let key = serde_json::to_string(&req).unwrap_or_default();
                tested.set(None);
                test_act.run(api::test_repository(req), move |t| tested.set(Some((key, t))));
            }
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        local_error.set(None);
        if !passed.get_untracked() {
            local_error.set(Some("Test these settings first: Save is enabled once a test of the same values passes.".into()));
            return;
        }
        let Ok(req) = request() else { return };
        let attaches = tested.with_untracked(|t| t.as_ref().is_some_and(|(_, t)| t.attaches));
        save_act.run(api::create_repository(req), move |r| {
            on_done.run(format!(
                "The repository {} was {} ({}){}.",
                r.name,
                if attaches { "attached with its restore points" } else { "created" },
                location_text(&r),
                if r.encrypted { ", encrypted: download its key for safekeeping" } else { "" }
            ))
        });
    };
    let field_error = move |f: &'static str| {
        move || save_act.field(f).or_else(|| test_act.field(f)).map(|m| view! { <span class="field-error" data-testid=format!("repo-form-error-{f}")>{m}</span> })
    };
    let is = move |k: RepositoryKind| move || kind.get() == k;
    let text_input = move |label: &'static str, field: &'static str, sig: RwSignal<String>, placeholder: &'static str| {
        view! {
            <label>{label}
                <input type="text" data-testid=format!("repo-form-{}", field.replace('_', "-")) placeholder=placeholder autocomplete="off"
                    prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
                {field_error(field)}
            </label>
        }
    };
    let secret_field = move || match (kind.get(), use_sas.get()) {
        (RepositoryKind::S3, _) => "secret_access_key",
        (_, true) => "sas",
        _ => "account_key",
    };
    let will_be = move || immutability(kind.get(), days(&immutable.get()).ok().flatten().unwrap_or(0));
    view! {
        <form class="card repo-form" data-testid="repo-form" on:submit=submit autocomplete="off">
            <h2>"ADD REPOSITORY"</h2>
            <div class="form-row">
                <label>"Kind"
                    <select data-testid="repo-form-kind" on:change=move |ev| {
                        kind.set(RepositoryKind::parse(&event_target_value(&ev)).unwrap_or(RepositoryKind::Local));
                        secret.set(String::new());
                    }>
                        <option value="local" selected=move || kind.get() == RepositoryKind::Local>"Local directory (or NFS/CIFS mount)"</option>
                        <option value="s3" selected=move || kind.get() == RepositoryKind::S3>"S3-compatible bucket"</option>
                        <option value="azure" selected=move || kind.get() == RepositoryKind::Azure>"Azure Blob container"</option>
                    </select>
                </label>
                {text_input("Name", "name", name, "site-b")}
            </div>
            <Show when=is(RepositoryKind::Local)>
                <div class="form-row">
                    <label class="grow">"Directory (absolute; new, empty, or a Sendense repository to attach)"
                        <input type="text" class="mono" data-testid="repo-form-path" placeholder="/srv/backups/site-b" autocomplete="off"
                            prop:value=move || path.get() on:input=move |ev| path.set(event_target_value(&ev)) />
                        {field_error("path")}
                    </label>
                </div>
            </Show>
            <Show when=is(RepositoryKind::S3)>
                <div class="form-row">
                    {text_input("Endpoint (empty: AWS)", "endpoint", endpoint, "https://s3.example.com")}
                    {text_input("Region", "region", region, "us-east-1")}
                    {text_input("Bucket", "bucket", bucket, "backups")}
                    {text_input("Prefix", "prefix", prefix, "sendense/site-b")}
                </div>
                <div class="form-row">
                    {text_input("Access key id", "access_key_id", access_key_id, "AKIA…")}
                    <label>"Secret access key"
                        <input type="password" data-testid="repo-form-secret" autocomplete="new-password"
                            prop:value=move || secret.get() on:input=move |ev| secret.set(event_target_value(&ev)) />
                        {field_error("secret_access_key")}
                    </label>
                    <label class="check">
                        <input type="checkbox" data-testid="repo-form-virtual-hosted" prop:checked=move || virtual_hosted.get()
                            on:change=move |ev| virtual_hosted.set(event_target_checked(&ev)) />
                        " Virtual-hosted addressing (bucket.host)"
                    </label>
                </div>
            </Show>
            <Show when=is(RepositoryKind::Azure)>
                <div class="form-row">
                    {text_input("Endpoint (empty: Azure)", "endpoint", endpoint, "http://127.0.0.1:10000/devstoreaccount1")}
                    {text_input("Storage account", "account", account, "mystorageaccount")}
                    {text_input("Container", "container", container, "backups")}
                    {text_input("Prefix", "prefix", prefix, "sendense/site-b")}
                </div>
                <div class="form-row">
                    <label>"Credential"
                        <select data-testid="repo-form-credential" on:change=move |ev| { use_sas.set(event_target_value(&ev) == "sas"); secret.set(String::new()); }>
                            <option value="account_key" selected=move || !use_sas.get()>"Account key"</option>
                            <option value="sas" selected=move || use_sas.get()>"Shared access signature"</option>
                        </select>
                    </label>
                    <label class="grow">{move || if use_sas.get() { "Shared access signature" } else { "Account key" }}
                        <input type="password" data-testid="repo-form-secret" autocomplete="new-password"
                            prop:value=move || secret.get() on:input=move |ev| secret.set(event_target_value(&ev)) />
                        {move || field_error(if use_sas.get() { "sas" } else { "account_key" })()}
                    </label>
                </div>
            </Show>
            <div class="form-row">
                <label class="narrow">"Immutable days"
                    <input type="text" inputmode="numeric" data-testid="repo-form-immutable" placeholder="0"
                        prop:value=move || immutable.get() on:input=move |ev| immutable.set(event_target_value(&ev)) />
                    {field_error("immutable_days")}
                </label>
                <Show when=move || kind.get() == RepositoryKind::S3 && will_be() == Immutability::Storage>
                    <label>"Object Lock mode"
                        <select data-testid="repo-form-lock-mode" on:change=move |ev| lock_mode.set(ObjectLockMode::parse(&event_target_value(&ev)).unwrap_or(ObjectLockMode::Governance))>
                            <option value="governance">"Governance"</option>
                            <option value="compliance">"Compliance (nobody can delete early)"</option>
                        </select>
                    </label>
                </Show>
                <label class="check">
                    <input type="checkbox" data-testid="repo-form-encrypted" prop:checked=move || encrypted.get() on:change=move |ev| encrypted.set(event_target_checked(&ev)) />
                    " Encrypt (AES-256-GCM; the key stays on this server)"
                </label>
            </div>
            <details class="repo-key" data-testid="repo-form-key-box" prop:open=move || !key.get().is_empty()>
                <summary>"Attaching an encrypted repository whose key is not on this server?"</summary>
                <label class="grow">"Its key file (paste what `sendense key export` or Download key gave)"
                    <textarea class="mono" rows="4" data-testid="repo-form-key" spellcheck="false" autocomplete="off"
                        placeholder="{\"sendense_key\": 1, \"master_key\": \"…\"}"
                        prop:value=move || key.get() on:input=move |ev| key.set(event_target_value(&ev))></textarea>
                    {field_error("key")}
                </label>
            </details>
            <p class="muted small" data-testid="repo-form-immutability">{move || match will_be() {
                Immutability::None => "No immutability: restore points can be pruned as soon as their retention allows.".to_string(),
                Immutability::Storage => "Immutability enforced by the storage: the bucket needs S3 Object Lock, and the test checks it.".to_string(),
                Immutability::Sendense if kind.get() == RepositoryKind::Azure =>
                    "Immutability on Azure is enforced by Sendense only: someone with the storage account's own key could still delete.".to_string(),
                Immutability::Sendense => "Immutability enforced by Sendense only: someone with access to the directory could still delete.".to_string(),
            }}</p>
            {move || local_error.get().map(|e| view! { <p class="notice warning" role="alert" data-testid="repo-form-local-error">{e}</p> })}
            {move || tested.get().map(|(_, t)| view! { <TestResult test=t /> })}
            <ActError act=test_act testid="repo-test-error" />
            <ActError act=save_act testid="repo-save-error" />
            <div class="action-row">
                <button type="button" class="button small" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                <button type="button" class="button small" data-testid="repo-form-test" disabled=move || test_act.busy.get() on:click=run_test>
                    {move || if test_act.busy.get() { "Testing…" } else { "Test" }}
                </button>
                <button type="submit" class="button small primary" data-testid="repo-form-save" disabled=move || !passed.get() || save_act.busy.get()
                    title=move || if passed.get() { String::new() } else { "Run a test of these values first".to_string() }>
                    {move || if tested.with(|t| t.as_ref().is_some_and(|(_, t)| t.attaches)) { "Attach repository" } else { "Add repository" }}
                </button>
            </div>
            <Show when=move || kind.get() != RepositoryKind::Local>
                <p class="muted small" data-testid="repo-form-secret-note">{move || format!("The {} is sent once and stored sealed; it is never shown again.", secret_field().replace('_', " "))}</p>
            </Show>
        </form>
    }
}

/// What an import of a repository's restore points did, in words.
fn import_text(r: &shared_types::repository_setup::RepositoryImport) -> String {
    let mut text = format!(
        "{} snapshot(s) in the repository: {} restore point(s) recorded, {} recorded as copies held here, {} already known.",
        r.snapshots, r.recorded, r.copies, r.known
    );
    if !r.unmatched.is_empty() {
        let vms: Vec<String> = r
            .unmatched
            .iter()
            .map(|u| format!("{} ({}{} restore point(s))", u.name, u.platform_vm_id.as_deref().map(|id| format!("{id}, ")).unwrap_or_default(), u.restore_points))
            .collect();
        text.push_str(&format!(" Not managed on this server: {}. Add their platform, discover it, then import again.", vms.join(", ")));
    }
    if !r.unreadable.is_empty() {
        text.push_str(&format!(" {} snapshot(s) could not be read: {}.", r.unreadable.len(), r.unreadable.join("; ")));
    }
    text
}

/// Each check of a test, passed or not, with its message.
#[component]
fn TestResult(test: RepositoryTest) -> impl IntoView {
    view! {
        <div class="repo-test" data-testid="repo-test" data-ok=test.ok.to_string()>
            <p class=if test.ok { "notice operational" } else { "notice warning" } data-testid="repo-test-summary">
                {if test.ok { "Every check passed: the repository can be added." } else { "A check failed: change what it says, then test again." }}
            </p>
            <ul class="repo-checks">
                {test.checks.into_iter().map(|c| view! {
                    <li data-testid="repo-check" data-check=c.check.as_str() data-ok=c.ok.to_string()>
                        <span class=if c.ok { "status-dot operational" } else { "status-dot warning" }></span>
                        <strong>{format!(" {} ", c.check.as_str().replace('_', " "))}</strong>
                        <span>{c.message}</span>
                    </li>
                }).collect_view()}
            </ul>
        </div>
    }
}

/// Admin actions of one repository: make default, edit, remove.
#[component]
pub fn RepositoryAdmin(r: Repository, version: RwSignal<u32>, message: RwSignal<Option<(bool, String)>>) -> impl IntoView {
    let session = use_session();
    let admin = move || session.can(Role::Admin);
    let why = move || if admin() { String::new() } else { needs(Role::Admin, session.user.get().as_ref()) };
    let act = Act::new();
    let editing = RwSignal::new(false);
    let armed = RwSignal::new(false);
    let id = StoredValue::new(r.id.clone());
    let is_default = r.is_default;
    let repo = StoredValue::new(r);
    let make_default = move |_| {
        act.run(api::set_default_repository(id.get_value()), move |r| {
            message.set(Some((true, format!("New flows go to {} unless they name another repository.", r.name))));
            version.update(|v| *v += 1);
        });
    };
    let import = move |_| {
        act.run(api::import_repository(id.get_value()), move |r| {
            message.set(Some((r.unmatched.is_empty() && r.unreadable.is_empty(), import_text(&r))));
            version.update(|v| *v += 1);
        });
    };
    let remove = move |_| {
        if !armed.get_untracked() {
            armed.set(true);
            return;
        }
        armed.set(false);
        act.run(api::delete_repository(id.get_value()), move |removed| {
            message.set(Some((true, removed.message)));
            version.update(|v| *v += 1);
        });
    };
    view! {
        <div class="action-row" data-testid="repo-admin">
            {(!is_default).then(|| view! {
                <button class="button small" data-testid="repo-make-default" title=why disabled=move || !admin() || act.busy.get() on:click=make_default>"Make default"</button>
            })}
            <button class="button small" data-testid="repo-edit" title=why disabled=move || !admin() on:click=move |_| editing.update(|e| *e = !*e)>"Edit"</button>
            <button class="button small" data-testid="repo-import" disabled=move || !admin() || act.busy.get() on:click=import
                title=move || if admin() { "Record the restore points this repository holds that the catalog lacks".to_string() } else { why() }>
                "Import restore points"
            </button>
            <button class="button small danger" data-testid="repo-remove" title=move || if admin() { "Remove from the catalog; the data stays".to_string() } else { why() }
                disabled=move || !admin() || act.busy.get() on:click=remove>
                {move || if armed.get() { "Click again to remove (data stays)" } else { "Remove" }}
            </button>
        </div>
        <ActError act=act testid="repo-admin-error" />
        <Show when=move || editing.get()>
            <EditRepository r=repo.get_value() version=version message=message editing=editing />
        </Show>
    }
}

/// Rename, rotate credentials, immutable days.
#[component]
fn EditRepository(r: Repository, version: RwSignal<u32>, message: RwSignal<Option<(bool, String)>>, editing: RwSignal<bool>) -> impl IntoView {
    let act = Act::new();
    let kind = r.kind;
    let name = RwSignal::new(r.name.clone());
    let immutable = RwSignal::new(r.immutable_days.to_string());
    let access_key_id = RwSignal::new(r.location.as_ref().and_then(|l| l.access_key_id.clone()).unwrap_or_default());
    let secret = RwSignal::new(String::new());
    let use_sas = RwSignal::new(r.location.as_ref().and_then(|l| l.credential.as_deref()) == Some("sas"));
    let local_error = RwSignal::new(None::<String>);
    let original = StoredValue::new(r);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        local_error.set(None);
        let before = original.get_value();
        let d = match days(&immutable.get_untracked()) {
            Ok(d) => d,
            Err(e) => return local_error.set(Some(e)),
        };
        let mut req = UpdateRepository::default();
        let n = name.get_untracked().trim().to_string();
        if n != before.name {
            req.name = Some(n);
        }
        if d.is_some_and(|d| d != before.immutable_days) {
            req.immutable_days = d;
        }
        if let Some(s) = opt(secret.get_untracked()) {
            match kind {
                RepositoryKind::S3 => {
                    req.access_key_id = opt(access_key_id.get_untracked());
                    req.secret_access_key = Some(s);
                }
                RepositoryKind::Azure if use_sas.get_untracked() => req.sas = Some(s),
                RepositoryKind::Azure => req.account_key = Some(s),
                RepositoryKind::Local => {}
            }
        }
        act.run(api::update_repository(before.id.clone(), req), move |r| {
            message.set(Some((true, format!("The repository {} was saved.", r.name))));
            editing.set(false);
            version.update(|v| *v += 1);
        });
    };
    let field_error = move |f: &'static str| move || act.field(f).map(|m| view! { <span class="field-error">{m}</span> });
    view! {
        <form class="inline-form repo-edit" data-testid="repo-edit-form" on:submit=submit autocomplete="off">
            <label>"Name"
                <input type="text" data-testid="repo-edit-name" prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                {field_error("name")}
            </label>
            <label class="narrow">"Immutable days"
                <input type="text" inputmode="numeric" data-testid="repo-edit-immutable" prop:value=move || immutable.get() on:input=move |ev| immutable.set(event_target_value(&ev)) />
                {field_error("immutable_days")}
            </label>
            {(kind == RepositoryKind::S3).then(|| view! {
                <label>"Access key id"
                    <input type="text" data-testid="repo-edit-access-key" prop:value=move || access_key_id.get() on:input=move |ev| access_key_id.set(event_target_value(&ev)) />
                    {field_error("access_key_id")}
                </label>
                <label>"New secret access key (empty: keep)"
                    <input type="password" data-testid="repo-edit-secret" autocomplete="new-password" prop:value=move || secret.get() on:input=move |ev| secret.set(event_target_value(&ev)) />
                    {field_error("secret_access_key")}
                </label>
            })}
            {(kind == RepositoryKind::Azure).then(|| view! {
                <label>"Credential"
                    <select data-testid="repo-edit-credential" on:change=move |ev| use_sas.set(event_target_value(&ev) == "sas")>
                        <option value="account_key" selected=move || !use_sas.get()>"Account key"</option>
                        <option value="sas" selected=move || use_sas.get()>"Shared access signature"</option>
                    </select>
                </label>
                <label>"New secret (empty: keep)"
                    <input type="password" data-testid="repo-edit-secret" autocomplete="new-password" prop:value=move || secret.get() on:input=move |ev| secret.set(event_target_value(&ev)) />
                    {move || field_error(if use_sas.get() { "sas" } else { "account_key" })()}
                </label>
            })}
            <button class="button small primary" type="submit" data-testid="repo-edit-save" disabled=move || act.busy.get()>"Save"</button>
            <button class="button small" type="button" on:click=move |_| editing.set(false)>"Cancel"</button>
            {move || local_error.get().map(|e| view! { <p class="notice warning">{e}</p> })}
            <ActError act=act testid="repo-edit-error" />
        </form>
    }
}
