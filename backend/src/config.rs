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
}
