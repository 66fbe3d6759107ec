//! Repository backends (issue 18): where an object-store repository lives
//! (S3-compatible: endpoint, region, bucket, prefix, addressing, access key;
//! Azure Blob: account, container, prefix, endpoint), its secret sealed with
//! the catalog secret key (`secret_sealed`: never plaintext), storage-level
//! immutability (`immutable_days`, `object_lock_mode`), whether it is
//! encrypted, and which repository new flows go to (`is_default`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Repositories {
    Table,
    Endpoint,
    Region,
    Bucket,
    Container,
    Prefix,
    VirtualHosted,
    Account,
    AccessKeyId,
    SecretSealed,
    CredentialKind,
    ImmutableDays,
    ObjectLockMode,
    Encrypted,
    IsDefault,
}

fn columns() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(Repositories::Endpoint).string_len(2048).null().to_owned(),
        ColumnDef::new(Repositories::Region).string_len(64).null().to_owned(),
        ColumnDef::new(Repositories::Bucket).string_len(255).null().to_owned(),
        ColumnDef::new(Repositories::Container).string_len(255).null().to_owned(),
        ColumnDef::new(Repositories::Prefix).string_len(1024).null().to_owned(),
        ColumnDef::new(Repositories::VirtualHosted).boolean().not_null().default(false).to_owned(),
        ColumnDef::new(Repositories::Account).string_len(255).null().to_owned(),
        ColumnDef::new(Repositories::AccessKeyId).string_len(255).null().to_owned(),
        ColumnDef::new(Repositories::SecretSealed).text().null().to_owned(),
        ColumnDef::new(Repositories::CredentialKind).string_len(16).null().to_owned(),
        ColumnDef::new(Repositories::ImmutableDays).integer().not_null().default(0).to_owned(),
        ColumnDef::new(Repositories::ObjectLockMode).string_len(16).null().to_owned(),
        ColumnDef::new(Repositories::Encrypted).boolean().not_null().default(false).to_owned(),
        ColumnDef::new(Repositories::IsDefault).boolean().not_null().default(false).to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds a single column per ALTER.
        for mut column in columns() {
            manager.alter_table(Table::alter().table(Repositories::Table).add_column(&mut column).to_owned()).await?;
        }
        // The repository every install starts with stays the default.
        let first = Query::update()
            .table(Repositories::Table)
            .value(Repositories::IsDefault, true)
            .and_where(Expr::col(Alias::new("name")).eq("local"))
            .to_owned();
        let db = manager.get_connection();
        db.execute(db.get_database_backend().build(&first)).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Repositories::IsDefault,
            Repositories::Encrypted,
            Repositories::ObjectLockMode,
            Repositories::ImmutableDays,
            Repositories::CredentialKind,
            Repositories::SecretSealed,
            Repositories::AccessKeyId,
            Repositories::Account,
            Repositories::VirtualHosted,
            Repositories::Prefix,
            Repositories::Container,
            Repositories::Bucket,
            Repositories::Region,
            Repositories::Endpoint,
        ] {
            manager.alter_table(Table::alter().table(Repositories::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
