//! The alert center: `alerts` (one row per fold key: severity, source by
//! stable id, first/last seen and count of repeats, who acknowledged it and
//! when, when and why it resolved), `notification_targets` (webhooks and
//! SMTP mailboxes with their minimum severity; the secret sealed with the
//! catalog's secret key, never stored in clear; the latest delivery's
//! outcome) and `notification_deliveries` (one message to one target, the
//! queue the notifier retries from with backoff). No foreign keys from
//! deliveries to alerts: a delivery outlives nothing but its target, and is
//! removed with it.

use sea_orm_migration::prelude::*;

use crate::helpers::{fk, index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Alerts {
    Table,
    Id,
    FoldKey,
    Severity,
    SourceKind,
    SourceId,
    Title,
    Message,
    JobId,
    FirstSeen,
    LastSeen,
    Count,
    AcknowledgedBy,
    AcknowledgedAt,
    ResolvedAt,
    Resolution,
}

#[derive(DeriveIden)]
enum NotificationTargets {
    Table,
    Id,
    Name,
    Kind,
    Enabled,
    MinSeverity,
    Config,
    Secret,
    LastAt,
    LastOk,
    LastError,
    LastEvent,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum NotificationDeliveries {
    Table,
    Id,
    TargetId,
    AlertId,
    Event,
    Payload,
    State,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alerts::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Alerts::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(Alerts::FoldKey).string_len(255).not_null())
                    .col(ColumnDef::new(Alerts::Severity).string_len(16).not_null())
                    .col(ColumnDef::new(Alerts::SourceKind).string_len(16).not_null())
                    .col(ColumnDef::new(Alerts::SourceId).string_len(64).null())
                    .col(ColumnDef::new(Alerts::Title).string_len(255).not_null())
                    .col(ColumnDef::new(Alerts::Message).text().not_null())
                    .col(ColumnDef::new(Alerts::JobId).string_len(36).null())
                    .col(ColumnDef::new(Alerts::FirstSeen).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Alerts::LastSeen).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Alerts::Count).big_integer().not_null().default(1))
                    .col(ColumnDef::new(Alerts::AcknowledgedBy).string_len(255).null())
                    .col(ColumnDef::new(Alerts::AcknowledgedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Alerts::ResolvedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Alerts::Resolution).text().null())
                    .to_owned(),
            )
            .await?;
        manager.create_index(unique_index("idx_alerts_fold_key", Alerts::Table, [Alerts::FoldKey])).await?;
        manager.create_index(index("idx_alerts_last_seen", Alerts::Table, [Alerts::LastSeen])).await?;
        manager.create_index(index("idx_alerts_source", Alerts::Table, [Alerts::SourceKind, Alerts::SourceId])).await?;
        manager
            .create_table(
                Table::create()
                    .table(NotificationTargets::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(NotificationTargets::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(NotificationTargets::Name).string_len(255).not_null())
                    .col(ColumnDef::new(NotificationTargets::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(NotificationTargets::Enabled).boolean().not_null().default(true))
                    .col(ColumnDef::new(NotificationTargets::MinSeverity).string_len(16).not_null())
                    .col(ColumnDef::new(NotificationTargets::Config).text().not_null())
                    .col(ColumnDef::new(NotificationTargets::Secret).text().null())
                    .col(ColumnDef::new(NotificationTargets::LastAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(NotificationTargets::LastOk).boolean().null())
                    .col(ColumnDef::new(NotificationTargets::LastError).text().null())
                    .col(ColumnDef::new(NotificationTargets::LastEvent).string_len(32).null())
                    .col(ColumnDef::new(NotificationTargets::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(NotificationTargets::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager.create_index(unique_index("idx_notification_targets_name", NotificationTargets::Table, [NotificationTargets::Name])).await?;
        manager
            .create_table(
                Table::create()
                    .table(NotificationDeliveries::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(NotificationDeliveries::Id).string_len(36).not_null().primary_key())
                    .col(ColumnDef::new(NotificationDeliveries::TargetId).string_len(36).not_null())
                    .col(ColumnDef::new(NotificationDeliveries::AlertId).string_len(36).null())
                    .col(ColumnDef::new(NotificationDeliveries::Event).string_len(32).not_null())
                    .col(ColumnDef::new(NotificationDeliveries::Payload).text().not_null())
                    .col(ColumnDef::new(NotificationDeliveries::State).string_len(16).not_null())
                    .col(ColumnDef::new(NotificationDeliveries::Attempts).integer().not_null().default(0))
                    .col(ColumnDef::new(NotificationDeliveries::NextAttemptAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(NotificationDeliveries::LastError).text().null())
                    .col(ColumnDef::new(NotificationDeliveries::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(NotificationDeliveries::DeliveredAt).timestamp_with_time_zone().null())
                    .foreign_key(&mut fk(
                        "fk_notification_deliveries_target",
                        NotificationDeliveries::Table,
                        NotificationDeliveries::TargetId,
                        NotificationTargets::Table,
                        NotificationTargets::Id,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idx_notification_deliveries_due",
                NotificationDeliveries::Table,
                [NotificationDeliveries::State, NotificationDeliveries::NextAttemptAt],
            ))
            .await?;
        manager
            .create_index(index("idx_notification_deliveries_target", NotificationDeliveries::Table, [NotificationDeliveries::TargetId]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(NotificationDeliveries::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(NotificationTargets::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Alerts::Table).to_owned()).await
    }
}
