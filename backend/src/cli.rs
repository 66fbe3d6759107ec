//! Command-line interface: `sendense <command>`.

use clap::{Parser, Subcommand};

use crate::config::ServeConfig;

#[derive(Debug, Parser)]
#[command(
    name = "sendense",
    version,
    about = "Sendense: VM backup, restore and replication",
    after_help = "Index caches: `repo`, `image` and `vm` keep each repository's chunk index on this machine's disk \
                  (SENDENSE_CACHE_DIR, else $XDG_CACHE_HOME/sendense/index or ~/.cache/sendense/index) and, at most once a day, remove the caches \
                  nobody opened for 30 days and those of local repositories that are gone. \
                  SENDENSE_CACHE_MAX_AGE_DAYS=N changes the 30 days; 0 or off: never remove them."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: REST API, WebSocket and the cockpit.
    Serve(ServeConfig),
    /// Backup repositories: init, verify, gc, prune, stats.
    #[command(subcommand)]
    Repo(crate::engine::command::RepoCommand),
    /// Disk images: backup and restore.
    #[command(subcommand)]
    Image(crate::engine::command::ImageCommand),
    /// Platform hosts: discovery.
    #[command(subcommand)]
    Host(crate::jobs::command::HostCommand),
    /// VMs: backup and restore through a platform connector.
    #[command(subcommand)]
    Vm(crate::jobs::command::VmCommand),
    /// Repository keys: export for safekeeping.
    #[command(subcommand)]
    Key(crate::key_command::KeyCommand),
    /// The demo lab: KVM hosts with real VMs to protect (init, activity).
    #[command(subcommand)]
    Lab(crate::lab::command::LabCommand),
    /// Serves a restore point's disks over NBD for an instant recovery
    /// (started by the server; runs until SIGTERM).
    #[command(hide = true)]
    ExportSnapshot(crate::restore::export_process::ExportArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => {
            // Repository index caches under DATA_DIR/cache, for the server
            // and the engine processes it starts (they inherit the variable).
            // Set here, before any thread exists.
            if std::env::var_os(crate::engine::index_cache::ENV_DIR).is_none() {
                let dir = std::path::absolute(config.data_dir.join("cache"))?;
                std::env::set_var(crate::engine::index_cache::ENV_DIR, dir);
            }
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(crate::server::serve(config))
        }
        Command::Repo(cmd) => {
            sweep_index_caches()?;
            crate::engine::command::run_repo(cmd)
        }
        Command::Image(cmd) => {
            sweep_index_caches()?;
            crate::engine::command::run_image(cmd)
        }
        Command::Host(cmd) => crate::jobs::command::run_host(cmd),
        Command::Vm(cmd) => {
            sweep_index_caches()?;
            crate::jobs::command::run_vm(cmd)
        }
        Command::Lab(cmd) => crate::lab::command::run(cmd),
        Command::Key(cmd) => crate::key_command::run(cmd),
        Command::ExportSnapshot(args) => crate::restore::export_process::run(args),
    }
}

/// The commands that open repositories first remove, at most once a day, the
/// index caches nobody opened for 30 days (`SENDENSE_CACHE_MAX_AGE_DAYS`;
/// `0` or `off`: no sweep) and those of local repositories that are gone
/// (the command line has no catalog to tell it which repositories exist;
/// the server cleans its own root by its catalog). A cache some process has
/// open is never removed. A bad value stops the command before it starts.
fn sweep_index_caches() -> anyhow::Result<()> {
    use crate::engine::index_cache;
    if let Some(days) = index_cache::max_age_days(std::env::var_os(index_cache::ENV_MAX_AGE).as_deref())? {
        index_cache::sweep_unused(days);
    }
    Ok(())
}
