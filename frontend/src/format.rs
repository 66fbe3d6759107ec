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
