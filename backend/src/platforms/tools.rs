//! Running the external tools connectors drive (`qemu-img`, `qemu-io`,
//! `mkfs.*`, the filesystem tools): a missing tool is an error naming the
//! Debian package that has it, a failing one an error carrying its stderr.
//! [`run_with`] adds a working directory and standard input; [`debugfs`]
//! also catches the failures `debugfs` reports while exiting 0.
//!
//! Every run has a time limit by tool class ([`Timeouts`], `--tool-timeouts`):
//! a tool still running at its limit is killed (with its process group) and
//! the error names the tool and the limit (`qemu-img convert timed out after
//! 600 s`). Work done for a job runs inside [`with_stop`]: when the job is
//! stopped, the tool running at that moment is killed at once, and so is
//! every long-lived child registered with [`register_child`] (`qemu-nbd`
//! servers), instead of waiting for them to end.

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::error::{PlatformError, Result};

/// The Debian package that ships `tool`.
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "qemu-img" | "qemu-io" | "qemu-nbd" | "qemu-storage-daemon" => "qemu-utils",
        "mkfs.ext4" | "debugfs" | "e2fsck" => "e2fsprogs",
        "mkfs.vfat" | "mkfs.fat" | "fsck.vfat" | "fsck.fat" => "dosfstools",
        "mcopy" | "mmd" | "mdel" | "mtype" | "mdir" | "minfo" => "mtools",
        "mkntfs" | "ntfscp" | "ntfscat" | "ntfsls" | "ntfsinfo" | "ntfsfix" => "ntfs-3g",
        "wimcapture" | "wimapply" => "wimtools",
        "mkswap" | "partx" | "blkid" => "util-linux",
        "sfdisk" => "fdisk",
        _ => "the package that provides it",
    }
}

/// What kind of work a tool run is, for its time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolClass {
    /// `qemu-img convert` and other whole-image copies.
    Convert,
    /// Reading metadata (`qemu-img info`, `blkid`, ...).
    Info,
    /// Filesystem checks (`e2fsck`, `fsck.fat`, `ntfsfix`).
    Check,
    /// Writing into a filesystem image (`debugfs -w`, `mcopy`, `ntfscp`, `wimapply`, `mkfs.*`, ...).
    Write,
    /// Anything else.
    Other,
}

impl ToolClass {
    pub const ALL: [ToolClass; 5] = [ToolClass::Convert, ToolClass::Info, ToolClass::Check, ToolClass::Write, ToolClass::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolClass::Convert => "convert",
            ToolClass::Info => "info",
            ToolClass::Check => "check",
            ToolClass::Write => "write",
            ToolClass::Other => "other",
        }
    }

    /// The class of `tool` run with `args`.
    pub fn of(tool: &str, args: &[OsString]) -> ToolClass {
        let first = args.iter().map(|a| a.to_string_lossy()).find(|a| !a.starts_with('-')).unwrap_or_default();
        match tool {
            "qemu-img" => match first.as_ref() {
                "convert" | "dd" | "rebase" | "commit" => ToolClass::Convert,
                "info" | "map" | "measure" | "compare" => ToolClass::Info,
                "check" => ToolClass::Check,
                _ => ToolClass::Write,
            },
            "qemu-io" | "debugfs" | "mcopy" | "mmd" | "mdel" | "mattrib" | "ntfscp" | "wimapply" | "wimcapture" | "mkswap" | "sfdisk" => ToolClass::Write,
            t if t.starts_with("mkfs") || t == "mkntfs" => ToolClass::Write,
            "e2fsck" | "fsck.fat" | "fsck.vfat" | "ntfsfix" => ToolClass::Check,
            "blkid" | "partx" | "mtype" | "mdir" | "minfo" | "ntfsls" | "ntfsinfo" | "ntfscat" => ToolClass::Info,
            _ => ToolClass::Other,
        }
    }
}

/// Time limits per [`ToolClass`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub convert: Duration,
    pub info: Duration,
    pub check: Duration,
    pub write: Duration,
    pub other: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            convert: Duration::from_secs(600),
            info: Duration::from_secs(60),
            check: Duration::from_secs(300),
            write: Duration::from_secs(600),
            other: Duration::from_secs(300),
        }
    }
}

impl Timeouts {
    pub fn of(&self, class: ToolClass) -> Duration {
        match class {
            ToolClass::Convert => self.convert,
            ToolClass::Info => self.info,
            ToolClass::Check => self.check,
            ToolClass::Write => self.write,
            ToolClass::Other => self.other,
        }
    }

    pub fn set(&mut self, class: ToolClass, limit: Duration) {
        match class {
            ToolClass::Convert => self.convert = limit,
            ToolClass::Info => self.info = limit,
            ToolClass::Check => self.check = limit,
            ToolClass::Write => self.write = limit,
            ToolClass::Other => self.other = limit,
        }
    }

    /// `convert=600,info=60` (any subset; empty: the defaults).
    pub fn parse(text: &str) -> std::result::Result<Timeouts, String> {
        let mut t = Timeouts::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (class, secs) = pair.split_once('=').ok_or_else(|| format!("'{pair}': write class=seconds, e.g. convert=600"))?;
            let class = ToolClass::ALL
                .into_iter()
                .find(|c| c.as_str() == class.trim())
                .ok_or_else(|| format!("'{class}' is not a tool class: use convert, info, check, write or other"))?;
            let secs: u64 = secs.trim().parse().ok().filter(|s| (1..=86_400).contains(s)).ok_or_else(|| format!("'{pair}': the limit is 1 to 86400 seconds"))?;
            t.set(class, Duration::from_secs(secs));
        }
        Ok(t)
    }
}

static TIMEOUTS: RwLock<Option<Timeouts>> = RwLock::new(None);

/// Sets the time limits every tool run from now on gets.
pub fn set_timeouts(t: Timeouts) {
    *TIMEOUTS.write().unwrap_or_else(|e| e.into_inner()) = Some(t);
}

/// The time limits in force.
pub fn timeouts() -> Timeouts {
    TIMEOUTS.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()
}

/// What stops the tools of one job: its stop flag and the long-lived
/// children (servers) it started.
#[derive(Clone)]
pub struct StopScope {
    stopped: Arc<dyn Fn() -> bool + Send + Sync>,
    children: Arc<Mutex<Vec<u32>>>,
}

thread_local! {
    static SCOPE: RefCell<Option<StopScope>> = const { RefCell::new(None) };
}

fn scope() -> Option<StopScope> {
    SCOPE.with(|s| s.borrow().clone())
}

/// Whether the job the current thread works for was stopped.
pub fn stop_requested() -> bool {
    scope().is_some_and(|s| (s.stopped)())
}

/// Runs `work` on this thread with `stopped` as its stop flag: tools run
/// meanwhile are killed as soon as it turns true, and so are the children
/// registered with [`register_child`] (a watcher looks every 100 ms).
pub fn with_stop<T>(stopped: impl Fn() -> bool + Send + Sync + 'static, work: impl FnOnce() -> T) -> T {
    let scope = StopScope { stopped: Arc::new(stopped), children: Arc::default() };
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (scope, done) = (scope.clone(), done.clone());
        std::thread::Builder::new().name("tool-stop-watch".into()).spawn(move || {
            let mut killed = false;
            while !done.load(Ordering::Relaxed) {
                if !killed && (scope.stopped)() {
                    let pids = scope.children.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    for pid in pids {
                        tracing::info!(pid, "job stopped: killing its server process");
                        kill_group(pid);
                    }
                    killed = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let previous = SCOPE.with(|s| s.replace(Some(scope)));
    let out = work();
    SCOPE.with(|s| *s.borrow_mut() = previous);
    done.store(true, Ordering::Relaxed);
    if let Ok(w) = watcher {
        let _ = w.join();
    }
    out
}

/// Registers a long-lived child of the current job (killed with its
/// process group when the job is stopped); returns a guard that
/// unregisters it. Call [`Registered::release`] before reaping the child.
pub fn register_child(pid: u32) -> Registered {
    let scope = scope();
    if let Some(s) = &scope {
        s.children.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    }
    Registered { pid, scope }
}

/// See [`register_child`].
pub struct Registered {
    pid: u32,
    scope: Option<StopScope>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered").field("pid", &self.pid).field("watched", &self.scope.is_some()).finish()
    }
}

impl Registered {
    /// Stops the job's watcher from signalling this pid (before it is reaped).
    pub fn release(&mut self) {
        if let Some(s) = self.scope.take() {
            s.children.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| *p != self.pid);
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.release();
    }
}

/// SIGKILL to the process group `pid` leads (and to `pid` itself).
fn kill_group(pid: u32) {
    if let Some(p) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// `tool` and its sub-command, as errors name it (`qemu-img convert`).
fn label(tool: &str, args: &[OsString]) -> String {
    match (tool, args.iter().map(|a| a.to_string_lossy()).find(|a| !a.starts_with('-'))) {
        ("qemu-img", Some(sub)) => format!("qemu-img {sub}"),
        _ => tool.to_string(),
    }
}

/// Runs `tool args..` (in `cwd`, with `stdin` fed in, when given) within
/// its time limit and the current job's stop flag; returns its output
/// whatever its exit status.
pub fn execute(tool: &str, args: &[OsString], cwd: Option<&Path>, stdin: Option<&[u8]>) -> Result<Output> {
    let limit = timeouts().of(ToolClass::of(tool, args));
    let mut cmd = Command::new(tool);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    // Its own process group: a timeout or a stop kills what it started too.
    cmd.process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if matches!(tool, "mcopy" | "mtype" | "mdir" | "mmd" | "mdel" | "minfo" | "mattrib") {
        // mtools: images made by mkfs.vfat need no geometry check.
        cmd.env("MTOOLS_SKIP_CHECK", "1");
    }
    let mut child = cmd.spawn().map_err(|e| spawn_error(tool, e))?;
    tracing::debug!(tool, pid = child.id(), limit_s = limit.as_secs(), "tool started");
    // Feed stdin and drain stdout / stderr on threads: a long script must
    // not block on a full pipe while this thread watches the clock.
    let feeder = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&input)))
        }
        _ => None,
    };
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_reader = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err_reader = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = wait(&mut child, tool, args, limit)?;
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if let Some(feeder) = feeder {
        match feeder.join() {
            Ok(Ok(())) => {}
            // A tool that exits without reading all its input is judged by its status.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Ok(Err(e)) => return Err(PlatformError::io(format!("writing to {tool}"), e)),
            Err(_) => return Err(PlatformError::Invalid(format!("writing to {tool}: the writer thread panicked"))),
        }
    }
    Ok(Output { status, stdout, stderr })
}

/// Waits for `child` within `limit` and the job's stop flag; kills it (and
/// its process group) at either.
fn wait(child: &mut Child, tool: &str, args: &[OsString], limit: Duration) -> Result<std::process::ExitStatus> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| PlatformError::io(format!("waiting for {tool}"), e))? {
            return Ok(status);
        }
        let timed_out = started.elapsed() >= limit;
        if timed_out || stop_requested() {
            kill_group(child.id());
            let _ = child.wait();
            let what = label(tool, args);
            tracing::warn!(tool = %what, pid = child.id(), timed_out, "tool killed");
            return Err(if timed_out {
                PlatformError::ToolTimedOut { tool: what, seconds: limit.as_secs() }
            } else {
                PlatformError::ToolStopped { tool: what }
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Runs `tool args..` and returns its output when it exits 0.
pub fn run<I, S>(tool: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with(tool, args, None, None)
}

/// Runs `tool args..` (in `cwd` when given, with `stdin` fed in when given)
/// and returns its output when it exits 0.
pub fn run_with<I, S>(tool: &str, args: I, cwd: Option<&Path>, stdin: Option<&[u8]>) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = execute(tool, &args, cwd, stdin)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(tool, &args, String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// The error of a tool that ran and failed.
pub fn failed(tool: &str, args: &[OsString], stderr: String) -> PlatformError {
    PlatformError::ToolFailed {
        tool: tool.into(),
        args: args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "),
        stderr,
    }
}

/// Runs a `debugfs` script on an ext2/3/4 image (`-w` when `write`) and
/// returns its standard output. debugfs exits 0 even when a command fails,
/// so any line on stderr other than its version banner is an error.
pub fn debugfs(image: &Path, script: &str, write: bool) -> Result<Vec<u8>> {
    let mut args: Vec<OsString> = Vec::new();
    if write {
        args.push("-w".into());
    }
    args.push("-f".into());
    args.push("-".into());
    args.push(image.into());
    let out = run_with("debugfs", &args, None, Some(script.as_bytes()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs ")).collect();
    if !errors.is_empty() {
        let mut shown = script.trim().replace('\n', "; ");
        if shown.len() > 2000 {
            let cut = (0..=2000).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
            shown.truncate(cut);
            shown.push_str(" ...");
        }
        return Err(failed("debugfs", &args, format!("{} (script: {shown})", errors.join("; "))));
    }
    Ok(out.stdout)
}

/// `text` quoted for a debugfs command line, or `None` when debugfs cannot
/// take it (a double quote or a line break inside).
pub fn debugfs_quote(text: &str) -> Option<String> {
    if text.contains('"') || text.contains('\n') || text.contains('\r') {
        return None;
    }
    Some(format!("\"{text}\""))
}

/// The error for a tool that could not be started.
pub fn spawn_error(tool: &str, e: std::io::Error) -> PlatformError {
    if e.kind() == std::io::ErrorKind::NotFound {
        PlatformError::ToolMissing { tool: tool.into(), package: package_of(tool) }
    } else {
        PlatformError::Io { what: format!("starting {tool}"), source: e }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_its_package() {
        let err = run("qemu-img-that-does-not-exist", ["--version"]).unwrap_err();
        assert!(err.to_string().contains("not installed"), "{err}");
        let err = spawn_error("qemu-img", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(err.to_string().contains("apt-get install qemu-utils"), "{err}");
    }

    #[test]
    fn timeouts_parse_by_class() {
        let t = Timeouts::parse("convert=1800, info=5").unwrap();
        assert_eq!((t.convert, t.info, t.check), (Duration::from_secs(1800), Duration::from_secs(5), Timeouts::default().check));
        assert!(Timeouts::parse("copy=5").unwrap_err().contains("not a tool class"));
        assert!(Timeouts::parse("info=0").is_err() && Timeouts::parse("info").is_err());
        assert_eq!(Timeouts::parse("").unwrap(), Timeouts::default());
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(ToolClass::of("qemu-img", &args(&["convert", "-O", "raw"])), ToolClass::Convert);
        assert_eq!(ToolClass::of("qemu-img", &args(&["info", "--output=json", "x"])), ToolClass::Info);
        assert_eq!(ToolClass::of("e2fsck", &args(&["-fn", "x"])), ToolClass::Check);
        assert_eq!(ToolClass::of("mcopy", &args(&[])), ToolClass::Write);
    }

    #[test]
    fn a_failing_tool_reports_its_stderr() {
        let err = run("qemu-img", ["info", "/nonexistent/disk.qcow2"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/disk.qcow2") && text.contains("qemu-img"), "{text}");
    }
}
