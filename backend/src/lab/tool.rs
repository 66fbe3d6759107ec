//! Running the filesystem and image tools the lab drives, on top of
//! [`crate::platforms::tools`]: the same errors (a missing tool names its
//! Debian package, a failing one carries its stderr), plus a working
//! directory, standard input, and the checks some tools need because they
//! exit 0 after a failed command (`debugfs`, `qemu-io`).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::platforms::tools;
use crate::platforms::PlatformError;

use super::Result;

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
    if matches!(tool, "mcopy" | "mtype" | "mdir" | "mmd" | "mdel") {
        // mtools: images made by mkfs.vfat need no geometry check.
        cmd.env("MTOOLS_SKIP_CHECK", "1");
    }
    let mut child = cmd.spawn().map_err(|e| tools::spawn_error(tool, e))?;
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
            Ok(Err(e)) => return Err(PlatformError::io(format!("writing to {tool}"), e).into()),
            Err(_) => return Err(PlatformError::Invalid(format!("writing to {tool}: the writer thread panicked")).into()),
        }
    }
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(tool, &args, String::from_utf8_lossy(&out.stderr).trim().to_string()).into())
    }
}

pub fn run<I, S>(tool: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with(tool, args, None, None)
}

pub fn failed(tool: &str, args: &[OsString], stderr: String) -> PlatformError {
    PlatformError::ToolFailed {
        tool: tool.into(),
        args: args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "),
        stderr,
    }
}

/// Runs a `debugfs` script on an ext4 image (`-w` when `write`) and returns
/// its standard output. debugfs exits 0 even when a command fails, so any
/// line on stderr other than its version banner is an error.
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
        return Err(failed("debugfs", &args, format!("{} (script: {})", errors.join("; "), script.trim().replace('\n', "; "))).into());
    }
    Ok(out.stdout)
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
