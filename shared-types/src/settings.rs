//! The server's effective settings: `GET /api/v1/settings` (admins)
//! answers [`ServerSettings`], the values the running server applies (its
//! flags and environment variables after defaults), never a secret: the
//! catalog's password, the metrics token and the admin password stay out.
//!
//! They are set when the server starts; [`SOURCES`] names the flag and
//! environment variable of each, for the cockpit to say how to change it.

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
