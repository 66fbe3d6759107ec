//! Global search: `GET /api/v1/search?q=&limit=` finds VMs, flows, groups,
//! restore points, jobs, platforms and repositories by name; the cockpit
//! adds its own pages. Both sides rank with [`match_rank`] and order with
//! [`sort_hits`], so a hit from the server and a page found in the browser
//! sort the same way.
//!
//! Ranking: an exact name beats a name that starts with the text, which
//! beats a name with a word that starts with it (`web` in `shop-web-02`),
//! which beats the text anywhere in the name; case never matters. Ties go
//! by [`SearchKind`] order, then the newest first, then by title.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// Hits answered when the request names no `limit`.
pub const DEFAULT_LIMIT: u64 = 20;
/// The most hits one request may ask for.
pub const MAX_LIMIT: u64 = 50;

wire_enum! {
    /// What a hit is, in the order ties are broken.
    pub enum SearchKind {
        Vm = "vm",
        Flow = "flow",
        Group = "group",
        Platform = "platform",
        Repository = "repository",
        /// A page of the cockpit (found by the cockpit itself).
        Page = "page",
        RestorePoint = "restore_point",
        Job = "job",
    }
}

impl SearchKind {
    /// Short label shown beside a hit.
    pub fn label(self) -> &'static str {
        match self {
            SearchKind::Vm => "VM",
            SearchKind::Flow => "Flow",
            SearchKind::Group => "Group",
            SearchKind::Platform => "Platform",
            SearchKind::Repository => "Repository",
            SearchKind::Page => "Page",
            SearchKind::RestorePoint => "Restore point",
            SearchKind::Job => "Job",
        }
    }

    fn order(self) -> usize {
        SearchKind::ALL.iter().position(|k| *k == self).unwrap_or(usize::MAX)
    }
}

wire_enum! {
    /// How well a name matches the search text, best first.
    pub enum MatchRank {
        Exact = "exact",
        Prefix = "prefix",
        WordPrefix = "word_prefix",
        Substring = "substring",
    }
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    pub kind: SearchKind,
    /// The object's id (a page's path).
    pub id: String,
    pub title: String,
    /// What tells it apart: a VM's platform and power state, a restore
    /// point's type and repository, a job's status.
    pub subtitle: String,
    /// The cockpit route that opens it (see [`route`]).
    pub route: String,
    pub rank: MatchRank,
    /// When it was made or last ran, for ties (restore points, jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/search`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    /// The search text as used (trimmed).
    pub query: String,
    /// Best first, at most the `limit` asked for.
    pub hits: Vec<SearchHit>,
}

/// The search text to use, trimmed, or why it cannot be searched for.
pub fn check_query(q: &str) -> Result<&str, String> {
    let q = q.trim();
    if q.is_empty() {
        return Err("Type something to search for: q is empty.".into());
    }
    let chars = q.chars().count();
    if chars > MAX_QUERY_CHARS {
        return Err(format!("The search text has {chars} characters; at most {MAX_QUERY_CHARS} are searched for."));
    }
    if q.chars().any(char::is_control) {
        return Err("The search text contains a control character; remove it.".into());
    }
    Ok(q)
}

/// How `name` matches `query` (any case), or `None` when it does not
/// contain it. Words are split at anything but letters and digits.
pub fn match_rank(query: &str, name: &str) -> Option<MatchRank> {
    let q = query.trim().to_lowercase();
    let n = name.to_lowercase();
    if q.is_empty() {
        return None;
    }
    if n == q {
        return Some(MatchRank::Exact);
    }
    if n.starts_with(&q) {
        return Some(MatchRank::Prefix);
    }
    let mut found = false;
    for (i, _) in n.match_indices(&q) {
        found = true;
        let before = n[..i].chars().next_back();
        if before.is_some_and(|c| !c.is_alphanumeric()) {
            return Some(MatchRank::WordPrefix);
        }
    }
    found.then_some(MatchRank::Substring)
}

/// Orders hits best first: rank, kind, newest, title.
pub fn sort_hits(hits: &mut [SearchHit]) {
    hits.sort_by(|a, b| {
        a.rank
            .cmp_order()
            .cmp(&b.rank.cmp_order())
            .then(a.kind.order().cmp(&b.kind.order()))
            .then(b.at.cmp(&a.at))
            .then_with(|| a.title.to_lowercase().cmp(&b.title.to_lowercase()))
            .then_with(|| a.id.cmp(&b.id))
    });
}

impl MatchRank {
    fn cmp_order(self) -> usize {
        MatchRank::ALL.iter().position(|r| *r == self).unwrap_or(usize::MAX)
    }
}

/// The cockpit routes that open what search finds: a page with the object
/// named in its query string (`/assets?vm=ID`). The cockpit's pages read
/// the same parameter names.
pub mod route {
    /// ASSETS: the managed VM to show.
    pub const VM: &str = "vm";
    /// ASSETS: the protection group to show.
    pub const GROUP: &str = "group";
    /// FLOWS: the backup flow whose details open.
    pub const FLOW: &str = "flow";
    /// FLOWS: the replication flow whose details open.
    pub const REPLICATION: &str = "replication";
    /// FLOWS: the job whose details open.
    pub const JOB: &str = "job";
    /// RECOVERY: the restore point to restore from.
    pub const RESTORE_POINT: &str = "restore_point";
    /// PLATFORMS: the platform to show.
    pub const PLATFORM: &str = "platform";
    /// REPOSITORIES: the repository to show.
    pub const REPOSITORY: &str = "repository";

    /// `page?param=id`, the id percent-encoded.
    pub fn to(page: &str, param: &str, id: &str) -> String {
        let mut out = format!("{page}?{param}=");
        for b in id.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    pub fn vm(id: &str) -> String {
        to("/assets", VM, id)
    }
    pub fn group(id: &str) -> String {
        to("/assets", GROUP, id)
    }
    pub fn flow(id: &str) -> String {
        to("/flows", FLOW, id)
    }
    pub fn replication(id: &str) -> String {
        to("/flows", REPLICATION, id)
    }
    pub fn job(id: &str) -> String {
        to("/flows", JOB, id)
    }
    pub fn restore_point(id: &str) -> String {
        to("/recovery", RESTORE_POINT, id)
    }
    pub fn platform(id: &str) -> String {
        to("/platforms", PLATFORM, id)
    }
    pub fn repository(id: &str) -> String {
        to("/repositories", REPOSITORY, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(kind: SearchKind, title: &str, rank: MatchRank, at: Option<i64>) -> SearchHit {
        SearchHit {
            kind,
            id: title.into(),
            title: title.into(),
            subtitle: String::new(),
            route: String::new(),
            rank,
            at: at.and_then(|s| DateTime::from_timestamp(s, 0)),
        }
    }

    #[test]
    fn ranks_exact_prefix_word_prefix_substring_in_any_case() {
        assert_eq!(match_rank("web", "WEB"), Some(MatchRank::Exact));
        assert_eq!(match_rank(" web ", "web-01"), Some(MatchRank::Prefix));
        assert_eq!(match_rank("web", "shop-web-02"), Some(MatchRank::WordPrefix));
        assert_eq!(match_rank("01", "web 01"), Some(MatchRank::WordPrefix));
        // The first occurrence inside a word, a later one at a word start.
        assert_eq!(match_rank("web", "myweb.web"), Some(MatchRank::WordPrefix));
        assert_eq!(match_rank("eb", "web-01"), Some(MatchRank::Substring));
        assert_eq!(match_rank("x", "web-01"), None);
        assert_eq!(match_rank("", "web"), None);
        assert_eq!(match_rank("%", "100%"), Some(MatchRank::Substring));
    }

    #[test]
    fn sorts_by_rank_then_kind_then_newest() {
        let mut hits = vec![
            hit(SearchKind::Job, "web-01 backup", MatchRank::Prefix, Some(10)),
            hit(SearchKind::RestorePoint, "web-01 old", MatchRank::Prefix, Some(1)),
            hit(SearchKind::RestorePoint, "web-01 new", MatchRank::Prefix, Some(5)),
            hit(SearchKind::Vm, "shop-web", MatchRank::WordPrefix, None),
            hit(SearchKind::Flow, "web-nightly", MatchRank::Prefix, None),
            hit(SearchKind::Vm, "web", MatchRank::Exact, None),
        ];
        sort_hits(&mut hits);
        let titles: Vec<&str> = hits.iter().map(|h| h.title.as_str()).collect();
        assert_eq!(titles, ["web", "web-nightly", "web-01 new", "web-01 old", "web-01 backup", "shop-web"]);
    }

    #[test]
    fn checks_the_query_and_builds_routes() {
        assert_eq!(check_query("  web "), Ok("web"));
        assert!(check_query("   ").is_err());
        assert!(check_query(&"x".repeat(MAX_QUERY_CHARS + 1)).unwrap_err().contains("101 characters"));
        assert!(check_query(&"é".repeat(MAX_QUERY_CHARS)).is_ok());
        assert!(check_query("a\u{7}b").is_err());
        assert_eq!(route::vm("a b/c"), "/assets?vm=a%20b%2Fc");
        assert_eq!(route::restore_point("1-2"), "/recovery?restore_point=1-2");
        assert_eq!(SearchKind::parse("restore_point"), Some(SearchKind::RestorePoint));
    }
}
