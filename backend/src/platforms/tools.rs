//! Running the external tools connectors drive (`qemu-img`, `qemu-io`,
//! `mkfs.*`, the filesystem tools): a missing tool is an error naming the
//! Debian package that has it, a failing one an error carrying its stderr.
//! [`run_with`] adds a working directory and standard input; [`debugfs`]
//! also catches the failures `debugfs` reports while exiting 0.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::error::{PlatformError, Result};

/// The Debian package that ships `tool`.
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "qemu-img" | "qemu-io" | "qemu-nbd" | "qemu-storage-daemon" => "qemu-utils",
        "mkfs.ext4" | "debugfs" | "e2fsck" => "e2fsprogs",
        "mkfs.vfat" | "mkfs.fat" | "fsck.vfat" | "fsck.fat" => "dosfstools",
        "mcopy" | "mmd" | "mdel" | "mtype" | "mdir" | "minfo" => "mtools",
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

/// Runs `tool args..` (in `cwd` when given, with `stdin` fed in when given)
/// and returns its output when it exits 0.
pub fn run_with<I, S>(tool: &str, args: I, cwd: Option<&Path>, stdin: Option<&[u8]>) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut cmd = Command::new(tool);
    cmd.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if matches!(tool, "mcopy" | "mtype" | "mdir" | "mmd" | "mdel" | "minfo" | "mattrib") {
        // mtools: images made by mkfs.vfat need no geometry check.
        cmd.env("MTOOLS_SKIP_CHECK", "1");
    }
    let mut child = cmd.spawn().map_err(|e| spawn_error(tool, e))?;
    // Feed stdin from another thread: a long script must not block on a
    // full stdout pipe that nobody reads yet.
    let feeder = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&input)))
        }
        _ => None,
    };
    let out = child.wait_with_output().map_err(|e| PlatformError::io(format!("waiting for {tool}"), e))?;
    if let Some(feeder) = feeder {
        match feeder.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(PlatformError::io(format!("writing to {tool}"), e)),
            Err(_) => return Err(PlatformError::Invalid(format!("writing to {tool}: the writer thread panicked"))),
        }
    }
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(tool, &args, String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// The error of a tool that ran and failed.
pub fn failed(tool: &str, args: &[OsString], stderr: String) -> PlatformError {
    PlatformError::ToolFailed {
        tool: tool.into(),
        args: args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "),
        stderr,
    }
}

/// Runs a `debugfs` script on an ext2/3/4 image (`-w` when `write`) and
/// returns its standard output. debugfs exits 0 even when a command fails,
/// so any line on stderr other than its version banner is an error.
pub fn debugfs(image: &Path, script: &str, write: bool) -> Result<Vec<u8>> {
    let mut args: Vec<OsString> = Vec::new();
    if write {
        args.push("-w".into());
    }
    args.push("-f".into());
    args.push("-".into());
    args.push(image.into());
    let out = run_with("debugfs", &args, None, Some(script.as_bytes()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs ")).collect();
    if !errors.is_empty() {
        let mut shown = script.trim().replace('\n', "; ");
        if shown.len() > 2000 {
            let cut = (0..=2000).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
            shown.truncate(cut);
            shown.push_str(" ...");
        }
        return Err(failed("debugfs", &args, format!("{} (script: {shown})", errors.join("; "))));
    }
    Ok(out.stdout)
}

/// `text` quoted for a debugfs command line, or `None` when debugfs cannot
/// take it (a double quote or a line break inside).
pub fn debugfs_quote(text: &str) -> Option<String> {
    if text.contains('"') || text.contains('\n') || text.contains('\r') {
        return None;
    }
    Some(format!("\"{text}\""))
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
