//! Command-line interface: `sendense <command>`.

use clap::{Parser, Subcommand};

use crate::config::ServeConfig;

#[derive(Debug, Parser)]
#[command(name = "sendense", version, about = "Sendense: VM backup, restore and replication")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: REST API, WebSocket and the cockpit.
    Serve(ServeConfig),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(crate::server::serve(config))
        }
    }
}
