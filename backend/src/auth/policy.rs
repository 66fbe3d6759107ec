//! Who may call what: one rule for every route under `/api/v1`.

use axum::http::Method;
use shared_types::auth::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No sign-in needed.
    Public,
    /// A session whose user has at least this role.
    Signed(Role),
}

/// Routes open to everyone.
const PUBLIC: &[(&str, &str)] = &[("GET", "/api/v1/health"), ("POST", "/api/v1/auth/login"), ("GET", "/api/v1/openapi.json")];

/// Routes any signed-in user may call whatever the method.
const SELF_SERVICE: &[(&str, &str)] = &[("POST", "/api/v1/auth/logout")];

/// Path prefixes that only admins reach.
const ADMIN_PREFIXES: &[&str] = &["/api/v1/users", "/api/v1/audit", "/api/v1/settings"];

/// Path prefixes anyone signed in may read but only admins change: a
/// notification target makes the server connect where its author says.
const ADMIN_WRITE_PREFIXES: &[&str] = &["/api/v1/notification-targets"];

/// Path prefixes that need an operator even to read: file-level restore
/// hands out the content of protected machines.
const OPERATOR_PREFIXES: &[&str] = &["/api/v1/restore"];

/// Repository changes that only admins make: adding (and testing, which
/// makes the server connect where the caller says), changing credentials,
/// removing, choosing the default. Verify, GC, prune, maintenance and
/// schedules below a repository stay with operators.
fn is_repository_admin_write(method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v1/repositories") else { return false };
    match (method.as_str(), rest.trim_start_matches('/').split('/').collect::<Vec<_>>().as_slice()) {
        ("POST", [""]) | ("POST", ["test"]) => true,
        ("PATCH" | "DELETE" | "PUT", [id]) => !id.is_empty(),
        ("POST", [id, "default"]) => !id.is_empty(),
        // Removes delete markers in the storage: an admin's recovery.
        ("POST", [id, "undelete"]) => !id.is_empty(),
        // Records the repository's restore points in the catalog.
        ("POST", [id, "import"]) => !id.is_empty(),
        _ => false,
    }
}

pub fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Reads that hand out a secret (a repository's encryption key): admins
/// only, and written to the audit log like a change.
pub fn is_secret_read(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path.strip_prefix("/api/v1/repositories/").and_then(|rest| rest.strip_suffix("/key")).is_some_and(|id| !id.is_empty())
}

/// Whether a request is written to the audit log.
pub fn is_audited(method: &Method, path: &str) -> bool {
    is_mutating(method) || is_secret_read(path)
}

pub fn access(method: &Method, path: &str) -> Access {
    let path = path.trim_end_matches('/');
    let is = |list: &[(&str, &str)]| list.iter().any(|(m, p)| *m == method.as_str() && *p == path);
    if is(PUBLIC) {
        return Access::Public;
    }
    if is(SELF_SERVICE) {
        return Access::Signed(Role::Viewer);
    }
    let under = |list: &[&str]| list.iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if is_secret_read(path)
        || under(ADMIN_PREFIXES)
        || (is_mutating(method) && under(ADMIN_WRITE_PREFIXES))
        || is_repository_admin_write(method, path)
    {
        return Access::Signed(Role::Admin);
    }
    if is_mutating(method) || OPERATOR_PREFIXES.iter().any(|p| path == *p || path.starts_with(&format!("{p}/"))) {
        Access::Signed(Role::Operator)
    } else {
        Access::Signed(Role::Viewer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_deny_with_roles_by_method_and_prefix() {
        assert_eq!(access(&Method::GET, "/api/v1/health"), Access::Public);
        assert_eq!(access(&Method::POST, "/api/v1/health"), Access::Signed(Role::Operator));
        assert_eq!(access(&Method::GET, "/api/v1/anything-new"), Access::Signed(Role::Viewer));
        assert_eq!(access(&Method::DELETE, "/api/v1/anything-new/1"), Access::Signed(Role::Operator));
        assert_eq!(access(&Method::GET, "/api/v1/users"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::GET, "/api/v1/users/"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::GET, "/api/v1/usersx"), Access::Signed(Role::Viewer));
        assert_eq!(access(&Method::POST, "/api/v1/auth/logout"), Access::Signed(Role::Viewer));
        assert_eq!(access(&Method::GET, "/api/v1/repositories/r1/key"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::GET, "/api/v1/repositories/r1"), Access::Signed(Role::Viewer));
        assert_eq!(access(&Method::GET, "/api/v1/notification-targets"), Access::Signed(Role::Viewer));
        assert_eq!(access(&Method::POST, "/api/v1/notification-targets/t1/test"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::POST, "/api/v1/alerts/a1/acknowledge"), Access::Signed(Role::Operator));
        assert!(is_audited(&Method::GET, "/api/v1/repositories/r1/key") && !is_audited(&Method::GET, "/api/v1/repositories/r1"));
        assert_eq!(access(&Method::POST, "/api/v1/repositories"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::POST, "/api/v1/repositories/test"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::PATCH, "/api/v1/repositories/r1"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::DELETE, "/api/v1/repositories/r1"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::POST, "/api/v1/repositories/r1/default"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::POST, "/api/v1/repositories/r1/verify"), Access::Signed(Role::Operator));
        assert_eq!(access(&Method::POST, "/api/v1/repositories/r1/undelete"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::POST, "/api/v1/repositories/r1/import"), Access::Signed(Role::Admin));
        assert_eq!(access(&Method::GET, "/api/v1/repositories"), Access::Signed(Role::Viewer));
    }
}
