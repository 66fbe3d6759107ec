//! `settings`: server-wide key/value settings.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub value: String,
    pub updated_at: ChronoDateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Key of the install id: a UUID made on first start, naming this installation.
pub const INSTALL_ID: &str = "install_id";

/// Reads a setting, or stores `default()` under `key` when it has none.
pub async fn get_or_init(
    db: &DatabaseConnection,
    key: &str,
    default: impl FnOnce() -> String,
) -> Result<String, DbErr> {
    if let Some(found) = Entity::find_by_id(key.to_owned()).one(db).await? {
        return Ok(found.value);
    }
    let value = default();
    let row = ActiveModel {
        key: sea_orm::Set(key.to_owned()),
        value: sea_orm::Set(value.clone()),
        updated_at: sea_orm::Set(chrono::Utc::now()),
    };
    Entity::insert(row).exec(db).await?;
    Ok(value)
}
