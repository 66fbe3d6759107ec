//! A time-series line chart drawn with plotters into an SVG string.

use leptos::prelude::*;
use plotters::prelude::*;

/// One named series of `(seconds relative to now, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

const GRID: RGBColor = RGBColor(0x2a, 0x2f, 0x38);
const TEXT: RGBColor = RGBColor(0x9a, 0xa5, 0xb4);

/// How the x axis (seconds relative to now) is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XUnit {
    Seconds,
    Hours,
}

impl XUnit {
    fn label(self, x: f64) -> String {
        match (self, x == 0.0) {
            (_, true) => "now".into(),
            (XUnit::Seconds, false) => format!("{x:.0}s"),
            (XUnit::Hours, false) => format!("{:.0}h", x / 3600.0),
        }
    }
}

/// Renders the chart, or a message when no point is there yet.
pub fn render_svg(series: &[Series], window_s: f64, y_max: f64, y_unit: &str, size: (u32, u32)) -> String {
    render_svg_in(series, window_s, XUnit::Seconds, y_max, y_unit, size)
}

/// [`render_svg`] with the x axis in `x_unit`.
pub fn render_svg_in(series: &[Series], window_s: f64, x_unit: XUnit, y_max: f64, y_unit: &str, size: (u32, u32)) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let y_max = if y_max > 0.0 { y_max } else { 1.0 };
        let chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(22)
            .y_label_area_size(64)
            .build_cartesian_2d(-window_s..0.0, 0.0..y_max);
        let Ok(mut chart) = chart else { return String::new() };
        let unit = y_unit.to_owned();
        let _ = chart
            .configure_mesh()
            .bold_line_style(GRID)
            .light_line_style(GRID.mix(0.3))
            .axis_style(GRID)
            .label_style(("sans-serif", 11).into_font().color(&TEXT))
            .x_labels(7)
            .y_labels(5)
            .x_label_formatter(&|x| x_unit.label(*x))
            .y_label_formatter(&move |y| format!("{y:.0}{unit}"))
            .draw();
        for s in series {
            let _ = chart.draw_series(LineSeries::new(s.points.iter().copied(), s.color.stroke_width(2)));
        }
        let _ = root.present();
    }
    svg
}

/// A chart that redraws whenever `series` changes.
#[component]
pub fn LineChart(
    series: Signal<Vec<Series>>,
    window_s: f64,
    y_max: f64,
    y_unit: &'static str,
    #[prop(into)] testid: String,
) -> impl IntoView {
    let svg = move || render_svg(&series.get(), window_s, y_max, y_unit, (640, 220));
    view! {
        <figure class="line-chart" data-testid=testid>
            <div class="line-chart-svg" inner_html=svg></div>
            <figcaption class="legend">
                <For each=move || series.get() key=|s| s.name let:s>
                    <span class="legend-item">
                        <span class="legend-swatch" style:background=format!("rgb({},{},{})", s.color.0, s.color.1, s.color.2)></span>
                        {s.name}
                    </span>
                </For>
            </figcaption>
        </figure>
    }
}
