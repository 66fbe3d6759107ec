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
        }
    }
    /// Zeroes the counters (the clock keeps running): a retried operation
    /// reports what its last attempt did.
    pub fn reset_counters(&self) {
        for c in [&self.bytes_total, &self.bytes_read, &self.bytes_skipped, &self.bytes_written, &self.chunks_new, &self.chunks_reused, &self.chunks_zero] {
            c.store(0, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Holds the caller back while more bytes were read than the read-rate
    /// cap allows. The cap comes from `SENDENSE_READ_LIMIT_BPS` (bytes per
    /// second, unset or 0: none), read once; it lets demos and end-to-end
    /// tests watch, pause and stop a backup of a small VM.
    pub fn throttle(&self) {
        static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let limit = *LIMIT.get_or_init(|| {
            std::env::var("SENDENSE_READ_LIMIT_BPS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
        });
        if limit == 0 {
            return;
        }
        let due = self.bytes_read.load(Relaxed) as f64 / limit as f64;
        let elapsed = self.started.elapsed().as_secs_f64();
        if due > elapsed {
            std::thread::sleep(std::time::Duration::from_secs_f64((due - elapsed).min(5.0)));
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
