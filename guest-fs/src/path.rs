//! The single path normaliser. Every path that reaches a filesystem reader
//! goes through [`GuestPath::parse`]; every name read from a filesystem is
//! checked by [`GuestPath::child`] before it becomes part of a path.
//!
//! Rules: `/` is the only separator; a leading `/`, repeated `/` and `.`
//! components are ignored; `..` removes the previous component but may never
//! climb above the root; NUL, other control characters and `\` are refused;
//! a component is at most 255 bytes and a path at most 4096. The result is a
//! list of plain components: it never holds `..`, `.`, an empty component or
//! an absolute prefix.

use std::fmt;

use crate::error::{Error, Result};

/// Longest accepted path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted component, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Deepest accepted path, in components.
pub const MAX_DEPTH: usize = 256;

/// A normalised path inside a guest filesystem, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GuestPath {
    components: Vec<String>,
}

fn invalid(path: &str, reason: &'static str) -> Error {
    Error::InvalidPath {
        path: path.to_string(),
        reason,
    }
}

fn check_name(path: &str, name: &str) -> Result<()> {
    if name.len() > MAX_NAME_BYTES {
        return Err(invalid(path, "a component is longer than 255 bytes"));
    }
    if name.contains('\0') {
        return Err(invalid(path, "contains a NUL byte"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(invalid(path, "contains a control character"));
    }
    if name.contains('\\') {
        return Err(invalid(
            path,
            "contains a backslash; use / as the separator",
        ));
    }
    Ok(())
}

impl GuestPath {
    /// The root directory.
    pub fn root() -> Self {
        GuestPath::default()
    }

    /// Normalises a caller's path (see the module docs for the rules).
    pub fn parse(path: &str) -> Result<Self> {
        if path.len() > MAX_PATH_BYTES {
            return Err(invalid(path, "longer than 4096 bytes"));
        }
        let mut components: Vec<String> = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if components.pop().is_none() {
                        return Err(invalid(path, "`..` climbs above the root"));
                    }
                }
                name => {
                    check_name(path, name)?;
                    components.push(name.to_string());
                    if components.len() > MAX_DEPTH {
                        return Err(invalid(path, "more than 256 components"));
                    }
                }
            }
        }
        Ok(GuestPath { components })
    }

    /// This path with one more component, a name read from a filesystem.
    /// Names that could change the meaning of a path (`.`, `..`, empty,
    /// containing `/`, NUL, control characters or `\`) are refused.
    pub fn child(&self, name: &str) -> Result<Self> {
        if name.is_empty() || name == "." || name == ".." {
            return Err(invalid(name, "not a plain file name"));
        }
        if name.contains('/') {
            return Err(invalid(name, "a file name contains `/`"));
        }
        check_name(name, name)?;
        if self.components.len() >= MAX_DEPTH {
            return Err(invalid(name, "more than 256 components"));
        }
        let mut components = self.components.clone();
        components.push(name.to_string());
        Ok(GuestPath { components })
    }

    /// The components, outermost first; empty for the root.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// True for the root directory.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The last component (`None` for the root).
    pub fn file_name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    /// The parent directory (`None` for the root).
    pub fn parent(&self) -> Option<GuestPath> {
        let n = self.components.len().checked_sub(1)?;
        Some(GuestPath {
            components: self.components[..n].to_vec(),
        })
    }

    /// Number of components.
    pub fn depth(&self) -> usize {
        self.components.len()
    }

    /// The relative form, `a/b/c` (empty for the root): safe to use as an
    /// archive member name.
    pub fn as_relative(&self) -> String {
        self.components.join("/")
    }

    /// The absolute form inside the guest, `/a/b/c` (`/` for the root), as
    /// filesystem parsers want it.
    pub(crate) fn as_absolute(&self) -> String {
        format!("/{}", self.components.join("/"))
    }
}

impl fmt::Display for GuestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.components.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_rejects() {
        assert_eq!(
            GuestPath::parse("/a//b/./c/").unwrap().as_relative(),
            "a/b/c"
        );
        assert_eq!(GuestPath::parse("a/x/../b").unwrap().as_relative(), "a/b");
        assert!(GuestPath::parse("").unwrap().is_root());
        assert!(GuestPath::parse("/").unwrap().is_root());
        for bad in [
            "../etc",
            "/a/../../b",
            "a/\0",
            "..",
            "a/b\\c",
            "a\u{1}b",
            "/../",
        ] {
            assert!(
                matches!(GuestPath::parse(bad), Err(Error::InvalidPath { .. })),
                "{bad:?} accepted"
            );
        }
        let long = "x".repeat(256);
        assert!(GuestPath::parse(&long).is_err());
        let root = GuestPath::root();
        for bad in ["", ".", "..", "a/b", "a\0"] {
            assert!(root.child(bad).is_err(), "{bad:?} accepted as a child name");
        }
        assert_eq!(
            root.child("x").unwrap().child("y").unwrap().to_string(),
            "/x/y"
        );
    }
}
