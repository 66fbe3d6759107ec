//! [`NbdSource`]: a disk read through one NBD connection as a backup's
//! [`BlockSource`], whoever serves it (`qemu-nbd` started here, or the
//! export of a libvirt pull-mode backup).

use std::sync::Mutex;

use crate::engine::block_source::{self, BlockSource};
use crate::engine::{EngineError, Result as EngineResult};

use super::{NbdClient, NbdError, QemuNbd, BASE_ALLOCATION, STATE_ZERO};

pub struct NbdSource {
    label: String,
    size: u64,
    /// Allocated ranges, sorted: everything else reads as zeros.
    allocated: Vec<(u64, u64)>,
    conn: Mutex<Option<(NbdClient, Option<QemuNbd>)>>,
}

impl NbdSource {
    /// Wraps a connected client (and the `qemu-nbd` serving it, stopped by
    /// [`NbdSource::close`]), loading the allocation map first: holes and
    /// extents that read as zeros are then skipped without reading.
    pub fn open(label: &str, mut client: NbdClient, server: Option<QemuNbd>) -> Result<NbdSource, NbdError> {
        let size = client.size();
        let extents = client.block_status(BASE_ALLOCATION, 0, size)?;
        let allocated = super::ranges::ranges_where(&extents, |flags| flags & STATE_ZERO == 0);
        Ok(NbdSource { label: label.into(), size, allocated, conn: Mutex::new(Some((client, server))) })
    }

    /// Disconnects and stops the server (idempotent); reads after this fail.
    pub fn close(&self) {
        let taken = self.conn.lock().map(|mut c| c.take()).unwrap_or(None);
        if let Some((client, server)) = taken {
            let _ = client.disconnect();
            if let Some(server) = server {
                if let Err(e) = server.close() {
                    tracing::warn!(disk = %self.label, error = %e, "stopping qemu-nbd");
                }
            }
        }
    }
}

impl BlockSource for NbdSource {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> EngineResult<()> {
        let mut guard = self.conn.lock().map_err(|_| EngineError::Pipeline(format!("{}: reader poisoned", self.label)))?;
        let (client, _) = guard.as_mut().ok_or_else(|| EngineError::Pipeline(format!("{}: the disk export was closed", self.label)))?;
        client.read_at(buf, offset).map_err(|e| EngineError::Pipeline(format!("reading {} at {offset}: {e}", self.label)))
    }

    fn is_hole(&self, offset: u64, len: u64) -> bool {
        block_source::hole_in(&self.allocated, offset, len)
    }
}
