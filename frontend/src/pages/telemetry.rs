//! TELEMETRY: live CPU, memory and data-directory history of this server,
//! from the heartbeats received since the page loaded, and the jobs' history
//! over 24 hours or 7 days from the catalog.

use leptos::prelude::*;
use plotters::style::RGBColor;

use crate::components::job_history::JobHistory;
use crate::components::line_chart::{LineChart, Series};
use crate::live::use_live;
use crate::nav;
use crate::pages::planned::PageHeader;

const WINDOW_S: f64 = 120.0;

#[component]
pub fn TelemetryPage() -> impl IntoView {
    let d = nav::for_path("/telemetry").expect("TELEMETRY is in the navigation table");
    let live = use_live();
    let series = Signal::derive(move || {
        let now = live.now_ms.get();
        let history = live.history.get();
        let recent: Vec<_> = history.iter().filter(|s| now - s.at_ms <= WINDOW_S * 1000.0).collect();
        let point = |s: &&crate::live::Sample, v: f32| ((s.at_ms - now) / 1000.0, v as f64);
        vec![
            Series {
                name: "CPU %",
                color: RGBColor(0x3B, 0x82, 0xF6),
                points: recent.iter().map(|s| point(s, s.health.cpu_percent)).collect(),
            },
            Series {
                name: "Memory %",
                color: RGBColor(0x10, 0xB9, 0x81),
                points: recent.iter().map(|s| point(s, s.health.memory_percent())).collect(),
            },
            Series {
                name: "Data directory used %",
                color: RGBColor(0xF5, 0x9E, 0x0B),
                points: recent.iter().map(|s| point(s, s.health.data_dir_used_percent())).collect(),
            },
        ]
    });
    let samples = move || live.history.get().len();
    view! {
        <section class="page" data-testid="page-telemetry">
            <PageHeader label=d.label purpose=d.purpose />
            <div class="card">
                <h2>"SERVER LOAD — LAST 2 MINUTES"</h2>
                <LineChart series=series window_s=WINDOW_S y_max=100.0 y_unit="%" testid="chart-load" />
                <p class="muted small">{move || format!("{} samples received since this page loaded.", samples())}</p>
            </div>
            <JobHistory />
        </section>
    }
}
