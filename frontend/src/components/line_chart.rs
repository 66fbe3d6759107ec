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

/// Renders the chart as SVG, the x axis in `x_unit`.
pub fn render_svg_in(series: &[Series], window_s: f64, x_unit: XUnit, y_max: f64, y_unit: &str, size: (u32, u32)) -> String {
    draw(series, window_s, x_unit, y_max, y_unit, size).0
}

/// The chart as SVG, and the SVG coordinates of the plot's corners
/// `(-window_s, 0)` and `(0, y_max)` (none when plotters could not lay it out).
fn draw(series: &[Series], window_s: f64, x_unit: XUnit, y_max: f64, y_unit: &str, size: (u32, u32)) -> (String, Option<[(f64, f64); 2]>) {
    let mut svg = String::new();
    let corners;
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let y_max = if y_max > 0.0 { y_max } else { 1.0 };
        let chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(22)
            .y_label_area_size(64)
            .build_cartesian_2d(-window_s..0.0, 0.0..y_max);
        let Ok(mut chart) = chart else { return (String::new(), None) };
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
        let at = |p: (f64, f64)| {
            let (x, y) = chart.backend_coord(&p);
            (f64::from(x), f64::from(y))
        };
        corners = Some([at((-window_s, 0.0)), at((0.0, y_max))]);
        let _ = root.present();
    }
    (svg, corners)
}

/// A chart's axes, grid and labels (plotters' SVG without its root
/// element), drawn once per scale, and where its points go: live charts
/// move only their lines (one attribute per update), where drawing the
/// whole SVG again through `innerHTML` on every event took most of a live
/// update's time.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub body: String,
    pub size: (u32, u32),
    window_s: f64,
    y_max: f64,
    corners: [(f64, f64); 2],
}

impl Frame {
    pub fn new(window_s: f64, x_unit: XUnit, y_max: f64, y_unit: &str, size: (u32, u32)) -> Self {
        let y_max = if y_max > 0.0 { y_max } else { 1.0 };
        let (svg, corners) = draw(&[], window_s, x_unit, y_max, y_unit, size);
        // Inside plotters' root `<svg …>`: the live view supplies its own.
        let body = svg
            .find("<svg")
            .and_then(|start| svg[start..].find('>').map(|end| start + end + 1))
            .and_then(|open| svg.rfind("</svg>").filter(|close| *close >= open).map(|close| svg[open..close].to_string()))
            .unwrap_or_default();
        Frame { body, size, window_s, y_max, corners: corners.unwrap_or([(0.0, 0.0), (0.0, 0.0)]) }
    }

    /// `points` (seconds relative to now, value) as a polyline's `points` attribute.
    pub fn polyline(&self, points: &[(f64, f64)]) -> String {
        use std::fmt::Write;
        let [(x0, y0), (x1, y1)] = self.corners;
        let mut out = String::with_capacity(points.len() * 12);
        for (x, v) in points {
            let px = x0 + (x + self.window_s) / self.window_s * (x1 - x0);
            let py = y0 + (v / self.y_max).clamp(0.0, 1.0) * (y1 - y0);
            let _ = write!(out, "{}{px:.1},{py:.1}", if out.is_empty() { "" } else { " " });
        }
        out
    }
}

/// A chart whose axes are drawn when `frame` changes and whose lines move
/// with `series` (points in the frame's units). One polyline per series,
/// made again only when the series' number or colours change: an update
/// sets its `points` alone (a rebuilt element would lose and set again
/// every attribute under `erase_components`).
#[component]
pub fn LiveChart(frame: Memo<Frame>, series: Signal<Vec<Series>>) -> impl IntoView {
    let (w, h) = frame.with_untracked(|f| f.size);
    let colors = Memo::new(move |_| series.with(|list| list.iter().map(|s| s.color).collect::<Vec<_>>()));
    view! {
        <svg width=w height=h viewBox=format!("0 0 {w} {h}") xmlns="http://www.w3.org/2000/svg">
            <g inner_html=move || frame.with(|f| f.body.clone())></g>
            {move || colors.get().into_iter().enumerate().map(|(i, c)| view! {
                <polyline fill="none" stroke-width="2" stroke=format!("rgb({},{},{})", c.0, c.1, c.2)
                    points=move || frame.with(|f| series.with(|list| list.get(i).map(|s| f.polyline(&s.points)).unwrap_or_default())) />
            }).collect_view()}
        </svg>
    }
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
    let frame = Memo::new(move |_| Frame::new(window_s, XUnit::Seconds, y_max, y_unit, (640, 220)));
    view! {
        <figure class="line-chart" data-testid=testid>
            <div class="line-chart-svg"><LiveChart frame=frame series=series /></div>
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_maps_points_onto_the_plot_plotters_draws() {
        let frame = Frame::new(60.0, XUnit::Seconds, 10.0, " MiB/s", (720, 190));
        assert!(!frame.body.contains("<svg") && !frame.body.contains("</svg>"), "root element left in the body");
        assert!(frame.body.contains("now") && frame.body.contains("10 MiB/s"), "axis labels missing: {}", frame.body);
        // The same corners plotters puts its own line through: margin 8,
        // y labels 64 px, x labels 22 px, in a 720 x 190 drawing.
        let line = render_svg_in(&[Series { name: "t", color: RGBColor(0, 0, 0), points: vec![(-60.0, 0.0), (0.0, 10.0)] }], 60.0, XUnit::Seconds, 10.0, " MiB/s", (720, 190));
        let [(x0, y0), (x1, y1)] = frame.corners;
        assert!(line.contains(&format!("{x0},{y0} {x1},{y1}")), "plotters drew {line} for corners {:?}", frame.corners);
        assert_eq!(frame.polyline(&[(-60.0, 0.0), (0.0, 10.0)]), format!("{x0:.1},{y0:.1} {x1:.1},{y1:.1}"));
        assert_eq!(frame.polyline(&[(-30.0, 5.0)]), format!("{:.1},{:.1}", (x0 + x1) / 2.0, (y0 + y1) / 2.0));
        // Above the scale stays on the plot's top edge; no points, no line.
        assert_eq!(frame.polyline(&[(0.0, 50.0)]), format!("{x1:.1},{y1:.1}"));
        assert_eq!(frame.polyline(&[]), "");
    }
}
