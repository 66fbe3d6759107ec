//! A job's log: the lines the catalog held when the view opened, then each
//! line as the job writes it (the WebSocket's `job_log` events), oldest
//! first.

use leptos::prelude::*;
use shared_types::jobs::JobLogLine;

use crate::live::use_live;

/// `logs`: the catalog's lines; live lines not among them are added after.
#[component]
pub fn JobLog(job_id: String, logs: Vec<JobLogLine>) -> impl IntoView {
    let live = use_live();
    let lines = Memo::new(move |_| live.job_logs.with(|m| JobLogLine::merged(&logs, m.get(&job_id).map(Vec::as_slice).unwrap_or(&[]))));
    view! {
        <h3 class="section-title">"LOG"</h3>
        {move || {
            let lines = lines.get();
            if lines.is_empty() {
                return view! { <p class="muted small" data-testid="job-log-empty">"No log line yet."</p> }.into_any();
            }
            let count = lines.len().to_string();
            view! {
                <ol class="job-log mono small" data-testid="job-log" data-count=count>
                    {lines.into_iter().map(|l| view! {
                        <li class=format!("log-{}", l.level.as_str()) data-testid="job-log-line">
                            <span class="muted">{l.at.format("%H:%M:%S").to_string()}</span>
                            <span class="log-level">{l.level.as_str()}</span>
                            <span class="log-text">{l.message}</span>
                        </li>
                    }).collect_view()}
                </ol>
            }
            .into_any()
        }}
    }
}
