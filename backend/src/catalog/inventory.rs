//! Discovery: reading a platform's inventory off the async threads and
//! applying it to the catalog (the platform's record and networks, and every
//! managed VM of that platform: facts, disks, NICs, seen or missing).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use shared_types::discovery::PlatformStatus;
use shared_types::platform::{HostInventory, PlatformKind, VmInfo};
use shared_types::vms::VmStatus;
use shared_types::NamedRef;

use super::{new_id, to_i64, wire};
use crate::db::entities::{networks, platforms, vm_contexts, vm_disks, vm_nics};
use crate::platforms::{Platform, PlatformError};

/// Rows per multi-row insert or `IN` list (well under SQLite's and PostgreSQL's bind limits).
const BATCH: usize = 500;

/// Opens a platform endpoint. Blocking.
pub fn connect(kind: PlatformKind, address: &str) -> Result<Box<dyn Platform>, PlatformError> {
    match kind {
        PlatformKind::Kvm if crate::platforms::libvirt::is_uri(address) => {
            crate::platforms::libvirt::check_uri(address).map_err(PlatformError::Invalid)?;
            Ok(Box::new(crate::platforms::libvirt::LibvirtPlatform::new(address.trim())))
        }
        PlatformKind::Kvm => Err(PlatformError::Invalid(crate::platforms::libvirt::not_a_uri(address))),
        other => Err(PlatformError::Invalid(format!(
            "{} platforms cannot be added yet; only KVM/QEMU hosts (kind 'kvm') can",
            other.label()
        ))),
    }
}

/// The inventory of a platform, read on a blocking thread; the error is the
/// connector's message, naming the host, VM or tool at fault.
pub async fn read(kind: PlatformKind, address: String) -> Result<HostInventory, String> {
    read_with_progress(kind, address, |_, _| {}).await
}

/// [`read`], calling `progress(done, total)` as VM definitions are read.
pub async fn read_with_progress(
    kind: PlatformKind,
    address: String,
    progress: impl Fn(usize, usize) + Send + 'static,
) -> Result<HostInventory, String> {
    tokio::task::spawn_blocking(move || {
        connect(kind, &address).and_then(|p| p.inventory_with_progress(&progress)).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("discovery stopped unexpectedly: {e}")))
}

/// Records a new platform (online, not yet discovered); the caller applies
/// its inventory or records the failure next.
pub async fn insert_platform(db: &DatabaseConnection, name: &str, kind: PlatformKind, address: &str) -> Result<platforms::Model, DbErr> {
    use sea_orm::Set;
    let now = Utc::now();
    platforms::ActiveModel {
        id: Set(new_id()),
        name: Set(name.to_owned()),
        kind: Set(wire(&kind)),
        address: Set(address.to_owned()),
        status: Set(PlatformStatus::Online.as_str().to_owned()),
        last_discovery_at: Set(None),
        last_error: Set(None),
        discovered_vms: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
}

/// Records a failed discovery on the platform.
pub async fn record_failure(db: &DatabaseConnection, platform: platforms::Model, message: &str) -> Result<platforms::Model, DbErr> {
    let mut active = platform.into_active_model();
    active.status = Set(PlatformStatus::Error.as_str().to_owned());
    active.last_error = Set(Some(message.to_owned()));
    active.last_discovery_at = Set(Some(Utc::now()));
    active.updated_at = Set(Utc::now());
    active.update(db).await
}

/// Rows for a newly managed VM.
pub struct NewContext {
    pub context: vm_contexts::ActiveModel,
    pub disks: Vec<vm_disks::ActiveModel>,
    pub nics: Vec<vm_nics::ActiveModel>,
}

pub fn new_context(platform_id: &str, vm: &VmInfo, group_id: Option<String>, now: DateTime<Utc>) -> NewContext {
    let id = new_id();
    NewContext {
        context: vm_contexts::ActiveModel {
            id: Set(id.clone()),
            platform_id: Set(platform_id.to_owned()),
            platform_vm_id: Set(vm.id.clone()),
            name: Set(vm.name.clone()),
            vcpus: Set(i32::try_from(vm.vcpus).unwrap_or(i32::MAX)),
            memory_mib: Set(to_i64(vm.memory_mib)),
            power: Set(wire(&vm.power)),
            power_since: Set(None),
            os: Set(wire(&vm.os)),
            firmware: Set(wire(&vm.firmware)),
            role: Set(vm.role.clone()),
            capacity_bytes: Set(to_i64(vm.capacity_bytes())),
            group_id: Set(group_id),
            status: Set(VmStatus::Active.as_str().to_owned()),
            created_at: Set(now),
            last_seen_at: Set(now),
        },
        disks: disk_rows(&id, vm),
        nics: nic_rows(&id, vm),
    }
}

fn disk_rows(vm_context_id: &str, vm: &VmInfo) -> Vec<vm_disks::ActiveModel> {
    vm.disks
        .iter()
        .map(|d| vm_disks::ActiveModel {
            vm_context_id: Set(vm_context_id.to_owned()),
            name: Set(d.name.clone()),
            capacity_bytes: Set(to_i64(d.capacity_bytes)),
            allocated_bytes: Set(to_i64(d.allocated_bytes)),
            format: Set(d.format.qemu_name().to_owned()),
            cbt: Set(d.cbt),
            ..Default::default()
        })
        .collect()
}

fn nic_rows(vm_context_id: &str, vm: &VmInfo) -> Vec<vm_nics::ActiveModel> {
    vm.nics
        .iter()
        .map(|n| vm_nics::ActiveModel {
            vm_context_id: Set(vm_context_id.to_owned()),
            mac: Set(n.mac.clone()),
            network: Set(n.network.clone()),
            model: Set(n.model.clone()),
            ..Default::default()
        })
        .collect()
}

/// Inserts many rows in batches.
pub async fn insert_batched<A>(db: &impl ConnectionTrait, rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<A> = rows.by_ref().take(BATCH).collect();
        <A::Entity as EntityTrait>::insert_many(batch).exec_without_returning(db).await?;
    }
    Ok(())
}

/// Inserts newly managed VMs with their disks and NICs.
pub async fn insert_contexts(db: &impl ConnectionTrait, new: Vec<NewContext>) -> Result<(), DbErr> {
    let mut contexts = Vec::with_capacity(new.len());
    let mut disks = Vec::new();
    let mut nics = Vec::new();
    for n in new {
        contexts.push(n.context);
        disks.extend(n.disks);
        nics.extend(n.nics);
    }
    insert_batched(db, contexts).await?;
    insert_batched(db, disks).await?;
    insert_batched(db, nics).await
}

/// Applies a successful discovery: the platform is online, its networks are
/// replaced, every managed VM it reports is refreshed and seen, and managed
/// VMs it no longer reports are marked missing (and returned).
pub async fn apply(db: &DatabaseConnection, platform: platforms::Model, inv: &HostInventory) -> Result<(platforms::Model, Vec<NamedRef>), DbErr> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let platform_id = platform.id.clone();

    let mut active = platform.into_active_model();
    active.status = Set(PlatformStatus::Online.as_str().to_owned());
    active.last_error = Set(None);
    active.last_discovery_at = Set(Some(now));
    active.discovered_vms = Set(to_i64(inv.vms.len() as u64));
    active.updated_at = Set(now);
    let platform = active.update(&txn).await?;

    networks::Entity::delete_many().filter(networks::Column::PlatformId.eq(platform_id.clone())).exec(&txn).await?;
    let nets = inv.networks.iter().map(|n| networks::ActiveModel {
        platform_id: Set(platform_id.clone()),
        name: Set(n.name.clone()),
        bridge: Set(n.bridge.clone()),
        cidr: Set(n.cidr.clone()),
        vlan: Set(n.vlan.map(i32::from)),
        isolated: Set(n.isolated),
        ..Default::default()
    });
    insert_batched(&txn, nets.collect()).await?;

    let managed = vm_contexts::Entity::find().filter(vm_contexts::Column::PlatformId.eq(platform_id.clone())).all(&txn).await?;
    let of_platform = || {
        Query::select()
            .column(vm_contexts::Column::Id)
            .from(vm_contexts::Entity)
            .and_where(Expr::col(vm_contexts::Column::PlatformId).eq(platform_id.clone()))
            .to_owned()
    };
    let mut disks: HashMap<String, Vec<vm_disks::Model>> = HashMap::new();
    for d in vm_disks::Entity::find()
        .filter(vm_disks::Column::VmContextId.in_subquery(of_platform()))
        .order_by_asc(vm_disks::Column::Id)
        .all(&txn)
        .await?
    {
        disks.entry(d.vm_context_id.clone()).or_default().push(d);
    }
    let mut nics: HashMap<String, Vec<vm_nics::Model>> = HashMap::new();
    for n in vm_nics::Entity::find()
        .filter(vm_nics::Column::VmContextId.in_subquery(of_platform()))
        .order_by_asc(vm_nics::Column::Id)
        .all(&txn)
        .await?
    {
        nics.entry(n.vm_context_id.clone()).or_default().push(n);
    }

    let reported: HashMap<&str, &VmInfo> = inv.vms.iter().map(|v| (v.id.as_str(), v)).collect();
    let mut seen = Vec::new();
    let mut missing = Vec::new();
    for ctx in managed {
        let Some(vm) = reported.get(ctx.platform_vm_id.as_str()) else {
            missing.push(ctx.id.clone());
            continue;
        };
        seen.push(ctx.id.clone());
        let fresh = new_context(&platform_id, vm, ctx.group_id.clone(), ctx.created_at);
        let facts_changed = ctx.name != vm.name
            || ctx.vcpus != *fresh.context.vcpus.as_ref()
            || ctx.memory_mib != *fresh.context.memory_mib.as_ref()
            || ctx.power != *fresh.context.power.as_ref()
            || ctx.os != *fresh.context.os.as_ref()
            || ctx.firmware != *fresh.context.firmware.as_ref()
            || ctx.role != vm.role
            || ctx.capacity_bytes != *fresh.context.capacity_bytes.as_ref();
        if facts_changed {
            let mut a = ctx.clone().into_active_model();
            a.name = fresh.context.name;
            a.vcpus = fresh.context.vcpus;
            a.memory_mib = fresh.context.memory_mib;
            if ctx.power != *fresh.context.power.as_ref() {
                a.power_since = Set(Some(chrono::Utc::now()));
            }
            a.power = fresh.context.power;
            a.os = fresh.context.os;
            a.firmware = fresh.context.firmware;
            a.role = fresh.context.role;
            a.capacity_bytes = fresh.context.capacity_bytes;
            a.update(&txn).await?;
        }
        let old_disks: Vec<_> = disks
            .remove(&ctx.id)
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.name, d.capacity_bytes, d.allocated_bytes, d.format, d.cbt))
            .collect();
        let new_disks: Vec<_> = vm
            .disks
            .iter()
            .map(|d| (d.name.clone(), to_i64(d.capacity_bytes), to_i64(d.allocated_bytes), d.format.qemu_name().to_owned(), d.cbt))
            .collect();
        if old_disks != new_disks {
            vm_disks::Entity::delete_many().filter(vm_disks::Column::VmContextId.eq(ctx.id.clone())).exec(&txn).await?;
            insert_batched(&txn, disk_rows(&ctx.id, vm)).await?;
        }
        let old_nics: Vec<_> = nics.remove(&ctx.id).unwrap_or_default().into_iter().map(|n| (n.mac, n.network, n.model)).collect();
        let new_nics: Vec<_> = vm.nics.iter().map(|n| (n.mac.clone(), n.network.clone(), n.model.clone())).collect();
        if old_nics != new_nics {
            vm_nics::Entity::delete_many().filter(vm_nics::Column::VmContextId.eq(ctx.id.clone())).exec(&txn).await?;
            insert_batched(&txn, nic_rows(&ctx.id, vm)).await?;
        }
    }
    for batch in seen.chunks(BATCH) {
        vm_contexts::Entity::update_many()
            .col_expr(vm_contexts::Column::LastSeenAt, Expr::value(now))
            .col_expr(vm_contexts::Column::Status, Expr::value(VmStatus::Active.as_str()))
            .filter(vm_contexts::Column::Id.is_in(batch.to_vec()))
            .exec(&txn)
            .await?;
    }
    for batch in missing.chunks(BATCH) {
        vm_contexts::Entity::update_many()
            .col_expr(vm_contexts::Column::Status, Expr::value(VmStatus::Missing.as_str()))
            .filter(vm_contexts::Column::Id.is_in(batch.to_vec()))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;

    let gone = if missing.is_empty() {
        Vec::new()
    } else {
        let mut refs = Vec::new();
        for batch in missing.chunks(BATCH) {
            let rows = vm_contexts::Entity::find().filter(vm_contexts::Column::Id.is_in(batch.to_vec())).all(db).await?;
            refs.extend(rows.into_iter().map(|r| NamedRef { id: r.id, name: r.name }));
        }
        refs
    };
    Ok((platform, gone))
}
