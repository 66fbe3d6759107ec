//! Changed-block tracking on qcow2 disks: persistent dirty bitmaps named
//! `sendense-<generation>`.
//!
//! Between backups exactly one of them, generation `g`, is enabled and
//! records every write since the last backup's rotation point. A backup
//! begins, under the disk's lock (so no write interleaves), by
//! * taking an internal snapshot [`SNAPSHOT`] (the point in time it reads),
//! * adding the enabled bitmap `g+1`, which records every write from now on,
//! * disabling bitmap `g`, which now lists exactly the changes since the
//!   previous backup up to the snapshot.
//!
//! The backup reads the snapshot and bitmap `g` through `qemu-nbd`; writes
//! made meanwhile land in the live image (copy-on-write keeps the snapshot
//! intact) and in bitmap `g+1`, so they are in the next incremental. At the
//! end, under the lock again, the snapshot is deleted and
//! * on success bitmap `g` is removed: the token of this read is `g+1`;
//! * on failure bitmap `g+1` is merged into `g`, `g` re-enabled and `g+1`
//!   removed: the disk is back to tracking since the last good backup.
//!
//! A crash at any point leaves at most extra bitmaps and the snapshot; the
//! next [`begin`] repairs that the failure way (merge everything into the
//! lowest generation), so no write is ever lost, at worst a full read. One
//! exception keeps a committed read incremental: when the caller's token is
//! the newest generation, the read that made it was committed before the
//! crash (callers record a token only after committing), so the older
//! generations are spent and are dropped instead of merged.
//!
//! Each consumer of a disk's changes has its own [`Tracker`]: its own
//! bitmaps and its own snapshot. Backups use [`Tracker::backup_of`], one
//! token space per managed VM and disk (`sendense-b.<owner>.<disk>.<n>`, the
//! owner being the managed VM's stable id), so a token recorded for one VM
//! never matches another VM's disk, even one with the same name, size and
//! history; each replication flow uses [`Tracker::consumer`] with its id, so
//! a backup and a replication of the same VM never rotate each other's
//! tokens. [`Tracker::backup`] (`sendense-<n>`) is the layout before per-VM
//! tokens: such bitmaps are only ever removed now.

use std::path::Path;

use crate::platforms::error::Result;
use crate::platforms::tools;

use super::qemu_img::{self, BitmapInfo};

/// Prefix of the bitmaps Sendense owns.
pub const BITMAP_PREFIX: &str = "sendense-";
/// The internal snapshot a backup reads.
pub const SNAPSHOT: &str = "sendense-backup";

pub fn bitmap_name(generation: u64) -> String {
    format!("{BITMAP_PREFIX}{generation}")
}

/// Whose changes: the names of one consumer's bitmaps and snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    /// Bitmaps are `<prefix><generation>`.
    prefix: String,
    snapshot: String,
}

impl Tracker {
    /// Backups: bitmaps `sendense-<n>`, snapshot [`SNAPSHOT`].
    pub fn backup() -> Tracker {
        Tracker { prefix: BITMAP_PREFIX.into(), snapshot: SNAPSHOT.into() }
    }

    /// Backups of the managed VM `owner` (its stable id, or the snapshot group
    /// named after it), disk `disk`: bitmaps `sendense-b.<owner>.<disk>.<n>`,
    /// snapshot `sendense-b.<owner>`. Both names: letters, digits, `.`, `_`, `-`.
    pub fn backup_of(owner: &str, disk: &str) -> Result<Tracker> {
        let ok = |s: &str| crate::engine::manifest::valid_name(s) && s.len() <= 100;
        if !ok(owner) || !ok(disk) {
            return Err(crate::platforms::PlatformError::Invalid(format!(
                "change-tracking owner '{owner}' / disk '{disk}' (use letters, digits, '.', '_' and '-')"
            )));
        }
        Ok(Tracker { prefix: format!("{BITMAP_PREFIX}b.{owner}.{disk}."), snapshot: format!("{BITMAP_PREFIX}b.{owner}") })
    }

    /// Whether this is a per-VM backup tracker ([`Tracker::backup_of`]).
    fn is_per_vm_backup(&self) -> bool {
        self.prefix.starts_with(&format!("{BITMAP_PREFIX}b."))
    }

    /// Another consumer (a replication flow) named `id`: letters, digits and
    /// `-`, starting with a letter. Bitmaps `sendense-<id>.<n>`, snapshot
    /// `sendense-<id>`; a backup's [`Tracker::backup`] never reads them as its own.
    pub fn consumer(id: &str) -> Result<Tracker> {
        let ok = id.len() <= 100
            && id.starts_with(|c: char| c.is_ascii_alphabetic())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && id != "backup";
        if !ok {
            return Err(crate::platforms::PlatformError::Invalid(format!(
                "change-tracking consumer '{id}' (use letters, digits and '-', starting with a letter)"
            )));
        }
        Ok(Tracker { prefix: format!("{BITMAP_PREFIX}{id}."), snapshot: format!("{BITMAP_PREFIX}{id}") })
    }

    pub fn bitmap_name(&self, generation: u64) -> String {
        format!("{}{generation}", self.prefix)
    }

    pub fn snapshot(&self) -> &str {
        &self.snapshot
    }

    /// The generation of one of this tracker's bitmaps.
    pub fn generation(&self, name: &str) -> Option<u64> {
        name.strip_prefix(&self.prefix)?.parse().ok()
    }
}

/// Starts tracking on a qcow2 disk that has no Sendense bitmap yet: adds the
/// enabled bitmap of generation 1. The caller holds the disk's lock.
pub fn enable_tracking(image: &Path) -> Result<()> {
    bitmap(image, &["--add", "--enable"], &bitmap_name(1))
}

/// Whether the disk has a Sendense bitmap recording writes.
pub fn is_tracking(bitmaps: &[BitmapInfo]) -> bool {
    bitmaps.iter().any(|b| b.enabled && b.name.starts_with(BITMAP_PREFIX))
}

/// Removes every bitmap and the snapshot of `tracker` from `image` (the
/// consumer is gone). The caller holds the disk's lock.
pub fn stop_tracking(image: &Path, tracker: &Tracker) -> Result<()> {
    let info = qemu_img::expect_format(image, shared_types::platform::DiskFormat::Qcow2)?;
    if info.snapshots.contains(&tracker.snapshot) {
        snapshot(image, "-d", &tracker.snapshot)?;
    }
    for b in info.bitmaps.iter().filter(|b| tracker.generation(&b.name).is_some()) {
        bitmap(image, &["--remove"], &b.name)?;
    }
    Ok(())
}

/// Restarts `tracker` on `image` from now: its old bitmaps removed, a fresh
/// recording generation added; returns its name, the token of "the disk as it
/// is now" (a caller that just made a copy equal to the disk). The caller
/// holds the disk's lock and nothing writes the image meanwhile.
pub fn restart_tracking(image: &Path, tracker: &Tracker) -> Result<String> {
    let info = qemu_img::expect_format(image, shared_types::platform::DiskFormat::Qcow2)?;
    let mut last = 0;
    for b in info.bitmaps.iter() {
        if let Some(g) = tracker.generation(&b.name) {
            last = last.max(g);
            bitmap(image, &["--remove"], &b.name)?;
        }
    }
    let name = tracker.bitmap_name(last + 1);
    bitmap(image, &["--add", "--enable"], &name)?;
    Ok(name)
}

/// What a backup's read of one disk is relative to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub tracker: Tracker,
    /// The disabled bitmap holding the changes to read (`None`: full read).
    pub changes: Option<String>,
    /// Why this read is full, when it is (for the job log).
    pub full_read_reason: Option<String>,
    /// The bitmap now recording; the token of this read.
    pub recording: String,
}

/// Begins a backup's read of `image` (the caller holds the disk's lock):
/// repairs what an interrupted backup left, snapshots, rotates. `since` is
/// the token of the previous backup of this disk.
pub fn begin(image: &Path, since: Option<&str>) -> Result<Rotation> {
    begin_for(image, &Tracker::backup(), since)
}

/// [`begin`] for the consumer `tracker`.
pub fn begin_for(image: &Path, tracker: &Tracker, since: Option<&str>) -> Result<Rotation> {
    let info = qemu_img::expect_format(image, shared_types::platform::DiskFormat::Qcow2)?;
    if info.snapshots.contains(&tracker.snapshot) {
        tracing::warn!(image = %image.display(), snapshot = %tracker.snapshot, "removing the snapshot an interrupted read left");
        snapshot(image, "-d", &tracker.snapshot)?;
    }
    if tracker.is_per_vm_backup() {
        // Bitmaps of the layout before per-VM tokens: nobody reads them any more.
        for b in info.bitmaps.iter().filter(|b| Tracker::backup().generation(&b.name).is_some()) {
            tracing::info!(image = %image.display(), bitmap = %b.name, "removing a change-tracking bitmap of the layout before per-VM tokens");
            bitmap(image, &["--remove"], &b.name)?;
        }
    }
    let bitmap_name = |g: u64| tracker.bitmap_name(g);
    let mut ours: Vec<(u64, &BitmapInfo)> =
        info.bitmaps.iter().filter_map(|b| tracker.generation(&b.name).map(|g| (g, b))).collect();
    ours.sort_by_key(|(g, _)| *g);

    let mut reason = None;
    let mut current = ours.first().map(|(g, b)| (*g, b.enabled));
    if ours.iter().any(|(_, b)| b.in_use) {
        // Not closed cleanly: the bitmap may miss writes. Start over.
        for (_, b) in &ours {
            bitmap(image, &["--remove"], &b.name)?;
        }
        reason = Some("the disk's change-tracking bitmap is inconsistent (the image was not closed cleanly)".to_string());
        current = None;
    } else if ours.len() > 1 && ours.last().is_some_and(|(g, b)| b.enabled && since == Some(bitmap_name(*g).as_str())) {
        // The read that made the caller's token (the newest generation) was
        // committed, only its end did not run: the older generations are spent.
        let (last, _) = ours[ours.len() - 1];
        for (_, b) in &ours[..ours.len() - 1] {
            bitmap(image, &["--remove"], &b.name)?;
        }
        current = Some((last, true));
    } else if ours.len() > 1 {
        // An interrupted read: fold every later generation into the first.
        let (first, _) = ours[0];
        for (_, b) in &ours[1..] {
            merge_into(image, &b.name, &bitmap_name(first))?;
            bitmap(image, &["--remove"], &b.name)?;
        }
        bitmap(image, &["--enable"], &bitmap_name(first))?;
        current = Some((first, true));
    }
    let (changes, next) = match current {
        None => {
            reason.get_or_insert_with(|| match since {
                Some(token) if tracker.generation(token).is_none() => format!(
                    "the previous restore point's change token '{token}' does not belong to this VM and disk, which has no change-tracking bitmap of its own yet"
                ),
                Some(_) => "the disk had no change-tracking bitmap yet".into(),
                None => "no previous backup of this disk (it had no change-tracking bitmap yet)".into(),
            });
            (None, 1)
        }
        Some((g, enabled)) => {
            let name = bitmap_name(g);
            match since {
                _ if !enabled => {
                    reason = Some(format!("bitmap {name} was not recording"));
                    bitmap(image, &["--remove"], &name)?;
                    (None, g + 1)
                }
                None => {
                    reason = Some("no previous backup of this disk".into());
                    bitmap(image, &["--remove"], &name)?;
                    (None, g + 1)
                }
                Some(token) if tracker.generation(token).is_none() => {
                    reason = Some(format!(
                        "the previous restore point's change token '{token}' does not belong to this VM and disk (tokens here are {}<n>)",
                        tracker.prefix
                    ));
                    bitmap(image, &["--remove"], &name)?;
                    (None, g + 1)
                }
                Some(token) if token != name => {
                    reason = Some(format!("the previous backup ended at {token}, but the disk tracks changes since {name}"));
                    bitmap(image, &["--remove"], &name)?;
                    (None, g + 1)
                }
                Some(_) => (Some(name), g + 1),
            }
        }
    };
    let recording = bitmap_name(next);
    snapshot(image, "-c", &tracker.snapshot)?;
    bitmap(image, &["--add", "--enable"], &recording)?;
    if let Some(old) = &changes {
        bitmap(image, &["--disable"], old)?;
    }
    Ok(Rotation { tracker: tracker.clone(), changes, full_read_reason: reason, recording })
}

/// Ends a backup's read (the caller holds the disk's lock again).
pub fn finish(image: &Path, rotation: &Rotation, success: bool) -> Result<()> {
    snapshot(image, "-d", &rotation.tracker.snapshot)?;
    if let Some(old) = &rotation.changes {
        if success {
            bitmap(image, &["--remove"], old)?;
        } else {
            merge_into(image, &rotation.recording, old)?;
            bitmap(image, &["--enable"], old)?;
            bitmap(image, &["--remove"], &rotation.recording)?;
        }
    }
    Ok(())
}

fn bitmap(image: &Path, ops: &[&str], name: &str) -> Result<()> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["bitmap".as_ref()];
    args.extend(ops.iter().map(std::ffi::OsStr::new));
    args.extend([image.as_os_str(), name.as_ref()]);
    tools::run("qemu-img", args)?;
    Ok(())
}

fn merge_into(image: &Path, source: &str, target: &str) -> Result<()> {
    bitmap(image, &["--merge", source], target)
}

fn snapshot(image: &Path, op: &str, name: &str) -> Result<()> {
    tools::run("qemu-img", [std::ffi::OsStr::new("snapshot"), op.as_ref(), name.as_ref(), image.as_os_str()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("d.qcow2");
        tools::run("qemu-img", ["create", "-q", "-f", "qcow2", p.to_str().unwrap(), "8M"]).unwrap();
        p
    }

    fn bitmaps(p: &Path) -> Vec<(String, bool)> {
        qemu_img::info(p, None).unwrap().bitmaps.into_iter().map(|b| (b.name, b.enabled)).collect()
    }

    #[test]
    fn rotation_success_and_failure_keep_one_recording_bitmap() {
        let dir = tempfile::tempdir().unwrap();
        let p = disk(dir.path());
        let r = begin(&p, None).unwrap();
        assert_eq!(r.changes, None);
        assert!(r.full_read_reason.as_deref().unwrap().contains("no change-tracking bitmap"));
        assert_eq!(qemu_img::info(&p, None).unwrap().snapshots, vec![SNAPSHOT]);
        finish(&p, &r, true).unwrap();
        assert_eq!(bitmaps(&p), vec![("sendense-1".into(), true)]);
        assert!(qemu_img::info(&p, None).unwrap().snapshots.is_empty());

        let r = begin(&p, Some("sendense-1")).unwrap();
        assert_eq!((r.changes.as_deref(), r.recording.as_str()), (Some("sendense-1"), "sendense-2"));
        assert_eq!(bitmaps(&p), vec![("sendense-1".into(), false), ("sendense-2".into(), true)]);
        finish(&p, &r, false).unwrap();
        assert_eq!(bitmaps(&p), vec![("sendense-1".into(), true)], "a failed backup goes back to the old generation");

        let r = begin(&p, Some("sendense-7")).unwrap();
        assert_eq!(r.changes, None);
        assert!(r.full_read_reason.as_deref().unwrap().contains("sendense-7"));
        finish(&p, &r, true).unwrap();
        assert_eq!(bitmaps(&p), vec![("sendense-2".into(), true)]);
    }

    #[test]
    fn a_read_committed_before_its_end_ran_stays_incremental() {
        let dir = tempfile::tempdir().unwrap();
        let p = disk(dir.path());
        enable_tracking(&p).unwrap();
        // The caller committed with token sendense-2, then crashed before `finish`.
        let r = begin(&p, Some("sendense-1")).unwrap();
        assert_eq!(r.recording, "sendense-2");
        let r = begin(&p, Some("sendense-2")).unwrap();
        assert_eq!(r.changes.as_deref(), Some("sendense-2"), "the committed token is still good");
        assert!(r.full_read_reason.is_none());
        finish(&p, &r, true).unwrap();
        assert_eq!(bitmaps(&p), vec![("sendense-3".into(), true)]);
    }

    #[test]
    fn consumers_keep_their_own_bitmaps_and_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let p = disk(dir.path());
        enable_tracking(&p).unwrap();
        let repl = Tracker::consumer("repl-a1").unwrap();
        assert!(Tracker::consumer("1x").is_err() && Tracker::consumer("a.b").is_err() && Tracker::consumer("backup").is_err());
        let b = begin(&p, Some("sendense-1")).unwrap();
        let r = begin_for(&p, &repl, None).unwrap();
        assert_eq!(r.recording, "sendense-repl-a1.1");
        assert_eq!(r.changes, None);
        let snaps = qemu_img::info(&p, None).unwrap().snapshots;
        assert_eq!(snaps, vec![SNAPSHOT.to_string(), "sendense-repl-a1".to_string()], "both reads hold their own snapshot");
        finish(&p, &b, true).unwrap();
        finish(&p, &r, true).unwrap();
        assert_eq!(bitmaps(&p), vec![("sendense-2".into(), true), ("sendense-repl-a1.1".into(), true)]);
        assert!(is_tracking(&qemu_img::info(&p, None).unwrap().bitmaps));
        // Each token still holds for its own consumer.
        let b = begin(&p, Some("sendense-2")).unwrap();
        assert_eq!(b.changes.as_deref(), Some("sendense-2"));
        finish(&p, &b, true).unwrap();
        let r = begin_for(&p, &repl, Some("sendense-repl-a1.1")).unwrap();
        assert_eq!(r.changes.as_deref(), Some("sendense-repl-a1.1"));
        finish(&p, &r, true).unwrap();
        assert_eq!(restart_tracking(&p, &repl).unwrap(), "sendense-repl-a1.3");
        stop_tracking(&p, &repl).unwrap();
        assert_eq!(bitmaps(&p), vec![("sendense-3".into(), true)], "stopping one consumer leaves the others");
    }

    #[test]
    fn per_vm_tokens_never_match_another_vms_disk() {
        let dir = tempfile::tempdir().unwrap();
        // Two disks with the same size and the same history, one per VM.
        let (da, db) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&da).unwrap();
        std::fs::create_dir_all(&db).unwrap();
        let (a, b) = (disk(&da), disk(&db));
        enable_tracking(&a).unwrap();
        enable_tracking(&b).unwrap();
        let ta = Tracker::backup_of("vm-a", "disk0").unwrap();
        let tb = Tracker::backup_of("vm-b", "disk0").unwrap();
        assert!(Tracker::backup_of("x/y", "disk0").is_err() && Tracker::backup_of("vm-a", "").is_err());
        let (ra, rb) = (begin_for(&a, &ta, None).unwrap(), begin_for(&b, &tb, None).unwrap());
        finish(&a, &ra, true).unwrap();
        finish(&b, &rb, true).unwrap();
        assert_eq!(ra.recording, "sendense-b.vm-a.disk0.1");
        assert_eq!(bitmaps(&a), vec![("sendense-b.vm-a.disk0.1".into(), true)], "the old layout's bitmap is removed");
        assert!(is_tracking(&qemu_img::info(&a, None).unwrap().bitmaps));
        // VM b's disk asked with VM a's token: a full read, with the reason.
        let r = begin_for(&b, &tb, Some(&ra.recording)).unwrap();
        assert_eq!(r.changes, None);
        assert!(r.full_read_reason.as_deref().unwrap().contains("does not belong to this VM and disk"), "{:?}", r.full_read_reason);
        finish(&b, &r, true).unwrap();
        // A disk carrying VM a's bitmaps (a copy) read as VM c: a full read too.
        std::fs::copy(&a, dir.path().join("c.qcow2")).unwrap();
        let c = dir.path().join("c.qcow2");
        let tc = Tracker::backup_of("vm-c", "disk0").unwrap();
        let r = begin_for(&c, &tc, Some(&ra.recording)).unwrap();
        assert_eq!(r.changes, None);
        finish(&c, &r, true).unwrap();
        // Its own token still holds.
        let r = begin_for(&a, &ta, Some(&ra.recording)).unwrap();
        assert_eq!(r.changes.as_deref(), Some("sendense-b.vm-a.disk0.1"));
        finish(&a, &r, true).unwrap();
    }

    #[test]
    fn an_interrupted_backup_is_repaired_without_losing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = disk(dir.path());
        enable_tracking(&p).unwrap();
        // A crash right after begin: snapshot and both bitmaps left behind.
        let _ = begin(&p, Some("sendense-1")).unwrap();
        let r = begin(&p, Some("sendense-1")).unwrap();
        assert_eq!(r.changes.as_deref(), Some("sendense-1"), "still incremental after the repair");
        finish(&p, &r, true).unwrap();
        assert_eq!(bitmaps(&p), vec![("sendense-2".into(), true)]);
    }
}
