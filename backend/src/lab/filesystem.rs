//! Filesystems built from a directory tree and edited in place, all without
//! mounting anything or being root:
//!
//! * ext4: `mkfs.ext4 -d DIR`; edits through `debugfs -w`. Appends and
//!   same-size rewrites happen in place, the way a running guest writes:
//!   `bmap -a` allocates the new blocks, the data goes straight into them,
//!   and `sif` sets the new size, so only the touched blocks change.
//! * FAT32: `mkfs.vfat` + `mcopy -s`; edits with `mcopy -o`.
//! * NTFS: `mkntfs -Q` + a WIM of the tree applied with `wimapply` (wimlib
//!   writes NTFS volumes directly; `ntfscp` cannot create directories);
//!   edits with `ntfscat` / `ntfscp`.
//! * swap: `mkswap`.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::tool::{self, dq};
use super::{LabError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    Ext4,
    Vfat,
    Ntfs,
    Swap,
}

/// What a new filesystem is called.
#[derive(Debug, Clone)]
pub struct FsIdentity {
    pub label: String,
    /// ext4 / swap: a UUID; FAT: an 8-hex-digit volume id; NTFS: unused.
    pub uuid: String,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> LabError {
    move |source| LabError::Io { what, source }
}

/// Builds a filesystem of `size` bytes in the new file `image` from the
/// tree in `staging` (none for swap). `start_sector` is where its partition
/// starts on the disk (FAT and NTFS record it in their boot sector).
pub fn build(kind: FsKind, staging: Option<&Path>, image: &Path, size: u64, id: &FsIdentity, start_sector: u64, scratch: &Path) -> Result<()> {
    File::create(image)
        .and_then(|f| f.set_len(size))
        .map_err(io(format!("creating {}", image.display())))?;
    let img: OsString = image.into();
    match kind {
        FsKind::Ext4 => {
            let mut args: Vec<OsString> = ["-q", "-F", "-t", "ext4", "-L", &id.label, "-U", &id.uuid, "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0"]
                .iter()
                .map(OsString::from)
                .collect();
            if let Some(dir) = staging {
                args.push("-d".into());
                args.push(dir.into());
            }
            args.push(img);
            tool::run("mkfs.ext4", &args)?;
        }
        FsKind::Vfat => {
            let mut args: Vec<OsString> = vec!["-F".into(), "32".into(), "-n".into(), id.label.clone().into(), "-i".into(), id.uuid.clone().into()];
            args.push("-h".into());
            args.push(start_sector.to_string().into());
            if size < (256 << 20) {
                // FAT32 needs 65525 clusters: one sector per cluster on a small ESP.
                args.push("-s".into());
                args.push("1".into());
            }
            args.push(img.clone());
            tool::run("mkfs.vfat", &args)?;
            if let Some(dir) = staging {
                let mut copy: Vec<OsString> = vec!["-s".into(), "-m".into(), "-i".into(), img];
                let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map_err(io(format!("listing {}", dir.display())))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .collect();
                entries.sort();
                if !entries.is_empty() {
                    copy.extend(entries.into_iter().map(OsString::from));
                    copy.push("::/".into());
                    tool::run("mcopy", &copy)?;
                }
            }
        }
        FsKind::Ntfs => {
            let args: Vec<OsString> = vec![
                "-F".into(),
                "-Q".into(),
                "-q".into(),
                "-L".into(),
                id.label.clone().into(),
                "-s".into(),
                "512".into(),
                "-p".into(),
                start_sector.to_string().into(),
                "-H".into(),
                "255".into(),
                "-S".into(),
                "63".into(),
                img.clone(),
            ];
            tool::run("mkntfs", &args)?;
            if let Some(dir) = staging {
                let wim = scratch.join(format!("{}.wim", id.label));
                tool::run("wimcapture", [dir.as_os_str(), wim.as_os_str(), "--compress=none".as_ref(), "--no-acls".as_ref()])?;
                tool::run("wimapply", [wim.as_os_str(), "1".as_ref(), image.as_os_str()])?;
                let _ = std::fs::remove_file(&wim);
            }
        }
        FsKind::Swap => {
            tool::run("mkswap", ["-q".as_ref(), "-L".as_ref(), id.label.as_str().as_ref(), "-U".as_ref(), id.uuid.as_str().as_ref(), image.as_os_str()])?;
        }
    }
    Ok(())
}

/// Edits files inside a filesystem image (an extracted partition).
pub struct Editor {
    kind: FsKind,
    image: PathBuf,
    scratch: PathBuf,
    seq: u32,
    block_size: Option<u64>,
}

impl Editor {
    pub fn new(kind: FsKind, image: &Path, scratch: &Path) -> Result<Editor> {
        if kind == FsKind::Swap {
            return Err(LabError::Invalid(format!("{} is swap: it has no files", image.display())));
        }
        Ok(Editor { kind, image: image.into(), scratch: scratch.into(), seq: 0, block_size: None })
    }

    fn temp(&mut self) -> PathBuf {
        self.seq += 1;
        self.scratch.join(format!("edit-{}.tmp", self.seq))
    }

    fn fat_path(path: &str) -> String {
        format!("::{path}")
    }

    /// The contents of `path`.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>> {
        let tmp = self.temp();
        match self.kind {
            FsKind::Ext4 => {
                tool::debugfs(&self.image, &format!("dump {} {}\n", dq(path)?, dq(&tmp.to_string_lossy())?), false)?;
            }
            FsKind::Vfat => {
                tool::run("mcopy", ["-n".as_ref(), "-i".as_ref(), self.image.as_os_str(), Self::fat_path(path).as_ref(), tmp.as_os_str()])?;
            }
            FsKind::Ntfs => {
                let out = tool::run("ntfscat", [self.image.as_os_str(), path.as_ref()])?;
                return Ok(out.stdout);
            }
            FsKind::Swap => unreachable!("no editor for swap"),
        }
        let data = std::fs::read(&tmp).map_err(io(format!("reading {path} from {}", self.image.display())))?;
        let _ = std::fs::remove_file(&tmp);
        Ok(data)
    }

    /// Creates `path` or replaces its contents (ext4: in place when the size
    /// stays the same).
    pub fn write(&mut self, path: &str, data: &[u8]) -> Result<()> {
        if self.kind == FsKind::Ext4 {
            if let Some(size) = self.ext4_size(path)? {
                if size == data.len() as u64 {
                    return self.patch(path, 0, data);
                }
                let (dir, name) = split(path)?;
                tool::debugfs(&self.image, &format!("cd {}\nrm {}\n", dq(dir)?, dq(name)?), true)?;
            }
        }
        let tmp = self.temp();
        std::fs::write(&tmp, data).map_err(io(format!("writing {}", tmp.display())))?;
        match self.kind {
            FsKind::Ext4 => {
                let (dir, name) = split(path)?;
                let script = format!("cd {}\nwrite {} {}\n", dq(dir)?, dq(&tmp.to_string_lossy())?, dq(name)?);
                tool::debugfs(&self.image, &script, true)?;
            }
            FsKind::Vfat => {
                tool::run("mcopy", ["-o".as_ref(), "-i".as_ref(), self.image.as_os_str(), tmp.as_os_str(), Self::fat_path(path).as_ref()])?;
            }
            FsKind::Ntfs => {
                tool::run("ntfscp", ["-q".as_ref(), self.image.as_os_str(), tmp.as_os_str(), path.as_ref()])?;
            }
            FsKind::Swap => unreachable!("no editor for swap"),
        }
        let _ = std::fs::remove_file(&tmp);
        Ok(())
    }

    /// Appends `data` to `path` (ext4: in place, into newly allocated blocks).
    pub fn append(&mut self, path: &str, data: &[u8]) -> Result<()> {
        if self.kind != FsKind::Ext4 {
            let mut body = self.read(path)?;
            body.extend_from_slice(data);
            return self.write(path, &body);
        }
        let size = self.ext4_size(path)?.ok_or_else(|| LabError::Invalid(format!("{path}: no such file in {}", self.image.display())))?;
        let bs = self.ext4_block_size()?;
        let end = size + data.len() as u64;
        let (first, last) = (size / bs, end.div_ceil(bs));
        let have = size.div_ceil(bs);
        let p = dq(path)?;
        let mut script = String::new();
        for lblk in first..last {
            let alloc = if lblk >= have { "-a " } else { "" };
            script.push_str(&format!("bmap {alloc}{p} {lblk}\n"));
        }
        let blocks = numbers(&tool::debugfs(&self.image, &script, true)?);
        self.write_blocks(path, &blocks, first, size, data, bs)?;
        tool::debugfs(&self.image, &format!("sif {p} size {end}\nsif {p} mtime now\nsif {p} ctime now\n"), true)?;
        Ok(())
    }

    /// Overwrites `data.len()` bytes of `path` at `offset`, inside its size.
    pub fn patch(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<()> {
        if self.kind != FsKind::Ext4 {
            let mut body = self.read(path)?;
            let end = offset as usize + data.len();
            if end > body.len() {
                return Err(LabError::Invalid(format!("{path}: patch past its end ({end} > {})", body.len())));
            }
            body[offset as usize..end].copy_from_slice(data);
            return self.write(path, &body);
        }
        let size = self.ext4_size(path)?.ok_or_else(|| LabError::Invalid(format!("{path}: no such file in {}", self.image.display())))?;
        let end = offset + data.len() as u64;
        if end > size {
            return Err(LabError::Invalid(format!("{path}: patch past its end ({end} > {size})")));
        }
        let bs = self.ext4_block_size()?;
        let (first, last) = (offset / bs, end.div_ceil(bs));
        let p = dq(path)?;
        let script: String = (first..last).map(|l| format!("bmap {p} {l}\n")).collect();
        let blocks = numbers(&tool::debugfs(&self.image, &script, false)?);
        self.write_blocks(path, &blocks, first, offset, data, bs)?;
        tool::debugfs(&self.image, &format!("sif {p} mtime now\nsif {p} ctime now\n"), true)?;
        Ok(())
    }

    /// Writes `data` at file offset `offset` through the block map `blocks`
    /// (physical blocks of logical blocks `first`, `first + 1`, ...).
    fn write_blocks(&self, path: &str, blocks: &[u64], first: u64, offset: u64, data: &[u8], bs: u64) -> Result<()> {
        let needed = (offset + data.len() as u64).div_ceil(bs) - first;
        if blocks.len() as u64 != needed || blocks.contains(&0) {
            return Err(LabError::Invalid(format!("{path}: debugfs mapped {} of {needed} blocks ({blocks:?})", blocks.len())));
        }
        let img = OpenOptions::new().write(true).open(&self.image).map_err(io(format!("opening {}", self.image.display())))?;
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let lblk = pos / bs;
            let within = pos % bs;
            let n = ((bs - within) as usize).min(rest.len());
            let phys = blocks[(lblk - first) as usize];
            img.write_all_at(&rest[..n], phys * bs + within).map_err(io(format!("writing {}", self.image.display())))?;
            rest = &rest[n..];
            pos += n as u64;
        }
        Ok(())
    }

    /// The size of `path`, or `None` when there is no such file.
    fn ext4_size(&mut self, path: &str) -> Result<Option<u64>> {
        let out = tool::run("debugfs", ["-R".as_ref(), format!("stat {}", dq(path)?).as_ref(), self.image.as_os_str()])?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("not found") {
                return Ok(None);
            }
            return Err(LabError::Invalid(format!("debugfs stat of {path} in {}: {}", self.image.display(), err.trim())));
        }
        // "User:     0   Group:     0   Project:     0   Size: 13893"
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if line.trim_start().starts_with("User:") {
                while let Some(w) = words.next() {
                    if w == "Size:" {
                        let n = words.next().and_then(|n| n.parse().ok());
                        return n.map(Some).ok_or_else(|| LabError::Invalid(format!("debugfs stat of {path}: unreadable size in {line:?}")));
                    }
                }
            }
        }
        Err(LabError::Invalid(format!("debugfs stat of {path}: no size in its output")))
    }

    fn ext4_block_size(&mut self) -> Result<u64> {
        if let Some(bs) = self.block_size {
            return Ok(bs);
        }
        let out = tool::debugfs(&self.image, "stats -h\n", false)?;
        let text = String::from_utf8_lossy(&out);
        let bs = text
            .lines()
            .find_map(|l| l.strip_prefix("Block size:").and_then(|v| v.trim().parse::<u64>().ok()))
            .ok_or_else(|| LabError::Invalid(format!("{}: debugfs reports no block size", self.image.display())))?;
        self.block_size = Some(bs);
        Ok(bs)
    }

    /// Physical byte ranges of `path`'s logical blocks `first..last` (ext4).
    pub fn ext4_blocks(&mut self, path: &str, first: u64, last: u64) -> Result<Vec<u64>> {
        let p = dq(path)?;
        let script: String = (first..last).map(|l| format!("bmap {p} {l}\n")).collect();
        Ok(numbers(&tool::debugfs(&self.image, &script, false)?))
    }
}

/// Splits `/a/b/c` into `/a/b` and `c`.
fn split(path: &str) -> Result<(&str, &str)> {
    match path.rsplit_once('/') {
        Some((dir, name)) if !name.is_empty() => Ok((if dir.is_empty() { "/" } else { dir }, name)),
        _ => Err(LabError::Invalid(format!("{path}: not an absolute file path"))),
    }
}

/// The numbers debugfs printed (one per `bmap`), skipping its echoed commands.
fn numbers(out: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.starts_with("debugfs:"))
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext4_with(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("tree");
        for (path, data) in files {
            let p = staging.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let img = dir.path().join("fs.img");
        let id = FsIdentity { label: "t".into(), uuid: uuid::Uuid::new_v4().to_string() };
        build(FsKind::Ext4, Some(&staging), &img, 64 << 20, &id, 2048, dir.path()).unwrap();
        (dir, img)
    }

    fn fsck(img: &Path) {
        tool::run("e2fsck", ["-fn".as_ref(), img.as_os_str()]).unwrap();
    }

    #[test]
    fn ext4_append_is_in_place_and_keeps_the_filesystem_clean() {
        let log: Vec<u8> = (0..3000).map(|i| format!("line {i}\n")).collect::<String>().into_bytes();
        let (dir, img) = ext4_with(&[("/var/log/syslog", &log)]);
        let mut ed = Editor::new(FsKind::Ext4, &img, dir.path()).unwrap();
        let extra = b"appended line one\nappended line two\n".repeat(300);
        ed.append("/var/log/syslog", &extra).unwrap();
        let mut want = log.clone();
        want.extend_from_slice(&extra);
        assert_eq!(ed.read("/var/log/syslog").unwrap(), want);
        fsck(&img);
        // A same-size rewrite and a patch stay in place; a new file appears.
        let before = ed.ext4_blocks("/var/log/syslog", 0, 2).unwrap();
        ed.patch("/var/log/syslog", 5000, b"PATCHED").unwrap();
        assert_eq!(ed.ext4_blocks("/var/log/syslog", 0, 2).unwrap(), before);
        assert_eq!(&ed.read("/var/log/syslog").unwrap()[5000..5007], b"PATCHED");
        ed.write("/var/log/new.log", b"hello\n").unwrap();
        ed.write("/var/log/new.log", b"hello again\n").unwrap();
        assert_eq!(ed.read("/var/log/new.log").unwrap(), b"hello again\n");
        fsck(&img);
        assert!(ed.patch("/var/log/new.log", 10, b"too far").is_err());
        let err = ed.append("/var/log/missing.log", b"x").unwrap_err().to_string();
        assert!(err.contains("/var/log/missing.log"), "{err}");
    }

    #[test]
    fn fat_and_ntfs_round_trip_files() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("tree");
        std::fs::create_dir_all(staging.join("EFI/Boot")).unwrap();
        std::fs::write(staging.join("EFI/Boot/bootx64.efi"), b"MZ efi").unwrap();
        for (kind, size, uuid) in [(FsKind::Vfat, 64u64 << 20, "1234abcd"), (FsKind::Ntfs, 64 << 20, "")] {
            let img = dir.path().join(format!("{kind:?}.img"));
            build(kind, Some(&staging), &img, size, &FsIdentity { label: "T".into(), uuid: uuid.into() }, 2048, dir.path()).unwrap();
            let mut ed = Editor::new(kind, &img, dir.path()).unwrap();
            assert_eq!(ed.read("/EFI/Boot/bootx64.efi").unwrap(), b"MZ efi", "{kind:?}");
            ed.append("/EFI/Boot/bootx64.efi", b" more").unwrap();
            ed.patch("/EFI/Boot/bootx64.efi", 0, b"XY").unwrap();
            ed.write("/EFI/new.txt", b"new").unwrap();
            assert_eq!(ed.read("/EFI/Boot/bootx64.efi").unwrap(), b"XY efi more", "{kind:?}");
            assert_eq!(ed.read("/EFI/new.txt").unwrap(), b"new", "{kind:?}");
        }
    }
}
