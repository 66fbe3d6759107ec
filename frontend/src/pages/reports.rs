//! Reports: success rate, backup duration and size, change rate,
//! throughput, storage growth with its forecast, and RPO compliance over
//! 7, 30, 90 or 365 days, from the catalog's job history. The charts are
//! the server's SVG drawings (the same the printable page holds), the
//! tables come from the report itself (`shared_types::reports::Sheet`);
//! each table downloads as CSV and the report opens as a printable page.

use leptos::prelude::*;
use shared_types::reports::{AnyReport, Cell, ReportKind, SuccessBy, Table, PERIODS};

use crate::api;
use crate::fetch::Fetch;
use crate::nav;
use crate::pages::planned::PageHeader;

/// Most rows a table shows on screen; CSV and the printed page hold all.
const ROWS_SHOWN: usize = 200;

#[component]
pub fn ReportsPage() -> impl IntoView {
    let d = nav::for_path("/reports").expect("Reports is in the navigation table");
    let days = RwSignal::new(30u32);
    let kind = RwSignal::new(ReportKind::Success);
    let by = RwSignal::new(SuccessBy::Vm);
    // History: read when the report or period changes, not on every job event.
    let report = Fetch::new(move || api::report(kind.get(), days.get(), by.get()));
    view! {
        <section class="page" data-testid="page-reports">
            <PageHeader label=d.label purpose=d.purpose />
            <div class="card report-controls">
                <div class="report-tabs" role="group" aria-label="Report">
                    {ReportKind::ALL.iter().copied().map(|k| view! {
                        <button type="button" class="seg-button report-tab" data-testid=format!("report-{}", k.as_str())
                            aria-pressed=move || (kind.get() == k).to_string() on:click=move |_| kind.set(k)>
                            {k.title()}
                        </button>
                    }).collect_view()}
                </div>
                <div class="toolbar">
                    <div class="seg" role="group" aria-label="Period">
                        {PERIODS.iter().copied().map(|n| view! {
                            <button type="button" class="seg-button" data-testid=format!("report-{n}d")
                                aria-pressed=move || (days.get() == n).to_string() on:click=move |_| days.set(n)>
                                {format!("{n} d")}
                            </button>
                        }).collect_view()}
                    </div>
                    <Show when=move || kind.get() == ReportKind::Success>
                        <div class="seg" role="group" aria-label="Rows per">
                            {[(SuccessBy::Vm, "VM"), (SuccessBy::Flow, "Flow"), (SuccessBy::Group, "Group")].into_iter().map(|(b, label)| view! {
                                <button type="button" class="seg-button" data-testid=format!("report-by-{}", b.as_str())
                                    aria-pressed=move || (by.get() == b).to_string() on:click=move |_| by.set(b)>
                                    {label}
                                </button>
                            }).collect_view()}
                        </div>
                    </Show>
                    <a class="button small push" target="_blank" rel="noopener" data-testid="report-print"
                        href=move || api::report_print_url(kind.get(), days.get(), by.get())>"Print"</a>
                </div>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Reading the catalog's history…"</p> }>
                {move || report.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(r) => view! { <ReportView report=r by=by.get_untracked() /> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ReportView(report: AnyReport, by: SuccessBy) -> impl IntoView {
    let sheet = report.sheet();
    let (kind, days) = (sheet.kind(), sheet.window().days);
    let w = sheet.window();
    let period = format!("{} days: {} to {} UTC", days, w.start.format("%Y-%m-%d"), w.end.format("%Y-%m-%d %H:%M"));
    let charts: Vec<(usize, String)> = sheet.charts().into_iter().map(|c| c.title).enumerate().collect();
    let tables = sheet.tables();
    let summary = summary(&report);
    view! {
        <div class="card" data-testid="report" data-kind=kind.as_str() data-days=days>
            <div class="card-head">
                <h2>{kind.title().to_uppercase()}</h2>
                <span class="muted small">{period}</span>
            </div>
            {summary.map(|s| view! { <p class="report-summary" data-testid="report-summary">{s}</p> })}
            <p class="muted small report-method" data-testid="report-method">{sheet.method().to_owned()}</p>
            <div class="report-charts">
                {charts.into_iter().map(|(n, title)| view! {
                    <figure class="report-chart">
                        <img data-testid="report-chart" src=api::report_chart_url(kind, days, by, n) alt=title width="720" height="260" />
                    </figure>
                }).collect_view()}
            </div>
        </div>
        {tables.into_iter().enumerate().map(|(n, t)| view! { <ReportTable table=t csv=api::report_csv_url(kind, days, by, n) /> }).collect_view()}
    }
}

/// One line that answers the report's question, from its own figures.
fn summary(report: &AnyReport) -> Option<String> {
    match report {
        AnyReport::Success(r) => Some(match r.success_percent {
            Some(p) => format!("{p:.1} % of {} decided backups completed ({} failed, {} cancelled).", r.total.completed + r.total.failed, r.total.failed, r.total.cancelled),
            None => "No backup finished in this period.".into(),
        }),
        AnyReport::Rpo(r) => {
            let with = r.vms.iter().filter(|v| v.rpo_seconds.is_some()).count();
            let out = r.vms.iter().filter(|v| v.compliant_now == Some(false)).count();
            let breached = r.vms.iter().filter(|v| !v.breaches.is_empty()).count();
            Some(format!("{out} of {with} VMs with an RPO are out of it now; {breached} were at some time in the period."))
        }
        AnyReport::Storage(r) => Some(
            r.repositories
                .iter()
                .map(|g| match g.fills_on {
                    Some(at) => format!("{} fills around {}.", g.name, at.format("%Y-%m-%d")),
                    None => format!("{}: {}.", g.name, g.outcome.describe()),
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

#[component]
fn ReportTable(table: Table, csv: String) -> impl IntoView {
    let total = table.rows.len();
    let numeric: Vec<bool> = (0..table.columns.len()).map(|i| table.rows.first().and_then(|r| r.get(i)).is_some_and(Cell::numeric)).collect();
    let head_numeric = numeric.clone();
    view! {
        <div class="card report-table" data-testid="report-table">
            <div class="card-head">
                <h2>{table.title.to_uppercase()}</h2>
                <a class="button small" href=csv download="" data-testid="report-csv">"CSV"</a>
            </div>
            {if total == 0 {
                view! { <p class="muted small">"Nothing in this period."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap report-scroll">
                        <table class="table">
                            <thead><tr>
                                {table.columns.iter().enumerate().map(|(i, c)| view! {
                                    <th scope="col" class:num=head_numeric[i]>{*c}</th>
                                }).collect_view()}
                            </tr></thead>
                            <tbody>
                                {table.rows.into_iter().take(ROWS_SHOWN).map(|row| view! {
                                    <tr>{row.into_iter().map(|c| view! { <td class:num=c.numeric()>{c.human()}</td> }).collect_view()}</tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                    {(total > ROWS_SHOWN).then(|| view! { <p class="muted small">{format!("The first {ROWS_SHOWN} of {total} rows; the CSV and the printed page hold them all.")}</p> })}
                }.into_any()
            }}
        </div>
    }
}
