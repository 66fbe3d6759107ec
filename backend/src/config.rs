//! Server configuration, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address and port to listen on.
    #[arg(long, env = "SENDENSE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory for the catalog and everything else the server keeps.
    #[arg(long, env = "SENDENSE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Directory holding the built cockpit (trunk's output).
    #[arg(long, env = "SENDENSE_WEB_DIR", default_value = "./dist")]
    pub web_dir: PathBuf,

    /// Catalog database. Empty: an SQLite file in the data directory.
    /// `postgres://user:pass@host/db` uses PostgreSQL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Password of the `admin` user created on first start (when the catalog
    /// has no user). Unset: a strong one is generated, logged once and
    /// written to DATA_DIR/initial-admin-password.
    #[arg(long, env = "SENDENSE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// How long a sign-in lasts, in minutes.
    #[arg(long, env = "SENDENSE_SESSION_TTL_MINUTES", default_value_t = crate::state::DEFAULT_SESSION_TTL_MINUTES,
          value_parser = clap::value_parser!(i64).range(1..=525_600))]
    pub session_ttl_minutes: i64,

    /// Create the demo lab (two KVM hosts with real VMs) in DATA_DIR/lab on
    /// first start. `--demo-lab false` (or SENDENSE_DEMO_LAB=false) skips it.
    #[arg(long, env = "SENDENSE_DEMO_LAB", default_value_t = true, action = clap::ArgAction::Set)]
    pub demo_lab: bool,

    /// Make demo-lab writes (logs, files, database pages) every this many
    /// seconds while serving; 0 turns it off.
    #[arg(long, env = "SENDENSE_LAB_ACTIVITY_SECONDS", default_value_t = 0)]
    pub lab_activity_seconds: u64,

    /// Cap on how fast a backup job reads its VM's disks, in bytes per second
    /// (0: no cap), to spare production hosts.
    #[arg(long, env = "SENDENSE_READ_LIMIT_BPS", default_value_t = 0)]
    pub read_limit_bps: u64,

    /// Days the catalog keeps job throughput samples and log lines (pruned daily).
    #[arg(long, env = "SENDENSE_JOB_HISTORY_RETENTION_DAYS", default_value_t = crate::catalog::housekeeping::DEFAULT_JOB_HISTORY_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub job_history_retention_days: u32,

    /// Days the catalog keeps audit log entries (pruned daily).
    #[arg(long, env = "SENDENSE_AUDIT_RETENTION_DAYS", default_value_t = crate::catalog::housekeeping::DEFAULT_AUDIT_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub audit_retention_days: u32,

    /// Seconds a GC job leaves unreferenced packs alone after they were
    /// written (running backups are protected by their leases in any case).
    #[arg(long, env = "SENDENSE_GC_GRACE_SECONDS", default_value_t = crate::runner::maintenance_job::DEFAULT_GC_GRACE_SECS)]
    pub gc_grace_seconds: u64,

    /// Licence tier: `standard` (same-platform and file-level restore) or
    /// `enterprise` (also cross-platform restore and replication).
    #[arg(long, env = "SENDENSE_LICENSE_TIER", default_value = "enterprise", value_parser = parse_tier)]
    pub license_tier: shared_types::recovery::LicenseTier,
}

fn parse_tier(s: &str) -> Result<shared_types::recovery::LicenseTier, String> {
    shared_types::recovery::LicenseTier::parse(s).ok_or_else(|| format!("'{s}' is not a licence tier: use standard or enterprise"))
}

impl ServeConfig {
    /// Where the demo lab lives.
    pub fn lab_dir(&self) -> PathBuf {
        self.data_dir.join("lab")
    }
}
