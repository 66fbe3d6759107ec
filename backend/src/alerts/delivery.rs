//! The notification queue: each alert event becomes one
//! `notification_deliveries` row per enabled target whose minimum severity
//! it reaches (queued before any attempt, so a restart loses none). A
//! worker sends what is due, oldest first; a failure is retried after each
//! of the retry delays in turn, then the delivery is `failed` for good.
//! Every attempt's outcome is kept on the target (`last_*`), which the
//! cockpit shows beside it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use shared_types::alerts::{AlertRecord, AlertSeverity, WebhookPayload};
use tokio_util::sync::CancellationToken;

use super::targets::{settings, Settings};
use super::{secrets, smtp, webhook, AlertCenter};
use crate::catalog::new_id;
use crate::db::entities::{notification_deliveries, notification_targets};

pub const EVENT_RAISED: &str = "alert.raised";
pub const EVENT_RESOLVED: &str = "alert.resolved";
pub const EVENT_TEST: &str = "test";

pub const STATE_PENDING: &str = "pending";
pub const STATE_DELIVERED: &str = "delivered";
pub const STATE_FAILED: &str = "failed";

/// Waits between attempts: 6 attempts over about two and a half hours.
pub const DEFAULT_RETRY_DELAYS: [Duration; 5] =
    [Duration::from_secs(30), Duration::from_secs(120), Duration::from_secs(600), Duration::from_secs(1800), Duration::from_secs(7200)];

/// Longest sleep of the worker when nothing is due.
const IDLE: Duration = Duration::from_secs(60);
/// Deliveries sent per pass.
const BATCH: u64 = 20;

/// Queues `event` of `alert` for every enabled target it is routed to.
pub async fn enqueue(center: &AlertCenter, alert: &AlertRecord, event: &str) -> Result<usize, DbErr> {
    let db = center.db();
    let targets = notification_targets::Entity::find().filter(notification_targets::Column::Enabled.eq(true)).all(db).await?;
    let mut n = 0;
    for t in targets {
        let min = AlertSeverity::parse(&t.min_severity).unwrap_or(AlertSeverity::Critical);
        if alert.severity.rank() < min.rank() {
            continue;
        }
        let id = new_id();
        let payload = WebhookPayload { event: event.to_owned(), delivery_id: id.clone(), sent_at: Utc::now(), alert: Some(alert.clone()) };
        let now = Utc::now();
        notification_deliveries::ActiveModel {
            id: Set(id),
            target_id: Set(t.id.clone()),
            alert_id: Set(Some(alert.id.clone())),
            event: Set(event.to_owned()),
            payload: Set(serde_json::to_string(&payload).unwrap_or_default()),
            state: Set(STATE_PENDING.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            delivered_at: Set(None),
        }
        .insert(db)
        .await?;
        n += 1;
    }
    if n > 0 {
        center.inner.wake.notify_one();
    }
    Ok(n)
}

/// The mail for a payload.
pub fn mail_of(p: &WebhookPayload) -> smtp::Mail {
    let Some(a) = &p.alert else {
        return smtp::Mail {
            subject: "[Sendense] Test notification".into(),
            body: format!(
                "This is a test notification from Sendense, sent {} UTC.\nAlerts routed to this address will arrive like this one.\n",
                p.sent_at.format("%Y-%m-%d %H:%M:%S")
            ),
        };
    };
    let head = if p.event == EVENT_RESOLVED { "Resolved".to_owned() } else { a.severity.as_str().to_uppercase() };
    let mut body = format!(
        "{}\n\n{}\n\nSeverity: {}\nSource: {} {}\nFirst seen: {} UTC\nLast seen: {} UTC\nTimes raised: {}\n",
        a.title,
        a.message,
        a.severity,
        a.source_kind,
        a.source_id.as_deref().unwrap_or("-"),
        a.first_seen.format("%Y-%m-%d %H:%M:%S"),
        a.last_seen.format("%Y-%m-%d %H:%M:%S"),
        a.count
    );
    if let Some(j) = &a.job_id {
        body.push_str(&format!("Job: {j}\n"));
    }
    if let (Some(at), Some(why)) = (a.resolved_at, &a.resolution) {
        body.push_str(&format!("Resolved: {} UTC ({why})\n", at.format("%Y-%m-%d %H:%M:%S")));
    }
    body.push_str(&format!("Alert: {}\n", a.id));
    smtp::Mail { subject: format!("[Sendense] {head}: {}", a.title), body }
}

/// One attempt to send `payload` to `target`.
pub async fn send(data_dir: &Path, target: &notification_targets::Model, payload: &WebhookPayload) -> Result<(), String> {
    let secret = match &target.secret {
        Some(s) => Some(secrets::open(data_dir, &target.id, s).map_err(|e| e.to_string())?),
        None => None,
    };
    match settings(target)? {
        Settings::Webhook { webhook: w } => {
            let secret = secret.ok_or("the webhook has no signing secret: enter one")?;
            let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
            webhook::post(&w.url, &secret, &payload.event, &payload.delivery_id, body).await
        }
        Settings::Smtp { smtp: s } => smtp::send(&s, secret.as_deref(), &mail_of(payload)).await,
    }
}

/// Keeps the outcome of an attempt on its target.
pub async fn record_outcome(center: &AlertCenter, target_id: &str, event: &str, outcome: &Result<(), String>) -> Result<(), DbErr> {
    let Some(t) = notification_targets::Entity::find_by_id(target_id.to_owned()).one(center.db()).await? else { return Ok(()) };
    let mut a: notification_targets::ActiveModel = t.into();
    a.last_at = Set(Some(Utc::now()));
    a.last_ok = Set(Some(outcome.is_ok()));
    a.last_error = Set(outcome.as_ref().err().cloned());
    a.last_event = Set(Some(event.to_owned()));
    a.update(center.db()).await?;
    Ok(())
}

/// Sends what is due; the time the next pending delivery is due, if any.
pub async fn run_due(center: &AlertCenter, data_dir: &Path) -> Result<Option<chrono::DateTime<Utc>>, DbErr> {
    let db = center.db();
    let now = Utc::now();
    let due = notification_deliveries::Entity::find()
        .filter(notification_deliveries::Column::State.eq(STATE_PENDING))
        .filter(notification_deliveries::Column::NextAttemptAt.lte(now))
        .order_by_asc(notification_deliveries::Column::NextAttemptAt)
        .limit(BATCH)
        .all(db)
        .await?;
    for d in due {
        let target = notification_targets::Entity::find_by_id(d.target_id.clone()).one(db).await?;
        let outcome = match (&target, serde_json::from_str::<WebhookPayload>(&d.payload)) {
            (None, _) => Err("the target was removed".to_owned()),
            (Some(t), _) if !t.enabled => Err("the target is disabled".to_owned()),
            (Some(t), Ok(mut p)) => {
                p.sent_at = Utc::now();
                send(data_dir, t, &p).await
            }
            (Some(_), Err(e)) => Err(format!("the queued notification does not read back: {e}")),
        };
        let attempts = d.attempts.saturating_add(1);
        let delays = center.inner.retry_delays.lock().map(|d| d.clone()).unwrap_or_default();
        let mut a: notification_deliveries::ActiveModel = d.clone().into();
        a.attempts = Set(attempts);
        match &outcome {
            Ok(()) => {
                a.state = Set(STATE_DELIVERED.to_owned());
                a.delivered_at = Set(Some(Utc::now()));
                a.last_error = Set(None);
                tracing::info!(delivery = %d.id, target = %d.target_id, event = %d.event, "notification delivered");
            }
            Err(e) => {
                a.last_error = Set(Some(e.clone()));
                let retry = usize::try_from(attempts - 1).ok().and_then(|i| delays.get(i)).filter(|_| target.as_ref().is_some_and(|t| t.enabled));
                match retry {
                    Some(wait) => {
                        a.next_attempt_at = Set(Utc::now() + chrono::Duration::from_std(*wait).unwrap_or(chrono::Duration::seconds(60)));
                        tracing::warn!(delivery = %d.id, target = %d.target_id, attempt = attempts, error = %e, "notification not delivered; will retry");
                    }
                    None => {
                        a.state = Set(STATE_FAILED.to_owned());
                        tracing::error!(delivery = %d.id, target = %d.target_id, attempts, error = %e, "notification not delivered; giving up");
                    }
                }
            }
        }
        a.update(db).await?;
        if target.is_some() {
            record_outcome(center, &d.target_id, &d.event, &outcome).await?;
        }
    }
    let next = notification_deliveries::Entity::find()
        .filter(notification_deliveries::Column::State.eq(STATE_PENDING))
        .order_by_asc(notification_deliveries::Column::NextAttemptAt)
        .one(db)
        .await?;
    Ok(next.map(|d| d.next_attempt_at))
}

/// Starts the worker; it stops with `shutdown`.
pub fn spawn(center: AlertCenter, data_dir: PathBuf, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wait = match run_due(&center, &data_dir).await {
                Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(IDLE),
                Ok(None) => IDLE,
                Err(e) => {
                    tracing::error!(error = %e, "sending notifications");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = center.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}
