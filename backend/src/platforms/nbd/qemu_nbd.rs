//! [`QemuNbd`]: one `qemu-nbd` child process serving one disk image on a
//! unix socket inside a private (0700) directory of its own.
//!
//! * Ready means the pid file exists: `qemu-nbd` writes it only once the
//!   socket listens and the export (bitmaps, snapshot) is set up, so a
//!   readiness probe never uses up its single connection.
//! * A start that fails turns `qemu-nbd`'s stderr into an error naming the
//!   disk (missing bitmap, inconsistent bitmap, missing snapshot, write lock
//!   held by another process, not in the given format, ...).
//! * Without [`QemuNbdOptions::persistent`] the server exits after its first
//!   client disconnects.
//! * Stopping sends SIGTERM so `qemu-nbd` closes the image cleanly (a SIGKILL
//!   would leave persistent dirty bitmaps marked in use, that is
//!   inconsistent); SIGKILL only if it has not exited 10 s later. Drop does
//!   the same and removes the directory.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{NbdClient, NbdError};

/// Export name `qemu-nbd` is started with.
pub const EXPORT_NAME: &str = "disk";
/// How long [`QemuNbd`] waits for `qemu-nbd` to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Longest unix socket path (sun_path is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Format of the image file (`qemu-nbd --format`).
pub use shared_types::platform::DiskFormat as ImageFormat;

/// How to serve the disk; built with chained calls, e.g.
/// `QemuNbdOptions::qcow2().read_only().bitmap("cbt1")`.
#[derive(Debug, Clone)]
pub struct QemuNbdOptions {
    format: ImageFormat,
    read_only: bool,
    snapshot: Option<String>,
    bitmaps: Vec<String>,
    persistent: Option<u32>,
    force_share: bool,
    direct_io: bool,
    ready_timeout: Duration,
    program: OsString,
    runtime_dir: Option<PathBuf>,
}

impl QemuNbdOptions {
    pub fn new(format: ImageFormat) -> Self {
        QemuNbdOptions {
            format,
            read_only: false,
            snapshot: None,
            bitmaps: Vec::new(),
            persistent: None,
            force_share: false,
            direct_io: false,
            ready_timeout: Duration::from_secs(30),
            program: "qemu-nbd".into(),
            runtime_dir: None,
        }
    }

    pub fn qcow2() -> Self {
        Self::new(ImageFormat::Qcow2)
    }

    pub fn raw() -> Self {
        Self::new(ImageFormat::Raw)
    }

    /// Export read-only (`--read-only`).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Export internal snapshot `name` instead of the current state
    /// (`--load-snapshot=snapshot.name=NAME`); implies read-only.
    pub fn snapshot(mut self, name: impl Into<String>) -> Self {
        self.snapshot = Some(name.into());
        self.read_only = true;
        self
    }

    /// Expose persistent dirty bitmap `name` as meta context
    /// `qemu:dirty-bitmap:NAME` (`--bitmap`); may be given several times.
    pub fn bitmap(mut self, name: impl Into<String>) -> Self {
        self.bitmaps.push(name.into());
        self
    }

    /// Keep serving after a client leaves and accept up to
    /// `max_connections` at once (`--persistent --shared=N`).
    pub fn persistent(mut self, max_connections: u32) -> Self {
        self.persistent = Some(max_connections.max(1));
        self
    }

    /// Open the image with `force-share=on` (via `--image-opts`) so it can be
    /// read while another process (a running VM) holds its write lock. Only
    /// with [`read_only`](Self::read_only); what is read may be mid-write,
    /// and that writer's persistent bitmaps show as inconsistent.
    pub fn force_share(mut self) -> Self {
        self.force_share = true;
        self
    }

    /// `--cache=none`: O_DIRECT, so reading a whole disk does not push the
    /// host's page cache out. Fails on file systems without O_DIRECT (tmpfs).
    pub fn direct_io(mut self) -> Self {
        self.direct_io = true;
        self
    }

    /// How long to wait for the server to be ready (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The `qemu-nbd` program (default: `qemu-nbd` on PATH).
    pub fn program(mut self, program: impl Into<OsString>) -> Self {
        self.program = program.into();
        self
    }

    /// Where the private socket directory is made (default: the system
    /// temporary directory). Socket paths are limited to 107 bytes.
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(dir.into());
        self
    }
}

/// A running `qemu-nbd` serving one disk.
#[derive(Debug)]
pub struct QemuNbd {
    disk: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    stderr_path: PathBuf,
    pid: u32,
    /// `None` once reaped.
    child: Mutex<Option<Child>>,
    /// Killed by the stop watcher when the job that started it is stopped
    /// (`platforms::tools::with_stop`); released before the child is reaped.
    registered: Mutex<crate::platforms::tools::Registered>,
}

impl QemuNbd {
    /// Starts `qemu-nbd` for `disk` and waits until it accepts connections.
    pub fn start(disk: &Path, opts: &QemuNbdOptions) -> Result<QemuNbd, NbdError> {
        let disk_abs = fs::canonicalize(disk).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NbdError::DiskNotFound {
                disk: disk.to_path_buf(),
            },
            _ => NbdError::InvalidRequest {
                disk: disk.to_path_buf(),
                reason: e.to_string(),
            },
        })?;
        if opts.force_share && !opts.read_only {
            return Err(NbdError::InvalidRequest {
                disk: disk_abs,
                reason: "force-share is only allowed on a read-only export".into(),
            });
        }
        if let Some(b) = opts.bitmaps.iter().find(|b| b.is_empty() || b.starts_with('-')) {
            return Err(NbdError::InvalidRequest {
                disk: disk_abs,
                reason: format!("'{b}' is not a valid bitmap name"),
            });
        }
        let base = opts.runtime_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = private_dir(&base).map_err(|e| NbdError::InvalidRequest {
            disk: disk_abs.clone(),
            reason: format!("cannot create a socket directory in {}: {e}", base.display()),
        })?;
        let socket = dir.join("nbd.sock");
        let pid_file = dir.join("qemu-nbd.pid");
        let stderr_path = dir.join("qemu-nbd.stderr");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            let _ = fs::remove_dir_all(&dir);
            return Err(NbdError::InvalidRequest {
                disk: disk_abs,
                reason: format!(
                    "socket path {} is longer than {MAX_SOCKET_PATH} bytes; use a shorter runtime directory",
                    socket.display()
                ),
            });
        }
        let cleanup = |e: NbdError| {
            let _ = fs::remove_dir_all(&dir);
            e
        };
        let stderr = fs::File::create(&stderr_path).map_err(|source| {
            cleanup(NbdError::Spawn {
                disk: disk_abs.clone(),
                source,
            })
        })?;

        let args = arguments(&disk_abs, opts, &socket, &pid_file);
        tracing::debug!(program = ?opts.program, ?args, "starting qemu-nbd");
        let child = Command::new(&opts.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| {
                cleanup(match source.kind() {
                    std::io::ErrorKind::NotFound => NbdError::QemuNbdMissing {
                        program: opts.program.to_string_lossy().into_owned(),
                    },
                    _ => NbdError::Spawn {
                        disk: disk_abs.clone(),
                        source,
                    },
                })
            })?;
        let server = QemuNbd {
            disk: disk_abs,
            pid: child.id(),
            registered: Mutex::new(crate::platforms::tools::register_child(child.id())),
            dir,
            socket,
            stderr_path,
            child: Mutex::new(Some(child)),
        };
        server.wait_ready(&pid_file, opts)?;
        tracing::info!(disk = %server.disk.display(), socket = %server.socket.display(), pid = server.pid, "qemu-nbd serving");
        Ok(server)
    }

    /// The unix socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The export name to ask for.
    pub fn export_name(&self) -> &str {
        EXPORT_NAME
    }

    /// The disk being served (absolute path).
    pub fn disk(&self) -> &Path {
        &self.disk
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Connects an [`NbdClient`] to this server. If the server has gone (for
    /// example a non-persistent one whose client already left), the error
    /// says so with its stderr.
    pub fn connect(&self, meta_contexts: &[&str]) -> Result<NbdClient, NbdError> {
        NbdClient::connect_unix(&self.socket, EXPORT_NAME, meta_contexts).map_err(|e| match e {
            NbdError::Connect { .. } | NbdError::Io { .. } => match self.exit_status_within(Duration::from_secs(2)) {
                Some(status) => NbdError::QemuNbdExited {
                    disk: self.disk.clone(),
                    status: format!("{status}; it serves one connection unless started persistent"),
                    stderr: self.stderr(),
                },
                None => e,
            },
            e => e,
        })
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and reports an
    /// exit that was not clean.
    pub fn close(self) -> Result<(), NbdError> {
        let outcome = self.stop();
        match outcome {
            Some((status, false)) if status.success() => Ok(()),
            Some((status, killed)) => Err(NbdError::QemuNbdExited {
                disk: self.disk.clone(),
                status: if killed {
                    format!("killed after ignoring SIGTERM for {STOP_GRACE:?}")
                } else {
                    status.to_string()
                },
                stderr: self.stderr(),
            }),
            None => Ok(()),
        }
    }

    /// `qemu-nbd`'s stderr so far, `qemu-nbd:` prefixes removed, lines
    /// joined with "; ".
    pub fn stderr(&self) -> String {
        clean_stderr(&fs::read(&self.stderr_path).unwrap_or_default())
    }

    /// The exit status if the child exits within `wait` (a server that
    /// resets a connection is usually on its way out).
    fn exit_status_within(&self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            let status = self.exit_status();
            if status.is_some() || Instant::now() >= deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Terminates and reaps the child once: (status, whether SIGKILL was needed).
    fn stop(&self) -> Option<(ExitStatus, bool)> {
        self.registered.lock().unwrap_or_else(|p| p.into_inner()).release();
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let mut child = guard.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some((status, false));
        }
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
            // The child is not reaped yet, so the pid is still ours.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    tracing::debug!(disk = %self.disk.display(), %status, "qemu-nbd stopped");
                    return Some((status, false));
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    tracing::warn!(disk = %self.disk.display(), pid = self.pid, "qemu-nbd ignored SIGTERM; killing it");
                    let _ = child.kill();
                    return child.wait().ok().map(|s| (s, true));
                }
            }
        }
    }

    fn wait_ready(&self, pid_file: &Path, opts: &QemuNbdOptions) -> Result<(), NbdError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(status) = self.exit_status() {
                let stderr = self.stderr();
                self.stop();
                return Err(classify_failure(&self.disk, opts, status, stderr));
            }
            let written = fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            if written == Some(self.pid) {
                return Ok(());
            }
            if started.elapsed() >= opts.ready_timeout {
                self.stop();
                return Err(NbdError::QemuNbdTimeout {
                    disk: self.disk.clone(),
                    waited: started.elapsed(),
                    stderr: self.stderr(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl Drop for QemuNbd {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The `qemu-nbd` command line.
fn arguments(disk: &Path, opts: &QemuNbdOptions, socket: &Path, pid_file: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: &std::ffi::OsStr| {
        let mut a = OsString::from(format!("--{name}="));
        a.push(value);
        args.push(a);
    };
    flag("socket", socket.as_os_str());
    flag("pid-file", pid_file.as_os_str());
    flag("export-name", EXPORT_NAME.as_ref());
    if let Some(snapshot) = &opts.snapshot {
        flag(
            "load-snapshot",
            format!("snapshot.name={}", escape_opt(snapshot)).as_ref(),
        );
    }
    for b in &opts.bitmaps {
        flag("bitmap", b.as_ref());
    }
    if let Some(n) = opts.persistent {
        flag("shared", n.to_string().as_ref());
    }
    if opts.direct_io {
        flag("cache", "none".as_ref());
    }
    if !opts.force_share {
        flag("format", opts.format.qemu_name().as_ref());
    }
    if opts.read_only {
        args.push("--read-only".into());
    }
    if opts.persistent.is_some() {
        args.push("--persistent".into());
    }
    if opts.force_share {
        let mut spec = OsString::from(format!(
            "driver={},file.driver=file,file.filename=",
            opts.format.qemu_name()
        ));
        spec.push(escape_opt_os(disk.as_os_str()));
        spec.push(",force-share=on,read-only=on");
        args.push("--image-opts".into());
        args.push(spec);
    } else {
        args.push("--".into());
        args.push(disk.as_os_str().to_owned());
    }
    args
}

/// Doubles commas, the escape of qemu option strings.
fn escape_opt(s: &str) -> String {
    s.replace(',', ",,")
}

fn escape_opt_os(s: &std::ffi::OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::with_capacity(s.len());
    for &b in s.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

fn clean_stderr(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .lines()
        .map(|l| l.trim().trim_start_matches("qemu-nbd:").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns the stderr of a `qemu-nbd` that exited during start-up into the
/// error a caller can act on.
fn classify_failure(disk: &Path, opts: &QemuNbdOptions, status: ExitStatus, stderr: String) -> NbdError {
    let disk = disk.to_path_buf();
    let quoted_bitmap = || {
        stderr
            .split_once("Bitmap '")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(name, _)| name.to_string())
            .or_else(|| opts.bitmaps.first().cloned())
            .unwrap_or_default()
    };
    if stderr.contains("Bitmap '") && stderr.contains("not found") {
        NbdError::BitmapNotFound {
            disk,
            bitmap: quoted_bitmap(),
        }
    } else if stderr.contains("Bitmap '") && stderr.contains("inconsistent") {
        NbdError::BitmapInconsistent {
            disk,
            bitmap: quoted_bitmap(),
        }
    } else if stderr.contains("Failed to load snapshot") {
        match (&opts.snapshot, stderr.contains("Can't find snapshot")) {
            (Some(snapshot), true) => NbdError::SnapshotNotFound {
                disk,
                snapshot: snapshot.clone(),
            },
            _ => NbdError::QemuNbdFailed { disk, stderr },
        }
    } else if stderr.contains("lock") && stderr.contains("Is another process using the image") {
        NbdError::DiskLocked { disk }
    } else if stderr.is_empty() {
        NbdError::QemuNbdFailed {
            disk,
            stderr: format!("it exited ({status}) without saying why"),
        }
    } else {
        NbdError::QemuNbdFailed { disk, stderr }
    }
}

/// Makes a fresh 0700 directory under `base`.
fn private_dir(base: &Path) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("sendense-nbd-{}-{n}-{nanos:x}", std::process::id()));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_are_doubled_in_option_strings() {
        assert_eq!(escape_opt("a,b"), "a,,b");
        assert_eq!(escape_opt_os("/x/a,b.qcow2".as_ref()), OsString::from("/x/a,,b.qcow2"));
    }

    #[test]
    fn stderr_prefixes_are_dropped() {
        assert_eq!(
            clean_stderr(b"qemu-nbd: Bitmap 'x' is not found\n\n"),
            "Bitmap 'x' is not found"
        );
        assert_eq!(clean_stderr(b"qemu-nbd: a\nIs b?\n"), "a; Is b?");
    }

    #[test]
    fn force_share_uses_image_opts_and_read_only() {
        let opts = QemuNbdOptions::qcow2().read_only().force_share().bitmap("b1");
        let args = arguments(
            "/d/x,y.qcow2".as_ref(),
            &opts,
            "/s/nbd.sock".as_ref(),
            "/s/pid".as_ref(),
        );
        let args: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.contains(&"--read-only".to_string()), "{args:?}");
        assert!(args.contains(&"--bitmap=b1".to_string()), "{args:?}");
        assert_eq!(
            args.last().map(String::as_str),
            Some("driver=qcow2,file.driver=file,file.filename=/d/x,,y.qcow2,force-share=on,read-only=on")
        );
        assert!(!args.iter().any(|a| a.starts_with("--format")), "{args:?}");
    }
}
