//! What `qemu-img info` says about a disk image, and conversions between
//! formats. Every error names the image file.

use std::path::Path;

use serde::Deserialize;
use shared_types::platform::DiskFormat;

use crate::platforms::error::{PlatformError, Result};
use crate::platforms::tools;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: String,
    pub virtual_size: u64,
    /// Bytes allocated on the host filesystem.
    pub actual_size: u64,
    pub bitmaps: Vec<BitmapInfo>,
    /// Names of the internal snapshots.
    pub snapshots: Vec<String>,
    /// The qcow2 corrupt flag.
    pub corrupt: bool,
    /// The backing file as the image names it (often relative to the image's directory).
    pub backing: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitmapInfo {
    pub name: String,
    /// Records writes (qemu's `auto` flag).
    pub enabled: bool,
    /// Left marked in use by a process that did not close the image cleanly:
    /// its contents cannot be trusted.
    pub in_use: bool,
}

#[derive(Deserialize)]
struct RawInfo {
    format: String,
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(rename = "actual-size", default)]
    actual_size: u64,
    #[serde(default)]
    snapshots: Vec<RawSnapshot>,
    #[serde(rename = "format-specific", default)]
    format_specific: Option<RawFormatSpecific>,
    #[serde(rename = "backing-filename", default)]
    backing_filename: Option<String>,
}

#[derive(Deserialize)]
struct RawSnapshot {
    name: String,
}

#[derive(Deserialize)]
struct RawFormatSpecific {
    #[serde(default)]
    data: RawQcow2,
}

#[derive(Deserialize, Default)]
struct RawQcow2 {
    #[serde(default)]
    bitmaps: Vec<RawBitmap>,
    #[serde(default)]
    corrupt: bool,
}

#[derive(Deserialize)]
struct RawBitmap {
    name: String,
    #[serde(default)]
    flags: Vec<String>,
}

/// `qemu-img info` of `image` read as `format` (`None`: probe). Shared read:
/// another process (a running VM, a backup export) may hold the image.
pub fn info(image: &Path, format: Option<DiskFormat>) -> Result<ImageInfo> {
    if !image.exists() {
        return Err(PlatformError::Disk { path: image.into(), reason: "the image file does not exist".into() });
    }
    let mut args = vec!["info".to_string(), "--output=json".into(), "-U".into()];
    if let Some(f) = format {
        args.push("-f".into());
        args.push(f.qemu_name().into());
    }
    args.push(image.display().to_string());
    let out = tools::run("qemu-img", &args).map_err(|e| match e {
        PlatformError::ToolFailed { stderr, .. } => PlatformError::Disk { path: image.into(), reason: stderr },
        other => other,
    })?;
    parse_info(&out.stdout).map_err(|reason| PlatformError::Disk { path: image.into(), reason })
}

fn parse_info(json: &[u8]) -> std::result::Result<ImageInfo, String> {
    let raw: RawInfo = serde_json::from_slice(json).map_err(|e| format!("unexpected qemu-img info output: {e}"))?;
    let q = raw.format_specific.map(|f| f.data).unwrap_or_default();
    Ok(ImageInfo {
        format: raw.format,
        virtual_size: raw.virtual_size,
        actual_size: raw.actual_size,
        snapshots: raw.snapshots.into_iter().map(|s| s.name).collect(),
        corrupt: q.corrupt,
        backing: raw.backing_filename,
        bitmaps: q
            .bitmaps
            .into_iter()
            .map(|b| BitmapInfo { enabled: b.flags.iter().any(|f| f == "auto"), in_use: b.flags.iter().any(|f| f == "in-use"), name: b.name })
            .collect(),
    })
}

/// Checks that `image` is a readable image of `format` and not marked
/// corrupt: the error names the disk.
pub fn expect_format(image: &Path, format: DiskFormat) -> Result<ImageInfo> {
    let info = info(image, Some(format))?;
    if info.format != format.qemu_name() {
        return Err(PlatformError::Disk { path: image.into(), reason: format!("is {}, not {}", info.format, format.qemu_name()) });
    }
    if info.corrupt {
        return Err(PlatformError::Disk { path: image.into(), reason: "qcow2 image is marked corrupt (run qemu-img check -r)".into() });
    }
    Ok(info)
}

/// Converts `src` (in `src_format`) to `dst` in `dst_format`, keeping holes.
pub fn convert(src: &Path, src_format: DiskFormat, dst: &Path, dst_format: DiskFormat) -> Result<()> {
    let mut args: Vec<String> = vec!["convert".into(), "-f".into(), src_format.qemu_name().into(), "-O".into(), dst_format.qemu_name().into()];
    if dst_format == DiskFormat::Vpc {
        // Azure wants fixed-geometry-free sizes: keep the exact virtual size.
        args.extend(["-o".into(), "force_size=on".into()]);
    }
    args.push(src.display().to_string());
    args.push(dst.display().to_string());
    tools::run("qemu-img", &args)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bitmaps_snapshots_and_sizes() {
        let json = br#"{"virtual-size": 67108864, "actual-size": 696320, "format": "qcow2",
            "snapshots": [{"name": "sendense-pit", "id": "1"}],
            "format-specific": {"type": "qcow2", "data": {"corrupt": false, "bitmaps": [
                {"flags": [], "name": "sendense-1", "granularity": 65536},
                {"flags": ["in-use", "auto"], "name": "sendense-2", "granularity": 65536}]}}}"#;
        let info = parse_info(json).unwrap();
        assert_eq!(info.virtual_size, 64 << 20);
        assert_eq!(info.snapshots, vec!["sendense-pit"]);
        assert_eq!(info.bitmaps[0], BitmapInfo { name: "sendense-1".into(), enabled: false, in_use: false });
        assert_eq!(info.bitmaps[1], BitmapInfo { name: "sendense-2".into(), enabled: true, in_use: true });
        let raw = parse_info(br#"{"virtual-size": 10, "format": "raw", "format-specific": {"type": "file", "data": {}}}"#).unwrap();
        assert!(raw.bitmaps.is_empty() && raw.format == "raw");
    }

    #[test]
    fn a_file_that_is_not_qcow2_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.qcow2");
        std::fs::write(&path, b"not an image at all").unwrap();
        let err = expect_format(&path, DiskFormat::Qcow2).unwrap_err().to_string();
        assert!(err.contains("fake.qcow2") && err.contains("qcow2"), "{err}");
        let err = info(&dir.path().join("gone.qcow2"), None).unwrap_err().to_string();
        assert!(err.contains("gone.qcow2") && err.contains("does not exist"), "{err}");
    }
}
