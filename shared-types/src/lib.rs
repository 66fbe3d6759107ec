//! Types that cross the wire between the Sendense server and its clients.
//!
//! Everything here is plain `serde` data with pure validation: no I/O, no
//! async runtime, so it compiles for the browser (wasm32) as well as for the
//! server and for any Rust program that talks to the Sendense API.
//!
//! * [`alerts`]: the alert center (raised, folded, acknowledged, resolved)
//!   and its notification targets (webhook, SMTP).
//! * [`auth`]: users, roles, sign-in.
//! * [`audit`]: the audit log.
//! * [`error`]: the one JSON body every failed request answers with.
//! * [`health`]: `GET /api/v1/health` and the live system health figures.
//! * [`platform`]: platforms, their discovered inventory and disk formats.
//! * [`discovery`]: platforms registered with the server, VM discovery and bulk add.
//! * [`vms`]: managed VMs (VM contexts) with their backup status.
//! * [`groups`]: protection groups.
//! * [`flow`]: backup and replication flows, their states and the rule that
//!   says which actions a state allows ([`flow::allowed_actions`]).
//! * [`jobs`]: jobs (one run of work each), their throughput samples and log.
//! * [`backups`]: restore points and their chains.
//! * [`bulk`]: bulk actions on selected VMs, with each VM's outcome.
//! * [`restore`]: file-level restore sessions.
//! * [`recovery`]: full VM restore, its compatibility check, licence tiers.
//! * [`networks`]: network mapping for failover (per flow and per platform
//!   pair, live or test), the recommendation rule ([`networks::recommend`]),
//!   validation before a failover and the network topology.
//! * [`replication`]: replication flows, their states and the rule that says
//!   which actions a state allows ([`replication::transition`]), lag and RPO,
//!   replica points, failover and rollback requests.
//! * [`pages`]: the cockpit's pages (navigation table, Systems tabs) and
//!   how page search matches them.
//! * [`policies`]: named policies (retention, immutability, encryption,
//!   verify schedule) that flows and groups follow, and the preview of what
//!   a retention change would delete.
//! * [`reports`]: reports and analytics over the catalog's job history
//!   (success rate, durations and sizes, change rate, throughput, storage
//!   forecast, RPO compliance), their tables and charts.
//! * [`repositories`]: where backups live, with capacity and efficiency.
//! * [`repository_setup`]: adding (local, S3, Azure), testing, changing and
//!   removing repositories; secrets go in and never come out.
//! * [`search`]: global search hits, their ranking and the cockpit routes
//!   that open them.
//! * [`settings`]: the server's effective settings (`GET /api/v1/settings`),
//!   TLS and licence, and the flag that sets each.
//! * [`telemetry`]: live server and job figures, throughput history.
//! * [`ws`]: the messages pushed on the `/api/v1/ws` WebSocket.
//!
//! The API is versioned by its path prefix ([`API_PREFIX`]); this crate's
//! version follows semver for the shapes it defines.
//!
//! The `openapi` feature derives `utoipa::ToSchema` for the server's OpenAPI
//! document; browsers and scripts leave it off.

/// A string-valued enum as it crosses the wire: serde names, `as_str`,
/// `parse` and `ALL`, so the server stores the same words the API shows.
macro_rules! wire_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word on the wire and in the catalog.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod bulk;
pub mod discovery;
pub mod error;
pub mod flow;
pub mod groups;
pub mod health;
pub mod instant;
pub mod jobs;
pub mod networks;
pub mod overview;
pub mod pages;
pub mod platform;
pub mod policies;
pub mod recovery;
pub mod replication;
pub mod reports;
pub mod repositories;
pub mod repository_setup;
pub mod restore;
pub mod schedules;
pub mod search;
pub mod settings;
pub mod vms;
pub mod telemetry;
pub mod ws;

/// Checks the name of a thing a person names (a platform, group or flow):
/// not blank, at most [`NAME_MAX`] characters, no control characters. The
/// message says what to change.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("Enter a name for the {what}."));
    }
    if name.trim() != name {
        return Err(format!("The {what} name must not start or end with spaces."));
    }
    if name.chars().count() > NAME_MAX {
        return Err(format!("A {what} name has at most {NAME_MAX} characters."));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("A {what} name must not contain control characters."));
    }
    Ok(())
}

/// A reference to a named object (a group, a repository, a platform).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamedRef {
    pub id: String,
    pub name: String,
}

/// Longest name of a platform, group or flow.
pub const NAME_MAX: usize = 128;

/// Longest page a list endpoint returns.
pub const PAGE_MAX: u64 = 1000;

/// Page size when the request names none.
pub const PAGE_DEFAULT: u64 = 100;

/// Every REST route lives below this prefix.
pub const API_PREFIX: &str = "/api/v1";

/// Path of the WebSocket endpoint.
pub const WS_PATH: &str = "/api/v1/ws";

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_checked_with_messages() {
        assert!(super::validate_name("group", "Production DBs").is_ok());
        assert!(super::validate_name("group", "  ").unwrap_err().contains("Enter a name"));
        assert!(super::validate_name("group", " x").is_err());
        assert!(super::validate_name("flow", &"n".repeat(129)).unwrap_err().contains("128"));
        assert!(super::validate_name("flow", "a\u{0}b").is_err());
    }
}
