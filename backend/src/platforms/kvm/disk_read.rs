//! Opening a KVM disk for a backup's read: rotate its change tracking under
//! the disk's lock ([`cbt::begin`]), export the point-in-time snapshot and the
//! changes bitmap read-only with `qemu-nbd`, and read it through the NBD
//! client: allocation map for holes, dirty bitmap for changed ranges, data.
//! The finisher stops the export, then ends the rotation under the lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shared_types::platform::DiskFormat;

use crate::platforms::error::{PlatformError, Result};
use crate::platforms::nbd::{QemuNbd, QemuNbdOptions};
use crate::platforms::nbd::{self, NbdSource};
use crate::platforms::DiskRead;

use super::cbt::{self, Rotation};
use super::definition::{self, DiskDefinition};
use super::qemu_img;

/// Opens disk `d` of VM `vm` (image at `path`) with the change tracking of
/// `tracker` (see [`cbt::Tracker`]); `since`: the token of its previous read.
pub fn open_for(vm: &str, d: &DiskDefinition, path: &Path, since: Option<&str>, tracker: &cbt::Tracker) -> Result<DiskRead> {
    let label = format!("{vm}/{}", d.name);
    if d.format != DiskFormat::Qcow2 {
        // No dirty bitmaps outside qcow2: a full read of the live image.
        qemu_img::expect_format(path, d.format)?;
        let (source, _) = export(&label, path, d.format, None, None)?;
        let closer = Arc::clone(&source);
        let mut read = DiskRead::new(source, Box::new(move |_| {
            closer.close();
            Ok(())
        }));
        read.full_read_reason = Some(format!("{} disks have no change tracking", d.format.qemu_name()));
        return Ok(read);
    }

    // The lock is held until the export has loaded the bitmap: a writer
    // opening the image meanwhile would mark it in use (inconsistent).
    let lock = definition::disk_lock(path)?;
    let rotation = cbt::begin_for(path, tracker, since)?;
    let exported = export(&label, path, DiskFormat::Qcow2, Some(tracker.snapshot()), rotation.changes.as_deref());
    drop(lock);
    let (source, changed) = match exported {
        Ok(x) => x,
        Err(e) => {
            if let Err(undo) = end(path, &rotation, false) {
                tracing::warn!(disk = %label, error = %undo, "undoing the change-tracking rotation");
            }
            return Err(e);
        }
    };
    let closer = Arc::clone(&source);
    let image: PathBuf = path.into();
    let ended = rotation.clone();
    let mut read = DiskRead::new(source, Box::new(move |success| {
        closer.close();
        end(&image, &ended, success)
    }));
    read.token = Some(rotation.recording.clone());
    read.changed_ranges = changed;
    read.full_read_reason = rotation.full_read_reason.clone();
    Ok(read)
}

fn end(image: &Path, rotation: &Rotation, success: bool) -> Result<()> {
    let _lock = definition::disk_lock(image)?;
    cbt::finish(image, rotation, success)
}

/// An open export and the changed ranges it reported (`None`: no bitmap).
pub type Export = (Arc<NbdSource>, Option<Vec<(u64, u64)>>);

/// Exports `path` read-only (the snapshot `snapshot` of it, with the dirty
/// bitmap `bitmap`), connects, and loads the allocation map and the changes.
/// The image is shared (`force-share`): the caller makes sure nothing
/// writes what it reads, or reads a point-in-time snapshot.
pub fn export(
    label: &str,
    path: &Path,
    format: DiskFormat,
    snapshot: Option<&str>,
    bitmap: Option<&str>,
) -> Result<Export> {
    // A running VM (or the lab's writer) may hold the image: share it.
    let mut opts = QemuNbdOptions::new(format).read_only().force_share();
    if let Some(name) = snapshot {
        opts = opts.snapshot(name);
    }
    if let Some(name) = bitmap {
        opts = opts.bitmap(name);
    }
    let nbd_err = |e: nbd::NbdError| PlatformError::Disk { path: path.into(), reason: e.to_string() };
    let server = QemuNbd::start(path, &opts).map_err(nbd_err)?;
    let bitmap_ctx = bitmap.map(nbd::bitmap_context);
    let mut contexts = vec![nbd::BASE_ALLOCATION];
    if let Some(c) = &bitmap_ctx {
        contexts.push(c.as_str());
    }
    let mut client = server.connect(&contexts).map_err(nbd_err)?;
    let changed = match bitmap {
        Some(b) => Some(nbd::dirty_ranges(&mut client, b).map_err(nbd_err)?),
        None => None,
    };
    let source = Arc::new(NbdSource::open(label, client, Some(server)).map_err(nbd_err)?);
    Ok((source, changed))
}
