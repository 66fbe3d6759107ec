//! A report chart as an SVG document: one line per series over the
//! report's days, a gap where a day has no value.

use plotters::prelude::*;
use shared_types::reports::Chart;

/// Series colours, readable on the cockpit's dark surface and on paper.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x2f, 0x80, 0xed),
    RGBColor(0xe0, 0x4f, 0x4f),
    RGBColor(0x27, 0xae, 0x60),
    RGBColor(0xf2, 0x99, 0x4a),
    RGBColor(0x9b, 0x51, 0xe0),
    RGBColor(0x56, 0xcc, 0xf2),
];
const GRID: RGBColor = RGBColor(0x8a, 0x94, 0xa3);
const TEXT: RGBColor = RGBColor(0x6b, 0x77, 0x85);

/// Longest series name drawn in a legend (names come from people).
const LABEL_MAX: usize = 40;

/// Draws `chart` into an SVG document of `size` pixels.
pub fn render(chart: &Chart, size: (u32, u32)) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        // x = days since the earliest day of any series (series may start
        // on different days, e.g. repositories created at different times).
        let first_day = chart.series.iter().filter_map(|s| s.points.first().map(|p| p.0)).min();
        let x_of = |at: chrono::DateTime<chrono::Utc>| first_day.map(|f| (at - f).num_days() as f64).unwrap_or(0.0);
        let days = chart.series.iter().filter_map(|s| s.points.last().map(|p| x_of(p.0) as usize + 1)).max().unwrap_or(1);
        let y_max = chart.series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1)).fold(0.0f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let x_max = (days as f64 - 1.0).max(1.0);
        let built = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 17).into_font().color(&TEXT))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(86)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max);
        let Ok(mut plot) = built else { return svg_error(size) };
        let unit = chart.unit;
        let day_label = move |x: &f64| match first_day {
            Some(d) => (d + chrono::Duration::days(x.round() as i64)).format("%b %d").to_string(),
            None => String::new(),
        };
        let _ = plot
            .configure_mesh()
            .bold_line_style(GRID.mix(0.35))
            .light_line_style(GRID.mix(0.12))
            .axis_style(GRID)
            .label_style(("sans-serif", 13).into_font().color(&TEXT))
            .x_labels(days.min(8))
            .y_labels(5)
            .x_label_formatter(&day_label)
            .y_label_formatter(&|y| unit.label(*y))
            .draw();
        for (n, s) in chart.series.iter().enumerate() {
            let color = PALETTE[n % PALETTE.len()];
            // Runs of days with a value, each its own line.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (at, v) in &s.points {
                match v {
                    Some(v) => runs.last_mut().map(|r| r.push((x_of(*at), *v))).unwrap_or(()),
                    None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
                    None => {}
                }
            }
            let label: String = s.name.chars().take(LABEL_MAX).collect();
            let mut labelled = false;
            for run in runs.into_iter().filter(|r| !r.is_empty()) {
                let drawn = if run.len() == 1 {
                    plot.draw_series(run.iter().map(|p| Circle::new(*p, 3, color.filled())))
                } else {
                    plot.draw_series(LineSeries::new(run, color.stroke_width(2)))
                };
                if let (Ok(anno), false) = (drawn, labelled) {
                    anno.label(label.clone()).legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 12, y + 4)], color.filled()));
                    labelled = true;
                }
            }
        }
        let _ = plot
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13).into_font().color(&TEXT))
            .background_style(RGBColor(0x80, 0x80, 0x80).mix(0.08))
            .border_style(GRID.mix(0.3))
            .draw();
        let _ = root.present();
    }
    svg
}

fn svg_error(size: (u32, u32)) -> String {
    format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\"><text x=\"10\" y=\"20\">The chart could not be drawn.</text></svg>", size.0, size.1)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use shared_types::reports::{ChartSeries, ChartUnit};

    use super::*;

    #[test]
    fn draws_each_series_with_its_name_and_escapes_text() {
        let d = |i: i64| Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + chrono::Duration::days(i);
        let chart = Chart {
            title: "Stored <bytes>".into(),
            unit: ChartUnit::Bytes,
            series: vec![
                ChartSeries { name: "repo & co".into(), points: (0..5).map(|i| (d(i), Some(1024.0 * i as f64))).collect() },
                ChartSeries { name: "gaps".into(), points: vec![(d(0), Some(1.0)), (d(1), None), (d(2), Some(3.0)), (d(3), Some(4.0))] },
            ],
        };
        let svg = render(&chart, (640, 240));
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("Stored &lt;bytes&gt;"));
        assert!(svg.contains("repo &amp; co") && svg.contains("gaps\n"), "{svg}");
        assert!(svg.contains("<polyline"), "a line per series");
        assert!(svg.contains("Dec 01"));
        // A series that starts two days later is drawn from its own day.
        let late = Chart {
            title: "t".into(),
            unit: ChartUnit::Count,
            series: vec![
                ChartSeries { name: "a".into(), points: (0..5).map(|i| (d(i), Some(1.0))).collect() },
                ChartSeries { name: "b".into(), points: (2..5).map(|i| (d(i), Some(2.0))).collect() },
            ],
        };
        let svg = render(&late, (640, 240));
        let lines: Vec<&str> = svg.split("<polyline").skip(1).filter(|l| l.contains("#2F80ED") || l.contains("#E04F4F")).collect();
        let first_x = |l: &str| l.split("points=\"").nth(1).and_then(|p| p.split(',').next()).and_then(|x| x.parse::<f64>().ok()).unwrap();
        assert_eq!(lines.len(), 2, "{svg}");
        assert!(first_x(lines[1]) > first_x(lines[0]) + 100.0, "{svg}");
        assert_eq!(ChartUnit::Count.label(0.5), "");
    }
}
