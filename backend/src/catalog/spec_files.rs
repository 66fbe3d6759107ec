//! How the server hands an object-store repository to a child process
//! (`sendense export-snapshot`, engine commands): a JSON
//! [`RepoSpec`](crate::repos::RepoSpec) in a file of mode 0600 under
//! `DATA_DIR/run/specs`, given with `--spec-file`. The secret is unsealed
//! only in the server, never put on a command line or in a log; the file is
//! removed when its [`SpecFile`] is dropped (after the child read it, or
//! after the job). A local repository needs no file: the child gets its
//! directory.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::db::entities::repositories;
use crate::repos::RepoSpec;

/// Where spec files live while a child process needs them.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("run").join("specs")
}

/// A spec file that exists as long as this value.
#[derive(Debug)]
pub struct SpecFile {
    path: PathBuf,
}

impl SpecFile {
    /// Writes `spec` to a new file (0600, in a 0700 directory) under `DATA_DIR/run/specs`.
    pub fn write(data_dir: &Path, spec: &RepoSpec) -> anyhow::Result<SpecFile> {
        let dir = dir(data_dir);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("securing {}", dir.display()))?;
        let path = dir.join(format!("{}.json", super::new_id()));
        let body = serde_json::to_vec(spec).context("encoding the repository spec")?;
        let file = SpecFile { path };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file.path)
            .with_context(|| format!("creating {}", file.path.display()))?;
        f.write_all(&body).with_context(|| format!("writing {}", file.path.display()))?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpecFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "removing a repository spec file");
            }
        }
    }
}

/// How a child process reaches repository `row`: its directory (local), or
/// a spec file with its unsealed secret (object stores). Blocking (reads the
/// catalog's secret key).
pub enum ChildRepo {
    Dir(PathBuf),
    Spec(SpecFile),
}

impl ChildRepo {
    pub fn of(data_dir: &Path, row: &repositories::Model) -> anyhow::Result<ChildRepo> {
        let spec = super::repositories::row_spec(data_dir, row).map_err(|e| anyhow::anyhow!("repository '{}': {e}", row.name))?;
        match spec {
            RepoSpec::Local { path } => Ok(ChildRepo::Dir(path)),
            object => Ok(ChildRepo::Spec(SpecFile::write(data_dir, &object).with_context(|| format!("handing repository '{}' to a child process", row.name))?)),
        }
    }
}

/// Spec files left by a server that stopped while a child ran (their
/// children read them at start): removed at start-up. How many.
pub fn clear(data_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir(data_dir)) else { return 0 };
    entries.flatten().filter(|e| std::fs::remove_file(e.path()).is_ok()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_file_is_private_and_goes_with_its_value() {
        let data = tempfile::tempdir().unwrap();
        let spec = RepoSpec::S3 {
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "us-east-1".into(),
            bucket: "b".into(),
            prefix: String::new(),
            access_key_id: "AK".into(),
            secret_access_key: "very-secret".into(),
            virtual_hosted: false,
        };
        let f = SpecFile::write(data.path(), &spec).unwrap();
        let path = f.path().to_path_buf();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir(data.path())).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(crate::engine::command::load_spec_file(&path).unwrap(), spec);
        drop(f);
        assert!(!path.exists());
        let _left = std::mem::ManuallyDrop::new(SpecFile::write(data.path(), &spec).unwrap());
        assert_eq!(clear(data.path()), 1);
    }
}
