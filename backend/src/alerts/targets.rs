//! Notification targets between the catalog (`notification_targets`) and
//! the API: settings as JSON in `config`, the secret sealed
//! ([`super::secrets`]) and never shown.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use shared_types::alerts::{AlertSeverity, DeliveryResult, NotificationTarget, SmtpSettings, TargetKind, WebhookSettings};

use super::delivery::{STATE_FAILED, STATE_PENDING};
use crate::db::entities::{notification_deliveries, notification_targets};

/// What `config` holds, by kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Settings {
    Webhook { webhook: WebhookSettings },
    Smtp { smtp: SmtpSettings },
}

pub fn settings(row: &notification_targets::Model) -> Result<Settings, String> {
    serde_json::from_str(&row.config).map_err(|e| format!("the stored settings of target '{}' do not read back: {e}", row.name))
}

pub fn config_json(kind: TargetKind, webhook: Option<&WebhookSettings>, smtp: Option<&SmtpSettings>) -> String {
    let s = match kind {
        TargetKind::Webhook => serde_json::json!({ "webhook": webhook }),
        TargetKind::Smtp => serde_json::json!({ "smtp": smtp }),
    };
    s.to_string()
}

/// The target as the API shows it, with its queue's figures.
pub async fn to_api(db: &impl ConnectionTrait, row: notification_targets::Model) -> Result<NotificationTarget, DbErr> {
    let count = |state: &'static str| {
        notification_deliveries::Entity::find()
            .filter(notification_deliveries::Column::TargetId.eq(row.id.clone()))
            .filter(notification_deliveries::Column::State.eq(state))
            .count(db)
    };
    let pending = count(STATE_PENDING).await?;
    let failed = count(STATE_FAILED).await?;
    let (webhook, smtp) = match settings(&row) {
        Ok(Settings::Webhook { webhook }) => (Some(webhook), None),
        Ok(Settings::Smtp { smtp }) => (None, Some(smtp)),
        Err(e) => {
            tracing::warn!(error = %e, "reading a notification target");
            (None, None)
        }
    };
    let last_delivery = match (row.last_at, row.last_ok) {
        (Some(at), Some(ok)) => Some(DeliveryResult { at, ok, error: row.last_error.clone(), event: row.last_event.clone().unwrap_or_default() }),
        _ => None,
    };
    Ok(NotificationTarget {
        kind: TargetKind::parse(&row.kind).unwrap_or(TargetKind::Webhook),
        min_severity: AlertSeverity::parse(&row.min_severity).unwrap_or(AlertSeverity::Critical),
        has_secret: row.secret.is_some(),
        id: row.id,
        name: row.name,
        enabled: row.enabled,
        webhook,
        smtp,
        last_delivery,
        pending,
        failed,
        created_at: row.created_at,
    })
}
