//! Changed ranges from changed-block tracking: a JSON array of
//! `[offset, length]` byte ranges, turned into the set of chunks to re-read.

use std::path::Path;

use super::error::{EngineError, Result};

pub fn load(path: &Path) -> Result<Vec<(u64, u64)>> {
    let body = std::fs::read(path).map_err(|e| EngineError::file(path, e))?;
    let ranges: Vec<(u64, u64)> = serde_json::from_slice(&body).map_err(|e| EngineError::BadChangedRanges {
        path: path.into(),
        reason: format!("expected a JSON array of [offset, length] pairs: {e}"),
    })?;
    for &(off, len) in &ranges {
        if off.checked_add(len).is_none() {
            return Err(EngineError::BadChangedRanges { path: path.into(), reason: format!("range [{off}, {len}] overflows") });
        }
    }
    Ok(ranges)
}

/// End of the furthest range.
pub fn extent(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|&(o, l)| o + l).max().unwrap_or(0)
}

/// Sorted, distinct chunk numbers touched by the ranges.
pub fn chunks_touched(ranges: &[(u64, u64)], chunk_size: u32) -> Vec<usize> {
    let cs = chunk_size as u64;
    let mut out: Vec<usize> = Vec::new();
    let mut sorted: Vec<_> = ranges.iter().copied().filter(|r| r.1 > 0).collect();
    sorted.sort();
    for (off, len) in sorted {
        let first = off / cs;
        let last = (off + len - 1) / cs;
        for c in first..=last {
            if out.last().is_none_or(|&l| l < c as usize) {
                out.push(c as usize);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_chunks_round_outward_and_merge() {
        let r = [(65536 * 3, 65536), (10, 1), (65530, 10), (0, 0)];
        assert_eq!(chunks_touched(&r, 65536), vec![0, 1, 3]);
        assert_eq!(extent(&r), 65536 * 4);
    }
}
