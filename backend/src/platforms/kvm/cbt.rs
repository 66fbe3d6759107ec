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
//! lowest generation), so no write is ever lost, at worst a full read.

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

fn generation(name: &str) -> Option<u64> {
    name.strip_prefix(BITMAP_PREFIX)?.parse().ok()
}

/// Starts tracking on a qcow2 disk that has no Sendense bitmap yet: adds the
/// enabled bitmap of generation 1. The caller holds the disk's lock.
pub fn enable_tracking(image: &Path) -> Result<()> {
    bitmap(image, &["--add", "--enable"], &bitmap_name(1))
}

/// Whether the disk has a Sendense bitmap recording writes.
pub fn is_tracking(bitmaps: &[BitmapInfo]) -> bool {
    bitmaps.iter().any(|b| b.enabled && generation(&b.name).is_some())
}

/// What a backup's read of one disk is relative to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
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
    let info = qemu_img::expect_format(image, shared_types::platform::DiskFormat::Qcow2)?;
    if info.snapshots.iter().any(|s| s == SNAPSHOT) {
        tracing::warn!(image = %image.display(), "removing the snapshot an interrupted backup left");
        snapshot(image, "-d")?;
    }
    let mut ours: Vec<(u64, &BitmapInfo)> =
        info.bitmaps.iter().filter_map(|b| generation(&b.name).map(|g| (g, b))).collect();
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
    } else if ours.len() > 1 {
        // An interrupted backup: fold every later generation into the first.
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
            reason.get_or_insert_with(|| "the disk had no change-tracking bitmap yet".into());
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
    snapshot(image, "-c")?;
    bitmap(image, &["--add", "--enable"], &recording)?;
    if let Some(old) = &changes {
        bitmap(image, &["--disable"], old)?;
    }
    Ok(Rotation { changes, full_read_reason: reason, recording })
}

/// Ends a backup's read (the caller holds the disk's lock again).
pub fn finish(image: &Path, rotation: &Rotation, success: bool) -> Result<()> {
    snapshot(image, "-d")?;
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

fn snapshot(image: &Path, op: &str) -> Result<()> {
    tools::run("qemu-img", [std::ffi::OsStr::new("snapshot"), op.as_ref(), SNAPSHOT.as_ref(), image.as_os_str()])?;
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
