//! Byte ranges from block status: what is allocated (`base:allocation`) and
//! what changed (`qemu:dirty-bitmap:NAME`), as `(offset, length)` pairs in
//! order, adjacent ranges joined.

use super::{bitmap_context, Extent, NbdClient, NbdError, BASE_ALLOCATION, STATE_DIRTY, STATE_HOLE};

/// Ranges in `[offset, offset + len)` that are not holes in
/// `base:allocation`. Extents that are allocated but read as zeros count as
/// allocated; holes read as zeros.
pub fn allocated_ranges(client: &mut NbdClient, offset: u64, len: u64) -> Result<Vec<(u64, u64)>, NbdError> {
    let extents = client.block_status(BASE_ALLOCATION, offset, len)?;
    Ok(ranges_where(&extents, |flags| flags & STATE_HOLE == 0))
}

/// Ranges of the whole export marked dirty in bitmap `bitmap` (the
/// connection must have negotiated `qemu:dirty-bitmap:<bitmap>`; if not, the
/// error answers true to [`NbdError::is_bitmap_unavailable`]).
pub fn dirty_ranges(client: &mut NbdClient, bitmap: &str) -> Result<Vec<(u64, u64)>, NbdError> {
    let size = client.size();
    let extents = client.block_status(&bitmap_context(bitmap), 0, size)?;
    Ok(ranges_where(&extents, |flags| flags & STATE_DIRTY != 0))
}

/// `(offset, length)` of the extents whose flags satisfy `keep`, adjacent
/// ones joined.
pub fn ranges_where(extents: &[Extent], keep: impl Fn(u32) -> bool) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for e in extents.iter().filter(|e| keep(e.flags)) {
        match out.last_mut() {
            Some((off, len)) if *off + *len == e.offset => *len += e.length,
            _ => out.push((e.offset, e.length)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_matching_extents_and_joins_neighbours() {
        let ext = [
            Extent {
                offset: 0,
                length: 10,
                flags: 0,
            },
            Extent {
                offset: 10,
                length: 10,
                flags: 2,
            },
            Extent {
                offset: 20,
                length: 10,
                flags: 3,
            },
            Extent {
                offset: 30,
                length: 10,
                flags: 0,
            },
        ];
        assert_eq!(ranges_where(&ext, |f| f & STATE_HOLE == 0), vec![(0, 20), (30, 10)]);
        assert_eq!(ranges_where(&ext, |f| f & 1 != 0), vec![(20, 10)]);
        assert_eq!(ranges_where(&[], |_| true), Vec::<(u64, u64)>::new());
    }
}
