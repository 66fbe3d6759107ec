//! Running the filesystem and image tools the lab drives: thin wrappers
//! over [`crate::platforms::tools`] (a missing tool names its Debian
//! package, a failing one carries its stderr, `debugfs` failures are caught
//! although it exits 0) returning the lab's error type.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;

use crate::platforms::tools;

use super::Result;

/// Runs `tool args..` (in `cwd` when given, with `stdin` fed in when given)
/// and returns its output when it exits 0 ([`tools::run_with`]).
pub fn run_with<I, S>(tool: &str, args: I, cwd: Option<&Path>, stdin: Option<&[u8]>) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Ok(tools::run_with(tool, args, cwd, stdin)?)
}

pub fn run<I, S>(tool: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with(tool, args, None, None)
}

pub use tools::failed;

/// Runs a `debugfs` script on an ext4 image ([`tools::debugfs`]).
pub fn debugfs(image: &Path, script: &str, write: bool) -> Result<Vec<u8>> {
    Ok(tools::debugfs(image, script, write)?)
}

/// A path quoted for a debugfs command line.
pub fn dq(path: &str) -> Result<String> {
    if path.contains('"') || path.contains('\n') {
        return Err(super::LabError::Invalid(format!("path {path:?} cannot be passed to debugfs")));
    }
    Ok(format!("\"{path}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debugfs_failures_are_errors_even_when_it_exits_0() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img).unwrap().set_len(16 << 20).unwrap();
        run("mkfs.ext4", [OsStr::new("-q"), OsStr::new("-F"), img.as_os_str()]).unwrap();
        let out = debugfs(&img, "ls -p /\n", false).unwrap();
        assert!(String::from_utf8_lossy(&out).contains("lost+found"));
        let err = debugfs(&img, "cat /nope\n", false).unwrap_err().to_string();
        assert!(err.contains("/nope") && err.contains("not found"), "{err}");
        // A script far larger than a pipe's buffer, with as much output.
        let long = "ls -p /\n".repeat(20_000);
        let out = debugfs(&img, &long, false).unwrap();
        assert!(out.len() > 1 << 20, "{}", out.len());
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let err = run("mkntfs-not-here", ["-V"]).unwrap_err().to_string();
        assert!(err.contains("not installed"), "{err}");
    }
}
