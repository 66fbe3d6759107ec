//! Live power states: every platform that can report lifecycle events (a
//! libvirt host) is watched while the server runs; a VM started, paused or
//! stopped on the host (by Sendense, `virsh`, or the guest itself) has its
//! power state written to the catalog and announced to the cockpit
//! (`vm_power`) without a rediscovery.

use std::collections::HashMap;
use std::sync::Mutex;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use shared_types::platform::PowerState;
use shared_types::ws::ServerMessage;
use tokio::sync::{broadcast, mpsc};

use super::wire;
use crate::db::entities::vm_contexts;
use crate::platforms::libvirt::events::{self, PowerEvent, Watch};

pub struct PowerWatches {
    watches: Mutex<HashMap<String, Watch>>,
    tx: mpsc::UnboundedSender<(String, PowerEvent)>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<(String, PowerEvent)>>>,
}

impl Default for PowerWatches {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        PowerWatches { watches: Mutex::new(HashMap::new()), tx, rx: Mutex::new(Some(rx)) }
    }
}

impl PowerWatches {
    /// Watches platform `platform_id` at `address` when it reports events
    /// (a libvirt URI); replaces an earlier watch of it. Call from the
    /// runtime: the first call starts the task that applies the events.
    pub fn watch(&self, db: &DatabaseConnection, events: &broadcast::Sender<ServerMessage>, platform_id: &str, address: &str) {
        if !crate::platforms::libvirt::is_uri(address) {
            return;
        }
        if let Some(rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tokio::spawn(apply(db.clone(), events.clone(), rx));
        }
        let (tx, id) = (self.tx.clone(), platform_id.to_string());
        let watch = events::watch(address, move |e| {
            let _ = tx.send((id.clone(), e));
        });
        self.watches.lock().unwrap_or_else(|e| e.into_inner()).insert(platform_id.to_string(), watch);
    }

    /// Stops watching a platform (removed).
    pub fn unwatch(&self, platform_id: &str) {
        self.watches.lock().unwrap_or_else(|e| e.into_inner()).remove(platform_id);
    }
}

/// Records that managed VM `vm_context_id` is now `power`, with the time
/// the state began, when it is a change; whether it was.
pub async fn record_power(db: &DatabaseConnection, vm_context_id: &str, power: PowerState) -> Result<bool, sea_orm::DbErr> {
    let r = vm_contexts::Entity::update_many()
        .col_expr(vm_contexts::Column::Power, Expr::value(wire(&power)))
        .col_expr(vm_contexts::Column::PowerSince, Expr::value(Some(chrono::Utc::now())))
        .filter(vm_contexts::Column::Id.eq(vm_context_id))
        .filter(vm_contexts::Column::Power.ne(wire(&power)))
        .exec(db)
        .await?;
    Ok(r.rows_affected > 0)
}

async fn apply(db: DatabaseConnection, events: broadcast::Sender<ServerMessage>, mut rx: mpsc::UnboundedReceiver<(String, PowerEvent)>) {
    while let Some((platform_id, e)) = rx.recv().await {
        let rows = vm_contexts::Entity::find()
            .filter(vm_contexts::Column::PlatformId.eq(platform_id.clone()))
            .filter(vm_contexts::Column::PlatformVmId.eq(e.vm_id.clone()))
            .all(&db)
            .await;
        let rows = match rows {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(error = %err, "recording a VM's power change");
                continue;
            }
        };
        // A resync after a reconnect repeats states the catalog has: only changes count.
        for row in rows {
            match record_power(&db, &row.id, e.power).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(vm = %row.name, power = ?e.power, "power changed on the host");
                    let _ = events.send(ServerMessage::VmPower { vm_id: row.id.clone(), power: e.power });
                }
                Err(err) => tracing::warn!(error = %err, vm = %row.name, "recording a VM's power change"),
            }
        }
    }
}
