//! Reading an image file of this machine through `qemu-nbd` and Sendense's
//! NBD client: allocation map for holes, optionally a dirty bitmap for
//! changed ranges (a replica's failback bitmap), data.

use std::path::Path;
use std::sync::Arc;

use shared_types::platform::DiskFormat;

use crate::platforms::error::{PlatformError, Result};
use crate::platforms::nbd::{QemuNbd, QemuNbdOptions};
use crate::platforms::nbd::{self, NbdSource};

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
