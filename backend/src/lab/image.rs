//! Moving bytes between raw files and qcow2 disks: sparse copies into a raw
//! disk, qcow2 conversion, extracting one partition of a qcow2 disk into a
//! raw file, and writing back only the 64 KiB blocks that changed, through
//! `qemu-io`, so the disk's dirty bitmap records exactly those blocks.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{tool, LabError, Result};
use crate::sparse_file::data_extents;

/// The unit of comparison and write-back: a qcow2 cluster and the Sendense
/// bitmap's granularity.
pub const BLOCK: u64 = 64 * 1024;
/// qemu-io commands per invocation.
const WRITES_PER_CALL: usize = 256;

fn io(what: String) -> impl FnOnce(std::io::Error) -> LabError {
    move |source| LabError::Io { what, source }
}

/// Copies the data of `src` into `dst` at `offset`, leaving holes (and
/// all-zero 64 KiB blocks) unwritten. Returns the bytes written.
pub fn sparse_copy(src: &Path, dst: &File, offset: u64) -> Result<u64> {
    let file = File::open(src).map_err(io(format!("opening {}", src.display())))?;
    let extents = data_extents(&file).map_err(io(format!("reading extents of {}", src.display())))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0;
    for (start, end) in extents {
        let mut pos = start;
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], pos).map_err(io(format!("reading {}", src.display())))?;
            for (i, chunk) in buf[..n].chunks(BLOCK as usize).enumerate() {
                if chunk.iter().any(|&b| b != 0) {
                    dst.write_all_at(chunk, offset + pos + (i as u64) * BLOCK).map_err(io("writing a raw disk".into()))?;
                    written += chunk.len() as u64;
                }
            }
            pos += n as u64;
        }
    }
    Ok(written)
}

/// `qemu-img convert` of a raw disk into a (sparse) qcow2 disk.
pub fn raw_to_qcow2(raw: &Path, qcow2: &Path) -> Result<()> {
    tool::run("qemu-img", ["convert".as_ref(), "-f".as_ref(), "raw".as_ref(), "-O".as_ref(), "qcow2".as_ref(), raw.as_os_str(), qcow2.as_os_str()])?;
    Ok(())
}

/// The name of the dirty bitmap every lab disk carries from its build on:
/// what the lab's own tests count an activity round's writes with.
pub const ACTIVITY_BITMAP: &str = "sendense-1";

/// Adds the enabled [`ACTIVITY_BITMAP`] to a qcow2 disk: every later write
/// to the image is recorded in it (by QEMU, whoever writes).
pub fn add_activity_bitmap(qcow2: &Path) -> Result<()> {
    tool::run("qemu-img", ["bitmap".as_ref(), "--add".as_ref(), "--enable".as_ref(), qcow2.as_os_str(), ACTIVITY_BITMAP.as_ref()])?;
    Ok(())
}

/// A path as a value in qemu's `key=value,...` option syntax (commas doubled).
fn qemu_opt(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

/// Extracts bytes `offset..offset+size` of a qcow2 disk (one partition) into
/// a sparse raw file. Opens the disk read-only.
pub fn extract(qcow2: &Path, offset: u64, size: u64, out: &Path) -> Result<()> {
    let opts = format!("driver=raw,offset={offset},size={size},file.driver=qcow2,file.file.driver=file,file.file.filename={}", qemu_opt(qcow2));
    tool::run("qemu-img", ["convert".as_ref(), "-O".as_ref(), "raw".as_ref(), "--image-opts".as_ref(), opts.as_ref(), out.as_os_str()])?;
    Ok(())
}

/// A run of changed bytes: `(offset, length)` within the compared files.
pub type Run = (u64, u64);

/// The `BLOCK`-sized blocks in which `before` and `after` differ, merged into runs.
pub fn changed_runs(before: &Path, after: &Path) -> Result<Vec<Run>> {
    let a = File::open(before).map_err(io(format!("opening {}", before.display())))?;
    let b = File::open(after).map_err(io(format!("opening {}", after.display())))?;
    let len = a.metadata().map_err(io(before.display().to_string()))?.len();
    let blen = b.metadata().map_err(io(after.display().to_string()))?.len();
    if len != blen {
        return Err(LabError::Invalid(format!("{} changed size ({len} -> {blen} bytes)", after.display())));
    }
    // Only blocks that hold data in either file can differ.
    let mut extents = data_extents(&a).map_err(io(before.display().to_string()))?;
    extents.extend(data_extents(&b).map_err(io(after.display().to_string()))?);
    let mut blocks: Vec<u64> = Vec::new();
    for (s, e) in extents {
        let mut blk = s / BLOCK;
        while blk * BLOCK < e {
            blocks.push(blk);
            blk += 1;
        }
    }
    blocks.sort_unstable();
    blocks.dedup();
    let mut runs: Vec<Run> = Vec::new();
    let (mut x, mut y) = (vec![0u8; BLOCK as usize], vec![0u8; BLOCK as usize]);
    for blk in blocks {
        let off = blk * BLOCK;
        let n = BLOCK.min(len - off) as usize;
        a.read_exact_at(&mut x[..n], off).map_err(io(format!("reading {}", before.display())))?;
        b.read_exact_at(&mut y[..n], off).map_err(io(format!("reading {}", after.display())))?;
        if x[..n] != y[..n] {
            match runs.last_mut() {
                Some((o, l)) if *o + *l == off => *l += n as u64,
                _ => runs.push((off, n as u64)),
            }
        }
    }
    Ok(runs)
}

/// Writes `runs` of `src` (a raw partition image) into the qcow2 disk at
/// `base + run offset`, through `qemu-io` so the disk's enabled dirty bitmap
/// records them. `scratch` holds the per-run source files qemu-io reads.
/// Returns the bytes written. The caller holds the disk's lock.
pub fn write_runs(qcow2: &Path, base: u64, src: &Path, runs: &[Run], scratch: &Path) -> Result<u64> {
    let file = File::open(src).map_err(io(format!("opening {}", src.display())))?;
    let mut total = 0;
    for batch in runs.chunks(WRITES_PER_CALL) {
        let mut args: Vec<std::ffi::OsString> = vec!["-f".into(), "qcow2".into(), qcow2.into()];
        let mut names = Vec::new();
        for (i, &(off, len)) in batch.iter().enumerate() {
            // `write -s FILE` takes its data from the start of FILE, and qemu-io
            // splits commands on spaces: one small file per run, by a bare name.
            let name = format!("run-{i}.bin");
            let mut data = vec![0u8; len as usize];
            file.read_exact_at(&mut data, off).map_err(io(format!("reading {}", src.display())))?;
            std::fs::write(scratch.join(&name), &data).map_err(io(format!("writing {}", scratch.join(&name).display())))?;
            args.push("-c".into());
            args.push(format!("write -q -s {name} {} {len}", base + off).into());
            names.push(name);
            total += len;
        }
        let out = tool::run_with("qemu-io", &args, Some(scratch), None)?;
        // qemu-io reports a failed command on its output and may still exit 0.
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !text.trim().is_empty() {
            return Err(tool::failed("qemu-io", &args, text.trim().to_string()).into());
        }
        for name in names {
            let _ = std::fs::remove_file(scratch.join(name));
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_runs_merge_adjacent_blocks_and_skip_equal_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let size = 16 * BLOCK;
        for p in [&a, &b] {
            let f = File::create(p).unwrap();
            f.set_len(size).unwrap();
            f.write_all_at(&[7u8; 100], 3 * BLOCK).unwrap();
        }
        let f = std::fs::OpenOptions::new().write(true).open(&b).unwrap();
        f.write_all_at(&[1u8; 10], 5 * BLOCK + 17).unwrap();
        f.write_all_at(&[1u8; 10], 6 * BLOCK).unwrap();
        f.write_all_at(&[1u8; 10], 10 * BLOCK - 1).unwrap();
        assert_eq!(changed_runs(&a, &b).unwrap(), vec![(5 * BLOCK, 2 * BLOCK), (9 * BLOCK, 2 * BLOCK)]);
        assert_eq!(changed_runs(&a, &a).unwrap(), vec![]);
    }

    #[test]
    fn written_runs_land_in_the_qcow2_at_the_partition_offset() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("d.qcow2");
        tool::run("qemu-img", ["create".as_ref(), "-q".as_ref(), "-f".as_ref(), "qcow2".as_ref(), disk.as_os_str(), "8M".as_ref()]).unwrap();
        let part = dir.path().join("part.raw");
        let f = File::create(&part).unwrap();
        f.set_len(4 * BLOCK).unwrap();
        f.write_all_at(&[0xabu8; BLOCK as usize], BLOCK).unwrap();
        let n = write_runs(&disk, 1 << 20, &part, &[(BLOCK, BLOCK)], dir.path()).unwrap();
        assert_eq!(n, BLOCK);
        let back = dir.path().join("back.raw");
        extract(&disk, 1 << 20, 4 * BLOCK, &back).unwrap();
        assert!(changed_runs(&part, &back).unwrap().is_empty());
        let data = std::fs::read(&back).unwrap();
        assert_eq!(data[BLOCK as usize], 0xab);
        assert_eq!(data[0], 0);
    }
}
