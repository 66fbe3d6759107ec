//! A job's log: the lines the catalog held when the view opened, then each
//! line as the job writes it (the WebSocket's `job_log` events), oldest
//! first.

use leptos::prelude::*;
use shared_types::jobs::JobLogLine;

use crate::live::use_live;

/// `logs`: the catalog's lines; live lines not among them are added after.
#[component]
pub fn JobLog(job_id: String, #[prop(into)] logs: Signal<Vec<JobLogLine>>) -> impl IntoView {
    let live = use_live();
    let lines = Memo::new(move |_| logs.with(|logs| live.job_logs.with(|m| JobLogLine::merged(logs, m.get(&job_id).map(Vec::as_slice).unwrap_or(&[])))));
    // Built once; a new line is added, the others stay (keyed by place and
    // content: the log only grows at its end).
    let numbered = move || lines.get().into_iter().enumerate().collect::<Vec<_>>();
    view! {
        <h3 class="section-title">"LOG"</h3>
        <Show when=move || lines.with(|l| !l.is_empty()) fallback=|| view! { <p class="muted small" data-testid="job-log-empty">"No log line yet."</p> }>
            <ol class="job-log mono small" data-testid="job-log" data-count=move || lines.with(|l| l.len().to_string())>
                <For
                    each=numbered
                    key=|(i, l)| (*i, l.at, l.message.clone())
                    children=|(_, l)| view! {
                        <li class=format!("log-{}", l.level.as_str()) data-testid="job-log-line">
                            <span class="muted">{l.at.format("%H:%M:%S").to_string()}</span>
                            <span class="log-level">{l.level.as_str()}</span>
                            <span class="log-text">{l.message}</span>
                        </li>
                    }
                />
            </ol>
        </Show>
    }
}
