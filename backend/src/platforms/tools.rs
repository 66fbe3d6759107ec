//! Running the external tools connectors drive (`qemu-img`, `qemu-io`,
//! `mkfs.*`): a missing tool is an error naming the Debian package that has
//! it, a failing one an error carrying its stderr.

use std::ffi::OsStr;
use std::process::{Command, Output};

use super::error::{PlatformError, Result};

/// The Debian package that ships `tool`.
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "qemu-img" | "qemu-io" | "qemu-nbd" | "qemu-storage-daemon" => "qemu-utils",
        "mkfs.ext4" | "debugfs" | "e2fsck" => "e2fsprogs",
        "mkfs.vfat" | "mkfs.fat" | "fsck.vfat" => "dosfstools",
        "mcopy" | "mmd" | "mdel" | "mtype" | "mdir" => "mtools",
        "mkntfs" | "ntfscp" | "ntfscat" | "ntfsls" | "ntfsinfo" | "ntfsfix" => "ntfs-3g",
        "wimcapture" | "wimapply" => "wimtools",
        "mkswap" | "partx" | "blkid" => "util-linux",
        "sfdisk" => "fdisk",
        _ => "the package that provides it",
    }
}

/// Runs `tool args..` and returns its output when it exits 0.
pub fn run<I, S>(tool: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new(tool).args(&args).output().map_err(|e| spawn_error(tool, e))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(PlatformError::ToolFailed {
            tool: tool.into(),
            args: args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The error for a tool that could not be started.
pub fn spawn_error(tool: &str, e: std::io::Error) -> PlatformError {
    if e.kind() == std::io::ErrorKind::NotFound {
        PlatformError::ToolMissing { tool: tool.into(), package: package_of(tool) }
    } else {
        PlatformError::Io { what: format!("starting {tool}"), source: e }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_its_package() {
        let err = run("qemu-img-that-does-not-exist", ["--version"]).unwrap_err();
        assert!(err.to_string().contains("not installed"), "{err}");
        let err = spawn_error("qemu-img", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(err.to_string().contains("apt-get install qemu-utils"), "{err}");
    }

    #[test]
    fn a_failing_tool_reports_its_stderr() {
        let err = run("qemu-img", ["info", "/nonexistent/disk.qcow2"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/disk.qcow2") && text.contains("qemu-img"), "{text}");
    }
}
