//! An instant recovery's export as a process of its own
//! (`sendense export-snapshot`, started by the server in its own process
//! group): the guest's disks keep answering while the server restarts,
//! even after a kill -9. The process pins the restore point under the
//! instant recovery's id (the pin lives as long as the process), serves it
//! on the socket until SIGTERM, then releases the pin and removes the
//! socket. The server finds it again after a restart by its pid and
//! socket; [`stop`] ends it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::engine::lease;

/// How long a new export process may take to serve.
const READY_WAIT: Duration = Duration::from_secs(30);
/// How long it may take to end on SIGTERM before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// What the process serves.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The repository directory.
    #[arg(long, required_unless_present = "spec_file", conflicts_with = "spec_file")]
    pub repository: Option<PathBuf>,
    /// An object-store repository: its JSON spec in a file of mode 0600
    /// (`catalog::spec_files`), read once at start; the server removes it
    /// when the process serves.
    #[arg(long, value_name = "FILE")]
    pub spec_file: Option<PathBuf>,
    /// The repository's key file, when it is encrypted.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The restore point: NAME/ID.
    #[arg(long)]
    pub snapshot: String,
    /// The unix socket to serve on.
    #[arg(long)]
    pub socket: PathBuf,
    /// Names the pin (the instant recovery's id).
    #[arg(long)]
    pub pin_id: String,
}

/// The binary that runs export processes: `SENDENSE_EXE` when set (tests
/// that run the server in-process), else this one.
pub fn exe() -> anyhow::Result<PathBuf> {
    match std::env::var_os("SENDENSE_EXE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe().context("finding the sendense binary"),
    }
}

/// Starts an export process and waits until it serves; its output goes to
/// `log`. Returns its pid.
pub fn start(args: &ExportArgs, log: &Path) -> anyhow::Result<u32> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = Command::new(exe()?);
    cmd.arg("export-snapshot");
    match (&args.repository, &args.spec_file) {
        (_, Some(f)) => cmd.arg("--spec-file").arg(f),
        (Some(dir), None) => cmd.arg("--repository").arg(dir),
        (None, None) => bail!("the export names no repository"),
    };
    cmd.arg("--snapshot")
        .arg(&args.snapshot)
        .arg("--socket")
        .arg(&args.socket)
        .arg("--pin-id")
        .arg(&args.pin_id);
    if let Some(k) = &args.key_file {
        cmd.arg("--key-file").arg(k);
    }
    let _ = std::fs::remove_file(&args.socket);
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting the export process")?;
    let pid = child.id();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            bail!("the export process ended at start ({status}): {}", tail.lines().rev().take(3).collect::<Vec<_>>().join(" | "));
        }
        if std::os::unix::net::UnixStream::connect(&args.socket).is_ok() {
            // Reaped by a thread, so it never lingers as a zombie.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(pid);
        }
        if started.elapsed() > READY_WAIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the export process did not serve within {} s", READY_WAIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether export process `pid` runs and serves `socket` (a pid reused by
/// another process does not count).
pub fn is_serving(pid: u32, socket: &Path) -> bool {
    if !lease::pid_alive(pid) {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.iter().any(|a| *a == b"export-snapshot") && args.iter().any(|a| *a == socket.as_os_str().as_encoded_bytes())
}

/// Ends export process `pid` (SIGTERM, then SIGKILL) and removes its pin
/// and socket in any case.
pub fn stop(pid: Option<u32>, socket: &Path, repo: &dyn crate::engine::repository::Repository, pin_id: &str) {
    if let Some(pid) = pid.filter(|p| is_serving(*p, socket)) {
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            let started = Instant::now();
            while lease::pid_alive(pid) && started.elapsed() < STOP_WAIT {
                std::thread::sleep(Duration::from_millis(20));
            }
            if lease::pid_alive(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
    }
    let _ = std::fs::remove_file(socket);
    if let Err(e) = lease::unpin(repo, &lease::pin_key(pin_id)) {
        tracing::warn!(pin = %pin_id, error = %e, "removing an instant recovery's pin");
    }
}

/// The `export-snapshot` command: serves until SIGTERM or SIGINT.
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let spec = match (&args.repository, &args.spec_file) {
        (_, Some(f)) => crate::engine::command::load_spec_file(f)?,
        (Some(dir), None) => crate::repos::RepoSpec::Local { path: dir.clone() },
        (None, None) => bail!("give --repository DIR or --spec-file FILE"),
    };
    let ds = crate::engine::datastore::Datastore::open_spec(&spec, args.key_file.as_deref()).with_context(|| format!("opening repository {}", spec.describe()))?;
    let (name, id) = args.snapshot.rsplit_once('/').with_context(|| format!("'{}' is not NAME/ID", args.snapshot))?;
    let export = super::instant::Export::open(&ds, name, id, &args.socket, &args.pin_id)?;
    eprintln!("serving {} on {}", args.snapshot, args.socket.display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })?;
    let stats = export.server.stats();
    eprintln!(
        "stopping: {} connection(s), {} read(s), {} bytes sent",
        stats.connections.load(std::sync::atomic::Ordering::Relaxed),
        stats.reads.load(std::sync::atomic::Ordering::Relaxed),
        stats.bytes_sent.load(std::sync::atomic::Ordering::Relaxed)
    );
    export.close();
    Ok(())
}
