//! Talking to a lab guest over its serial console (a pty QEMU opens, raw
//! mode). The guest's init (`scripts/guest/init`) prints
//! `SENDENSE-GUEST-UP name=…` once booted, then runs every line written to
//! the console and answers `CMD-DONE rc=N`. QEMU only passes input on while
//! someone holds the pty open, so the console keeps it open and drains what
//! the guest prints into memory.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The line a guest prints once it is up.
pub const BOOT_MARKER: &str = crate::platforms::BOOT_LINES[0];
const DONE: &str = "CMD-DONE rc=";

pub struct GuestConsole {
    pty: std::fs::File,
    output: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl GuestConsole {
    pub fn open(pty: &Path) -> Result<GuestConsole> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(pty)
            .with_context(|| format!("opening the guest console {}", pty.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut reader_file = file.try_clone()?;
        let (out, halt) = (Arc::clone(&output), Arc::clone(&stop));
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !halt.load(Ordering::Relaxed) {
                match reader_file.read(&mut buf) {
                    Ok(0) => std::thread::sleep(Duration::from_millis(20)),
                    Ok(n) => out.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&buf[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => break, // the guest is gone (EIO)
                }
            }
        });
        Ok(GuestConsole { pty: file, output, stop, reader: Some(reader) })
    }

    /// Everything the guest printed since the console was opened.
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs one shell line in the guest; its output, once `CMD-DONE` comes.
    /// A non-zero exit status is an error with the output.
    pub fn run(&mut self, line: &str, timeout: Duration) -> Result<String> {
        if line.contains('\n') {
            bail!("a guest command is one line");
        }
        let start = self.output().len();
        self.pty.write_all(format!("{line}\n").as_bytes()).context("writing to the guest console")?;
        let started = Instant::now();
        loop {
            let out = self.output();
            let new = &out[start.min(out.len())..];
            if let Some(at) = new.find(DONE) {
                let rc: i32 = new[at + DONE.len()..].split(|c: char| !c.is_ascii_digit() && c != '-').next().unwrap_or("").parse().unwrap_or(-1);
                let text = new[..at].to_string();
                if rc != 0 {
                    bail!("the guest command `{line}` exited with {rc}: {}", text.trim());
                }
                return Ok(text);
            }
            if started.elapsed() > timeout {
                bail!("the guest did not finish `{line}` within {} s; it printed: {}", timeout.as_secs(), new.trim());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for GuestConsole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Waits until the console log `log` holds the boot marker; the marker's line.
pub fn wait_for_boot(log: &Path, timeout: Duration) -> Result<String> {
    let started = Instant::now();
    loop {
        let text = std::fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(BOOT_MARKER)) {
            return Ok(line.trim().to_string());
        }
        if started.elapsed() > timeout {
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            bail!("the guest did not boot within {} s (console {}: {:?})", timeout.as_secs(), log.display(), tail);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
