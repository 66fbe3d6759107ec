//! Carrying out a plan (`guest_plan`) on a filesystem image (one extracted
//! partition) with the filesystem's own tools, nothing mounted:
//!
//! * ext2/3/4: one `debugfs -w` script: `mkdir`, `write`, `symlink`,
//!   `rm` before a replacement, `sif` for mode, owner and time;
//! * FAT: `mmd` for directories, `mcopy -m -D o` per directory (times kept);
//! * NTFS: new top-level trees with `wimcapture` + `wimapply`, files into
//!   existing directories with `ntfscp -t` (times kept).
//!
//! Also the checks around it: free space as the filesystem reports it, and
//! the read-only checker (`e2fsck -fn`, `fsck.fat -n`, `ntfsfix -n`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use guest_fs::GuestPath;

use super::file_restore::{FileRestoreError, Meta, Result};
use super::guest_plan::{Family, Op};
use crate::platforms::tools;

/// Files per `mcopy` or `mmd` call.
const BATCH: usize = 200;

/// Free space of a filesystem image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes that can be allocated (ext: without the blocks reserved for root).
    pub bytes: u64,
    /// Allocation unit (block or cluster).
    pub unit: u64,
    /// Free inodes (ext).
    pub inodes: Option<u64>,
}

fn field(text: &str, label: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(label)?;
        let digits: String = rest.trim().chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    })
}

fn unreadable(image: &Path, tool: &str, what: &str) -> FileRestoreError {
    FileRestoreError::Unsupported(format!("{tool} reports no {what} for {}", image.display()))
}

/// The free space of the filesystem in `image`.
pub fn free_space(family: Family, image: &Path) -> Result<FreeSpace> {
    match family {
        Family::Ext => {
            let out = tools::debugfs(image, "stats -h\n", false)?;
            let text = String::from_utf8_lossy(&out);
            let unit = field(&text, "Block size:").ok_or_else(|| unreadable(image, "debugfs", "block size"))?;
            let free = field(&text, "Free blocks:").ok_or_else(|| unreadable(image, "debugfs", "free blocks"))?;
            let reserved = field(&text, "Reserved block count:").unwrap_or(0);
            Ok(FreeSpace { bytes: free.saturating_sub(reserved) * unit, unit, inodes: field(&text, "Free inodes:") })
        }
        Family::Fat => {
            let info = tools::run("minfo", [OsString::from("-i"), image.into(), "::".into()])?;
            let text = String::from_utf8_lossy(&info.stdout);
            let sector = field(&text, "sector size:").ok_or_else(|| unreadable(image, "minfo", "sector size"))?;
            let per_cluster = field(&text, "cluster size:").ok_or_else(|| unreadable(image, "minfo", "cluster size"))?;
            let dir = tools::run_with("mdir", [OsString::from("-i"), image.into(), "::/".into()], None, None)?;
            let text = String::from_utf8_lossy(&dir.stdout);
            // "                         66 057 216 bytes free"
            let free = text
                .lines()
                .find_map(|l| l.trim().strip_suffix("bytes free").map(|n| n.chars().filter(char::is_ascii_digit).collect::<String>()))
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| unreadable(image, "mdir", "free bytes"))?;
            Ok(FreeSpace { bytes: free, unit: sector * per_cluster, inodes: None })
        }
        Family::Ntfs => {
            let out = tools::run("ntfsinfo", [OsString::from("-m"), image.into()])?;
            let text = String::from_utf8_lossy(&out.stdout);
            let unit = field(&text, "Cluster Size:").ok_or_else(|| unreadable(image, "ntfsinfo", "cluster size"))?;
            let free = field(&text, "Free Clusters:").ok_or_else(|| unreadable(image, "ntfsinfo", "free clusters"))?;
            Ok(FreeSpace { bytes: free * unit, unit, inodes: None })
        }
    }
}

/// Bytes (and inodes) the plan needs: each file rounded up to the unit
/// plus one unit of metadata for files of more than 16 units, one unit per
/// directory, one per link; minus what replaced files free.
pub fn needed(ops: &[Op], unit: u64, freed: u64) -> (u64, u64) {
    let unit = unit.max(512);
    let (mut bytes, mut inodes) = (0u64, 0u64);
    for op in ops {
        match op {
            Op::File { size, .. } => {
                let units = size.div_ceil(unit);
                bytes += (units + u64::from(units > 16)) * unit;
                inodes += 1;
            }
            Op::Mkdir { .. } | Op::Symlink { .. } => {
                bytes += unit;
                inodes += 1;
            }
            Op::DirMeta { .. } => {}
        }
    }
    (bytes.saturating_sub(freed.div_ceil(unit) * unit), inodes)
}

/// Runs the read-only checker; `None` when the filesystem is clean, the
/// checker's report otherwise. Returns the check's name too.
/// Applies what a journaling filesystem's journal holds and its home
/// blocks do not yet (a guest stopped without a clean shutdown or that
/// crashed leaves such writes: ext4's `needs_recovery`), as the guest's
/// kernel would at its next mount. Files must not be written before: the
/// replay at that mount would overwrite them. Whether it replayed anything.
pub fn replay_journal(family: Family, image: &Path) -> Result<bool> {
    if family != Family::Ext {
        return Ok(false);
    }
    let header = tools::execute("dumpe2fs", &["-h".into(), image.into()], None, None)?;
    let text = String::from_utf8_lossy(&header.stdout);
    let needs = text.lines().any(|l| l.starts_with("Filesystem features:") && l.split_whitespace().any(|f| f == "needs_recovery"));
    if !needs {
        return Ok(false);
    }
    let out = tools::execute("e2fsck", &["-E".into(), "journal_only".into(), "-y".into(), image.into()], None, None)?;
    // 0: nothing else to do, 1: the filesystem was changed (the replay).
    match out.status.code() {
        Some(0) | Some(1) => Ok(true),
        code => Err(FileRestoreError::Unsupported(format!(
            "replaying the ext4 journal the guest left failed (e2fsck exit {}): {}",
            code.unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

pub fn check(family: Family, image: &Path) -> Result<(String, Option<String>)> {
    let (tool, args): (&str, Vec<OsString>) = match family {
        Family::Ext => ("e2fsck", vec!["-fn".into(), image.into()]),
        Family::Fat => ("fsck.fat", vec!["-n".into(), image.into()]),
        Family::Ntfs => ("ntfsfix", vec!["-n".into(), image.into()]),
    };
    let name = format!("{tool} {}", args[0].to_string_lossy());
    let out = tools::execute(tool, &args, None, None)?;
    if out.status.success() {
        return Ok((name, None));
    }
    let mut text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if text.len() > 4000 {
        let cut = (0..=4000).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.truncate(cut);
        text.push_str(" ...");
    }
    Ok((name, Some(format!("exit {}: {}", out.status.code().unwrap_or(-1), text.trim().replace('\n', "; ")))))
}

/// Makes the plan's changes in the filesystem `image`. `tree` is the
/// plan's staging tree, `scratch` a private directory for the tools'
/// files; `root_mtime` the volume root's time (NTFS: `wimapply` sets the
/// root's times from the applied tree).
pub fn apply(family: Family, image: &Path, ops: &[Op], tree: &Path, scratch: &Path, root_mtime: Option<i64>) -> Result<()> {
    match family {
        Family::Ext => apply_ext(image, ops),
        Family::Fat => apply_fat(image, ops),
        Family::Ntfs => apply_ntfs(image, ops, tree, scratch, root_mtime),
    }
}

fn quote(text: &str) -> Result<String> {
    tools::debugfs_quote(text).ok_or_else(|| FileRestoreError::Unsupported(format!("{text:?} cannot be passed to debugfs")))
}

fn abs(path: &GuestPath) -> String {
    path.to_string()
}

fn parent_and_name(path: &GuestPath) -> Result<(String, String)> {
    let name = path.file_name().ok_or_else(|| FileRestoreError::Unsupported("the volume's root cannot be written".into()))?;
    Ok((abs(&path.parent().unwrap_or_default()), name.to_string()))
}

fn sif_meta(script: &mut String, target: &str, meta: &Meta, type_bits: u32) {
    if let Some(mode) = meta.mode {
        script.push_str(&format!("sif {target} mode 0{:o}\n", type_bits | (mode & 0o7777)));
    }
    if let Some(uid) = meta.uid {
        script.push_str(&format!("sif {target} uid {uid}\n"));
    }
    if let Some(gid) = meta.gid {
        script.push_str(&format!("sif {target} gid {gid}\n"));
    }
    if let Some(t) = meta.mtime {
        script.push_str(&format!("sif {target} mtime @{t}\n"));
    }
}

/// `meta` with what a source without owners or modes (FAT, NTFS) lacks:
/// root's, and `mode`. (debugfs would otherwise take the staged file's.)
fn defaults(meta: &Meta, mode: u32) -> Meta {
    Meta { mode: meta.mode.or(Some(mode)), uid: meta.uid.or(Some(0)), gid: meta.gid.or(Some(0)), mtime: meta.mtime }
}

fn apply_ext(image: &Path, ops: &[Op]) -> Result<()> {
    let mut script = String::new();
    let mut dir_meta = Vec::new();
    for op in ops {
        match op {
            Op::Mkdir { path } => script.push_str(&format!("mkdir {}\n", quote(&abs(path))?)),
            Op::File { path, src, replace, meta, .. } => {
                let (parent, name) = parent_and_name(path)?;
                let name = quote(&name)?;
                script.push_str(&format!("cd {}\n", quote(&parent)?));
                if *replace {
                    script.push_str(&format!("rm {name}\n"));
                }
                script.push_str(&format!("write {} {name}\n", quote(&src.to_string_lossy())?));
                sif_meta(&mut script, &name, &defaults(meta, 0o644), 0o100000);
            }
            Op::Symlink { path, target, replace, meta } => {
                let (parent, name) = parent_and_name(path)?;
                let name = quote(&name)?;
                script.push_str(&format!("cd {}\n", quote(&parent)?));
                if *replace {
                    script.push_str(&format!("rm {name}\n"));
                }
                script.push_str(&format!("symlink {name} {}\n", quote(target)?));
                sif_meta(&mut script, &name, &Meta { mode: None, ..defaults(meta, 0o777) }, 0);
            }
            Op::DirMeta { path, meta } => dir_meta.push((quote(&abs(path))?, *meta)),
        }
    }
    // Directories last, innermost first: writing into one changes its time.
    script.push_str("cd /\n");
    for (path, meta) in dir_meta.iter().rev() {
        sif_meta(&mut script, path, &defaults(meta, 0o755), 0o040000);
    }
    tools::debugfs(image, &script, true)?;
    Ok(())
}

fn fat_path(path: &GuestPath) -> OsString {
    format!("::{path}").into()
}

fn apply_fat(image: &Path, ops: &[Op]) -> Result<()> {
    let base = || -> Vec<OsString> { vec!["-i".into(), image.into()] };
    let dirs: Vec<OsString> = ops.iter().filter_map(|op| if let Op::Mkdir { path } = op { Some(fat_path(path)) } else { None }).collect();
    for chunk in dirs.chunks(BATCH) {
        let mut args = base();
        args.extend(chunk.iter().cloned());
        tools::run_with("mmd", &args, None, None)?;
    }
    // Files grouped by directory, in plan order, each copied under its
    // staged name (the plan stages files under the names they take).
    let mut groups: Vec<(GuestPath, Vec<PathBuf>)> = Vec::new();
    for op in ops {
        if let Op::File { path, src, .. } = op {
            let parent = path.parent().unwrap_or_default();
            if src.file_name().map(|n| n.to_string_lossy()) != path.file_name().map(Into::into) {
                let mut args = base();
                args.extend(["-m".into(), "-D".into(), "o".into(), src.into(), fat_path(path)]);
                tools::run_with("mcopy", &args, None, None)?;
                continue;
            }
            match groups.last_mut() {
                Some((p, files)) if *p == parent && files.len() < BATCH => files.push(src.clone()),
                _ => groups.push((parent, vec![src.clone()])),
            }
        }
    }
    for (dir, files) in groups {
        let mut args = base();
        args.extend(["-m".into(), "-D".into(), "o".into()]);
        args.extend(files.into_iter().map(OsString::from));
        let target = if dir.is_root() { "::/".to_string() } else { format!("::{dir}/") };
        args.push(target.into());
        tools::run_with("mcopy", &args, None, None)?;
    }
    Ok(())
}

fn apply_ntfs(image: &Path, ops: &[Op], tree: &Path, scratch: &Path, root_mtime: Option<i64>) -> Result<()> {
    // New directories at the top carry whole new trees: applied by wimapply.
    let tops: Vec<&GuestPath> = ops.iter().filter_map(|op| if let Op::Mkdir { path } = op { (path.depth() == 1).then_some(path) } else { None }).collect();
    let top_of = |p: &GuestPath| p.components().first().map(|c| c.to_lowercase());
    let under_new_top = |p: &GuestPath| tops.iter().any(|t| top_of(p) == top_of(t));
    if !tops.is_empty() {
        let wrap = scratch.join("wim-root");
        std::fs::create_dir(&wrap).map_err(|e| FileRestoreError::io(format!("creating {}", wrap.display()), e))?;
        for top in &tops {
            let (from, to) = (tree.join(top.as_relative()), wrap.join(top.as_relative()));
            std::fs::rename(&from, &to).map_err(|e| FileRestoreError::io(format!("moving {} to {}", from.display(), to.display()), e))?;
        }
        if let Some(t) = root_mtime {
            let t = rustix::fs::Timespec { tv_sec: t, tv_nsec: 0 };
            let _ = rustix::fs::utimensat(rustix::fs::CWD, &wrap, &rustix::fs::Timestamps { last_access: t, last_modification: t }, rustix::fs::AtFlags::empty());
        }
        let wim = scratch.join("new-trees.wim");
        tools::run("wimcapture", [wrap.as_os_str(), wim.as_os_str(), "--compress=none".as_ref(), "--no-acls".as_ref()])?;
        tools::run("wimapply", [wim.as_os_str(), "1".as_ref(), image.as_os_str()])?;
    }
    for op in ops {
        if let Op::File { path, src, .. } = op {
            if under_new_top(path) {
                continue;
            }
            tools::run("ntfscp", [OsString::from("-q"), "-t".into(), image.into(), src.into(), abs(path).into()])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::Arc;

    use super::*;

    fn p(s: &str) -> GuestPath {
        GuestPath::parse(s).unwrap()
    }

    /// An empty filesystem image of `family` and a staged file.
    fn image(family: Family, dir: &Path) -> (PathBuf, PathBuf) {
        let img = dir.join("fs.img");
        std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
        match family {
            Family::Ext => tools::run("mkfs.ext4", [OsString::from("-q"), "-F".into(), img.clone().into()]).unwrap(),
            Family::Fat => tools::run("mkfs.vfat", [OsString::from("-F"), "16".into(), img.clone().into()]).unwrap(),
            Family::Ntfs => tools::run("mkntfs", [OsString::from("-F"), "-Q".into(), "-q".into(), img.clone().into()]).unwrap(),
        };
        let src = dir.join("staged");
        stage(&src);
        (img, src)
    }

    /// A staged file with a known content and time.
    fn stage(at: &Path) {
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, b"restored bytes\n").unwrap();
        let t = rustix::fs::Timespec { tv_sec: 1_600_000_000, tv_nsec: 0 };
        rustix::fs::utimensat(rustix::fs::CWD, at, &rustix::fs::Timestamps { last_access: t, last_modification: t }, rustix::fs::AtFlags::empty()).unwrap();
    }

    fn read(img: &Path, path: &str) -> (guest_fs::Entry, Vec<u8>) {
        let disk = guest_fs::open(Arc::new(guest_fs::FileDisk::open(img).unwrap())).unwrap();
        let fs = disk.filesystem(0).unwrap();
        let e = fs.stat(&p(path)).unwrap();
        let mut data = Vec::new();
        if e.kind == guest_fs::EntryKind::File {
            fs.open_file(&p(path)).unwrap().read_to_end(&mut data).unwrap();
        }
        (e, data)
    }

    fn file_op(path: &str, src: &Path, meta: Meta) -> Op {
        Op::File { path: p(path), src: src.to_path_buf(), size: 15, replace: false, meta }
    }

    #[test]
    fn ext_plans_are_written_with_modes_owners_times_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let (img, src) = image(Family::Ext, dir.path());
        let meta = Meta { mode: Some(0o640), uid: Some(33), gid: Some(34), mtime: Some(1_600_000_000) };
        let ops = vec![
            Op::Mkdir { path: p("/d") },
            file_op("/d/f", &src, meta),
            Op::Symlink { path: p("/d/l"), target: "f".into(), replace: false, meta: Meta::default() },
            Op::DirMeta { path: p("/d"), meta: Meta { mode: Some(0o750), uid: Some(1), gid: Some(2), mtime: Some(1_500_000_000) } },
        ];
        let free = free_space(Family::Ext, &img).unwrap();
        assert!(free.bytes > 20 << 20 && free.unit >= 1024 && free.inodes.unwrap() > 1000, "{free:?}");
        apply(Family::Ext, &img, &ops, dir.path(), dir.path(), None).unwrap();
        let (e, data) = read(&img, "/d/f");
        assert_eq!(data, b"restored bytes\n");
        assert_eq!((e.mode.unwrap() & 0o7777, e.uid, e.gid, e.mtime), (0o640, Some(33), Some(34), Some(1_600_000_000)));
        let (d, _) = read(&img, "/d");
        assert_eq!((d.mode.unwrap() & 0o7777, d.uid, d.mtime), (0o750, Some(1), Some(1_500_000_000)));
        assert_eq!(read(&img, "/d/l").0.symlink_target.as_deref(), Some("f"));
        assert_eq!(check(Family::Ext, &img).unwrap().1, None);
        // A replacement removes the old file first; the checker sees damage.
        let ops = vec![Op::File { path: p("/d/f"), src: src.clone(), size: 15, replace: true, meta: Meta::default() }];
        apply(Family::Ext, &img, &ops, dir.path(), dir.path(), None).unwrap();
        assert_eq!(check(Family::Ext, &img).unwrap().1, None);
        tools::debugfs(&img, "sif /d links_count 7\n", true).unwrap();
        let (name, report) = check(Family::Ext, &img).unwrap();
        assert_eq!(name, "e2fsck -fn");
        assert!(report.unwrap().contains("exit 4"));
    }

    #[test]
    fn fat_plans_are_written_and_damage_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (img, src) = image(Family::Fat, dir.path());
        let f = dir.path().join("tree/d/e/f.txt");
        stage(&f);
        // One file staged under another name than it takes (copied alone).
        let ops = vec![Op::Mkdir { path: p("/d") }, Op::Mkdir { path: p("/d/e") }, file_op("/d/e/f.txt", &f, Meta::default()), file_op("/top.txt", &src, Meta::default())];
        let free = free_space(Family::Fat, &img).unwrap();
        assert!(free.bytes > 20 << 20 && free.unit >= 512, "{free:?}");
        apply(Family::Fat, &img, &ops, dir.path(), dir.path(), None).unwrap();
        let (e, data) = read(&img, "/d/e/f.txt");
        assert_eq!(data, b"restored bytes\n");
        assert!(e.mtime.unwrap().abs_diff(1_600_000_000) <= 2, "{e:?}");
        assert_eq!(read(&img, "/top.txt").1, b"restored bytes\n");
        assert_eq!(check(Family::Fat, &img).unwrap().1, None);
        // Overwrite through the same command.
        std::fs::write(&src, b"second").unwrap();
        apply(Family::Fat, &img, &[file_op("/top.txt", &src, Meta::default())], dir.path(), dir.path(), None).unwrap();
        assert_eq!(read(&img, "/top.txt").1, b"second");
        // A cluster marked used in both FATs that no file owns.
        let boot = std::fs::read(&img).unwrap();
        let (bps, reserved, per_fat) = (u16::from_le_bytes([boot[11], boot[12]]) as u64, u16::from_le_bytes([boot[14], boot[15]]) as u64, u16::from_le_bytes([boot[22], boot[23]]) as u64);
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        for copy in 0..2 {
            std::os::unix::fs::FileExt::write_all_at(&f, &[0xff, 0xff], (reserved + copy * per_fat) * bps + 2 * 500).unwrap();
        }
        assert!(check(Family::Fat, &img).unwrap().1.is_some());
    }

    #[test]
    fn ntfs_new_top_level_trees_and_files_into_existing_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (img, src) = image(Family::Ntfs, dir.path());
        let tree = dir.path().join("tree");
        let _ = src;
        stage(&tree.join("New/sub/f.txt"));
        stage(&tree.join("top.txt"));
        let ops = vec![
            Op::Mkdir { path: p("/New") },
            Op::Mkdir { path: p("/New/sub") },
            file_op("/New/sub/f.txt", &tree.join("New/sub/f.txt"), Meta::default()),
            file_op("/top.txt", &tree.join("top.txt"), Meta::default()),
        ];
        let free = free_space(Family::Ntfs, &img).unwrap();
        assert!(free.bytes > 20 << 20 && free.unit >= 512, "{free:?}");
        apply(Family::Ntfs, &img, &ops, &tree, dir.path(), Some(1_400_000_000)).unwrap();
        assert_eq!(read(&img, "/New/sub/f.txt").1, b"restored bytes\n");
        let (e, data) = read(&img, "/top.txt");
        assert_eq!((data.as_slice(), e.mtime), (b"restored bytes\n".as_slice(), Some(1_600_000_000)));
        assert_eq!(check(Family::Ntfs, &img).unwrap().1, None);
    }

    #[test]
    fn needed_rounds_files_to_units_and_credits_replaced_ones() {
        let p = |s: &str| GuestPath::parse(s).unwrap();
        let file = |s: &str, size| Op::File { path: p(s), src: PathBuf::from("x"), size, replace: false, meta: Meta::default() };
        let ops = vec![Op::Mkdir { path: p("/a") }, file("/a/x", 1), file("/a/y", 4096 * 20), Op::DirMeta { path: p("/a"), meta: Meta::default() }];
        assert_eq!(needed(&ops, 4096, 0), (4096 + 4096 + 21 * 4096, 3));
        assert_eq!(needed(&ops, 4096, 4097).0, 4096 + 4096 + 21 * 4096 - 2 * 4096);
    }

    #[test]
    fn fields_are_read_from_tool_output() {
        let text = "Block count:              32768\nFree blocks:              25828\nBlock size:               1024\n";
        assert_eq!(field(text, "Free blocks:"), Some(25828));
        assert_eq!(field(text, "Block size:"), Some(1024));
        assert_eq!(field("\tFree Clusters: 15746 (96.1%)", "Free Clusters:"), Some(15746));
        assert_eq!(field(text, "Free inodes:"), None);
    }
}
