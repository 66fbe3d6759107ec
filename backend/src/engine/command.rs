//! The engine's command-line front: `sendense repo ...` and `sendense image
//! ...`. Parsing and presentation only (progress bar, tables); the work is in
//! the engine modules. Commands run on plain threads: nothing here is async.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::backup::{self, BackupOptions, DiskSource};
use super::block_source::FileSource;
use super::datastore::Datastore;
use super::progress::{peak_rss_bytes, Progress};
use super::prune::{self, Decision, KeepRules};
use super::{changed_ranges, gc, restore, stats, verify};
use crate::repos::RepoSpec;

#[derive(Debug, Args)]
pub struct KeyArg {
    /// Key file of an encrypted repository.
    #[arg(long, env = "SENDENSE_KEY_FILE")]
    pub key: Option<PathBuf>,
}

/// The repository of a `repo` subcommand: a directory, or `--spec-file`.
#[derive(Debug, Args)]
pub struct RepoDir {
    /// Repository directory.
    #[arg(required_unless_present = "spec_file")]
    pub dir: Option<PathBuf>,
    /// The repository as a JSON spec (`{"kind":"s3",...}`, see `repos::RepoSpec`)
    /// in a file of mode 0600: secrets never go on the command line.
    #[arg(long, value_name = "FILE", conflicts_with = "dir")]
    pub spec_file: Option<PathBuf>,
}

impl RepoDir {
    pub fn spec(&self) -> anyhow::Result<RepoSpec> {
        spec_of(self.dir.as_deref(), self.spec_file.as_deref())
    }
}

/// The repository of an `image` command: `--repo DIR` or `--spec-file`.
#[derive(Debug, Args)]
pub struct RepoFlag {
    /// Repository directory.
    #[arg(long, required_unless_present = "spec_file")]
    pub repo: Option<PathBuf>,
    /// The repository as a JSON spec in a file of mode 0600 (see `repo init --help`).
    #[arg(long, value_name = "FILE", conflicts_with = "repo")]
    pub spec_file: Option<PathBuf>,
}

impl RepoFlag {
    pub fn spec(&self) -> anyhow::Result<RepoSpec> {
        spec_of(self.repo.as_deref(), self.spec_file.as_deref())
    }
}

fn spec_of(dir: Option<&Path>, spec_file: Option<&Path>) -> anyhow::Result<RepoSpec> {
    match (dir, spec_file) {
        (_, Some(f)) => load_spec_file(f),
        (Some(d), None) => Ok(RepoSpec::Local { path: d.to_path_buf() }),
        (None, None) => anyhow::bail!("give the repository directory or --spec-file FILE"),
    }
}

/// A [`RepoSpec`] from a JSON file that only its owner can read (it may
/// hold secrets). Parse errors give the position, never the file's text.
pub fn load_spec_file(path: &Path) -> anyhow::Result<RepoSpec> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("spec file '{}': {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "spec file '{}' is readable by others (mode {mode:o}): it may hold secrets, make it 0600 (chmod 600)",
            path.display()
        );
    }
    let body = std::fs::read(path).map_err(|e| anyhow::anyhow!("spec file '{}': {e}", path.display()))?;
    serde_json::from_slice(&body).map_err(|e| {
        anyhow::anyhow!(
            "spec file '{}' is not a repository spec ({:?} error at line {} column {}): expected JSON like {{\"kind\":\"s3\",\"endpoint\":..,\"region\":..,\"bucket\":..,\"access_key_id\":..,\"secret_access_key\":..}}",
            path.display(),
            e.classify(),
            e.line(),
            e.column()
        )
    })
}

/// The source repository of `repo copy`.
#[derive(Debug, Args)]
pub struct CopyFrom {
    /// Source repository directory.
    #[arg(long = "from", value_name = "DIR", required_unless_present = "from_spec_file", conflicts_with = "from_spec_file")]
    pub from_dir: Option<PathBuf>,
    /// Source repository as a JSON spec in a file of mode 0600.
    #[arg(long, value_name = "FILE")]
    pub from_spec_file: Option<PathBuf>,
    /// Key file of the source repository, when it is encrypted.
    #[arg(long, value_name = "KEYFILE")]
    pub from_key: Option<PathBuf>,
}

/// The target repository of `repo copy`.
#[derive(Debug, Args)]
pub struct CopyTo {
    /// Target repository directory.
    #[arg(long = "to", value_name = "DIR", required_unless_present = "to_spec_file", conflicts_with = "to_spec_file")]
    pub to_dir: Option<PathBuf>,
    /// Target repository as a JSON spec in a file of mode 0600.
    #[arg(long, value_name = "FILE")]
    pub to_spec_file: Option<PathBuf>,
    /// Key file of the target repository, when it is encrypted.
    #[arg(long, value_name = "KEYFILE")]
    pub to_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Create a repository in DIR (absent or empty), or in the bucket or
    /// container of --spec-file.
    Init {
        #[command(flatten)]
        dir: RepoDir,
        /// Encrypt with a new key written to KEYFILE (mode 0600, outside the repository).
        #[arg(long, value_name = "KEYFILE")]
        encrypt: Option<PathBuf>,
        /// Chunk size in bytes (default 65536; for measurements).
        #[arg(long, default_value_t = super::datastore::DEFAULT_CHUNK_SIZE)]
        chunk_size: u32,
    },
    /// Re-hash every chunk of every snapshot.
    Verify {
        #[command(flatten)]
        dir: RepoDir,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Remove packs no snapshot references (mark and sweep with a grace period).
    Gc {
        #[command(flatten)]
        dir: RepoDir,
        #[command(flatten)]
        key: KeyArg,
        /// A pack found unreferenced is removed by a GC at least this long
        /// (by the storage's clock) after the GC that first named it.
        #[arg(long, default_value_t = 86400)]
        grace_seconds: u64,
        /// A snapshot (NAME/ID) known to exist, e.g. from a catalog; GC
        /// refuses when the repository's listing misses one. Repeatable.
        #[arg(long = "expect", value_name = "NAME/ID")]
        expect: Vec<String>,
    },
    /// Apply retention rules (per snapshot name), then run `repo gc` to reclaim space.
    Prune {
        #[command(flatten)]
        dir: RepoDir,
        #[command(flatten)]
        key: KeyArg,
        /// Only this name (VM / image id).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        keep_last: Option<usize>,
        #[arg(long)]
        keep_hourly: Option<usize>,
        #[arg(long)]
        keep_daily: Option<usize>,
        #[arg(long)]
        keep_weekly: Option<usize>,
        #[arg(long)]
        keep_monthly: Option<usize>,
        #[arg(long)]
        keep_yearly: Option<usize>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Logical and stored bytes, dedup and compression ratios.
    Stats {
        #[command(flatten)]
        dir: RepoDir,
        #[command(flatten)]
        key: KeyArg,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List snapshots.
    Snapshots {
        #[command(flatten)]
        dir: RepoDir,
        #[command(flatten)]
        key: KeyArg,
        #[arg(long)]
        id: Option<String>,
    },
    /// Copy one snapshot to another repository (3-2-1 copies): only the
    /// chunks the target lacks are sent, re-encrypted when the keys differ;
    /// the copy is read back and re-hashed at the target before its
    /// manifest (same name and id) is written. Running it again sends
    /// nothing; a copy killed midway leaves no snapshot at the target.
    ///
    /// Exit 0: copied (or already there) and verified; exit 1: failed, the
    /// last stderr line is `error: ...`. With `--json` stdout is one JSON
    /// line, [`super::copy::CopyStats`] plus `object_store_requests`
    /// (fields: name, snapshot, already_present, chunks_total, chunks_sent,
    /// chunks_present, chunks_zero, bytes_logical, bytes_read, bytes_sent,
    /// objects_written, reencoded, immutable_until, objects_locked,
    /// requests_source, requests_target, verified_chunks, verified_bytes,
    /// duration_ms). With
    /// `--progress-json` stderr gets about every second a line
    /// `{"progress":{"phase":"copy"|"verify","bytes_total":N,"bytes_done":N,"bytes_sent":N,"chunks_sent":N,"chunks_present":N}}`.
    /// See /work/notes/copy-interface.md.
    Copy {
        #[command(flatten)]
        from: CopyFrom,
        #[command(flatten)]
        to: CopyTo,
        /// Snapshot name (VM or image id).
        #[arg(long)]
        id: String,
        /// Snapshot id (or `latest`); the copy keeps it.
        #[arg(long)]
        snapshot: String,
        /// The copy cannot be deleted or pruned for this many days (default:
        /// the source snapshot's own immutable-until, if any).
        #[arg(long)]
        immutable_days: Option<u32>,
        /// With --immutable-days: the target storage itself refuses deletes
        /// until then (S3 Object Lock in this mode; the bucket needs Object Lock).
        #[arg(long, value_name = "governance|compliance", value_parser = parse_lock_mode, requires = "immutable_days")]
        object_lock: Option<crate::engine::repository::LockMode>,
        /// Print the result as one JSON line on stdout.
        #[arg(long)]
        json: bool,
        /// Print progress as JSON lines on stderr about every second.
        #[arg(long)]
        progress_json: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Delete one snapshot (refused inside its immutability window).
    Forget {
        #[command(flatten)]
        dir: RepoDir,
        #[command(flatten)]
        key: KeyArg,
        #[arg(long)]
        id: String,
        #[arg(long)]
        snapshot: String,
    },
    /// S3 Object Lock repair: every object a restore point still inside its
    /// immutability window needs (manifest, fixed indexes, packs, pack
    /// indexes, dictionary, config.json) gets a retention in MODE reaching
    /// at least its immutable-until date when it has none or a shorter one
    /// (a crash between a write and its lock). Prints what it extended.
    EnsureRetention {
        #[command(flatten)]
        dir: RepoDir,
        #[command(flatten)]
        key: KeyArg,
        #[arg(long, value_name = "governance|compliance", value_parser = parse_lock_mode)]
        mode: crate::engine::repository::LockMode,
    },
    /// Versioned S3 bucket (Object Lock): remove the delete markers made at
    /// or after TIME (RFC 3339, the storage's clock) that hide objects, so
    /// objects deleted with a plain DELETE (versions kept) are back; leases
    /// and temporary objects stay deleted. Prints the snapshots visible after.
    Undelete {
        #[command(flatten)]
        dir: RepoDir,
        #[command(flatten)]
        key: KeyArg,
        /// RFC 3339 instant, e.g. 2026-12-05T18:00:00Z.
        #[arg(long, value_name = "TIME", value_parser = parse_instant)]
        since: chrono::DateTime<chrono::Utc>,
    },
    /// Versioned S3 bucket: delete the old versions of objects GC (or
    /// anything) deleted or replaced, once the storage's retention of each
    /// has ended; current objects are never touched. Versions superseded
    /// less than --grace-seconds ago stay (time to `repo undelete`).
    SweepVersions {
        #[command(flatten)]
        dir: RepoDir,
        #[arg(long, default_value_t = 7 * 86400)]
        grace_seconds: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Back up a raw disk image; prints the snapshot id.
    Backup {
        #[command(flatten)]
        repo: RepoFlag,
        /// Snapshot name (VM or image id).
        #[arg(long)]
        id: String,
        image: PathBuf,
        /// JSON array of [offset, length] byte ranges changed since the previous snapshot.
        #[arg(long, value_name = "FILE.json")]
        changed_ranges: Option<PathBuf>,
        /// Parent snapshot id (default: the latest of --id).
        #[arg(long)]
        parent: Option<String>,
        /// Snapshot cannot be deleted or pruned for this many days.
        #[arg(long)]
        immutable_days: Option<u32>,
        /// With --immutable-days: the storage itself refuses deletes until
        /// then (S3 Object Lock in this mode; the bucket needs Object Lock).
        #[arg(long, value_name = "governance|compliance", value_parser = parse_lock_mode, requires = "immutable_days")]
        object_lock: Option<crate::engine::repository::LockMode>,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Restore a raw disk image (holes stay sparse).
    Restore {
        #[command(flatten)]
        repo: RepoFlag,
        #[arg(long)]
        id: String,
        /// `latest` or a snapshot id.
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// Disk name inside the snapshot (default: the first).
        #[arg(long)]
        disk: Option<String>,
        out: PathBuf,
        #[command(flatten)]
        key: KeyArg,
        #[command(flatten)]
        out_args: OutputArgs,
    },
    /// Machine limits on an image (benchmark helper): read, BLAKE3, zstd -1 throughput, as JSON.
    #[command(hide = true)]
    Limits {
        image: PathBuf,
        /// Bytes of non-zero chunks to hash and compress.
        #[arg(long, default_value_t = 512 << 20)]
        sample: usize,
    },
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Print a JSON line with counters, duration, peak RSS and object-store
    /// requests by method on stderr.
    #[arg(long)]
    pub stats: bool,
    /// Hash/compress worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
}

pub(crate) fn workers(o: &OutputArgs) -> usize {
    o.workers.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
}

/// Draws a progress bar on stderr (when it is a terminal) until dropped.
pub(crate) struct Bar {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Bar {
    pub(crate) fn start(progress: Arc<Progress>, enabled: bool, verb: &'static str) -> Bar {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = (enabled && std::io::stderr().is_terminal()).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let pb = indicatif::ProgressBar::new(0);
                pb.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
                    )
                    .unwrap()
                    .progress_chars("=> "),
                );
                while !stop.load(Ordering::Relaxed) {
                    let s = progress.snapshot();
                    pb.set_length(s.bytes_total);
                    pb.set_position(s.bytes_read + s.bytes_skipped);
                    pb.set_message(format!(
                        "{verb}: new {} reused {} zero {}",
                        s.chunks_new, s.chunks_reused, s.chunks_zero
                    ));
                    std::thread::sleep(Duration::from_millis(100));
                }
                pb.finish_and_clear();
            })
        });
        Bar { stop, handle }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

pub(crate) fn key(k: &KeyArg) -> Option<&Path> {
    k.key.as_deref()
}

pub fn run_repo(cmd: RepoCommand) -> anyhow::Result<()> {
    match cmd {
        RepoCommand::Init { dir, encrypt, chunk_size } => {
            let spec = dir.spec()?;
            Datastore::init_spec(&spec, encrypt.as_deref(), chunk_size)?;
            match encrypt {
                Some(k) => println!(
                    "created encrypted repository {} (key in {}: keep a copy, without it the backups are unreadable)",
                    spec.describe(),
                    k.display()
                ),
                None => println!("created repository {}", spec.describe()),
            }
        }
        RepoCommand::Verify { dir, key: k } => {
            let ds = Datastore::open_spec(&dir.spec()?, key(&k))?;
            let progress = Progress::new();
            let r = verify::verify(&ds, std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2), &progress)?;
            for e in &r.errors {
                eprintln!("verify: {e}");
            }
            println!(
                "verified {} snapshots, {} chunks ({} bytes): {}",
                r.snapshots,
                r.chunks_checked,
                r.bytes_checked,
                if r.errors.is_empty() { "ok".to_string() } else { format!("{} problems", r.errors.len()) }
            );
            if !r.errors.is_empty() {
                anyhow::bail!("verify found {} problems in {}", r.errors.len(), ds.repo.describe());
            }
        }
        RepoCommand::Gc { dir, key: k, grace_seconds, expect } => {
            let ds = Datastore::open_spec(&dir.spec()?, key(&k))?;
            let mut expected = Vec::new();
            for e in &expect {
                let Some((name, id)) = e.split_once('/').filter(|(n, i)| !n.is_empty() && !i.is_empty()) else {
                    anyhow::bail!("--expect '{e}': give NAME/ID");
                };
                expected.push((name.to_string(), id.to_string()));
            }
            let opts = gc::GcOptions { grace: Duration::from_secs(grace_seconds), expected_manifests: (!expected.is_empty()).then_some(expected) };
            let r = gc::gc_opts(&ds, &opts, &super::progress::Progress::new())?;
            println!(
                "gc: {} snapshots, {} chunks in use; reclaimed {} bytes: removed {} packs ({} bytes; {} of them repacked into {} new packs of {} bytes), {} indexes, {} temp files, {} stale leases; kept {} packs ({} of them waiting for a later GC, {} unreferenced bytes inside used packs)",
                r.snapshots, r.chunks_marked, r.reclaimed(), r.packs_removed, r.bytes_removed, r.packs_repacked,
                r.packs_written, r.bytes_written, r.indexes_removed, r.temp_files_removed, r.stale_leases_removed,
                r.packs_kept, r.packs_in_grace, r.bytes_unreferenced_in_kept_packs
            );
        }
        RepoCommand::Prune { dir, key: k, id, keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, dry_run } => {
            let ds = Datastore::open_spec(&dir.spec()?, key(&k))?;
            let rules = KeepRules {
                last: keep_last,
                hourly: keep_hourly,
                daily: keep_daily,
                weekly: keep_weekly,
                monthly: keep_monthly,
                yearly: keep_yearly,
            };
            let r = prune::prune(&ds, id.as_deref(), &rules, dry_run)?;
            for (label, d) in &r.decisions {
                let what = match d {
                    Decision::Keep => "keep",
                    Decision::Remove if dry_run => "would remove",
                    Decision::Remove => "removed",
                    Decision::KeepImmutable => "keep (immutable)",
                    Decision::KeepPinned => "keep (pinned by an instant recovery)",
                };
                println!("{what} {label}");
            }
        }
        RepoCommand::Stats { dir, key: k, json } => {
            let ds = Datastore::open_spec(&dir.spec()?, key(&k))?;
            let s = stats::stats(&ds)?;
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("snapshots          {}", s.snapshots);
                println!("logical bytes      {}", s.logical_bytes);
                println!("  in zero chunks   {}", s.zero_bytes);
                println!("unique chunks      {} ({} bytes)", s.unique_chunks, s.unique_bytes);
                println!("stored chunk bytes {}", s.unique_stored_bytes);
                println!("pack bytes         {}", s.pack_bytes);
                println!("pack index bytes   {}", s.pack_index_bytes);
                println!("fixed index bytes  {}", s.index_bytes);
                println!("manifest bytes     {}", s.manifest_bytes);
                println!("repository bytes   {}", s.repository_bytes);
                println!("dedup ratio        {:.2}", s.dedup_ratio);
                println!("compression ratio  {:.2}", s.compression_ratio);
            }
        }
        RepoCommand::Snapshots { dir, key: k, id } => {
            let ds = Datastore::open_spec(&dir.spec()?, key(&k))?;
            for (name, sid) in ds.list_snapshots(id.as_deref())? {
                let m = ds.load_manifest(&name, &sid)?;
                let size: u64 = m.disks.iter().map(|d| d.size).sum();
                println!(
                    "{name} {sid} {} {size}{}",
                    m.created,
                    m.immutable_until.map(|u| format!(" immutable-until={u}")).unwrap_or_default()
                );
            }
        }
        RepoCommand::Copy { from, to, id, snapshot, immutable_days, object_lock, json, progress_json, out } => {
            run_copy(from, to, &id, &snapshot, immutable_days, object_lock, json, progress_json, &out)?;
        }
        RepoCommand::Forget { dir, key: k, id, snapshot } => {
            let ds = Datastore::open_spec(&dir.spec()?, key(&k))?;
            prune::forget(&ds, &id, &snapshot)?;
            println!("removed {id}/{snapshot} (run `sendense repo gc` to reclaim space)");
        }
        RepoCommand::EnsureRetention { dir, key: k, mode } => {
            let ds = Datastore::open_spec(&dir.spec()?, key(&k))?;
            if ds.repo.lock_support()? == super::repository::LockSupport::None {
                anyhow::bail!("repository {}: the storage cannot lock objects (an S3 bucket needs Object Lock); nothing to ensure", ds.repo.describe());
            }
            let r = super::object_lock::ensure_retention(&ds, mode)?;
            for key in &r.extended {
                println!("locked {key}");
            }
            for key in &r.missing {
                eprintln!("ensure-retention: {key} is missing (run `sendense repo verify`)");
            }
            println!(
                "ensure-retention: {} locked restore points, {} objects checked, {} locked again ({mode}), {} missing",
                r.snapshots,
                r.objects,
                r.extended.len(),
                r.missing.len()
            );
        }
        RepoCommand::Undelete { dir, key: k, since } => {
            let spec = dir.spec()?;
            let repo = crate::repos::open_backend(&spec)?;
            let back = repo.undelete(since)?;
            let ds = Datastore::open_repo(repo, Path::new(&spec.describe()), key(&k))?;
            let manifests: Vec<(String, String)> = back.iter().filter_map(|k| super::manifest::parse_manifest_key(k)).collect();
            for (name, id) in &manifests {
                println!("restored snapshot {name}/{id}");
            }
            println!(
                "undelete: removed {} delete markers made since {} ({} snapshots back); {} snapshots in {}",
                back.len(),
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                manifests.len(),
                ds.list_snapshots(None)?.len(),
                spec.describe()
            );
        }
        RepoCommand::SweepVersions { dir, grace_seconds } => {
            let spec = dir.spec()?;
            let repo = crate::repos::open_backend(&spec)?;
            let now: chrono::DateTime<chrono::Utc> = repo.server_now()?.into();
            let grace = chrono::Duration::seconds(i64::try_from(grace_seconds).unwrap_or(i64::MAX / 1000).min(100 * 365 * 86400));
            let r = repo.sweep_versions(now - grace, now)?;
            println!(
                "sweep-versions: removed {} old versions ({} bytes) and {} delete markers; kept {} under retention and {} superseded within the last {grace_seconds} s, in {}",
                r.versions_removed,
                r.bytes_removed,
                r.markers_removed,
                r.retained,
                r.recent,
                spec.describe()
            );
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_copy(
    from: CopyFrom,
    to: CopyTo,
    id: &str,
    snapshot: &str,
    immutable_days: Option<u32>,
    object_lock: Option<crate::engine::repository::LockMode>,
    json: bool,
    progress_json: bool,
    out: &OutputArgs,
) -> anyhow::Result<()> {
    use super::copy::{copy_snapshot, CopyOptions, CopyPhase};
    use anyhow::Context;
    let src_spec = spec_of(from.from_dir.as_deref(), from.from_spec_file.as_deref()).context("source repository")?;
    let dst_spec = spec_of(to.to_dir.as_deref(), to.to_spec_file.as_deref()).context("target repository")?;
    let src = Datastore::open_spec(&src_spec, from.from_key.as_deref())
        .with_context(|| format!("source repository {}", src_spec.describe()))?;
    let dst = Datastore::open_spec(&dst_spec, to.to_key.as_deref())
        .with_context(|| format!("target repository {}", dst_spec.describe()))?;
    let phase = Arc::new(std::sync::Mutex::new(CopyPhase::Copy));
    let opts = CopyOptions {
        immutable_until: immutable_days.filter(|&d| d > 0).map(|d| chrono::Utc::now() + chrono::Duration::days(d as i64)),
        object_lock,
        workers: workers(out),
        on_phase: Some({
            let phase = phase.clone();
            Arc::new(move |p| *phase.lock().unwrap_or_else(|e| e.into_inner()) = p)
        }),
    };
    let progress = Arc::new(Progress::new());
    let bar = Bar::start(progress.clone(), !out.no_progress && !progress_json, "copy");
    let reporter = progress_json.then(|| ProgressLines::start(progress.clone(), phase.clone()));
    let r = copy_snapshot(&src, &dst, id, snapshot, &opts, &progress);
    drop(reporter);
    drop(bar);
    let s = r.with_context(|| format!("copy of {id}/{snapshot} from {} to {}", src_spec.describe(), dst_spec.describe()))?;
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["object_store_requests"] = serde_json::to_value(crate::repos::http::request_counts())?;
        println!("{v}");
    } else if s.already_present {
        println!(
            "{}/{} is at {} already: nothing sent; verified {} chunks ({} bytes)",
            s.name, s.snapshot, dst_spec.describe(), s.verified_chunks, s.verified_bytes
        );
    } else {
        println!(
            "copied {}/{} to {}: {} of {} chunks sent ({} present), {} bytes written in {} objects, {} bytes read{}; verified {} chunks ({} bytes) in {} ms",
            s.name,
            s.snapshot,
            dst_spec.describe(),
            s.chunks_sent,
            s.chunks_total,
            s.chunks_present,
            s.bytes_sent,
            s.objects_written,
            s.bytes_read,
            if s.reencoded { ", re-encrypted for the target's key" } else { "" },
            s.verified_chunks,
            s.verified_bytes,
            s.duration_ms
        );
    }
    if out.stats {
        eprintln!("{}", serde_json::json!({ "peak_rss_bytes": peak_rss_bytes(), "object_store_requests": crate::repos::http::request_counts() }));
    }
    Ok(())
}

/// Progress as JSON lines on stderr, about every second and once more when
/// dropped (for a server that runs the command as a child).
struct ProgressLines {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLines {
    fn start(progress: Arc<Progress>, phase: Arc<std::sync::Mutex<super::copy::CopyPhase>>) -> ProgressLines {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut waited = 0;
                loop {
                    let last = stop.load(Ordering::Relaxed);
                    if !last {
                        std::thread::sleep(Duration::from_millis(100));
                        waited += 1;
                        if waited % 10 != 0 {
                            continue;
                        }
                    }
                    let s = progress.snapshot();
                    let p = *phase.lock().unwrap_or_else(|e| e.into_inner());
                    eprintln!(
                        "{}",
                        serde_json::json!({ "progress": {
                            "phase": p, "bytes_total": s.bytes_total, "bytes_done": s.bytes_read,
                            "bytes_sent": s.bytes_written, "chunks_sent": s.chunks_new, "chunks_present": s.chunks_reused,
                        }})
                    );
                    if last {
                        return;
                    }
                }
            })
        };
        ProgressLines { stop, handle: Some(handle) }
    }
}

impl Drop for ProgressLines {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// An RFC 3339 instant.
fn parse_instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&chrono::Utc))
        .map_err(|e| format!("'{s}': {e}; give an RFC 3339 instant like 2026-12-05T18:00:00Z"))
}

/// `governance` / `compliance` (any case).
fn parse_lock_mode(s: &str) -> Result<crate::engine::repository::LockMode, String> {
    crate::engine::repository::LockMode::from_s3(s).ok_or_else(|| format!("'{s}': use governance or compliance"))
}

pub fn run_image(cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Backup { repo, id, image, changed_ranges: ranges, parent, immutable_days, object_lock, key: k, out } => {
            let ds = Datastore::open_spec(&repo.spec()?, key(&k))?;
            let ranges = ranges.map(|p| changed_ranges::load(&p)).transpose()?;
            let mut opts = BackupOptions::new(&id);
            opts.parent = parent;
            opts.immutable_days = immutable_days;
            opts.object_lock = object_lock;
            opts.workers = workers(&out);
            let progress = Arc::new(Progress::new());
            let bar = Bar::start(progress.clone(), !out.no_progress, "backup");
            let source = std::sync::Arc::new(FileSource::open(&image)?);
            let disks = [DiskSource { name: "disk0".into(), source, changed_ranges: ranges, cbt_token: None }];
            let m = backup::backup(&ds, &opts, &disks, &progress);
            drop(bar);
            let m = m?;
            if out.stats {
                let line = serde_json::json!({
                    "snapshot": m.id, "stats": m.stats, "peak_rss_bytes": peak_rss_bytes(),
                    "object_store_requests": crate::repos::http::request_counts(),
                });
                eprintln!("{line}");
            }
            println!("{}", m.id);
        }
        ImageCommand::Restore { repo, id, snapshot, disk, out, key: k, out_args } => {
            let ds = Datastore::open_spec(&repo.spec()?, key(&k))?;
            let progress = Arc::new(Progress::new());
            let bar = Bar::start(progress.clone(), !out_args.no_progress, "restore");
            let started = std::time::Instant::now();
            let m = restore::restore(&ds, &id, &snapshot, disk.as_deref(), &out, workers(&out_args), &progress);
            drop(bar);
            let m = m?;
            if out_args.stats {
                let s = progress.snapshot();
                let line = serde_json::json!({
                    "snapshot": m.id, "bytes_written": s.bytes_written, "chunks_zero": s.chunks_zero,
                    "duration_ms": started.elapsed().as_millis() as u64, "peak_rss_bytes": peak_rss_bytes(),
                    "object_store_requests": crate::repos::http::request_counts(),
                });
                eprintln!("{line}");
            }
            eprintln!("restored {}/{} to {}", m.name, m.id, out.display());
        }
        ImageCommand::Limits { image, sample } => {
            println!("{}", serde_json::to_string(&super::limits::measure(&image, sample)?)?);
        }
    }
    Ok(())
}
