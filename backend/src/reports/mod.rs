//! Reports drawn by the server: charts as SVG (plotters' SVG backend, no
//! font files: text goes out as SVG `<text>` for the viewer to set), the
//! printable HTML page and CSV. The figures come from
//! `catalog::reports`; the tables and charts from `shared_types::reports`.

pub mod print;
pub mod svg;
