//! The cockpit's pages: every destination of its navigation with its name,
//! path and purpose, and the Systems tabs. The browser draws its top bar,
//! bottom bar, context panel and page search from this table; the server
//! paints the requested page's name and purpose into the loading shell
//! before the wasm arrives.


use crate::search::{match_rank, MatchRank, SearchHit, SearchKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// COMMAND, FLOWS, ASSETS, RECOVERY, TELEMETRY.
    Primary,
    /// Repositories, Platforms, Networks, Schedules, Reports, Policies, Systems.
    Secondary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub label: &'static str,
    pub path: &'static str,
    pub tier: Tier,
    /// One glyph shown in the bottom bar and beside search results.
    pub glyph: &'static str,
    /// What the page is for, in one sentence.
    pub purpose: &'static str,
    /// What the page holds, in a few phrases that page search also matches.
    pub holds: &'static [&'static str],
}

pub const DESTINATIONS: &[Destination] = &[
    Destination {
        label: "COMMAND",
        path: "/command",
        tier: Tier::Primary,
        glyph: "◎",
        purpose: "Mission control: the state of every protected machine and every running operation at a glance.",
        holds: &[
            "Fleet status: machines protected, needing attention, critical",
            "Operations status: active, queued and paused flows, runs today",
            "Platform distribution of protected machines",
            "Live throughput gauge and storage efficiency (deduplication and compression)",
            "Live activity feed",
        ],
    },
    Destination {
        label: "FLOWS",
        path: "/flows",
        tier: Tier::Primary,
        glyph: "⇄",
        purpose: "Backup and replication flows: what runs, what waits, and their live progress.",
        holds: &[
            "Flow cards with source → target, progress, throughput and ETA",
            "Pause, inspect and stop each flow; Pause All and Emergency Stop",
            "Flow details with the actions the flow's state allows",
        ],
    },
    Destination {
        label: "ASSETS",
        path: "/assets",
        tier: Tier::Primary,
        glyph: "▤",
        purpose: "Every virtual machine Sendense knows, by platform, with its protection status.",
        holds: &[
            "Discovered and managed machines per platform",
            "Last backup age, restore point count and size per machine",
            "Protection groups and machines not yet in a group",
        ],
    },
    Destination {
        label: "RECOVERY",
        path: "/recovery",
        tier: Tier::Primary,
        glyph: "↺",
        purpose: "Restore whole machines to any platform, recover single files, fail over to the standby site.",
        holds: &[
            "Recovery wizard: restore point → target → configuration → execution",
            "File-level recovery straight from a restore point",
            "Failover, test failover and rollback for replicated machines",
        ],
    },
    Destination {
        label: "TELEMETRY",
        path: "/telemetry",
        tier: Tier::Primary,
        glyph: "∿",
        purpose: "Health and performance of this server, live, and what its jobs moved over 24 hours or 7 days.",
        holds: &[],
    },
    Destination {
        label: "Repositories",
        path: "/repositories",
        tier: Tier::Secondary,
        glyph: "▦",
        purpose: "Where backups are stored: local directories, S3-compatible and Azure object storage.",
        holds: &["Capacity, health and immutability of each repository", "Deduplication and compression per repository"],
    },
    Destination {
        label: "Platforms",
        path: "/platforms",
        tier: Tier::Secondary,
        glyph: "⌂",
        purpose: "The hypervisors and clouds Sendense protects and restores to.",
        holds: &["KVM/QEMU hosts and other platforms, with connection tests", "Discovery of their machines, disks and networks"],
    },
    Destination {
        label: "Networks",
        path: "/networks",
        tier: Tier::Secondary,
        glyph: "⇌",
        purpose: "Which network of the target platform each source network becomes at failover or in a test.",
        holds: &["Network topology of each platform", "Recommended mappings, bulk mapping and validation before a failover"],
    },
    Destination {
        label: "Schedules",
        path: "/schedules",
        tier: Tier::Secondary,
        glyph: "◷",
        purpose: "What runs on its own in the next days, for how long, and where runs overlap.",
        holds: &[],
    },
    Destination {
        label: "Reports",
        path: "/reports",
        tier: Tier::Secondary,
        glyph: "▥",
        purpose: "Success rates, backup durations and sizes, change rate, throughput, storage forecast and RPO compliance over 7 to 365 days, as CSV or printed.",
        holds: &[],
    },
    Destination {
        label: "Policies",
        path: "/policies",
        tier: Tier::Secondary,
        glyph: "§",
        purpose: "Named rules that flows and groups follow: retention, immutability, encryption and verify schedule.",
        holds: &["Retention (last, hourly, daily, weekly, monthly, yearly)", "Immutability windows, encrypted repositories only, verify schedules"],
    },
    Destination {
        label: "Systems",
        path: "/systems",
        tier: Tier::Secondary,
        glyph: "⚙",
        purpose: "This server: version, catalog, settings, TLS, licence, users, the audit log and notifications.",
        holds: &["Node appliances"],
    },
];

/// A tab of the Systems pages (settings), shown by `SystemsTabs` and found
/// by global search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tab {
    pub label: &'static str,
    pub path: &'static str,
    pub testid: &'static str,
    pub purpose: &'static str,
}

pub const SYSTEMS_TABS: &[Tab] = &[
    Tab {
        label: "Server",
        path: "/systems",
        testid: "tab-server",
        purpose: "This server: version, uptime, catalog, settings, TLS certificate and licence tier.",
    },
    Tab { label: "Users", path: "/systems/users", testid: "tab-users", purpose: "Who signs in, and with which role." },
    Tab { label: "Audit log", path: "/systems/audit", testid: "tab-audit", purpose: "Every change: who made it, when, from where." },
    Tab {
        label: "Notifications",
        path: "/systems/notifications",
        testid: "tab-notifications",
        purpose: "Where alerts are sent: webhooks and e-mail.",
    },
];

/// Pages reached from elsewhere than the bars (the alert bell), found by
/// global search like the others.
pub const OTHER_PAGES: &[Tab] = &[Tab {
    label: "Alerts",
    path: "/alerts",
    testid: "page-alerts",
    purpose: "Every alert the server raised: open, acknowledged and resolved, by severity and source.",
}];

pub fn primary() -> impl Iterator<Item = &'static Destination> {
    DESTINATIONS.iter().filter(|d| d.tier == Tier::Primary)
}

pub fn secondary() -> impl Iterator<Item = &'static Destination> {
    DESTINATIONS.iter().filter(|d| d.tier == Tier::Secondary)
}

/// The destination whose path is `path` or a prefix of it (`/` is COMMAND).
pub fn for_path(path: &str) -> Option<&'static Destination> {
    let path = if path == "/" { "/command" } else { path };
    DESTINATIONS
        .iter()
        .find(|d| path == d.path || path.strip_prefix(d.path).is_some_and(|rest| rest.starts_with('/')))
}

/// The pages matching a search text, as global search hits: a page's label
/// ranked like any name ([`match_rank`]), else (from three characters) its
/// purpose or what it holds, ranked as a match anywhere.
pub fn page_hits(text: &str) -> Vec<SearchHit> {
    let needle = text.trim().to_lowercase();
    let systems = SYSTEMS_TABS.iter().map(|t| (t, "Systems · ")).chain(OTHER_PAGES.iter().map(|t| (t, "")));
    let tabs = systems.filter(|(t, _)| DESTINATIONS.iter().all(|d| d.path != t.path)).filter_map(|(t, within)| {
        let described = || needle.chars().count() >= 3 && t.purpose.to_lowercase().contains(&needle);
        let rank = match_rank(&needle, t.label).or_else(|| described().then_some(MatchRank::Substring))?;
        Some(SearchHit {
            kind: SearchKind::Page,
            id: t.path.into(),
            title: t.label.into(),
            subtitle: format!("{within}{}", t.purpose),
            route: t.path.into(),
            rank,
            at: None,
        })
    });
    DESTINATIONS
        .iter()
        .filter_map(|d| {
            let described = || {
                needle.chars().count() >= 3
                    && (d.purpose.to_lowercase().contains(&needle) || d.holds.iter().any(|h| h.to_lowercase().contains(&needle)))
            };
            let rank = match_rank(&needle, d.label).or_else(|| described().then_some(MatchRank::Substring))?;
            Some(SearchHit {
                kind: SearchKind::Page,
                id: d.path.into(),
                title: d.label.into(),
                subtitle: d.purpose.into(),
                route: d.path.into(),
                rank,
                at: None,
            })
        })
        .chain(tabs)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_and_search_ranks_labels_first() {
        assert_eq!(for_path("/").unwrap().label, "COMMAND");
        assert_eq!(for_path("/flows/abc").unwrap().label, "FLOWS");
        assert!(for_path("/flowsx").is_none());
        let hits = page_hits("REPO");
        assert_eq!((hits[0].title.as_str(), hits[0].rank, hits[0].route.as_str()), ("Repositories", MatchRank::Prefix, "/repositories"));
        assert!(page_hits("  ").is_empty());
        // Two characters find labels only; three also purposes.
        assert!(page_hits("ba").is_empty());
        assert!(page_hits("backup").iter().any(|h| h.title == "FLOWS" && h.rank == MatchRank::Substring));
        // The Systems tabs are pages too (Server is Systems itself).
        let mut users = page_hits("users");
        crate::search::sort_hits(&mut users);
        assert_eq!((users[0].route.as_str(), users[0].rank), ("/systems/users", MatchRank::Exact));
        assert!(page_hits("server").iter().all(|h| h.route != "/systems" || h.title == "Systems"));
        assert_eq!(primary().count(), 5);
        assert_eq!(secondary().count(), 7);
        assert!(page_hits("forecast").iter().any(|h| h.route == "/reports"));
        assert_eq!(for_path("/networks").unwrap().label, "Networks");
        let mut alerts = page_hits("alerts");
        crate::search::sort_hits(&mut alerts);
        assert_eq!((alerts[0].route.as_str(), alerts[0].rank), ("/alerts", MatchRank::Exact));
    }
}
