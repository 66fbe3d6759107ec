//! First start: with no user in the catalog, create `admin`.

use std::path::Path;

use anyhow::Context;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, PaginatorTrait, Set};
use shared_types::auth::Role;

use super::password;
use crate::db::entities::users;

/// Where a generated admin password is written (mode 0600).
pub const PASSWORD_FILE: &str = "initial-admin-password";

/// Creates `admin` when there is no user yet. Its password is `preset`
/// (`SENDENSE_ADMIN_PASSWORD`) or a generated one, written to the data
/// directory for the owner only; the log says where, never what it is.
pub async fn ensure_admin(db: &DatabaseConnection, data_dir: &Path, preset: Option<&str>) -> anyhow::Result<()> {
    if users::Entity::find().count(db).await? > 0 {
        return Ok(());
    }
    let (secret, generated) = match preset.filter(|p| !p.is_empty()) {
        Some(p) => {
            shared_types::auth::validate_password(p).map_err(|msg| anyhow::anyhow!("SENDENSE_ADMIN_PASSWORD: {msg}"))?;
            (p.to_owned(), false)
        }
        None => (password::generate(), true),
    };
    // The file first: a user whose generated password was lost would lock everyone out.
    let file = data_dir.join(PASSWORD_FILE);
    if generated {
        write_private(&file, &format!("{secret}\n")).with_context(|| format!("unable to write '{}'", file.display()))?;
    }
    let now = Utc::now();
    users::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        username: Set("admin".into()),
        password_hash: Set(password::hash(secret.clone()).await?),
        role: Set(Role::Admin.as_str().into()),
        disabled: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        last_login_at: Set(None),
    }
    .insert(db)
    .await
    .context("unable to create the admin user")?;

    if generated {
        tracing::warn!(
            username = "admin",
            file = %file.display(),
            "created the first user; its password is in the file (readable by the owner only): sign in with it and change it"
        );
    } else {
        tracing::info!(username = "admin", "created the first user with the password from SENDENSE_ADMIN_PASSWORD");
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}
