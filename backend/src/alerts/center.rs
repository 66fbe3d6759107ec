//! [`AlertCenter`]: raise, fold, resolve, acknowledge; the catalog's
//! `alerts` rows to the API's [`AlertRecord`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set};
use shared_types::alerts::{AlertCount, AlertRecord, AlertSeverity, AlertSourceKind, AlertState, KEY_MAX};
use shared_types::ws::{Alert, ServerMessage};
use tokio::sync::{broadcast, Mutex, Notify};

use crate::catalog::{new_id, to_u64};
use crate::db::entities::alerts;

/// An alert to raise.
#[derive(Debug, Clone)]
pub struct Raise {
    /// What folds repeats together ([`super::keys`]).
    pub key: String,
    pub severity: AlertSeverity,
    pub source_kind: AlertSourceKind,
    pub source_id: Option<String>,
    pub title: String,
    pub message: String,
    pub job_id: Option<String>,
}

/// Why an acknowledgement was refused.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no alert has id '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

pub(super) struct Inner {
    db: DatabaseConnection,
    events: broadcast::Sender<ServerMessage>,
    /// Serialises raises and resolutions, so a fold never loses a count.
    write: Mutex<()>,
    /// Wakes the delivery worker when a notification is queued.
    pub(super) wake: Notify,
    /// Waits between delivery attempts ([`super::delivery::DEFAULT_RETRY_DELAYS`]).
    pub(super) retry_delays: std::sync::Mutex<Vec<Duration>>,
}

/// Handle to the alert center; cheap to clone.
#[derive(Clone)]
pub struct AlertCenter {
    pub(super) inner: Arc<Inner>,
}

/// A title or key cut to what the catalog keeps.
fn clip(s: &str) -> String {
    if s.chars().count() <= KEY_MAX {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(KEY_MAX - 1).collect();
        t.push('…');
        t
    }
}

pub fn state_of(row: &alerts::Model) -> AlertState {
    if row.resolved_at.is_some() {
        AlertState::Resolved
    } else if row.acknowledged_at.is_some() {
        AlertState::Acknowledged
    } else {
        AlertState::Open
    }
}

pub fn to_api(row: alerts::Model) -> AlertRecord {
    AlertRecord {
        state: state_of(&row),
        severity: AlertSeverity::parse(&row.severity).unwrap_or(AlertSeverity::Warning),
        source_kind: AlertSourceKind::parse(&row.source_kind).unwrap_or(AlertSourceKind::System),
        id: row.id,
        source_id: row.source_id,
        fold_key: row.fold_key,
        title: row.title,
        message: row.message,
        job_id: row.job_id,
        first_seen: row.first_seen,
        last_seen: row.last_seen,
        count: to_u64(row.count),
        acknowledged_by: row.acknowledged_by,
        acknowledged_at: row.acknowledged_at,
        resolved_at: row.resolved_at,
        resolution: row.resolution,
    }
}

impl AlertCenter {
    pub fn new(db: DatabaseConnection, events: broadcast::Sender<ServerMessage>) -> AlertCenter {
        AlertCenter {
            inner: Arc::new(Inner {
                db,
                events,
                write: Mutex::new(()),
                wake: Notify::new(),
                retry_delays: std::sync::Mutex::new(super::delivery::DEFAULT_RETRY_DELAYS.to_vec()),
            }),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// Sets the waits between delivery attempts (tests shorten them); the
    /// number of waits + 1 is the number of attempts.
    pub fn set_retry_delays(&self, delays: Vec<Duration>) {
        if let Ok(mut d) = self.inner.retry_delays.lock() {
            *d = delays;
        }
    }

    /// Raises an alert, or folds it into the one with the same key: a
    /// repeat adds one to the count, takes the latest message, severity and
    /// job, and reopens (unacknowledged) an alert that had been resolved.
    /// Notification targets hear of new and reopened alerts, and of repeats
    /// that became more severe.
    pub async fn raise(&self, r: Raise) -> Result<AlertRecord, DbErr> {
        let db = &self.inner.db;
        let now = Utc::now();
        let key = clip(&r.key);
        let (row, notify) = {
            let _guard = self.inner.write.lock().await;
            match alerts::Entity::find().filter(alerts::Column::FoldKey.eq(key.clone())).one(db).await? {
                None => {
                    let row = alerts::ActiveModel {
                        id: Set(new_id()),
                        fold_key: Set(key),
                        severity: Set(r.severity.as_str().to_owned()),
                        source_kind: Set(r.source_kind.as_str().to_owned()),
                        source_id: Set(r.source_id.clone()),
                        title: Set(clip(&r.title)),
                        message: Set(r.message.clone()),
                        job_id: Set(r.job_id.clone()),
                        first_seen: Set(now),
                        last_seen: Set(now),
                        count: Set(1),
                        acknowledged_by: Set(None),
                        acknowledged_at: Set(None),
                        resolved_at: Set(None),
                        resolution: Set(None),
                    }
                    .insert(db)
                    .await?;
                    (row, true)
                }
                Some(old) => {
                    let reopened = old.resolved_at.is_some();
                    let worse = AlertSeverity::parse(&old.severity).is_none_or(|s| r.severity.rank() > s.rank());
                    let count = old.count.saturating_add(1);
                    let mut a: alerts::ActiveModel = old.into();
                    a.severity = Set(r.severity.as_str().to_owned());
                    a.source_kind = Set(r.source_kind.as_str().to_owned());
                    a.source_id = Set(r.source_id.clone());
                    a.title = Set(clip(&r.title));
                    a.message = Set(r.message.clone());
                    a.job_id = Set(r.job_id.clone());
                    a.last_seen = Set(now);
                    a.count = Set(count);
                    if reopened {
                        a.resolved_at = Set(None);
                        a.resolution = Set(None);
                        a.acknowledged_by = Set(None);
                        a.acknowledged_at = Set(None);
                    }
                    (a.update(db).await?, reopened || worse)
                }
            }
        };
        let record = to_api(row);
        let _ = self.inner.events.send(ServerMessage::Alert(Alert {
            id: record.id.clone(),
            severity: record.severity,
            title: record.title.clone(),
            message: record.message.clone(),
            at: record.last_seen,
            job_id: record.job_id.clone(),
        }));
        self.announce_count().await;
        if notify {
            self.notify(&record, super::delivery::EVENT_RAISED).await;
        }
        tracing::warn!(alert = %record.id, key = %record.fold_key, count = record.count, "{}", record.title);
        Ok(record)
    }

    /// Resolves the unresolved alerts with these keys: their cause cleared
    /// (`reason` says how). Returns how many were resolved.
    pub async fn resolve(&self, keys: &[String], reason: &str) -> Result<u64, DbErr> {
        let db = &self.inner.db;
        let mut done = Vec::new();
        {
            let _guard = self.inner.write.lock().await;
            let rows = alerts::Entity::find()
                .filter(alerts::Column::FoldKey.is_in(keys.iter().map(|k| clip(k))))
                .filter(alerts::Column::ResolvedAt.is_null())
                .all(db)
                .await?;
            for row in rows {
                let mut a: alerts::ActiveModel = row.into();
                a.resolved_at = Set(Some(Utc::now()));
                a.resolution = Set(Some(reason.to_owned()));
                done.push(to_api(a.update(db).await?));
            }
        }
        if !done.is_empty() {
            self.announce_count().await;
        }
        for record in &done {
            tracing::info!(alert = %record.id, key = %record.fold_key, "alert resolved: {reason}");
            self.notify(record, super::delivery::EVENT_RESOLVED).await;
        }
        Ok(done.len() as u64)
    }

    /// Records that `user` took the alert on (the first acknowledgement
    /// stands; acknowledging again changes nothing).
    pub async fn acknowledge(&self, id: &str, user: &str) -> Result<AlertRecord, AckError> {
        let db = &self.inner.db;
        let row = {
            let _guard = self.inner.write.lock().await;
            let row = alerts::Entity::find_by_id(id.to_owned()).one(db).await?.ok_or_else(|| AckError::NotFound(id.to_owned()))?;
            if row.acknowledged_at.is_some() {
                row
            } else {
                let mut a: alerts::ActiveModel = row.into();
                a.acknowledged_by = Set(Some(user.to_owned()));
                a.acknowledged_at = Set(Some(Utc::now()));
                a.update(db).await?
            }
        };
        self.announce_count().await;
        Ok(to_api(row))
    }

    /// Open alerts nobody acknowledged.
    pub async fn count(&self) -> Result<AlertCount, DbErr> {
        let open = || {
            alerts::Entity::find().filter(alerts::Column::ResolvedAt.is_null()).filter(alerts::Column::AcknowledgedAt.is_null())
        };
        let unacknowledged = open().count(&self.inner.db).await?;
        let critical = open().filter(alerts::Column::Severity.eq(AlertSeverity::Critical.as_str())).count(&self.inner.db).await?;
        Ok(AlertCount { unacknowledged, critical })
    }

    async fn announce_count(&self) {
        match self.count().await {
            Ok(count) => {
                let _ = self.inner.events.send(ServerMessage::AlertCount(count));
            }
            Err(e) => tracing::warn!(error = %e, "counting alerts"),
        }
    }

    async fn notify(&self, record: &AlertRecord, event: &str) {
        if let Err(e) = super::delivery::enqueue(self, record, event).await {
            tracing::error!(error = %e, alert = %record.id, "queueing the alert's notifications");
        }
    }

}
