//! The server's effective settings: `GET /api/v1/settings` (admins)
//! answers [`ServerSettings`], the values the running server applies (its
//! flags and environment variables after defaults), never a secret: the
//! catalog's password, the metrics token and the admin password stay out.
//!
//! They are set when the server starts; [`SOURCES`] names the flag and
//! environment variable of each, for the cockpit to say how to change it.
//! The [`RUNTIME`] ones an admin also changes with `PATCH /api/v1/settings`
//! ([`SettingsUpdate`]): applied at once, kept in the data directory and
//! laid over the flags at every start.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::recovery::{LicenseFeature, LicenseFeatures, LicenseTier};

/// Answer of `GET /api/v1/settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerSettings {
    /// The address and port the server listens on.
    pub listen: String,
    pub data_dir: String,
    /// Where the cockpit's files are served from.
    pub web_dir: String,
    pub catalog: CatalogSettings,
    /// How long a sign-in lasts.
    pub session_ttl_minutes: i64,
    /// Days job throughput samples and log lines are kept.
    pub job_history_retention_days: u32,
    /// Days audit log entries are kept.
    pub audit_retention_days: u32,
    /// Seconds a GC job leaves freshly written packs alone.
    pub gc_grace_seconds: u64,
    /// Cap on how fast a backup reads its VM's disks (0: none).
    pub read_limit_bytes_per_second: u64,
    /// Directories files may be restored into.
    pub restore_roots: Vec<String>,
    /// Directories KVM host directories may be added from.
    pub platform_roots: Vec<String>,
    /// Time limit of each class of external tool.
    pub tool_timeouts: Vec<ToolTimeout>,
    pub metrics: MetricsSettings,
    /// Whether the demo lab runs with the server.
    pub demo_lab: bool,
    pub tls: TlsSettings,
    /// The licence tier and what it includes.
    pub license: LicenseFeatures,
    /// The settings (keys of [`SOURCES`]) an admin changed at runtime: their
    /// saved values replace the flags' at every start.
    #[serde(default)]
    pub changed_at_runtime: Vec<String>,
}

/// Body of `PATCH /api/v1/settings` (admins): the settings that change
/// without a restart ([`RUNTIME`]); absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    /// Minutes a new sign-in lasts, 1 to 525600 (sessions already open keep theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_ttl_minutes: Option<i64>,
    /// Days job throughput samples and log lines are kept, 1 to 36500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_history_retention_days: Option<u32>,
    /// Days audit log entries are kept, 1 to 36500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_retention_days: Option<u32>,
    /// Seconds a GC job leaves freshly written packs alone, 0 to 2592000 (30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_grace_seconds: Option<u64>,
    /// Cap on how fast backups read their VM's disks: 0 (none) or at least 1048576 (1 MiB/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_limit_bytes_per_second: Option<u64>,
    /// Time limits of the classes given (the others stay), 1 to 86400 seconds each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_timeouts: Option<Vec<ToolTimeout>>,
}

/// The classes of external tool with a time limit.
pub const TOOL_CLASSES: &[&str] = &["convert", "info", "check", "write", "other"];
/// The smallest read cap other than none: 1 MiB/s.
pub const READ_LIMIT_MIN: u64 = 1_048_576;
/// The longest GC grace: 30 days.
pub const GC_GRACE_MAX_SECONDS: u64 = 2_592_000;

impl SettingsUpdate {
    /// The first value out of bounds: `(field, what to do)`.
    pub fn invalid(&self) -> Option<(&'static str, String)> {
        if let Some(m) = self.session_ttl_minutes.filter(|m| !(1..=525_600).contains(m)) {
            return Some(("session_ttl_minutes", format!("{m} minutes: a sign-in lasts 1 to 525600 minutes (a year).")));
        }
        for (field, days) in [("job_history_retention_days", self.job_history_retention_days), ("audit_retention_days", self.audit_retention_days)] {
            if let Some(d) = days.filter(|d| !(1..=36_500).contains(d)) {
                return Some((field, format!("{d} days: keep 1 to 36500 days.")));
            }
        }
        if let Some(g) = self.gc_grace_seconds.filter(|g| *g > GC_GRACE_MAX_SECONDS) {
            return Some(("gc_grace_seconds", format!("{g} seconds: the GC grace is 0 to 2592000 seconds (30 days).")));
        }
        if let Some(r) = self.read_limit_bytes_per_second.filter(|r| *r != 0 && *r < READ_LIMIT_MIN) {
            return Some(("read_limit_bytes_per_second", format!("{r} bytes/s: give 0 (no cap) or at least 1048576 (1 MiB/s).")));
        }
        for t in self.tool_timeouts.iter().flatten() {
            if !TOOL_CLASSES.contains(&t.class.as_str()) {
                return Some(("tool_timeouts", format!("'{}' is not a tool class: use convert, info, check, write or other.", t.class)));
            }
            if !(1..=86_400).contains(&t.seconds) {
                return Some(("tool_timeouts", format!("{} {} seconds: a limit is 1 to 86400 seconds.", t.class, t.seconds)));
            }
        }
        None
    }

    /// The [`SOURCES`] keys this update sets.
    pub fn keys(&self) -> Vec<&'static str> {
        [
            (self.session_ttl_minutes.is_some(), "session_ttl_minutes"),
            (self.job_history_retention_days.is_some(), "job_history_retention_days"),
            (self.audit_retention_days.is_some(), "audit_retention_days"),
            (self.gc_grace_seconds.is_some(), "gc_grace_seconds"),
            (self.read_limit_bytes_per_second.is_some(), "read_limit_bytes_per_second"),
            (self.tool_timeouts.is_some(), "tool_timeouts"),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
        .collect()
    }

    /// `self` with `newer`'s fields laid over it (tool limits merged by class).
    pub fn merged(mut self, newer: &SettingsUpdate) -> SettingsUpdate {
        self.session_ttl_minutes = newer.session_ttl_minutes.or(self.session_ttl_minutes);
        self.job_history_retention_days = newer.job_history_retention_days.or(self.job_history_retention_days);
        self.audit_retention_days = newer.audit_retention_days.or(self.audit_retention_days);
        self.gc_grace_seconds = newer.gc_grace_seconds.or(self.gc_grace_seconds);
        self.read_limit_bytes_per_second = newer.read_limit_bytes_per_second.or(self.read_limit_bytes_per_second);
        if let Some(new) = &newer.tool_timeouts {
            let mut all = self.tool_timeouts.take().unwrap_or_default();
            for t in new {
                all.retain(|o| o.class != t.class);
                all.push(t.clone());
            }
            self.tool_timeouts = Some(all);
        }
        self
    }
}

/// The catalog database, without credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogSettings {
    /// `sqlite` or `postgres`.
    pub kind: String,
    /// The SQLite file, or `postgres://host:port/database` (no user, password or options).
    pub location: String,
}

/// One class of external tool and its time limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ToolTimeout {
    /// `convert`, `info`, `check`, `write` or `other`.
    pub class: String,
    pub seconds: u64,
}

/// Who may read `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricsSettings {
    /// Whether a bearer token opens it (the token itself is never shown).
    pub token_set: bool,
    /// Addresses and networks that may read it without the token.
    pub allow: Vec<String>,
}

wire_enum! {
    /// Where the server's HTTPS certificate comes from.
    pub enum TlsMode {
        /// Plain HTTP.
        Off = "off",
        /// `--tls-cert` and `--tls-key`.
        CertificateFiles = "certificate_files",
        /// `--tls self-signed`: generated into the data directory on first start.
        SelfSigned = "self_signed",
    }
}

impl TlsMode {
    pub fn label(self) -> &'static str {
        match self {
            TlsMode::Off => "Off (plain HTTP)",
            TlsMode::CertificateFiles => "Certificate files",
            TlsMode::SelfSigned => "Self-signed",
        }
    }
}

/// HTTPS: off, or the certificate the server presents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TlsSettings {
    pub mode: TlsMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateInfo>,
}

/// The server's own (leaf) certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateInfo {
    /// The certificate file.
    pub path: String,
    /// The subject's distinguished name (RFC 4514), e.g. `CN=backup.example.com`.
    pub subject: String,
    pub issuer: String,
    /// DNS names and addresses it covers (subject alternative names).
    #[serde(default)]
    pub names: Vec<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    /// `AB:CD:…`, as browsers and `openssl x509 -fingerprint -sha256` show it.
    pub fingerprint_sha256: String,
}

/// Where a setting comes from: its flag of `sendense serve` and its
/// environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingSource {
    /// The [`ServerSettings`] field.
    pub key: &'static str,
    pub label: &'static str,
    pub flag: &'static str,
    pub env: &'static str,
}

/// The flag and variable of every setting (the server's tests check each
/// exists); all take effect when the server starts.
pub const SOURCES: &[SettingSource] = &[
    SettingSource { key: "listen", label: "Listen address", flag: "--listen", env: "SENDENSE_LISTEN" },
    SettingSource { key: "data_dir", label: "Data directory", flag: "--data-dir", env: "SENDENSE_DATA_DIR" },
    SettingSource { key: "web_dir", label: "Cockpit files", flag: "--web-dir", env: "SENDENSE_WEB_DIR" },
    SettingSource { key: "catalog", label: "Catalog", flag: "--database-url", env: "DATABASE_URL" },
    SettingSource { key: "session_ttl_minutes", label: "Sign-in lasts", flag: "--session-ttl-minutes", env: "SENDENSE_SESSION_TTL_MINUTES" },
    SettingSource {
        key: "job_history_retention_days",
        label: "Job history kept",
        flag: "--job-history-retention-days",
        env: "SENDENSE_JOB_HISTORY_RETENTION_DAYS",
    },
    SettingSource { key: "audit_retention_days", label: "Audit log kept", flag: "--audit-retention-days", env: "SENDENSE_AUDIT_RETENTION_DAYS" },
    SettingSource { key: "gc_grace_seconds", label: "GC grace", flag: "--gc-grace-seconds", env: "SENDENSE_GC_GRACE_SECONDS" },
    SettingSource { key: "read_limit_bytes_per_second", label: "Backup read limit", flag: "--read-limit-bps", env: "SENDENSE_READ_LIMIT_BPS" },
    SettingSource { key: "restore_roots", label: "Restore roots", flag: "--restore-root", env: "SENDENSE_RESTORE_ROOTS" },
    SettingSource { key: "platform_roots", label: "Platform roots", flag: "--platform-root", env: "SENDENSE_PLATFORM_ROOTS" },
    SettingSource { key: "tool_timeouts", label: "Tool time limits", flag: "--tool-timeouts", env: "SENDENSE_TOOL_TIMEOUTS" },
    SettingSource { key: "metrics.token_set", label: "Metrics token", flag: "--metrics-token", env: "SENDENSE_METRICS_TOKEN" },
    SettingSource { key: "metrics.allow", label: "Metrics open to", flag: "--metrics-allow", env: "SENDENSE_METRICS_ALLOW" },
    SettingSource { key: "demo_lab", label: "Demo lab", flag: "--demo-lab", env: "SENDENSE_DEMO_LAB" },
    SettingSource { key: "tls", label: "TLS", flag: "--tls", env: "SENDENSE_TLS" },
    SettingSource { key: "tls.certificate", label: "TLS certificate", flag: "--tls-cert", env: "SENDENSE_TLS_CERT" },
    SettingSource { key: "license", label: "Licence tier", flag: "--license-tier", env: "SENDENSE_LICENSE_TIER" },
];

/// The settings an admin changes at runtime (`PATCH /api/v1/settings`);
/// the others take a restart with their flag.
pub const RUNTIME: &[&str] =
    &["session_ttl_minutes", "job_history_retention_days", "audit_retention_days", "gc_grace_seconds", "read_limit_bytes_per_second", "tool_timeouts"];

/// Whether the setting `key` changes without a restart.
pub fn runtime(key: &str) -> bool {
    RUNTIME.contains(&key)
}

/// The source of the setting `key`.
pub fn source(key: &str) -> Option<&'static SettingSource> {
    SOURCES.iter().find(|s| s.key == key)
}

/// What a licence feature is, in words.
pub fn feature_label(feature: LicenseFeature) -> &'static str {
    match feature {
        LicenseFeature::SamePlatformRestore => "Restore to the same platform (qcow2 or raw on KVM)",
        LicenseFeature::FileLevelRestore => "File-level restore",
        LicenseFeature::CrossPlatformRestore => "Cross-platform restore (vmdk, vhdx, vpc, other platforms)",
        LicenseFeature::Replication => "Replication and failover",
    }
}

/// Every tier with the features it unlocks, by the rule the server enforces.
pub fn tier_table() -> Vec<(LicenseTier, Vec<(LicenseFeature, bool)>)> {
    LicenseTier::ALL.iter().map(|&t| (t, LicenseFeature::ALL.iter().map(|&f| (f, t.allows(f))).collect())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_one_source_and_the_table_follows_the_rule() {
        let keys: Vec<&str> = SOURCES.iter().map(|s| s.key).collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
        assert_eq!(source("audit_retention_days").unwrap().env, "SENDENSE_AUDIT_RETENTION_DAYS");
        let table = tier_table();
        let standard = &table.iter().find(|(t, _)| *t == LicenseTier::Standard).unwrap().1;
        assert!(standard.contains(&(LicenseFeature::FileLevelRestore, true)));
        assert!(standard.contains(&(LicenseFeature::CrossPlatformRestore, false)));
        assert!(table.iter().find(|(t, _)| *t == LicenseTier::Enterprise).unwrap().1.iter().all(|(_, on)| *on));
    }
}
