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
    /// has no user). Unset: a strong one is generated and written to
    /// DATA_DIR/initial-admin-password (never to the log).
    #[arg(long, env = "SENDENSE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// How long a sign-in lasts, in minutes.
    #[arg(long, env = "SENDENSE_SESSION_TTL_MINUTES", default_value_t = crate::state::DEFAULT_SESSION_TTL_MINUTES,
          value_parser = clap::value_parser!(i64).range(1..=525_600))]
    pub session_ttl_minutes: i64,

    /// Build the demo lab's VMs (disks with real filesystems) in DATA_DIR/lab
    /// on first start; with --lab-guests they run on two libvirt hosts. Off
    /// unless given (or SENDENSE_DEMO_LAB=true).
    #[arg(long, env = "SENDENSE_DEMO_LAB", action = clap::ArgAction::SetTrue)]
    pub demo_lab: bool,

    /// With --demo-lab: also run the lab on two real libvirt hosts in
    /// DATA_DIR/lab/libvirt (production and DR, their networks, the lab's
    /// VMs as booting guests), add them as platforms, and stop them with the
    /// server. Needs root, libvirt and the guest kit (scripts/run.sh
    /// installs them and passes this).
    #[arg(long, env = "SENDENSE_LAB_GUESTS", action = clap::ArgAction::SetTrue, requires = "demo_lab")]
    pub lab_guests: bool,

    /// Serve HTTPS with this certificate (PEM, the chain after the server's
    /// own certificate); needs --tls-key.
    #[arg(long, env = "SENDENSE_TLS_CERT", requires = "tls_key", conflicts_with = "tls")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SENDENSE_TLS_KEY", requires = "tls_cert", conflicts_with = "tls")]
    pub tls_key: Option<PathBuf>,

    /// `self-signed`: serve HTTPS with a certificate generated on first start
    /// into the data directory and reused afterwards.
    #[arg(long, env = "SENDENSE_TLS", value_parser = ["self-signed"])]
    pub tls: Option<String>,

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

    /// A directory files may be restored into (repeatable; the variable is
    /// colon-separated). Default: DATA_DIR/restores, created on start. The
    /// data directory, repositories and catalog are never written into.
    #[arg(long = "restore-root", value_name = "DIR", env = "SENDENSE_RESTORE_ROOTS", value_delimiter = ':')]
    pub restore_roots: Vec<PathBuf>,

    /// A directory KVM host directories may be added from (repeatable; the
    /// variable is colon-separated), besides DATA_DIR/lab.
    #[arg(long = "platform-root", value_name = "DIR", env = "SENDENSE_PLATFORM_ROOTS", value_delimiter = ':')]
    pub platform_roots: Vec<PathBuf>,

    /// Time limits of the external tools the server runs, in seconds, as
    /// `class=seconds` pairs (classes: convert, info, check, write, nbd, other),
    /// e.g. `--tool-timeouts convert=1800,info=30`.
    #[arg(long, env = "SENDENSE_TOOL_TIMEOUTS", default_value = "", value_parser = parse_tool_timeouts)]
    pub tool_timeouts: crate::platforms::tools::Timeouts,

    /// Bearer token a Prometheus scrape of `GET /metrics` may send (any
    /// address); unset: only the addresses of --metrics-allow.
    #[arg(long, env = "SENDENSE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Addresses or networks (comma-separated, e.g. 10.0.0.0/8,::1) allowed
    /// to read `GET /metrics` without the token; default this machine only
    /// (127.0.0.0/8, ::1); an empty value allows none.
    #[arg(long, env = "SENDENSE_METRICS_ALLOW", value_parser = parse_networks)]
    pub metrics_allow: Option<Networks>,
}

/// A comma-separated list of addresses or networks.
#[derive(Debug, Clone)]
pub struct Networks(pub Vec<crate::api::metrics::Network>);

fn parse_networks(s: &str) -> Result<Networks, String> {
    s.split(',').filter(|p| !p.trim().is_empty()).map(crate::api::metrics::Network::parse).collect::<Result<Vec<_>, _>>().map(Networks)
}

fn parse_tool_timeouts(s: &str) -> Result<crate::platforms::tools::Timeouts, String> {
    crate::platforms::tools::Timeouts::parse(s)
}

fn parse_tier(s: &str) -> Result<shared_types::recovery::LicenseTier, String> {
    shared_types::recovery::LicenseTier::parse(s).ok_or_else(|| format!("'{s}' is not a licence tier: use standard or enterprise"))
}

impl ServeConfig {
    /// Where the demo lab lives.
    pub fn lab_dir(&self) -> PathBuf {
        self.data_dir.join("lab")
    }

    /// Where the HTTPS certificate comes from; `None`: plain HTTP.
    pub fn tls_source(&self) -> Option<crate::tls::TlsSource> {
        use crate::tls::TlsSource;
        match (&self.tls_cert, &self.tls_key, self.tls.as_deref()) {
            (Some(cert), Some(key), _) => Some(TlsSource::Files { cert: cert.clone(), key: key.clone() }),
            (_, _, Some(_)) => Some(TlsSource::SelfSigned {
                data_dir: self.data_dir.clone(),
                names: crate::tls::self_signed_names(self.listen),
            }),
            _ => None,
        }
    }
}
