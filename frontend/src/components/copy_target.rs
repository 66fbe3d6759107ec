//! The copy target fields (3-2-1) of the policy and flow editors: a second
//! repository each new restore point is copied to, what that repository
//! keeps of the copies (keep last / daily / weekly / monthly) and for how
//! many days the copies cannot be deleted there.

use leptos::prelude::*;
use shared_types::flow::{CopyTarget, RetentionPolicy};

use crate::api;
use crate::fetch::Fetch;

/// A copy target in words, its repository named `repository`:
/// "each new restore point is copied to offsite, which keeps the last 2;
/// immutable there 1 day".
pub fn describe(t: &CopyTarget, repository: &str) -> String {
    let mut s = format!("each new restore point is copied to {repository}, which keeps {}", shared_types::policies::describe_retention(&t.retention));
    if t.immutable_days > 0 {
        s.push_str(&format!("; immutable there {} day{}", t.immutable_days, if t.immutable_days == 1 { "" } else { "s" }));
    }
    s
}

/// A policy's or flow's copy target in one line (`prefix` before it), its
/// repository named from the catalog; none: "no copy to a second repository".
#[component]
pub fn CopyTargetLine(target: Option<CopyTarget>, testid: &'static str, #[prop(into, optional)] prefix: String) -> impl IntoView {
    let repos = Fetch::new(api::repositories);
    let id = target.as_ref().map(|t| t.repository_id.clone()).unwrap_or_default();
    let data_id = id.clone();
    let text = move || match &target {
        None => format!("{prefix}no copy to a second repository"),
        Some(t) => {
            // The repository's name once the list has loaded ("…" until then);
            // its id when the list cannot be read or no longer has it.
            let name = match repos.get() {
                None => "…".to_owned(),
                Some(Ok(list)) => list.into_iter().find(|r| r.id == t.repository_id).map(|r| r.name).unwrap_or_else(|| t.repository_id.clone()),
                Some(Err(_)) => t.repository_id.clone(),
            };
            format!("{prefix}{}", describe(t, &name))
        }
    };
    view! { <span class="copy-target-line" data-testid=testid data-repository=data_id>{text}</span> }
}

/// The fields' values; `""` repository: no copy.
#[derive(Clone, Copy)]
pub struct CopyTargetState {
    pub repository: RwSignal<String>,
    pub keep_last: RwSignal<String>,
    pub keep_daily: RwSignal<String>,
    pub keep_weekly: RwSignal<String>,
    pub keep_monthly: RwSignal<String>,
    pub immutable: RwSignal<String>,
    /// Rules the form does not show, kept as they are.
    kept: StoredValue<RetentionPolicy>,
}

fn number(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

fn count(s: &str, what: &str) -> Result<Option<u32>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<u32>().map(Some).map_err(|_| format!("Copy {what}: give a whole number, or leave it empty."))
}

impl CopyTargetState {
    pub fn new(current: Option<&CopyTarget>) -> Self {
        let r = current.map(|t| t.retention.clone()).unwrap_or_default();
        CopyTargetState {
            repository: RwSignal::new(current.map(|t| t.repository_id.clone()).unwrap_or_default()),
            keep_last: RwSignal::new(number(r.keep_last)),
            keep_daily: RwSignal::new(number(r.keep_daily)),
            keep_weekly: RwSignal::new(number(r.keep_weekly)),
            keep_monthly: RwSignal::new(number(r.keep_monthly)),
            immutable: RwSignal::new(current.map(|t| t.immutable_days.to_string()).unwrap_or_else(|| "0".into())),
            kept: StoredValue::new(r),
        }
    }

    /// The copy target the fields say, or why they cannot be read.
    pub fn read(&self) -> Result<Option<CopyTarget>, String> {
        let repository_id = self.repository.get_untracked();
        if repository_id.is_empty() {
            return Ok(None);
        }
        let retention = RetentionPolicy {
            keep_last: count(&self.keep_last.get_untracked(), "keep last")?,
            keep_daily: count(&self.keep_daily.get_untracked(), "keep daily")?,
            keep_weekly: count(&self.keep_weekly.get_untracked(), "keep weekly")?,
            keep_monthly: count(&self.keep_monthly.get_untracked(), "keep monthly")?,
            ..self.kept.get_value()
        };
        let immutable_days = count(&self.immutable.get_untracked(), "immutable days")?.unwrap_or(0);
        Ok(Some(CopyTarget { repository_id, retention, immutable_days }))
    }
}

/// The fields; `exclude`: the repository the backups are written to (not offered).
#[component]
pub fn CopyTargetFields(state: CopyTargetState, #[prop(into)] exclude: Signal<String>, #[prop(optional)] error: Option<Signal<Option<String>>>) -> impl IntoView {
    let repos = Fetch::new(api::repositories);
    let s = state;
    let input = move |label: &'static str, testid: &'static str, sig: RwSignal<String>| {
        view! {
            <label class="narrow">{label}
                <input type="text" inputmode="numeric" data-testid=testid prop:value=move || sig.get() on:input=move |ev| sig.set(event_target_value(&ev)) />
            </label>
        }
    };
    view! {
        <fieldset class="copy-target" data-testid="copy-target">
            <legend>"Copy to a second repository (3-2-1)"</legend>
            <label>"Copy each new restore point to"
                <select data-testid="copy-target-repo" prop:value=move || s.repository.get() on:change=move |ev| s.repository.set(event_target_value(&ev))>
                    <option value="">"No copy"</option>
                    {move || {
                        let skip = exclude.get();
                        repos.get().and_then(|r| r.ok()).unwrap_or_default().into_iter().filter(|r| r.id != skip).map(|r| {
                            let id = r.id.clone();
                            view! { <option value=r.id.clone() selected=move || s.repository.get_untracked() == id>{r.name.clone()}</option> }
                        }).collect_view()
                    }}
                </select>
            </label>
            {error.map(|e| move || e.get().map(|m| view! { <span class="field-error">{m}</span> }))}
            <div class="form-row" style:display=move || if s.repository.get().is_empty() { "none" } else { "" }>
                {input("Copies: keep last", "copy-keep-last", s.keep_last)}
                {input("Daily", "copy-keep-daily", s.keep_daily)}
                {input("Weekly", "copy-keep-weekly", s.keep_weekly)}
                {input("Monthly", "copy-keep-monthly", s.keep_monthly)}
                {input("Immutable days", "copy-immutable", s.immutable)}
            </div>
        </fieldset>
    }
}
