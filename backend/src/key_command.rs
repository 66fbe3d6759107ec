//! `sendense key export`: a repository's encryption key, for safekeeping.
//! Reads the catalog of a (stopped or running) server's data directory to
//! find the repository, checks the key opens it, and writes it out.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::catalog::repository_keys;
use crate::db::{self, entities::repositories, CatalogKind};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Export a repository's key file (JSON). Whoever holds it and the
    /// repository can read every backup; without it nothing can be restored
    /// once the data directory is lost. Keep it somewhere safe and apart.
    Export {
        /// Repository id or name (`GET /api/v1/repositories` lists them).
        #[arg(long)]
        repository: String,
        /// The server's data directory.
        #[arg(long, env = "SENDENSE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The server's catalog, when it is PostgreSQL.
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        /// Write the key here (created, mode 0600; never overwritten) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Export { repository, data_dir, database_url, out } => {
            let (url, kind) = db::catalog_url(&data_dir, database_url.as_deref())?;
            if kind == CatalogKind::Sqlite && database_url.is_none() && !data_dir.join("catalog.sqlite").is_file() {
                bail!("'{}' holds no Sendense catalog (catalog.sqlite) - give the server's --data-dir", data_dir.display());
            }
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let row = runtime.block_on(async {
                let catalog = db::open(&url, kind).await?;
                let by_id = repositories::Entity::find_by_id(repository.clone()).one(&catalog).await?;
                let row = match by_id {
                    Some(r) => Some(r),
                    None => repositories::Entity::find().filter(repositories::Column::Name.eq(repository.clone())).one(&catalog).await?,
                };
                anyhow::Ok(row)
            })?;
            let Some(row) = row else { bail!("no repository has the id or name '{repository}' in the catalog of '{}'", data_dir.display()) };
            let body = crate::catalog::repositories::export_key(&data_dir, &row)
                .with_context(|| format!("unable to export the key of repository '{}' ({})", row.name, row.id))?
                .with_context(|| format!("repository '{}' ({}) is not encrypted: it has no key", row.name, row.id))?;
            match out {
                Some(path) => {
                    repository_keys::write_export(&path, &body).with_context(|| format!("unable to write the key to '{}'", path.display()))?;
                    eprintln!("key of repository '{}' ({}) written to {} (mode 0600); keep it apart from the repository", row.name, row.id, path.display());
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&body)?;
                }
            }
            Ok(())
        }
    }
}
