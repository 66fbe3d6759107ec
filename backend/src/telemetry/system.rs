//! System health sampled from the kernel (`/proc`, `statvfs`) once a second
//! and published as heartbeats on the event bus.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shared_types::health::SystemHealth;
use shared_types::ws::ServerMessage;
use tokio::sync::watch;

use crate::state::AppState;

/// Cumulative CPU time counters from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat`.
fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    if fields.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    let total: u64 = fields.iter().take(8).sum();
    Some(CpuTimes { busy: total - idle, total })
}

fn cpu_percent(prev: CpuTimes, now: CpuTimes) -> f32 {
    let total = now.total.saturating_sub(prev.total);
    if total == 0 {
        return 0.0;
    }
    (now.busy.saturating_sub(prev.busy) as f64 * 100.0 / total as f64) as f32
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo`, in bytes.
fn parse_meminfo(meminfo: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

/// Resident set of this process from `/proc/self/statm` (pages).
fn process_rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(0);
    pages * rustix::param::page_size() as u64
}

/// `(free, total)` bytes of the file system holding `path`.
pub fn disk_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    Ok((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
}

/// Takes samples; CPU usage is measured between two consecutive calls.
pub struct Sampler {
    data_dir: PathBuf,
    prev_cpu: Option<CpuTimes>,
    cores: u32,
}

impl Sampler {
    pub fn new(data_dir: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        let mut sampler = Self { data_dir, prev_cpu: None, cores };
        sampler.prev_cpu = sampler.read_cpu();
        sampler
    }

    fn read_cpu(&self) -> Option<CpuTimes> {
        parse_cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    pub fn sample(&mut self) -> SystemHealth {
        let now = self.read_cpu();
        let cpu = match (self.prev_cpu, now) {
            (Some(prev), Some(now)) => cpu_percent(prev, now),
            _ => 0.0,
        };
        self.prev_cpu = now.or(self.prev_cpu);
        let (mem_total, mem_available) =
            std::fs::read_to_string("/proc/meminfo").ok().as_deref().and_then(parse_meminfo).unwrap_or((0, 0));
        let (free, total) = disk_space(&self.data_dir).unwrap_or((0, 0));
        SystemHealth {
            cpu_percent: cpu,
            cpu_cores: self.cores,
            memory_total_bytes: mem_total,
            memory_used_bytes: mem_total.saturating_sub(mem_available),
            process_rss_bytes: process_rss_bytes(),
            data_dir_free_bytes: free,
            data_dir_total_bytes: total,
        }
    }
}

/// Samples once a second until shutdown; publishes a heartbeat each time.
pub async fn run_sampler(state: AppState, latest: watch::Sender<Option<SystemHealth>>) {
    let mut sampler = Sampler::new(state.data_dir.as_ref().clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.shutdown.cancelled() => return,
        }
        let health = sampler.sample();
        latest.send_replace(Some(health.clone()));
        // No subscriber is fine: nobody is watching right now.
        let _ = state.events.send(ServerMessage::Heartbeat {
            server_time: chrono::Utc::now(),
            uptime_seconds: state.uptime_seconds(),
            health,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_and_computes_usage() {
        let a = parse_cpu_times("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let b = parse_cpu_times("cpu  150 0 150 900 0 0 0 0 0 0\n").unwrap();
        assert_eq!(a, CpuTimes { busy: 200, total: 1000 });
        assert_eq!(cpu_percent(a, b), 50.0);
        assert_eq!(cpu_percent(b, b), 0.0);
        assert!(parse_cpu_times("intr 1 2 3").is_none());
    }

    #[test]
    fn parses_meminfo() {
        let text = "MemTotal:       16000 kB\nMemFree:   100 kB\nMemAvailable:    4000 kB\n";
        assert_eq!(parse_meminfo(text), Some((16000 * 1024, 4000 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn samples_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let mut sampler = Sampler::new(dir.path().to_path_buf());
        let h = sampler.sample();
        assert!(h.memory_total_bytes > 0 && h.memory_used_bytes <= h.memory_total_bytes);
        assert!(h.data_dir_total_bytes > 0 && h.data_dir_free_bytes <= h.data_dir_total_bytes);
        assert!(h.process_rss_bytes > 0);
        assert!((0.0..=100.0).contains(&h.cpu_percent));
    }
}
