//! The catalog: where it lives, opening it, and its SeaORM entities.

pub mod entities;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// Which database engine holds the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    Sqlite,
    Postgres,
}

impl CatalogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogKind::Sqlite => "sqlite",
            CatalogKind::Postgres => "postgres",
        }
    }
}

/// The catalog URL: `database_url` when given, else an SQLite file in the
/// data directory.
pub fn catalog_url(data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<(String, CatalogKind)> {
    match database_url.map(str::trim).filter(|u| !u.is_empty()) {
        None => {
            let file = data_dir.join("catalog.sqlite");
            Ok((format!("sqlite://{}?mode=rwc", file.display()), CatalogKind::Sqlite))
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok((url.to_string(), CatalogKind::Postgres))
        }
        Some(url) if url.starts_with("sqlite:") => Ok((url.to_string(), CatalogKind::Sqlite)),
        Some(url) => {
            let scheme = url.split(':').next().unwrap_or_default();
            anyhow::bail!(
                "DATABASE_URL must start with postgres:// or sqlite: (got '{scheme}:...'); \
                 leave it unset to use the embedded SQLite catalog"
            )
        }
    }
}

/// The file of an SQLite catalog URL (`sqlite://PATH?mode=rwc`), when it names one.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Connects to the catalog and applies every pending migration.
pub async fn open(url: &str, kind: CatalogKind) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false).connect_timeout(Duration::from_secs(10));
    if kind == CatalogKind::Sqlite {
        // SQLite allows one writer; a small pool avoids lock contention.
        options.max_connections(4);
    }
    let db = Database::connect(options)
        .await
        .with_context(|| format!("unable to open the {} catalog - {}", kind.as_str(), redact(url)))?;
    Migrator::up(&db, None)
        .await
        .with_context(|| format!("unable to migrate the {} catalog", kind.as_str()))?;
    Ok(db)
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}://{}@{}", &url[..scheme_end], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_catalog_from_the_url() {
        let dir = Path::new("/var/lib/sendense");
        let (url, kind) = catalog_url(dir, None).unwrap();
        assert_eq!(kind, CatalogKind::Sqlite);
        assert_eq!(url, "sqlite:///var/lib/sendense/catalog.sqlite?mode=rwc");
        assert_eq!(catalog_url(dir, Some("postgres://u@h/db")).unwrap().1, CatalogKind::Postgres);
        assert_eq!(catalog_url(dir, Some("  ")).unwrap().1, CatalogKind::Sqlite);
        let err = catalog_url(dir, Some("mysql://h/db")).unwrap_err().to_string();
        assert!(err.contains("mysql:"), "{err}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://bob:secret@db:5432/x"), "postgres://bob@db:5432/x");
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }
}
