//! TELEMETRY's job history: throughput, job outcomes and error rates over
//! the last 24 hours or 7 days (`GET /api/v1/telemetry/history`), per time
//! step and per repository and platform. Refreshed when a job ends.

use leptos::prelude::*;
use plotters::style::RGBColor;
use shared_types::telemetry::{HistoryShare, HistoryWindow, JobTally, TelemetryHistory};

use crate::api;
use crate::components::line_chart::{render_svg_in, Series, XUnit};
use crate::fetch::Fetch;
use crate::format::format_bytes;
use crate::live::use_live;

const MIB: f64 = 1024.0 * 1024.0;
const BLUE: RGBColor = RGBColor(0x3B, 0x82, 0xF6);
const TEAL: RGBColor = RGBColor(0x10, 0xB9, 0x81);
const RED: RGBColor = RGBColor(0xEF, 0x44, 0x44);
const AMBER: RGBColor = RGBColor(0xF5, 0x9E, 0x0B);

#[component]
pub fn JobHistory() -> impl IntoView {
    let live = use_live();
    let window = RwSignal::new(HistoryWindow::Day);
    let history = Fetch::new(move || {
        live.jobs_version.get();
        api::telemetry_history(window.get())
    });
    view! {
        <div class="card job-history" data-testid="job-history">
            <div class="card-head">
                <h2>"JOBS — " {move || window.get().label().to_uppercase()}</h2>
                <div class="seg" role="group" aria-label="History window">
                    {HistoryWindow::ALL.into_iter().map(|w| view! {
                        <button type="button" class="seg-button" data-testid=format!("history-{}", w.key())
                            aria-pressed=move || (window.get() == w).to_string()
                            on:click=move |_| window.set(w)>
                            {w.key()}
                        </button>
                    }).collect_view()}
                </div>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Reading the job history…"</p> }>
                {move || history.get().map(|r| match r {
                    Err(e) => view! { <p class="notice warning">{e.message}</p> }.into_any(),
                    Ok(h) => view! { <HistoryBody h=h /> }.into_any(),
                })}
            </Transition>
        </div>
    }
}

fn chart_points(h: &TelemetryHistory, value: impl Fn(&shared_types::telemetry::HistoryStep) -> f64) -> Vec<(f64, f64)> {
    let end = h.end.timestamp() as f64;
    h.steps.iter().map(|s| (s.start.timestamp() as f64 - end, value(s))).collect()
}

fn error_rate(t: &JobTally) -> String {
    t.error_rate().map(|r| format!("{:.0} %", r * 100.0)).unwrap_or_else(|| "—".into())
}

#[component]
fn HistoryBody(h: TelemetryHistory) -> impl IntoView {
    let window_s = h.window.seconds() as f64;
    let throughput = {
        let series = [
            Series { name: "mean", color: BLUE, points: chart_points(&h, |s| s.mean_bps as f64 / MIB) },
            Series { name: "peak", color: AMBER, points: chart_points(&h, |s| s.peak_bps as f64 / MIB) },
        ];
        let peak = h.steps.iter().map(|s| s.peak_bps).max().unwrap_or(0) as f64 / MIB;
        render_svg_in(&series, window_s, XUnit::Hours, (peak * 1.25).max(1.0).ceil(), " MiB/s", (640, 200))
    };
    let outcomes = {
        let series = [
            Series { name: "completed", color: TEAL, points: chart_points(&h, |s| s.jobs.completed as f64) },
            Series { name: "failed", color: RED, points: chart_points(&h, |s| s.jobs.failed as f64) },
        ];
        let most = h.steps.iter().map(|s| s.jobs.completed.max(s.jobs.failed)).max().unwrap_or(0) as f64;
        render_svg_in(&series, window_s, XUnit::Hours, (most * 1.25).max(1.0).ceil(), "", (640, 200))
    };
    let step_h = h.bucket_seconds / 3600;
    let moved: u64 = h.steps.iter().map(|s| s.jobs.bytes_read).sum();
    let t = h.totals;
    view! {
        <div class="history-totals" data-testid="history-totals">
            <span><b class="mono" data-testid="history-completed">{t.completed}</b>" completed"</span>
            <span><b class="mono" data-testid="history-failed">{t.failed}</b>" failed"</span>
            <span><b class="mono">{t.cancelled}</b>" cancelled"</span>
            <span>"error rate "<b class="mono" data-testid="history-error-rate">{error_rate(&t)}</b></span>
            <span>"read "<b class="mono" data-testid="history-read">{format_bytes(moved)}</b></span>
        </div>
        <div class="history-charts">
            <figure class="line-chart" data-testid="history-throughput">
                <figcaption class="chart-title">{format!("Throughput, per {step_h} h")}</figcaption>
                <div class="line-chart-svg" inner_html=throughput></div>
                <figcaption class="legend">
                    <span class="legend-item"><span class="legend-swatch" style="background: rgb(59,130,246)"></span>"mean while running"</span>
                    <span class="legend-item"><span class="legend-swatch" style="background: rgb(245,158,11)"></span>"peak second"</span>
                </figcaption>
            </figure>
            <figure class="line-chart" data-testid="history-outcomes">
                <figcaption class="chart-title">{format!("Jobs finished, per {step_h} h")}</figcaption>
                <div class="line-chart-svg" inner_html=outcomes></div>
                <figcaption class="legend">
                    <span class="legend-item"><span class="legend-swatch" style="background: rgb(16,185,129)"></span>"completed"</span>
                    <span class="legend-item"><span class="legend-swatch" style="background: rgb(239,68,68)"></span>"failed"</span>
                </figcaption>
            </figure>
        </div>
        <div class="history-shares">
            <ShareTable title="PER REPOSITORY" testid="history-repositories" rows=h.repositories />
            <ShareTable title="PER PLATFORM" testid="history-platforms" rows=h.platforms />
        </div>
    }
}

#[component]
fn ShareTable(title: &'static str, testid: &'static str, rows: Vec<HistoryShare>) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <div class="history-share" data-testid=testid>
            <h3>{title}</h3>
            <Show when=move || !empty fallback=|| view! { <p class="muted small">"No job finished in this window."</p> }>
                <div class="table-wrap">
                    <table class="table">
                        <thead><tr>
                            <th scope="col">"Name"</th><th scope="col">"Completed"</th><th scope="col">"Failed"</th>
                            <th scope="col">"Error rate"</th><th scope="col">"Read"</th><th scope="col">"Written"</th>
                        </tr></thead>
                        <tbody>
                            {rows.clone().into_iter().map(|r| view! {
                                <tr data-id=r.id.clone()>
                                    <td>{r.name.clone()}</td>
                                    <td class="mono">{r.jobs.completed}</td>
                                    <td class="mono">{r.jobs.failed}</td>
                                    <td class="mono">{error_rate(&r.jobs)}</td>
                                    <td class="mono">{format_bytes(r.jobs.bytes_read)}</td>
                                    <td class="mono">{format_bytes(r.jobs.bytes_written)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </Show>
        </div>
    }
}
