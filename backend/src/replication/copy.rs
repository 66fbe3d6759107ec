//! Copying byte ranges of a [`BlockSource`] into a disk image exported
//! writable by `qemu-nbd` ([`NbdTarget`]): a reader thread reads the next
//! chunk while the caller's thread writes the last one.
//!
//! Work is cut in [`CHUNK`]s aligned to the disk; data is judged in
//! [`BLOCK`]s (the qcow2 cluster and dirty-bitmap granularity):
//! * [`Mode::Seed`] (an empty target): holes and zero blocks are skipped;
//! * [`Mode::Changed`] (a target with older data): zero blocks and holes
//!   are written as zeros (`NBD_CMD_WRITE_ZEROES`, no data sent) where the
//!   target does not already read zeros;
//! * [`Mode::Compare`]: the target's block is read too and only differing
//!   blocks are written, so a full resync writes only real differences.
//!
//! The reader obeys [`Progress`]: its read limit and, before every chunk,
//! pause and cancel.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::engine::block_source::{self, BlockSource};
use crate::engine::progress::Progress;
use crate::engine::EngineError;
use crate::platforms::nbd::{self, NbdClient, NbdError, QemuNbd, QemuNbdOptions};

use super::Result;

/// Judging granularity: zero detection and comparison.
pub const BLOCK: u64 = 64 * 1024;
/// I/O size of one read and of the pause/cancel checkpoints.
pub const CHUNK: u64 = 4 << 20;
/// How long opening a target waits for a `qemu-nbd` of a process that just
/// died to let go of the image.
const LOCK_WAIT: Duration = Duration::from_secs(20);

static ZEROS: [u8; BLOCK as usize] = [0; BLOCK as usize];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Seed,
    Changed,
    Compare,
}

/// What one copy did, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Read from the source.
    pub read: u64,
    /// Data written to the target.
    pub written: u64,
    /// Written as zeros (no data sent).
    pub zeroed: u64,
    /// Not written: holes and zeros on an empty target, or equal blocks.
    pub skipped: u64,
}

impl CopyStats {
    pub fn add(&mut self, o: CopyStats) {
        self.read += o.read;
        self.written += o.written;
        self.zeroed += o.zeroed;
        self.skipped += o.skipped;
    }
}

/// A disk image served writable by `qemu-nbd`, with one connection.
pub struct NbdTarget {
    path: PathBuf,
    client: Option<NbdClient>,
    server: Option<QemuNbd>,
    /// Ranges that do not read as zeros (through the whole backing chain).
    allocated: Vec<(u64, u64)>,
}

impl NbdTarget {
    /// Exports `path` (qcow2) writable. If the image is locked, waits a
    /// little: the export of a process killed a moment ago is still exiting.
    pub fn open(path: &Path) -> Result<NbdTarget> {
        let started = Instant::now();
        let server = loop {
            match QemuNbd::start(path, &QemuNbdOptions::qcow2()) {
                Ok(s) => break s,
                Err(NbdError::DiskLocked { .. }) if started.elapsed() < LOCK_WAIT => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => return Err(e.into()),
            }
        };
        let mut client = server.connect(&[nbd::BASE_ALLOCATION])?;
        let size = client.size();
        let extents = client.block_status(nbd::BASE_ALLOCATION, 0, size)?;
        let allocated = nbd::ranges::ranges_where(&extents, |flags| flags & nbd::STATE_ZERO == 0);
        Ok(NbdTarget { path: path.into(), client: Some(client), server: Some(server), allocated })
    }

    /// A writable connection someone else serves (a platform's
    /// [`DiskWrite`](crate::platforms::DiskWrite)); `label` names it in errors.
    pub fn from_client(label: &str, mut client: NbdClient) -> Result<NbdTarget> {
        let size = client.size();
        let allocated = if client.has_context(nbd::BASE_ALLOCATION) {
            let extents = client.block_status(nbd::BASE_ALLOCATION, 0, size)?;
            nbd::ranges::ranges_where(&extents, |flags| flags & nbd::STATE_ZERO == 0)
        } else {
            vec![(0, size)]
        };
        Ok(NbdTarget { path: PathBuf::from(label), client: Some(client), server: None, allocated })
    }

    pub fn size(&self) -> u64 {
        self.client.as_ref().map_or(0, |c| c.size())
    }

    /// Bytes that do not read as zeros.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.iter().map(|&(_, l)| l).sum()
    }

    fn client(&mut self) -> &mut NbdClient {
        self.client.as_mut().expect("target is open")
    }

    pub fn write_at(&mut self, data: &[u8], offset: u64) -> Result<()> {
        Ok(self.client().write_at(data, offset)?)
    }

    pub fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<()> {
        Ok(self.client().write_zeroes(offset, len)?)
    }

    pub fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<()> {
        Ok(self.client().read_at(buf, offset)?)
    }

    /// Makes the writes so far durable.
    pub fn flush(&mut self) -> Result<()> {
        Ok(self.client().flush()?)
    }

    fn is_hole(&self, offset: u64, len: u64) -> bool {
        block_source::hole_in(&self.allocated, offset, len)
    }

    /// Flushes, disconnects and stops the export (it closes the image cleanly).
    pub fn close(mut self) -> Result<()> {
        if let Some(c) = self.client.take() {
            c.disconnect()?;
        }
        if let Some(s) = self.server.take() {
            s.close()?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Cuts sorted, disjoint `ranges` into pieces at [`CHUNK`] boundaries.
pub fn pieces(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(off, len) in ranges {
        let end = off + len;
        let mut pos = off;
        while pos < end {
            let next = ((pos / CHUNK) + 1) * CHUNK;
            let n = next.min(end) - pos;
            out.push((pos, n));
            pos += n;
        }
    }
    out
}

/// Sorted, disjoint union of two range lists.
pub fn union(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = a.iter().chain(b).copied().filter(|r| r.1 > 0).collect();
    all.sort();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (off, len) in all {
        match out.last_mut() {
            Some((o, l)) if off <= *o + *l => *l = (*l).max(off + len - *o),
            _ => out.push((off, len)),
        }
    }
    out
}

/// `ranges` clipped to `[from, to)`.
pub fn clip(ranges: &[(u64, u64)], from: u64, to: u64) -> Vec<(u64, u64)> {
    ranges
        .iter()
        .filter_map(|&(o, l)| {
            let (s, e) = (o.max(from), (o + l).min(to));
            (s < e).then(|| (s, e - s))
        })
        .collect()
}

/// Total bytes of `ranges`.
pub fn total(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|&(_, l)| l).sum()
}

enum Piece {
    /// Offset, bytes (holes inside zero-filled), bytes really read.
    Data(u64, Vec<u8>, u64),
    /// Known to read as zeros on the source: not read.
    Hole(u64, u64),
}

/// Copies `ranges` (sorted, disjoint) of `src` into `dst` in `mode`.
/// `after(end, dst)` runs after each chunk is written, with the offset the
/// copy has reached (the caller flushes and records resume points there).
pub fn copy(
    src: &dyn BlockSource,
    dst: &mut NbdTarget,
    ranges: &[(u64, u64)],
    mode: Mode,
    progress: &Progress,
    after: &mut dyn FnMut(u64, &mut NbdTarget) -> Result<()>,
) -> Result<CopyStats> {
    let work = pieces(ranges);
    let mut stats = CopyStats::default();
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Result<Piece, EngineError>>(3);
        let reader = scope.spawn(move || {
            for &(off, len) in &work {
                if let Err(e) = progress.control.checkpoint() {
                    let _ = tx.send(Err(e));
                    return;
                }
                let piece = if mode != Mode::Compare && src.is_hole(off, len) {
                    Ok(Piece::Hole(off, len))
                } else {
                    read_allocated(src, off, len, progress).map(|(buf, read)| Piece::Data(off, buf, read))
                };
                let stop = piece.is_err();
                if tx.send(piece).is_err() || stop {
                    return;
                }
            }
        });
        let mut handle = |piece: Result<Piece, EngineError>| -> Result<()> {
            let (end, s) = match piece? {
                Piece::Hole(off, len) => (off + len, write_hole(dst, off, len, mode, progress)?),
                Piece::Data(off, buf, read) => {
                    let mut s = write_data(dst, off, &buf, mode)?;
                    s.read = read;
                    (off + buf.len() as u64, s)
                }
            };
            Progress::add(&progress.bytes_written, s.written + s.zeroed);
            stats.add(s);
            after(end, dst)
        };
        let mut result = Ok(());
        for piece in rx.iter() {
            if let Err(e) = handle(piece) {
                result = Err(e);
                break;
            }
        }
        // Dropping the receiver stops the reader at its next send.
        drop(rx);
        let _ = reader.join();
        result
    })?;
    Ok(stats)
}

/// Reads `[off, off + len)`, only the blocks the source does not know to be
/// holes; the rest of the buffer stays zero.
fn read_allocated(src: &dyn BlockSource, off: u64, len: u64, progress: &Progress) -> Result<(Vec<u8>, u64), EngineError> {
    let started = Instant::now();
    let mut buf = vec![0u8; len as usize];
    let end = off + len;
    let mut pos = off;
    let mut read = 0;
    while pos < end {
        // A run of blocks that are all holes, or all not.
        let first_end = ((pos / BLOCK + 1) * BLOCK).min(end);
        let hole = src.is_hole(pos, first_end - pos);
        let mut run_end = first_end;
        while run_end < end {
            let next = (run_end + BLOCK).min(end);
            if src.is_hole(run_end, next - run_end) != hole {
                break;
            }
            run_end = next;
        }
        if hole {
            Progress::add(&progress.bytes_skipped, run_end - pos);
        } else {
            src.read_exact_at(&mut buf[(pos - off) as usize..(run_end - off) as usize], pos)?;
            read += run_end - pos;
        }
        pos = run_end;
    }
    Progress::add(&progress.bytes_read, read);
    progress.pace(read, started.elapsed());
    Ok((buf, read))
}

fn write_hole(dst: &mut NbdTarget, off: u64, len: u64, mode: Mode, progress: &Progress) -> Result<CopyStats> {
    Ok(match mode {
        Mode::Seed => {
            Progress::add(&progress.bytes_skipped, len);
            CopyStats { skipped: len, ..Default::default() }
        }
        Mode::Changed if dst.is_hole(off, len) => {
            // The target already reads zeros there.
            Progress::add(&progress.bytes_skipped, len);
            CopyStats { skipped: len, ..Default::default() }
        }
        Mode::Changed => {
            Progress::add(&progress.bytes_skipped, len);
            dst.write_zeroes(off, len)?;
            CopyStats { zeroed: len, ..Default::default() }
        }
        Mode::Compare => unreachable!("compare reads holes"),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Skip,
    Write,
    Zero,
}

/// Writes one chunk, block by block, joining neighbouring blocks that get
/// the same treatment into one request.
fn write_data(dst: &mut NbdTarget, off: u64, buf: &[u8], mode: Mode) -> Result<CopyStats> {
    let len = buf.len() as u64;
    let theirs = match mode {
        Mode::Compare if dst.is_hole(off, len) => None,
        Mode::Compare => {
            let mut t = vec![0u8; buf.len()];
            dst.read_at(&mut t, off)?;
            Some(t)
        }
        _ => None,
    };
    let mut stats = CopyStats::default();
    let mut run: Option<(Act, usize)> = None;
    let flush_run = |dst: &mut NbdTarget, act: Act, from: usize, to: usize, stats: &mut CopyStats| -> Result<()> {
        let n = (to - from) as u64;
        match act {
            Act::Skip => stats.skipped += n,
            Act::Write => {
                dst.write_at(&buf[from..to], off + from as u64)?;
                stats.written += n;
            }
            Act::Zero => {
                dst.write_zeroes(off + from as u64, n)?;
                stats.zeroed += n;
            }
        }
        Ok(())
    };
    let mut pos = 0usize;
    while pos < buf.len() {
        let end = (pos + BLOCK as usize).min(buf.len());
        let ours = &buf[pos..end];
        let zero = ours == &ZEROS[..ours.len()];
        let act = match mode {
            Mode::Seed if zero => Act::Skip,
            Mode::Seed => Act::Write,
            Mode::Changed if zero && dst.is_hole(off + pos as u64, (end - pos) as u64) => Act::Skip,
            Mode::Changed if zero => Act::Zero,
            Mode::Changed => Act::Write,
            Mode::Compare => {
                let same = match &theirs {
                    Some(t) => ours == &t[pos..end],
                    None => zero,
                };
                match (same, zero) {
                    (true, _) => Act::Skip,
                    (false, true) => Act::Zero,
                    (false, false) => Act::Write,
                }
            }
        };
        match run {
            Some((a, _)) if a == act => {}
            Some((a, from)) => {
                flush_run(dst, a, from, pos, &mut stats)?;
                run = Some((act, pos));
            }
            None => run = Some((act, pos)),
        }
        pos = end;
    }
    if let Some((a, from)) = run {
        flush_run(dst, a, from, buf.len(), &mut stats)?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_stop_at_chunk_boundaries() {
        assert_eq!(pieces(&[(CHUNK - 10, 20)]), vec![(CHUNK - 10, 10), (CHUNK, 10)]);
        assert_eq!(pieces(&[(0, 2 * CHUNK + 1)]), vec![(0, CHUNK), (CHUNK, CHUNK), (2 * CHUNK, 1)]);
        assert!(pieces(&[]).is_empty());
    }

    #[test]
    fn union_and_clip() {
        assert_eq!(union(&[(0, 10), (50, 10)], &[(5, 10), (60, 5), (100, 1)]), vec![(0, 15), (50, 15), (100, 1)]);
        assert_eq!(union(&[], &[(3, 0)]), vec![]);
        assert_eq!(clip(&[(0, 10), (20, 10)], 5, 25), vec![(5, 5), (20, 5)]);
        assert_eq!(total(&[(0, 10), (20, 5)]), 15);
    }
}
