//! Where the server may write restored files and where it may find
//! platforms: the configured roots (`--restore-root`, `--platform-root`) and
//! the paths nothing may ever write into (the data directory, the
//! repositories, the catalog file).
//!
//! A path is judged after [`resolve`]: made absolute, `.` and `..` applied,
//! and every component that exists resolved through its links, so neither
//! `..` nor a link planted inside a root gets a path out of it. A path is
//! inside a root when its resolved form starts with the root's resolved form,
//! component by component.
//!
//! Restoring then opens the destination from its root one component at a
//! time with `O_NOFOLLOW` (`restore::to_directory`), so a link planted
//! between the check and the write is refused, not followed.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// How many links one resolution follows before giving up (as the kernel).
const MAX_LINKS: usize = 40;

/// A path refused by the confinement, with the reason (for the operator).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A root that cannot be used (a start-up error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRoot(pub String);

/// `path` made absolute (against the working directory), `.` and `..`
/// applied, links in its existing components followed. Components that do
/// not exist are taken as they are (they cannot be links). Never fails: a
/// component that cannot be looked at (permissions, a link loop) is taken
/// as it is, so the answer does not tell whether it exists.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(path) };
    let mut links = 0usize;
    let mut out = PathBuf::from("/");
    // Components still to walk, last first.
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&absolute, &mut todo);
    while let Some(c) = todo.pop() {
        if c == "." || c.is_empty() {
            continue;
        }
        if c == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&c);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() && links < MAX_LINKS => {
                links += 1;
                match std::fs::read_link(&candidate) {
                    Ok(target) => {
                        if target.is_absolute() {
                            out = PathBuf::from("/");
                        }
                        push_components(&target, &mut todo);
                    }
                    Err(_) => out = candidate,
                }
            }
            _ => out = candidate,
        }
    }
    out
}

/// Pushes `path`'s components onto `todo` so they pop in order.
fn push_components(path: &Path, todo: &mut Vec<OsString>) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir => Some(".".into()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

/// `a` is `b` or inside it.
fn within(a: &Path, b: &Path) -> bool {
    a.starts_with(b)
}

fn list(roots: &[PathBuf]) -> String {
    roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// A destination that passed the checks: its root and the components
/// below it (none of them a link when checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub root: PathBuf,
    pub below: Vec<OsString>,
}

impl Destination {
    pub fn path(&self) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(&self.below);
        p
    }
}

/// The roots and the protected paths, resolved once at start.
#[derive(Debug, Clone)]
pub struct Roots {
    restore: Vec<PathBuf>,
    platform: Vec<PathBuf>,
    data_dir: PathBuf,
    catalog_file: Option<PathBuf>,
}

impl Roots {
    /// The defaults for `data_dir`: restores under `DATA_DIR/restores`,
    /// platforms under `DATA_DIR/lab`. Nothing is created.
    pub fn defaults(data_dir: &Path) -> Roots {
        let data_dir = resolve(data_dir);
        Roots {
            restore: vec![data_dir.join("restores")],
            platform: vec![data_dir.join("lab")],
            catalog_file: Some(data_dir.join("catalog.sqlite")),
            data_dir,
        }
    }

    /// Roots as configured: `restore` empty means `DATA_DIR/restores`;
    /// platforms are `DATA_DIR/lab` plus `platform`. Restore roots are
    /// created. A restore root that is the data directory, the catalog
    /// file, or one of `repositories` (or inside one) is refused.
    pub fn configure(data_dir: &Path, restore: &[PathBuf], platform: &[PathBuf], catalog_file: Option<&Path>, repositories: &[PathBuf]) -> Result<Roots, BadRoot> {
        let mut roots = Roots::defaults(data_dir);
        roots.catalog_file = catalog_file.map(resolve);
        let restore: Vec<&PathBuf> = restore.iter().filter(|r| !r.as_os_str().is_empty()).collect();
        if !restore.is_empty() {
            roots.restore.clear();
            for r in restore {
                let resolved = resolve(r);
                if !roots.restore.contains(&resolved) {
                    roots.restore.push(resolved);
                }
            }
        }
        for p in platform {
            let resolved = resolve(p);
            if !p.as_os_str().is_empty() && !roots.platform.contains(&resolved) {
                roots.platform.push(resolved);
            }
        }
        let repositories: Vec<PathBuf> = repositories.iter().map(|r| resolve(r)).collect();
        for root in &roots.restore {
            if *root == roots.data_dir {
                return Err(BadRoot(format!(
                    "--restore-root '{}' is the data directory: restored files must never land among the catalog and repositories; use a directory of its own (the default is {})",
                    root.display(),
                    roots.data_dir.join("restores").display()
                )));
            }
            if roots.catalog_file.as_deref().is_some_and(|c| within(root, c)) {
                return Err(BadRoot(format!("--restore-root '{}' is the catalog file; use a directory of its own", root.display())));
            }
            if let Some(repo) = repositories.iter().find(|repo| within(root, repo)) {
                return Err(BadRoot(format!(
                    "--restore-root '{}' is inside the repository '{}': restored files must never land among backups; use a directory of its own",
                    root.display(),
                    repo.display()
                )));
            }
            // A root above the data directory is allowed: destinations that hold it are refused one by one.
            std::fs::create_dir_all(root).map_err(|e| BadRoot(format!("--restore-root '{}' cannot be created: {e}", root.display())))?;
            if !std::fs::metadata(root).map(|m| m.is_dir()).unwrap_or(false) {
                return Err(BadRoot(format!("--restore-root '{}' is not a directory", root.display())));
            }
        }
        Ok(roots)
    }

    pub fn restore_roots(&self) -> &[PathBuf] {
        &self.restore
    }

    pub fn platform_roots(&self) -> &[PathBuf] {
        &self.platform
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Adds a platform root (tests, and hosts made outside the data directory).
    pub fn allow_platforms_under(&mut self, dir: &Path) {
        let r = resolve(dir);
        if !self.platform.contains(&r) {
            self.platform.push(r);
        }
    }

    /// Replaces the restore roots (tests); nothing is created.
    pub fn set_restore_roots(&mut self, roots: &[PathBuf]) {
        self.restore = roots.iter().map(|r| resolve(r)).collect();
    }

    /// Checks a restore destination: inside a restore root, neither holding
    /// nor inside the data directory (but for a root of its own there), a
    /// repository or the catalog file.
    pub fn check_destination(&self, path: &str, repositories: &[PathBuf]) -> Result<Destination, Refused> {
        let allowed = || format!("files can be restored only under {} (--restore-root)", list(&self.restore));
        if path.contains('\0') {
            return Err(Refused(format!("destination.path contains a NUL character; {}", allowed())));
        }
        let resolved = resolve(Path::new(path));
        let Some(root) = self.restore.iter().filter(|r| within(&resolved, r)).max_by_key(|r| r.components().count()) else {
            return Err(Refused(format!("destination.path '{path}' is outside the restore roots; {}", allowed())));
        };
        let mut protected: Vec<(PathBuf, String)> = repositories.iter().map(|r| (resolve(r), format!("the repository '{}'", r.display()))).collect();
        if let Some(c) = &self.catalog_file {
            protected.push((c.clone(), "the catalog file".into()));
        }
        for (p, what) in &protected {
            if within(&resolved, p) || within(p, &resolved) {
                return Err(Refused(format!("destination.path '{path}' holds or is inside {what}, which restored files must never touch; {}", allowed())));
            }
        }
        let data = &self.data_dir;
        let root_of_its_own = within(root, data) && root != data;
        if within(data, &resolved) || (within(&resolved, data) && !root_of_its_own) {
            return Err(Refused(format!("destination.path '{path}' holds or is inside the server's data directory; {}", allowed())));
        }
        let below = resolved.strip_prefix(root).map(|rest| rest.components().map(|c| c.as_os_str().to_os_string()).collect()).unwrap_or_default();
        Ok(Destination { root: root.clone(), below })
    }

    /// Checks a platform address: inside a platform root. The answer is the
    /// same whether the path exists or not.
    pub fn check_platform(&self, address: &str) -> Result<PathBuf, Refused> {
        let refused = || {
            Refused(format!(
                "address '{}' is outside the platform roots; KVM host directories must be under {} (--platform-root)",
                address.escape_default(),
                list(&self.platform)
            ))
        };
        if address.contains('\0') {
            return Err(refused());
        }
        let resolved = resolve(Path::new(address));
        if self.platform.iter().any(|r| within(&resolved, r)) {
            Ok(resolved)
        } else {
            Err(refused())
        }
    }
}

/// Whether `file` (a VM's disk) resolves inside `dir` (its host directory).
pub fn file_within(file: &Path, dir: &Path) -> bool {
    within(&resolve(file), &resolve(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_links_and_dots() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(base.join("root/a")).unwrap();
        std::os::unix::fs::symlink("/etc", base.join("root/out")).unwrap();
        std::os::unix::fs::symlink("../a", base.join("root/a/up")).unwrap();
        assert_eq!(resolve(&base.join("root/out/x")), PathBuf::from("/etc/x"));
        assert_eq!(resolve(&base.join("root/a/up/b")), base.join("root/a/b"));
        assert_eq!(resolve(&base.join("root/missing/../../root/a")), base.join("root/a"));
        assert_eq!(resolve(Path::new("/../../etc")), PathBuf::from("/etc"));
    }

    #[test]
    fn destinations_stay_in_their_roots_and_away_from_the_data() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let data = base.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let roots = Roots::configure(&data, &[], &[], None, &[]).unwrap();
        assert!(data.join("restores").is_dir(), "the default root is created");
        let ok = roots.check_destination(&format!("{}/restores/case-1/x", data.display()), &[]).unwrap();
        assert_eq!(ok.below, vec![OsString::from("case-1"), OsString::from("x")]);
        for bad in [format!("{}/restores/../catalog.sqlite", data.display()), format!("{}", data.display()), "/etc".into(), "/".into()] {
            let e = roots.check_destination(&bad, &[]).unwrap_err();
            assert!(e.0.contains(&format!("{}/restores", data.display())), "{bad}: {e}");
        }
        // A root above the data directory: the data and the repositories are still refused.
        let wide = Roots::configure(&data, &[base.clone()], &[], None, &[]).unwrap();
        let repo = base.join("repo");
        assert!(wide.check_destination(&data.join("x").display().to_string(), &[]).is_err());
        assert!(wide.check_destination(&base.display().to_string(), &[]).is_err(), "holds the data directory");
        assert!(wide.check_destination(&repo.join("x").display().to_string(), &[repo.clone()]).is_err());
        assert!(wide.check_destination(&base.join("elsewhere").display().to_string(), &[repo.clone()]).is_ok());
        // Roots that are protected paths are refused at start.
        assert!(Roots::configure(&data, &[data.clone()], &[], None, &[]).unwrap_err().0.contains("data directory"));
        assert!(Roots::configure(&data, &[repo.join("sub")], &[], None, &[repo.clone()]).unwrap_err().0.contains("repository"));
        let cat = base.join("cat.sqlite");
        assert!(Roots::configure(&data, &[cat.clone()], &[], Some(&cat), &[]).unwrap_err().0.contains("catalog"));
    }

    #[test]
    fn platform_answers_do_not_tell_whether_a_path_exists() {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots::configure(d.path(), &[], &[], None, &[]).unwrap();
        let a = roots.check_platform("/etc").unwrap_err();
        let b = roots.check_platform("/etc-does-not-exist").unwrap_err();
        assert_eq!(a.0.replace("/etc-does-not-exist", "/etc"), b.0.replace("/etc-does-not-exist", "/etc"));
        assert!(roots.check_platform(&format!("{}/lab/hosts/x", d.path().display())).is_ok());
    }
}
