//! Machine limits for the benchmark: page-cache read throughput of an image,
//! and single-thread BLAKE3 and zstd level 1 throughput on its non-zero
//! chunks (what a backup near the limit is made of).

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use super::digest::is_all_zero;
use super::error::{EngineError, Result};

#[derive(Debug, serde::Serialize)]
pub struct Limits {
    pub read_bytes: u64,
    pub read_mb_s: f64,
    pub sample_bytes: u64,
    pub blake3_mb_s: f64,
    pub zstd1_mb_s: f64,
    pub zstd1_ratio: f64,
    /// (level, MB/s on one thread, ratio) for 64 KiB chunks.
    pub zstd_levels: Vec<(i32, f64, f64)>,
}

pub fn measure(image: &Path, sample_limit: usize) -> Result<Limits> {
    let mut f = File::open(image).map_err(|e| EngineError::file(image, e))?;
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0u64;
    let t = Instant::now();
    loop {
        let n = f.read(&mut buf).map_err(|e| EngineError::file(image, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let read_s = t.elapsed().as_secs_f64();
    let mut f = File::open(image).map_err(|e| EngineError::file(image, e))?;
    let mut sample = Vec::new();
    loop {
        let n = f.read(&mut buf).map_err(|e| EngineError::file(image, e))?;
        if n == 0 {
            break;
        }
        if sample.len() < sample_limit {
            for c in buf[..n].chunks(65536) {
                if !is_all_zero(c) && sample.len() < sample_limit {
                    sample.extend_from_slice(c);
                }
            }
        } else {
            break;
        }
    }
    let t = Instant::now();
    let mut x = 0u8;
    for c in sample.chunks(65536) {
        x ^= blake3::hash(c).as_bytes()[0];
    }
    let blake_s = t.elapsed().as_secs_f64();
    std::hint::black_box(x);
    let t = Instant::now();
    let mut out = 0usize;
    for c in sample.chunks(65536) {
        out += zstd::bulk::compress(c, 1).map(|v| v.len()).unwrap_or(c.len());
    }
    let zstd_s = t.elapsed().as_secs_f64();
    let mut zstd_levels = Vec::new();
    for level in [-1, 1, 2, 3] {
        let mut c = zstd::bulk::Compressor::new(level).map_err(|e| EngineError::Pipeline(format!("zstd: {e}")))?;
        let t = Instant::now();
        let mut out = 0usize;
        for chunk in sample.chunks(65536) {
            out += c.compress(chunk).map(|v| v.len().min(chunk.len())).unwrap_or(chunk.len());
        }
        let s = t.elapsed().as_secs_f64();
        zstd_levels.push((level, sample.len() as f64 / s / 1e6, sample.len() as f64 / out.max(1) as f64));
    }
    let mb = |bytes: f64, s: f64| if s > 0.0 { bytes / s / 1e6 } else { 0.0 };
    Ok(Limits {
        read_bytes: total,
        read_mb_s: mb(total as f64, read_s),
        sample_bytes: sample.len() as u64,
        blake3_mb_s: mb(sample.len() as f64, blake_s),
        zstd1_mb_s: mb(sample.len() as f64, zstd_s),
        zstd1_ratio: if out > 0 { sample.len() as f64 / out as f64 } else { 0.0 },
        zstd_levels,
    })
}
