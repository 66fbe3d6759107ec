//! Server health: the `GET /api/v1/health` answer and live system figures.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Answer of `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthResponse {
    /// The server's version (its crate version).
    pub version: String,
    /// Seconds since the server started.
    pub uptime_seconds: u64,
    /// The server's clock when it answered.
    pub server_time: DateTime<Utc>,
    pub catalog: CatalogHealth,
}

/// Whether the catalog database answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogHealth {
    pub ok: bool,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Why the catalog is not ok, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Live figures of the machine the server runs on, sampled once a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemHealth {
    /// Busy share of all cores since the previous sample, 0 to 100.
    pub cpu_percent: f32,
    pub cpu_cores: u32,
    pub memory_total_bytes: u64,
    /// Memory in use (total less what the kernel counts as available).
    pub memory_used_bytes: u64,
    /// Resident memory of the server process itself.
    pub process_rss_bytes: u64,
    /// Space free for the server in the file system holding its data directory.
    pub data_dir_free_bytes: u64,
    pub data_dir_total_bytes: u64,
}

impl SystemHealth {
    /// Memory in use as a percentage of the total, 0 when the total is unknown.
    pub fn memory_percent(&self) -> f32 {
        percent(self.memory_used_bytes, self.memory_total_bytes)
    }

    /// Data directory space in use, as a percentage.
    pub fn data_dir_used_percent(&self) -> f32 {
        percent(self.data_dir_total_bytes.saturating_sub(self.data_dir_free_bytes), self.data_dir_total_bytes)
    }
}

fn percent(part: u64, whole: u64) -> f32 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 100.0 / whole as f64) as f32
    }
}

/// Human-readable byte size with binary units (`1.5 GiB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Human-readable duration (`3d 4h`, `5m 2s`, `42s`).
pub fn format_duration(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_handle_zero_totals() {
        let h = SystemHealth {
            cpu_percent: 0.0,
            cpu_cores: 2,
            memory_total_bytes: 0,
            memory_used_bytes: 5,
            process_rss_bytes: 0,
            data_dir_free_bytes: 25,
            data_dir_total_bytes: 100,
        };
        assert_eq!(h.memory_percent(), 0.0);
        assert_eq!(h.data_dir_used_percent(), 75.0);
    }

    #[test]
    fn formats_sizes_and_durations() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(format_duration(42), "42s");
        assert_eq!(format_duration(302), "5m 2s");
        assert_eq!(format_duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(format_duration(2 * 86_400 + 3600), "2d 1h");
    }
}
