//! Throughput of a job over the last 60 s: a plotters chart with peak and
//! average for the details view, and a small sparkline for flow cards.

use leptos::prelude::*;
use plotters::style::RGBColor;

use crate::components::line_chart::{Frame, LiveChart, Series, XUnit};
use crate::job_view::rate;
use crate::live::JOB_WINDOW_S;

const MIB: f64 = 1024.0 * 1024.0;
const BLUE: RGBColor = RGBColor(0x3b, 0x82, 0xf6);

/// Peak and average of the values (bytes per second).
pub fn peak_avg(points: &[(f64, f64)]) -> (f64, f64) {
    if points.is_empty() {
        return (0.0, 0.0);
    }
    let peak = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let avg = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    (peak, avg)
}

/// `points`: (seconds relative to now, bytes per second).
#[component]
pub fn ThroughputGraph(points: Signal<Vec<(f64, f64)>>, #[prop(into)] testid: String) -> impl IntoView {
    // Read once per update (the caller's signal may compute them on each read).
    let points = Memo::new(move |_| points.get());
    let stats = Memo::new(move |_| points.with(|p| peak_avg(p)));
    // The axes change only when the peak needs another scale.
    let y_max = Memo::new(move |_| ((stats.get().0 / MIB) * 1.25).max(1.0).ceil());
    let frame = Memo::new(move |_| Frame::new(JOB_WINDOW_S, XUnit::Seconds, y_max.get(), " MiB/s", (720, 190)));
    let series = Signal::derive(move || {
        vec![Series { name: "read", color: BLUE, points: points.with(|p| p.iter().map(|(x, v)| (*x, v / MIB)).collect()) }]
    });
    view! {
        <figure class="line-chart throughput-graph" data-testid=testid data-points=move || points.with(|p| p.len().to_string())>
            <div class="line-chart-svg"><LiveChart frame=frame series=series /></div>
            <figcaption class="legend">
                <span class="legend-item"><span class="legend-swatch" style="background: rgb(59,130,246)"></span>"throughput, last 60 s"</span>
                <span class="legend-item" data-testid="throughput-peak">"Peak " <b class="mono">{move || rate(stats.get().0)}</b></span>
                <span class="legend-item" data-testid="throughput-avg">"Average " <b class="mono">{move || rate(stats.get().1)}</b></span>
            </figcaption>
        </figure>
    }
}

/// A tiny line of the last 60 s, scaled to its own peak.
#[component]
pub fn Sparkline(points: Signal<Vec<(f64, f64)>>, #[prop(into)] testid: String) -> impl IntoView {
    let path = move || {
        points.with(|p| {
            let (peak, _) = peak_avg(p);
            let peak = if peak > 0.0 { peak } else { 1.0 };
            p.iter()
                .map(|(x, v)| format!("{:.1},{:.1}", (x + JOB_WINDOW_S) / JOB_WINDOW_S * 120.0, 30.0 - v / peak * 28.0))
                .collect::<Vec<_>>()
                .join(" ")
        })
    };
    view! {
        <svg class="sparkline" viewBox="0 0 120 32" preserveAspectRatio="none" data-testid=testid aria-hidden="true">
            <polyline points=path />
        </svg>
    }
}
