//! The progress hook: counters the pipeline bumps as bytes really move, read
//! by whoever wants them (the CLI's progress bar, later the server's job
//! telemetry) through [`Progress::snapshot`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::error::{EngineError, Result};

pub struct Progress {
    started: Instant,
    /// Bytes the operation will process (image bytes to read, or to restore).
    pub bytes_total: AtomicU64,
    /// Bytes really read from the source.
    pub bytes_read: AtomicU64,
    /// Bytes known to be zeros (holes, unallocated clusters): done without reading.
    pub bytes_skipped: AtomicU64,
    pub bytes_written: AtomicU64,
    pub chunks_new: AtomicU64,
    pub chunks_reused: AtomicU64,
    pub chunks_zero: AtomicU64,
    /// Pause, resume and cancel, obeyed at chunk-run boundaries.
    pub control: Control,
    /// See [`Progress::set_read_limit`].
    read_limit_bps: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ProgressSnapshot {
    pub bytes_total: u64,
    pub bytes_read: u64,
    pub bytes_skipped: u64,
    pub bytes_written: u64,
    pub chunks_new: u64,
    pub chunks_reused: u64,
    pub chunks_zero: u64,
    pub elapsed_secs: f64,
    /// Bytes done (read or skipped) per second since the start.
    pub read_throughput: f64,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            started: Instant::now(),
            bytes_total: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_skipped: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            chunks_new: AtomicU64::new(0),
            chunks_reused: AtomicU64::new(0),
            chunks_zero: AtomicU64::new(0),
            control: Control::default(),
            read_limit_bps: AtomicU64::new(0),
        }
    }
    /// Zeroes the counters (the clock keeps running): a retried operation
    /// reports what its last attempt did.
    pub fn reset_counters(&self) {
        for c in [&self.bytes_total, &self.bytes_read, &self.bytes_skipped, &self.bytes_written, &self.chunks_new, &self.chunks_reused, &self.chunks_zero] {
            c.store(0, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Caps how fast the source is read, in bytes per second (0: no cap):
    /// a backup that must not load a production host, or a small demo VM
    /// an operator wants to watch. Set before or during the operation.
    pub fn set_read_limit(&self, bytes_per_second: u64) {
        self.read_limit_bps.store(bytes_per_second, Relaxed);
    }

    /// Called by the reader after it read `bytes`: sleeps as long as those
    /// bytes take at the cap, less the time the read itself took. Pacing
    /// each read (not the whole run) means a resumed job does not burst.
    pub fn pace(&self, bytes: u64, read_took: std::time::Duration) {
        let limit = self.read_limit_bps.load(Relaxed);
        if limit == 0 || bytes == 0 {
            return;
        }
        let due = std::time::Duration::from_secs_f64(bytes as f64 / limit as f64);
        if let Some(wait) = due.checked_sub(read_took) {
            std::thread::sleep(wait.min(std::time::Duration::from_secs(5)));
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
    pub fn snapshot(&self) -> ProgressSnapshot {
        let elapsed = self.started.elapsed().as_secs_f64();
        let read = self.bytes_read.load(Relaxed);
        let done = read + self.bytes_skipped.load(Relaxed);
        ProgressSnapshot {
            bytes_total: self.bytes_total.load(Relaxed),
            bytes_read: read,
            bytes_skipped: self.bytes_skipped.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            chunks_new: self.chunks_new.load(Relaxed),
            chunks_reused: self.chunks_reused.load(Relaxed),
            chunks_zero: self.chunks_zero.load(Relaxed),
            elapsed_secs: elapsed,
            read_throughput: if elapsed > 0.0 { done as f64 / elapsed } else { 0.0 },
        }
    }
}

/// How a running operation is paused, resumed or cancelled from outside.
/// The pipelines call [`Control::checkpoint`] between runs of chunks: it
/// blocks while paused and fails once cancelled, so a cancelled backup writes
/// no snapshot and a paused one holds still with nothing half written.
#[derive(Default)]
pub struct Control {
    paused: AtomicBool,
    cancelled: AtomicBool,
    gate: Mutex<()>,
    wake: Condvar,
}

impl Control {
    pub fn pause(&self) {
        self.paused.store(true, Relaxed);
    }

    pub fn resume(&self) {
        let _g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        self.paused.store(false, Relaxed);
        self.wake.notify_all();
    }

    pub fn cancel(&self) {
        let _g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        self.cancelled.store(true, Relaxed);
        self.wake.notify_all();
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Relaxed)
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Relaxed)
    }

    /// Waits while paused; [`EngineError::Cancelled`] once cancelled.
    pub fn checkpoint(&self) -> Result<()> {
        let mut g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        while self.paused.load(Relaxed) && !self.cancelled.load(Relaxed) {
            g = self.wake.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        if self.cancelled.load(Relaxed) {
            return Err(EngineError::Cancelled);
        }
        Ok(())
    }
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn pace_holds_reads_to_the_cap() {
        let p = Progress::new();
        let t = std::time::Instant::now();
        p.pace(1 << 20, Duration::ZERO);
        assert!(t.elapsed() < Duration::from_millis(50), "no cap: no wait");
        p.set_read_limit(4 << 20);
        let t = std::time::Instant::now();
        p.pace(1 << 20, Duration::from_millis(50));
        let waited = t.elapsed();
        assert!(waited >= Duration::from_millis(180) && waited < Duration::from_millis(400), "{waited:?}");
    }

    #[test]
    fn checkpoint_waits_while_paused_and_fails_once_cancelled() {
        let p = Arc::new(Progress::new());
        assert!(p.control.checkpoint().is_ok());
        p.control.pause();
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || p.control.checkpoint().is_ok())
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "a paused operation holds at its checkpoint");
        p.control.resume();
        assert!(waiter.join().unwrap());
        p.control.pause();
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || p.control.checkpoint())
        };
        std::thread::sleep(Duration::from_millis(50));
        p.control.cancel();
        assert!(matches!(waiter.join().unwrap(), Err(EngineError::Cancelled)));
    }
}
