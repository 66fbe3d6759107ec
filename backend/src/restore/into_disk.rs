//! Restoring selected files into a filesystem on a (powered-off) VM's
//! disk, without mounting anything:
//!
//! 1. the VM must be stopped; its platform opens the disk for writing
//!    ([`Platform::open_disk_write`]: a writable NBD connection, refused
//!    while the VM runs or another job holds the disk) and it is read
//!    through our NBD client: `guest-fs` finds the volume's partition (same
//!    `disk0-p1` ids as sessions) and reads its filesystem as it is;
//! 3. the restore is planned against it (`guest_plan`) and the files staged
//!    on the host; the filesystem's free space must hold them;
//! 4. the partition is copied into a sparse raw file (zero blocks skipped),
//!    checked read-only, changed with the tools (`guest_tools`), checked
//!    again;
//! 5. only the 64 KiB blocks that differ from the disk are written back,
//!    through the same export, so the disk's dirty bitmap (changed-block
//!    tracking) records exactly them and the next incremental backup
//!    carries the restored files. The original blocks are saved first: a
//!    write-back that fails midway is undone with them.
//!
//! Only then is the write committed ([`DiskWrite::finish`]: libvirt sends
//! the disk back to its volume then). Any failure before step 5 leaves the
//! disk untouched. Staging lives in
//! `DATA_DIR/staging/sendense-restore-files-*` (removed at the end, and at
//! server start if a restore was cut short).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use guest_fs::{GuestPath, ReadAt, TableKind};
use shared_types::platform::{PlatformKind, PowerState, VmInfo};
use shared_types::restore::ConflictPolicy;

use super::file_restore::{restore_items_each, Watch, FileRestoreError, Item, Meta, Outcome, Result, Selection, SinkError};
use super::guest_plan::{EnsureError, Family, GuestDir, GuestSink};
use super::guest_tools;
use super::sessions::volume_id;
use crate::catalog::compatibility::free_bytes;
use crate::platforms::nbd::{self, NbdClient, NbdError};
use crate::platforms::{DiskWrite, Platform, PlatformError};

/// Unit of comparison and write-back: a qcow2 cluster, the bitmap's granularity.
const BLOCK: u64 = 64 * 1024;
/// Bytes read from the export per request while copying the partition.
const COPY_CHUNK: u64 = 1 << 20;

/// Where the files go.
#[derive(Debug, Clone)]
pub struct DiskDestination {
    /// The VM's platform.
    pub kind: PlatformKind,
    pub address: String,
    /// The VM's name or platform id.
    pub vm: String,
    /// Volume id as sessions name them (`disk0-p1`).
    pub volume: String,
    /// Directory inside the volume; `None`: each item back to where it was.
    pub directory: Option<String>,
}

/// A disk read (and written) through one NBD connection.
pub struct NbdDisk {
    size: u64,
    client: Mutex<Option<NbdClient>>,
}

impl NbdDisk {
    pub fn new(client: NbdClient) -> Self {
        NbdDisk { size: client.size(), client: Mutex::new(Some(client)) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut NbdClient) -> Result<T, NbdError>) -> std::io::Result<T> {
        let mut guard = self.client.lock().map_err(|_| std::io::Error::other("the NBD connection's lock is poisoned"))?;
        let client = guard.as_mut().ok_or_else(|| std::io::Error::other("the NBD connection is closed"))?;
        f(client).map_err(std::io::Error::other)
    }

    pub fn write_at(&self, data: &[u8], offset: u64) -> std::io::Result<()> {
        self.with(|c| c.write_at(data, offset))
    }

    pub fn flush(&self) -> std::io::Result<()> {
        self.with(|c| c.flush())
    }

    /// Extents of `base:allocation` in `[offset, offset + len)`.
    pub fn allocation(&self, offset: u64, len: u64) -> std::io::Result<Vec<nbd::Extent>> {
        self.with(|c| c.block_status(nbd::BASE_ALLOCATION, offset, len))
    }

    /// Ends the connection (flushing a writable export).
    pub fn disconnect(&self) -> std::io::Result<()> {
        let taken = self.client.lock().map(|mut c| c.take()).unwrap_or(None);
        match taken {
            Some(c) => c.disconnect().map_err(std::io::Error::other),
            None => Ok(()),
        }
    }
}

impl ReadAt for NbdDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let n = usize::try_from(self.size - offset).unwrap_or(usize::MAX).min(buf.len());
        self.with(|c| c.read_at(&mut buf[..n], offset))?;
        Ok(n)
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FileRestoreError {
    let what = what.into();
    move |e| FileRestoreError::io(what, e)
}

/// `disk0-p1` → (`disk0`, Some(1)); `disk0` → (`disk0`, None), for the
/// disk of `vm` the id belongs to.
fn parse_volume(vm: &VmInfo, volume: &str) -> Option<(String, Option<u32>)> {
    vm.disks.iter().find_map(|d| {
        let id = volume_id(&d.name, None);
        if volume == id {
            return Some((d.name.clone(), None));
        }
        let n: u32 = volume.strip_prefix(&id)?.strip_prefix("-p")?.parse().ok()?;
        Some((d.name.clone(), Some(n)))
    })
}

fn platform(dest: &DiskDestination) -> Result<Box<dyn Platform>> {
    Ok(crate::catalog::inventory::connect(dest.kind, &dest.address)?)
}

fn stopped(vm: &VmInfo) -> Result<()> {
    if vm.power != PowerState::Stopped {
        return Err(FileRestoreError::VmRunning { vm: vm.name.clone(), power: format!("{:?}", vm.power).to_lowercase() });
    }
    Ok(())
}

fn directory(dest: &DiskDestination) -> Result<Option<GuestPath>> {
    match &dest.directory {
        None => Ok(None),
        Some(d) if d.split('/').any(|c| c == "..") || !d.starts_with('/') => Err(FileRestoreError::BadDirectory(d.clone())),
        Some(d) => Ok(Some(GuestPath::parse(d).map_err(|_| FileRestoreError::BadDirectory(d.clone()))?)),
    }
}

/// The disk and partition the destination's volume names.
fn disk_of(vm: &VmInfo, dest: &DiskDestination) -> Result<(String, Option<u32>)> {
    parse_volume(vm, &dest.volume).ok_or_else(|| {
        let disks: Vec<String> = vm.disks.iter().map(|d| volume_id(&d.name, None)).collect();
        let known = format!("named after its disks ({}) and partition numbers, e.g. {}-p1", disks.join(", "), disks.first().map(String::as_str).unwrap_or("disk0"));
        FileRestoreError::UnknownVolume { vm: vm.name.clone(), volume: dest.volume.clone(), known }
    })
}

/// What can be told before the job starts: the VM exists and is powered
/// off, the directory is well formed, the volume names one of its disks.
pub fn precheck(dest: &DiskDestination) -> Result<()> {
    let vm = platform(dest)?.vm(&dest.vm)?;
    stopped(&vm)?;
    directory(dest)?;
    disk_of(&vm, dest)?;
    Ok(())
}

/// Restores `sel` into the destination volume. Returns what was written
/// and the destination in words.
pub fn restore_into_disk(sel: &Selection, dest: &DiskDestination, policy: ConflictPolicy, now: DateTime<Utc>, staging_root: &Path, watch: &Watch) -> Result<(Outcome, String)> {
    let started = Instant::now();
    let platform = platform(dest)?;
    let info = platform.vm(&dest.vm)?;
    stopped(&info)?;
    let vm = info.name.clone();
    let directory = directory(dest)?;
    let (disk_name, partition) = disk_of(&info, dest)?;
    let words = match &directory {
        Some(d) => format!("{vm} {}:{d}", dest.volume),
        None => format!("{vm} {} (original locations)", dest.volume),
    };

    std::fs::create_dir_all(staging_root).map_err(io(format!("creating {}", staging_root.display())))?;
    let work = tempfile::Builder::new().prefix("sendense-restore-files-").tempdir_in(staging_root).map_err(io(format!("creating a staging directory in {}", staging_root.display())))?;

    let mut opened: DiskWrite = platform.open_disk_write(&dest.vm, &disk_name, work.path()).map_err(|e| match e {
        PlatformError::DiskBusy { .. } => FileRestoreError::DiskBusy { vm: vm.clone(), volume: dest.volume.clone() },
        PlatformError::VmNotStopped { vm, power } => FileRestoreError::VmRunning { vm, power },
        e => e.into(),
    })?;
    let client = opened.take_client().ok_or_else(|| FileRestoreError::Unsupported(format!("the platform gave no connection to {vm}/{disk_name}")))?;
    let nbd = Arc::new(NbdDisk::new(client));
    let mut wrote = false;
    let result = (|| {
        let disk = guest_fs::open(nbd.clone()).map_err(|e| FileRestoreError::Unsupported(format!("reading the partition table of {vm}/{disk_name}: {e}")))?;
        let table = disk.table();
        let found = disk.partitions().iter().find(|p| match partition {
            Some(n) => table != TableKind::None && p.number.unwrap_or(p.index as u32 + 1) == n,
            None => table == TableKind::None,
        });
        let Some(part) = found.cloned() else {
            let known: Vec<String> = disk
                .partitions()
                .iter()
                .map(|p| volume_id(&disk_name, (table != TableKind::None).then(|| p.number.unwrap_or(p.index as u32 + 1))))
                .collect();
            return Err(FileRestoreError::UnknownVolume { vm: vm.clone(), volume: dest.volume.clone(), known: known.join(", ") });
        };
        let family = Family::of(part.filesystem).ok_or_else(|| FileRestoreError::UnsupportedFilesystem {
            vm: vm.clone(),
            volume: dest.volume.clone(),
            filesystem: part.filesystem.to_string(),
        })?;
        let target = disk.filesystem(part.index).map_err(|e| FileRestoreError::Unsupported(format!("reading the filesystem of {vm} {}: {e}", dest.volume)))?;
        let root_mtime = target.stat(&GuestPath::root()).ok().and_then(|e| e.mtime);

        // Plan and stage.
        let tree = work.path().join("tree");
        let mut sink = GuestSink::new(family, target.as_ref(), &tree)?;
        let mut dirs: Vec<(GuestPath, std::result::Result<GuestDir, String>)> = Vec::new();
        let wanted: Vec<GuestPath> = match &directory {
            Some(d) => vec![d.clone()],
            None => sel.items.iter().map(|i| i.path.parent().unwrap_or_default()).collect(),
        };
        let source_meta = |p: &GuestPath| if directory.is_none() { sel.fs.stat(p).ok().map(|e| Meta::of(&e)) } else { None };
        for d in wanted {
            if dirs.iter().any(|(p, _)| *p == d) {
                continue;
            }
            let r = match (sink.ensure_dir(&d, &source_meta), &directory) {
                (Ok(dir), _) => Ok(dir),
                (Err(EnsureError::Fail(e)), _) => return Err(e),
                (Err(EnsureError::NotADirectory(p)), Some(_)) => return Err(FileRestoreError::DirectoryIsAFile(p.to_string())),
                (Err(EnsureError::Refused(why)), Some(_)) => return Err(FileRestoreError::Unsupported(why)),
                (Err(EnsureError::NotADirectory(p)), None) => Err(format!("{p} is not a directory in the VM's filesystem (a file or a link): not restored")),
                (Err(EnsureError::Refused(why)), None) => Err(why),
            };
            dirs.push((d, r));
        }
        let dir_of = |item: &Item| {
            let want = directory.clone().unwrap_or_else(|| item.path.parent().unwrap_or_default());
            match dirs.iter().find(|(p, _)| *p == want).map(|(_, r)| r) {
                Some(Ok(dir)) => Ok(dir),
                Some(Err(why)) => Err(SinkError::Skip(why.clone())),
                None => Err(SinkError::Skip("no destination directory".into())),
            }
        };
        let mut dir_of = dir_of;
        let outcome = restore_items_each(sel, &mut sink, policy, now, &mut dir_of, watch)?;
        let (ops, freed) = (std::mem::take(&mut sink.ops), sink.freed);
        drop(sink);
        let planned_ms = started.elapsed().as_millis() as u64;
        if !ops.iter().any(|op| !matches!(op, super::guest_plan::Op::DirMeta { .. })) {
            tracing::info!(vm = %vm, volume = %dest.volume, skipped = outcome.skipped_total, "nothing to write into the disk");
            return Ok(outcome);
        }

        // The partition, copied into a sparse raw file.
        let allocated: u64 = nbd
            .allocation(part.start, part.length)
            .map_err(io("reading the disk's allocation"))?
            .iter()
            .filter(|e| e.flags & nbd::STATE_ZERO == 0)
            .map(|e| e.length)
            .sum();
        let host_free = free_bytes(work.path()).map_err(io(format!("reading the free space of {}", work.path().display())))?;
        if allocated > host_free {
            return Err(FileRestoreError::NoSpace { what: format!("copying volume {} to {}", dest.volume, work.path().display()), need: allocated, free: host_free });
        }
        let stop = || watch.progress.control.checkpoint().map_err(|_| FileRestoreError::Stopped);
        stop()?;
        (watch.log)(format!("copying volume {} ({allocated} bytes of data) to check and edit it", dest.volume));
        let raw = work.path().join("volume.raw");
        extract(&nbd, part.start, part.length, &raw)?;
        stop()?;
        let extracted_ms = started.elapsed().as_millis() as u64;

        if guest_tools::replay_journal(family, &raw)? {
            (watch.log)(format!("volume {}: replayed the journal the guest left (it was stopped without a clean shutdown), as its next mount would", dest.volume));
        }
        let (check, before) = guest_tools::check(family, &raw)?;
        if let Some(output) = before {
            return Err(FileRestoreError::NeedsRepair { vm: vm.clone(), volume: dest.volume.clone(), check, output });
        }
        let free = guest_tools::free_space(family, &raw)?;
        let (need, inodes) = guest_tools::needed(&ops, free.unit, freed);
        if need > free.bytes {
            return Err(FileRestoreError::NoSpace { what: format!("volume {} of VM {vm}", dest.volume), need, free: free.bytes });
        }
        if let Some(free_inodes) = free.inodes.filter(|n| inodes > *n) {
            return Err(FileRestoreError::Unsupported(format!("volume {} of VM {vm} has {free_inodes} free inodes, {inodes} are needed (nothing was changed)", dest.volume)));
        }
        stop()?;
        (watch.log)(format!("{check}: clean; writing the files with the {} tools", part.filesystem));
        guest_tools::apply(family, &raw, &ops, &tree, work.path(), root_mtime)?;
        let (check, after) = guest_tools::check(family, &raw)?;
        if let Some(output) = after {
            return Err(FileRestoreError::CheckFailed { vm: vm.clone(), volume: dest.volume.clone(), check, output });
        }
        let edited_ms = started.elapsed().as_millis() as u64;
        // The last point a stop leaves the disk as it was.
        stop()?;
        (watch.log)(format!("{check}: clean after the edit; writing the changed blocks back into the disk"));

        wrote = true;
        let written = write_back(&nbd, part.start, &raw, &work.path().join("undo.bin"))?;
        tracing::info!(
            vm = %vm, volume = %dest.volume, filesystem = %part.filesystem, files = outcome.files, bytes = outcome.bytes,
            partition_data_bytes = allocated, disk_bytes_written = written, planned_ms, extracted_ms, edited_ms,
            total_ms = started.elapsed().as_millis() as u64,
            "files written into the VM's disk"
        );
        Ok(outcome)
    })();
    let closed = nbd.disconnect();
    let commit = result.is_ok() && closed.is_ok() && wrote;
    let finished = opened.finish(commit);
    let outcome = result?;
    closed.map_err(io(format!("closing the export of {vm}/{disk_name}")))?;
    finished?;
    Ok((outcome, words))
}

/// Copies `len` bytes at `start` of the disk into the new sparse file
/// `out`, leaving zero blocks as holes.
fn extract(disk: &NbdDisk, start: u64, len: u64, out: &Path) -> Result<()> {
    let file = File::create(out).map_err(io(format!("creating {}", out.display())))?;
    file.set_len(len).map_err(io(format!("sizing {}", out.display())))?;
    let extents = disk.allocation(start, len).map_err(io("reading the disk's allocation"))?;
    let mut buf = vec![0u8; COPY_CHUNK as usize];
    for e in extents.iter().filter(|e| e.flags & nbd::STATE_ZERO == 0) {
        let mut pos = e.offset;
        let end = e.offset + e.length;
        while pos < end {
            let n = (end - pos).min(COPY_CHUNK) as usize;
            read_exact(disk, &mut buf[..n], pos)?;
            for (i, block) in buf[..n].chunks(BLOCK as usize).enumerate() {
                if block.iter().any(|&b| b != 0) {
                    file.write_all_at(block, pos - start + (i as u64) * BLOCK).map_err(io(format!("writing {}", out.display())))?;
                }
            }
            pos += n as u64;
        }
    }
    Ok(())
}

fn read_exact(disk: &NbdDisk, buf: &mut [u8], offset: u64) -> Result<()> {
    guest_fs::read_exact_at(disk, offset, buf).map_err(io(format!("reading the disk at byte {offset}")))
}


/// Writes the blocks of the edited partition `raw` that differ from the
/// disk at `start` back into the disk. Only blocks holding data in `raw`
/// can differ: the copy left zero blocks as holes and the tools only write.
/// The disk's version of each changed block is saved in `undo` first, and
/// written back if the write-back fails. Returns the bytes written.
fn write_back(disk: &NbdDisk, start: u64, raw: &Path, undo: &Path) -> Result<u64> {
    let file = File::open(raw).map_err(io(format!("opening {}", raw.display())))?;
    let undo_file = OpenOptions::new().create_new(true).read(true).write(true).open(undo).map_err(io(format!("creating {}", undo.display())))?;
    let len = file.metadata().map_err(io(raw.display().to_string()))?.len();
    let extents = crate::sparse_file::data_extents(&file).map_err(io(format!("reading the extents of {}", raw.display())))?;
    let (mut new, mut old) = (vec![0u8; BLOCK as usize], vec![0u8; BLOCK as usize]);
    let mut changed: Vec<(u64, u64)> = Vec::new();
    let mut last_block = None;
    for (s, e) in extents {
        let mut blk = s / BLOCK;
        while blk * BLOCK < e {
            if last_block.is_some_and(|l| l >= blk) {
                blk += 1;
                continue;
            }
            last_block = Some(blk);
            let off = blk * BLOCK;
            let n = BLOCK.min(len - off) as usize;
            file.read_exact_at(&mut new[..n], off).map_err(io(format!("reading {}", raw.display())))?;
            read_exact(disk, &mut old[..n], start + off)?;
            if new[..n] != old[..n] {
                undo_file.write_all_at(&old[..n], changed.len() as u64 * BLOCK).map_err(io(format!("writing {}", undo.display())))?;
                changed.push((off, n as u64));
            }
            blk += 1;
        }
    }
    undo_file.sync_all().map_err(io(format!("writing {}", undo.display())))?;
    let mut written = 0u64;
    for (i, &(off, n)) in changed.iter().enumerate() {
        let step = file
            .read_exact_at(&mut new[..n as usize], off)
            .and_then(|_| disk.write_at(&new[..n as usize], start + off));
        if let Err(e) = step {
            let mut undone = true;
            for (j, &(uoff, un)) in changed[..=i].iter().enumerate() {
                let ok = undo_file.read_exact_at(&mut old[..un as usize], j as u64 * BLOCK).and_then(|_| disk.write_at(&old[..un as usize], start + uoff));
                undone &= ok.is_ok();
            }
            undone &= disk.flush().is_ok();
            let state = if undone { "the blocks already written were put back: the disk is unchanged" } else { "putting the old blocks back failed too: the volume may be inconsistent, restore the disk from a backup" };
            return Err(FileRestoreError::io(format!("writing the changed blocks into the disk ({state})"), e));
        }
        written += n;
    }
    disk.flush().map_err(io("flushing the disk"))?;
    Ok(written)
}
