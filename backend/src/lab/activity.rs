//! `lab activity`: one round of guest-like writes to every running VM of a
//! lab, reported per VM and disk.
//!
//! Per disk, under its lock: each partition that changes is extracted from
//! the qcow2 into a raw file (`orig`), copied (`work`), edited with the
//! filesystem tools, compared with `orig` in 64 KiB blocks, and the blocks
//! that differ are written into the qcow2 with `qemu-io`. The disk's dirty
//! bitmap therefore records exactly what the guest would have changed.
//!
//! What changes, by role:
//! * web: access and error log lines, syslog, a rewritten home page and a
//!   new news page;
//! * database: PostgreSQL log lines; 8-32 scattered 64 KiB pages of the
//!   tables rewritten in place and a stretch of WAL;
//! * file-server: new documents in department folders, rows appended to the
//!   ledger, sometimes a re-saved spreadsheet, Samba log lines;
//! * application: JSON log lines, a rewritten cache file;
//! * windows: CBS log lines, registry hive bins, a re-saved spreadsheet, a
//!   new download, the BCD store on the EFI partition.

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use shared_types::platform::PowerState;

use super::content::{self, paths, PG_RELATIONS, WAL_SEGMENT};
use super::filesystem::{Editor, FsKind};
use super::image::{self, BLOCK};
use super::init::disk_file;
use super::manifest::{LabDisk, LabManifest, LabPartition};
use super::rng::Rng;
use super::{LabError, Result};
use crate::platforms::kvm::definition;
use crate::platforms::PlatformError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivityReport {
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
    pub bytes_written: u64,
    pub vms: Vec<VmActivity>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmActivity {
    pub host: String,
    pub vm: String,
    pub role: String,
    /// Why the VM was left alone (it is not running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub disks: Vec<DiskActivity>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskActivity {
    pub disk: String,
    /// The image, relative to the lab directory.
    pub file: String,
    /// Bytes written into the qcow2 (whole 64 KiB blocks).
    pub bytes_written: u64,
    pub blocks_written: u64,
    /// Disk byte offsets of the 64 KiB blocks written.
    pub blocks: Vec<u64>,
    pub changes: Vec<FileChange>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileChange {
    pub partition: u32,
    pub path: String,
    pub kind: ChangeKind,
    /// Bytes the guest wrote to the file.
    pub bytes: u64,
    /// For `patched`: the file offsets rewritten, each `bytes / offsets.len()` long.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offsets: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Appended,
    Rewritten,
    Created,
    Patched,
}

impl VmActivity {
    pub fn bytes_written(&self) -> u64 {
        self.disks.iter().map(|d| d.bytes_written).sum()
    }
}

/// One round of activity on the lab in `dir`.
pub fn round(dir: &Path) -> Result<ActivityReport> {
    round_with(dir, &mut Rng::from_system())
}

/// One round drawing from `rng`.
pub fn round_with(dir: &Path, rng: &mut Rng) -> Result<ActivityReport> {
    let manifest = LabManifest::read(dir)?;
    let started = Instant::now();
    let started_at = Utc::now();
    let mut vms = Vec::new();
    for host in &manifest.hosts {
        let host_dir = dir.join(&host.dir);
        for vm in &host.vms {
            let mut activity = VmActivity { host: host.name.clone(), vm: vm.name.clone(), role: vm.role.clone(), skipped: None, disks: Vec::new() };
            let def = match definition::read_vm(&host_dir, &vm.name) {
                Ok(def) => def,
                Err(PlatformError::VmNotFound(_)) => {
                    activity.skipped = Some("deleted from the host".into());
                    vms.push(activity);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if def.power != PowerState::Running {
                activity.skipped = Some(format!("{:?}", def.power).to_lowercase());
                vms.push(activity);
                continue;
            }
            let mut vm_rng = rng.fork(&vm.name);
            for disk in &vm.disks {
                if let Some(d) = disk_round(dir, &vm.name, &vm.role, disk, &mut vm_rng)? {
                    activity.disks.push(d);
                }
            }
            vms.push(activity);
        }
    }
    let bytes_written = vms.iter().map(VmActivity::bytes_written).sum();
    Ok(ActivityReport { started_at, seconds: started.elapsed().as_secs_f64(), bytes_written, vms })
}

/// What the guest does on one filesystem: edits through `ed`, returns the changes.
type Edits = fn(&mut Editor, &mut Rng, &Ctx) -> Result<Vec<Change>>;

struct Ctx<'a> {
    vm: &'a str,
    role: &'a str,
    now: DateTime<Utc>,
}

/// A change before it is tied to its partition.
type Change = (String, ChangeKind, u64, Vec<u64>);

fn edits_for(role: &str, mount: &str) -> Option<Edits> {
    Some(match (role, mount) {
        ("web", "/") => web_root,
        ("database", "/") => db_root,
        ("database", "/var/lib/postgresql") => db_data,
        ("file-server", "/") => files_root,
        ("file-server", "/srv/share") => files_share,
        ("application", "/") => app_root,
        ("windows", "C:") => windows_c,
        ("windows", "EFI") => windows_esp,
        _ => return None,
    })
}

fn disk_round(dir: &Path, vm: &str, role: &str, disk: &LabDisk, rng: &mut Rng) -> Result<Option<DiskActivity>> {
    let touched: Vec<(&LabPartition, FsKind, Edits)> = disk
        .partitions
        .iter()
        .filter_map(|p| {
            let kind = p.filesystem?;
            let edits = edits_for(role, p.mount.as_deref()?)?;
            Some((p, kind, edits))
        })
        .collect();
    if touched.is_empty() {
        return Ok(None);
    }
    let qcow2 = disk_file(dir, disk)?;
    let scratch = tempfile::Builder::new()
        .prefix(".lab-activity-")
        .tempdir_in(dir)
        .map_err(|e| LabError::io(format!("creating a scratch directory in {}", dir.display()), e))?;
    let ctx = Ctx { vm, role, now: Utc::now() };
    let mut report = DiskActivity { disk: disk.name.clone(), file: disk.file.clone(), bytes_written: 0, blocks_written: 0, blocks: Vec::new(), changes: Vec::new() };
    let _lock = definition::disk_lock(&qcow2)?;
    for (part, kind, edits) in touched {
        let orig = scratch.path().join(format!("p{}-orig.raw", part.number));
        let work = scratch.path().join(format!("p{}-work.raw", part.number));
        image::extract(&qcow2, part.start, part.size, &orig)?;
        let copy = File::create(&work).and_then(|f| f.set_len(part.size).map(|_| f)).map_err(|e| LabError::io(format!("creating {}", work.display()), e))?;
        image::sparse_copy(&orig, &copy, 0)?;
        drop(copy);
        let mut ed = Editor::new(kind, &work, scratch.path())?;
        let changes = edits(&mut ed, rng, &ctx).map_err(|e| LabError::Disk {
            path: qcow2.clone(),
            reason: format!("partition {} ({}): {e}", part.number, part.mount.as_deref().unwrap_or("?")),
        })?;
        let runs = image::changed_runs(&orig, &work)?;
        report.bytes_written += image::write_runs(&qcow2, part.start, &work, &runs, scratch.path())?;
        for (off, len) in runs {
            let mut b = off;
            while b < off + len {
                report.blocks.push(part.start + b);
                b += BLOCK;
            }
        }
        report.changes.extend(changes.into_iter().map(|(path, kind, bytes, offsets)| FileChange { partition: part.number, path, kind, bytes, offsets }));
        let _ = std::fs::remove_file(&orig);
        let _ = std::fs::remove_file(&work);
    }
    report.blocks_written = report.blocks.len() as u64;
    Ok(Some(report))
}

fn append(ed: &mut Editor, path: &str, text: String) -> Result<Change> {
    ed.append(path, text.as_bytes())?;
    Ok((path.into(), ChangeKind::Appended, text.len() as u64, Vec::new()))
}

fn rewrite(ed: &mut Editor, path: &str, data: &[u8]) -> Result<Change> {
    ed.write(path, data)?;
    Ok((path.into(), ChangeKind::Rewritten, data.len() as u64, Vec::new()))
}

fn create(ed: &mut Editor, path: &str, data: &[u8]) -> Result<Change> {
    ed.write(path, data)?;
    Ok((path.into(), ChangeKind::Created, data.len() as u64, Vec::new()))
}

/// The last minute: the span appended log lines cover.
fn recent(ctx: &Ctx) -> (DateTime<Utc>, DateTime<Utc>) {
    (ctx.now - Duration::seconds(60), ctx.now)
}

fn syslog(ed: &mut Editor, rng: &mut Rng, ctx: &Ctx) -> Result<Change> {
    let (from, to) = recent(ctx);
    let n = rng.range(10, 60) as usize;
    append(ed, paths::SYSLOG, content::syslog(rng, ctx.vm, ctx.role, from, to, n))
}

fn web_root(ed: &mut Editor, rng: &mut Rng, ctx: &Ctx) -> Result<Vec<Change>> {
    let (from, to) = recent(ctx);
    let site = if ctx.vm == "web-01" { "shop.example.com" } else { "docs.example.com" };
    let lines = rng.range(200, 1500) as usize;
    let mut changes = vec![append(ed, paths::ACCESS_LOG, content::access_log(rng, from, to, lines))?];
    let errors = rng.range(0, 4) as usize;
    if errors > 0 {
        changes.push(append(ed, paths::ERROR_LOG, content::nginx_errors(rng, from, to, errors))?);
    }
    changes.push(syslog(ed, rng, ctx)?);
    changes.push(rewrite(ed, paths::WEB_INDEX, content::web_index(rng, site, ctx.now).as_bytes())?);
    let news = format!("{}/{}.html", paths::WEB_NEWS, ctx.now.format("%Y-%m-%d-%H%M%S"));
    changes.push(create(ed, &news, content::news_page(rng, site).as_bytes())?);
    Ok(changes)
}

fn db_root(ed: &mut Editor, rng: &mut Rng, ctx: &Ctx) -> Result<Vec<Change>> {
    let (from, to) = recent(ctx);
    let lines = rng.range(20, 120) as usize;
    Ok(vec![append(ed, paths::PG_LOG, content::postgres_log(rng, from, to, lines))?, syslog(ed, rng, ctx)?])
}

/// Rewrites 8-32 scattered 64 KiB stretches of the tables in place (eight
/// 8 KiB pages each, new row versions under a new LSN), and a stretch of WAL.
fn db_data(ed: &mut Editor, rng: &mut Rng, _ctx: &Ctx) -> Result<Vec<Change>> {
    let lsn = 0x4000_0000 + rng.below(1 << 30);
    let count = rng.range(8, 32);
    let total_chunks: u64 = PG_RELATIONS.iter().map(|(_, _, mib)| mib * 16).sum();
    let mut picked: Vec<(usize, u64)> = Vec::new();
    while (picked.len() as u64) < count {
        // Uniform over all 64 KiB stretches of all relations.
        let mut n = rng.below(total_chunks);
        let mut rel = 0;
        while n >= PG_RELATIONS[rel].2 * 16 {
            n -= PG_RELATIONS[rel].2 * 16;
            rel += 1;
        }
        if !picked.contains(&(rel, n)) {
            picked.push((rel, n));
        }
    }
    picked.sort_unstable();
    let mut changes: Vec<Change> = Vec::new();
    for (rel, chunk) in picked {
        let (table, node, _) = PG_RELATIONS[rel];
        let path = format!("{}/{node}", paths::PG_BASE);
        let pages = (BLOCK as usize) / content::PG_PAGE;
        let data = content::relation(rng, table, pages, lsn);
        ed.patch(&path, chunk * BLOCK, &data)?;
        match changes.iter_mut().find(|c| c.0 == path) {
            Some(c) => {
                c.2 += BLOCK;
                c.3.push(chunk * BLOCK);
            }
            None => changes.push((path, ChangeKind::Patched, BLOCK, vec![chunk * BLOCK])),
        }
    }
    // WAL: the records of those changes, written sequentially.
    let wal = format!("{}/{WAL_SEGMENT}", paths::PG_WAL);
    let len = rng.range(4, 16) * 64 * 1024;
    let at = rng.below((16 << 20) / BLOCK - len / BLOCK) * BLOCK;
    let data = content::relation(rng, "orders", len as usize / content::PG_PAGE, lsn);
    ed.patch(&wal, at, &data)?;
    changes.push((wal, ChangeKind::Patched, len, vec![at]));
    Ok(changes)
}

fn files_root(ed: &mut Editor, rng: &mut Rng, ctx: &Ctx) -> Result<Vec<Change>> {
    let (from, to) = recent(ctx);
    let lines = rng.range(5, 40) as usize;
    Ok(vec![append(ed, paths::SAMBA_LOG, content::samba_log(rng, from, to, lines))?, syslog(ed, rng, ctx)?])
}

fn files_share(ed: &mut Editor, rng: &mut Rng, ctx: &Ctx) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    for _ in 0..rng.range(2, 6) {
        let dept = *rng.pick(&paths::DEPARTMENTS);
        let quarter = rng.range(1, 4);
        let ext = *rng.pick(&["docx", "xlsx", "pdf", "txt", "csv", "jpg"]);
        let size = rng.range(20_000, 1_000_000) as usize;
        let name = format!("{} {}.{ext}", content::file_name(rng, ext).rsplit_once('.').map(|(n, _)| n.to_string()).unwrap_or_default(), ctx.now.format("%H%M%S"));
        let path = format!("/{dept}/2026/Q{quarter}/{name}");
        changes.push(create(ed, &path, &content::document(rng, ext, size))?);
    }
    let rows = rng.range(20, 200) as usize;
    changes.push(append(ed, paths::LEDGER, content::ledger_rows(rng, rows))?);
    if rng.chance(50) {
        // Re-saved: a new zip of about the same size.
        let size = 96_000 + rng.below(8_000) as usize;
        changes.push(rewrite(ed, paths::ROSTER, &content::document(rng, "xlsx", size))?);
    }
    Ok(changes)
}

fn app_root(ed: &mut Editor, rng: &mut Rng, ctx: &Ctx) -> Result<Vec<Change>> {
    let (from, to) = recent(ctx);
    let lines = rng.range(100, 800) as usize;
    Ok(vec![
        append(ed, paths::APP_LOG, content::app_log(rng, from, to, lines))?,
        rewrite(ed, paths::APP_CACHE, content::app_cache(rng, ctx.now).as_bytes())?,
        syslog(ed, rng, ctx)?,
    ])
}

/// Rewrites `n` 4 KiB bins of a registry hive, and its sequence numbers
/// (read, changed, written back: unchanged blocks stay as they were).
fn hive_bins(ed: &mut Editor, rng: &mut Rng, path: &str, n: u64) -> Result<Change> {
    let mut body = ed.read(path)?;
    let bins = body.len() as u64 / 4096;
    if bins < 2 || &body[..4] != b"regf" {
        return Err(LabError::Invalid(format!("{path}: not a registry hive ({} bytes)", body.len())));
    }
    let mut offsets = Vec::new();
    for _ in 0..n {
        let at = rng.range(1, bins - 1) * 4096;
        body[at as usize..at as usize + 4096].copy_from_slice(&content::hbin(rng, (at - 4096) as usize));
        offsets.push(at);
    }
    let seq = (rng.below(u64::from(u32::MAX)) as u32).to_le_bytes();
    body[4..8].copy_from_slice(&seq);
    body[8..12].copy_from_slice(&seq);
    offsets.push(4);
    ed.write(path, &body)?;
    Ok((path.into(), ChangeKind::Patched, n * 4096 + 8, offsets))
}

fn windows_c(ed: &mut Editor, rng: &mut Rng, ctx: &Ctx) -> Result<Vec<Change>> {
    let (from, to) = recent(ctx);
    let lines = rng.range(20, 200) as usize;
    let mut changes = vec![append(ed, paths::CBS_LOG, content::cbs_log(rng, from, to, lines))?];
    let bins = rng.range(2, 8);
    changes.push(hive_bins(ed, rng, paths::SOFTWARE_HIVE, bins)?);
    let size = 170_000 + rng.below(20_000) as usize;
    changes.push(rewrite(ed, paths::BUDGET, &content::document(rng, "xlsx", size))?);
    let name = format!("Invoice {}-{}.pdf", ctx.now.format("%Y%m%d-%H%M%S"), rng.range(1000, 9999));
    let size = rng.range(60_000, 400_000) as usize;
    changes.push(create(ed, &format!("{}/{name}", paths::DOWNLOADS), &content::document(rng, "pdf", size))?);
    Ok(changes)
}

fn windows_esp(ed: &mut Editor, rng: &mut Rng, _ctx: &Ctx) -> Result<Vec<Change>> {
    Ok(vec![hive_bins(ed, rng, paths::BCD, 1)?])
}
