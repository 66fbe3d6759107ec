//! Formatting helpers for the cockpit (sizes and durations live in
//! `shared_types::health` so servers and scripts format alike).

pub use shared_types::health::{format_bytes, format_duration};

/// `12.3%`
pub fn percent(value: f32) -> String {
    format!("{value:.0}%")
}

/// Age of an update in words: `0.4 s`, `12 s`, `3m 2s`.
pub fn age(ms: f64) -> String {
    if ms < 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format_duration((ms / 1000.0) as u64)
    }
}

/// How long ago `at` was, from the browser clock `now_ms`: `12s ago`.
pub fn ago(at: chrono::DateTime<chrono::Utc>, now_ms: f64) -> String {
    let secs = ((now_ms - at.timestamp_millis() as f64) / 1000.0).max(0.0) as u64;
    format!("{} ago", format_duration(secs))
}

/// `2026-11-22 01:25`
pub fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}
