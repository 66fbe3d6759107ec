//! A report as one printable HTML page: the period, the method, the charts
//! drawn by the server as inline SVG, and the tables. No script; every
//! text from the catalog is escaped.

use chrono::{DateTime, Utc};
use shared_types::reports::Sheet;

use super::svg;
use crate::markup::escape;

/// Size the charts are drawn at on the page (A4 portrait width).
const CHART_SIZE: (u32, u32) = (720, 260);


const STYLE: &str = "
body { font-family: Inter, 'Helvetica Neue', Arial, sans-serif; color: #1a1d23; background: #fff; margin: 24px; font-size: 12px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 14px; margin: 20px 0 6px; }
.meta { color: #4a5361; margin: 0 0 6px; }
.method { color: #4a5361; max-width: 72em; line-height: 1.45; }
figure { margin: 12px 0; break-inside: avoid; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #d7dce3; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: #6b7785; font-style: italic; }
footer { margin-top: 24px; color: #6b7785; }
@page { size: A4; margin: 14mm; }
@media print { body { margin: 0; } thead { display: table-header-group; } tr { break-inside: avoid; } h2 { break-after: avoid; } }
";

/// The page for `report`, printed at `now`.
pub fn page(report: &dyn Sheet, now: DateTime<Utc>) -> String {
    let w = report.window();
    let title = report.kind().title();
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sendense · {title} · {days} days</title><style>{STYLE}</style></head><body>\
         <header><h1>{title}</h1><p class=\"meta\">{days} days: {start} to {end} UTC · printed {now}</p><p class=\"method\">{method}</p></header>",
        title = escape(title),
        days = w.days,
        start = w.start.format("%Y-%m-%d"),
        end = w.end.format("%Y-%m-%d %H:%M"),
        now = now.format("%Y-%m-%d %H:%M UTC"),
        method = escape(report.method()),
    );
    for chart in report.charts() {
        html.push_str("<figure>");
        html.push_str(&svg::render(&chart, CHART_SIZE));
        html.push_str("</figure>");
    }
    for table in report.tables() {
        html.push_str(&format!("<h2>{}</h2>", escape(&table.title)));
        if table.rows.is_empty() {
            html.push_str("<p class=\"empty\">Nothing in this period.</p>");
            continue;
        }
        let numeric: Vec<bool> = (0..table.columns.len()).map(|i| table.rows.first().and_then(|r| r.get(i)).is_some_and(|c| c.numeric())).collect();
        html.push_str("<table><thead><tr>");
        for (i, c) in table.columns.iter().enumerate() {
            html.push_str(&format!("<th{}>{}</th>", if numeric[i] { " class=\"num\"" } else { "" }, escape(c)));
        }
        html.push_str("</tr></thead><tbody>");
        for row in &table.rows {
            html.push_str("<tr>");
            for cell in row {
                html.push_str(&format!("<td{}>{}</td>", if cell.numeric() { " class=\"num\"" } else { "" }, escape(&cell.human())));
            }
            html.push_str("</tr>");
        }
        html.push_str("</tbody></table>");
    }
    html.push_str("<footer>Sendense · every figure comes from the jobs recorded in the catalog.</footer></body></html>\n");
    html
}
