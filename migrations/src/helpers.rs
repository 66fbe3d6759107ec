//! Small builders shared by the migrations (portable SeaQuery only).

use sea_orm_migration::prelude::*;

/// A foreign key from `table.column` to `to.to_column`.
pub(crate) fn fk<T, C, U, D>(name: &str, table: T, column: C, to: U, to_column: D, on_delete: ForeignKeyAction) -> ForeignKeyCreateStatement
where
    T: IntoTableRef,
    C: IntoIden,
    U: IntoTableRef,
    D: IntoIden,
{
    ForeignKey::create().name(name).from(table, column).to(to, to_column).on_delete(on_delete).to_owned()
}

pub(crate) fn index<T, C>(name: &str, table: T, columns: impl IntoIterator<Item = C>) -> IndexCreateStatement
where
    T: IntoTableRef,
    C: IntoIndexColumn,
{
    let mut stmt = Index::create();
    stmt.name(name).table(table).if_not_exists();
    for c in columns {
        stmt.col(c);
    }
    stmt.to_owned()
}

pub(crate) fn unique_index<T, C>(name: &str, table: T, columns: impl IntoIterator<Item = C>) -> IndexCreateStatement
where
    T: IntoTableRef,
    C: IntoIndexColumn,
{
    let mut stmt = index(name, table, columns);
    stmt.unique();
    stmt
}
