//! `sendense host ...` and `sendense vm ...`: discovery, VM backup and VM
//! restore from the command line, on the same functions the server runs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use shared_types::platform::{DiskFormat, NicInfo};

use crate::engine::backup::BackupOptions;
use crate::engine::command::{key, workers, Bar, KeyArg, OutputArgs, RepoFlag};
use crate::engine::datastore::Datastore;
use crate::engine::progress::{peak_rss_bytes, Progress};

use super::vm_backup::backup_vm;
use super::vm_restore::{restore_vm, RestoreRequest};

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Discover a KVM host (a libvirt URI or a host directory): VMs, disks,
    /// NICs, networks, storage pools.
    Inventory {
        dir: PathBuf,
        /// The inventory as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Back up every disk of a VM (incremental through change tracking when
    /// the previous snapshot's token still matches); prints the snapshot id.
    Backup {
        /// KVM host: its libvirt URI (qemu:///system, qemu+ssh://user@host/system, qemu+unix:///system?socket=PATH).
        #[arg(long)]
        host: PathBuf,
        /// VM name or uuid.
        #[arg(long)]
        vm: String,
        #[command(flatten)]
        repo: RepoFlag,
        #[command(flatten)]
        key: KeyArg,
        /// Days during which the snapshot cannot be pruned or deleted.
        #[arg(long)]
        immutable_days: Option<u32>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Restore a VM from a snapshot as a new VM on a KVM host.
    Restore {
        #[command(flatten)]
        repo: RepoFlag,
        #[command(flatten)]
        key: KeyArg,
        /// Name of the backed-up VM.
        #[arg(long)]
        vm: String,
        /// `latest` or a snapshot id.
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// Target KVM host: its libvirt URI.
        #[arg(long)]
        to: PathBuf,
        /// Name of the new VM (default: the original name).
        #[arg(long = "as")]
        new_name: Option<String>,
        /// Disk format on the target: qcow2, vmdk, vhdx, vpc, raw.
        #[arg(long, default_value = "qcow2")]
        format: String,
        /// Map a source network to a target one: SRC=DST (repeatable).
        #[arg(long = "network", value_name = "SRC=DST")]
        networks: Vec<String>,
        /// The target's storage pool for the disks (libvirt; default: its pool `default`, else its first active pool).
        #[arg(long)]
        pool: Option<String>,
        /// Record the VM as running once created.
        #[arg(long)]
        power_on: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
}

pub fn run_host(cmd: HostCommand) -> anyhow::Result<()> {
    match cmd {
        HostCommand::Inventory { dir, json } => {
            let host = open_platform(&dir)?;
            let inv = host.inventory()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inv)?);
                return Ok(());
            }
            println!("host {} ({}), {} cores, {} MiB", inv.host.name, inv.host.address, inv.host.cpu_cores, inv.host.memory_mib);
            for n in &inv.networks {
                println!("  network {} bridge={} cidr={}", n.name, n.bridge.as_deref().unwrap_or("-"), n.cidr.as_deref().unwrap_or("-"));
            }
            for p in &inv.storage_pools {
                println!("  pool {} ({}) {} bytes free of {}{}", p.name, p.kind, p.available_bytes, p.capacity_bytes, if p.active { "" } else { ", inactive" });
            }
            for vm in &inv.vms {
                println!("  vm {} [{:?}] {} vCPU {} MiB {:?} {:?} role={}", vm.name, vm.power, vm.vcpus, vm.memory_mib, vm.os, vm.firmware, vm.role.as_deref().unwrap_or("-"));
                for d in &vm.disks {
                    println!("    disk {} {} {} bytes ({} allocated) cbt={}", d.name, d.format.qemu_name(), d.capacity_bytes, d.allocated_bytes, d.cbt);
                }
                for n in &vm.nics {
                    println!("    nic {} {} on {}", n.mac, n.model, n.network);
                }
            }
        }
    }
    Ok(())
}

/// A KVM host by libvirt URI (`qemu:///system`, `qemu+unix:///system?socket=…`)
/// or host directory.
fn open_platform(address: &std::path::Path) -> anyhow::Result<Box<dyn crate::platforms::Platform>> {
    Ok(crate::catalog::inventory::connect(shared_types::platform::PlatformKind::Kvm, &address.to_string_lossy())?)
}

pub fn run_vm(cmd: VmCommand) -> anyhow::Result<()> {
    match cmd {
        VmCommand::Backup { host, vm, repo, key: k, immutable_days, json, out } => {
            let host = open_platform(&host)?;
            let ds = Datastore::open_spec(&repo.spec()?, key(&k))?;
            let mut opts = BackupOptions::new(&vm);
            opts.workers = workers(&out);
            opts.immutable_days = immutable_days;
            let progress = Arc::new(Progress::new());
            let bar = Bar::start(progress.clone(), !out.no_progress, "backup");
            let report = backup_vm(host.as_ref(), &vm, &ds, &opts, &progress);
            drop(bar);
            let report = report?;
            if out.stats {
                eprintln!("{}", serde_json::json!({ "peak_rss_bytes": peak_rss_bytes() }));
            }
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for d in &report.disks {
                    match &d.full_read_reason {
                        None => eprintln!("{}: incremental, {} bytes changed", d.disk, d.changed_bytes),
                        Some(r) => eprintln!("{}: full read ({r})", d.disk),
                    }
                }
                if let Some(q) = &report.quiesce {
                    eprintln!("{q}");
                }
                eprintln!("read {} bytes, wrote {} bytes in {} ms", report.bytes_read, report.bytes_written, report.duration_ms);
                println!("{}", report.snapshot);
            }
        }
        VmCommand::Restore { repo, key: k, vm, snapshot, to, new_name, format, networks, pool, power_on, out } => {
            let target = open_platform(&to)?;
            // Disks are staged in the host directory, or the temporary directory for a libvirt host.
            let staging = if crate::platforms::libvirt::is_uri(&to.to_string_lossy()) { std::env::temp_dir() } else { to.clone() };
            let ds = Datastore::open_spec(&repo.spec()?, key(&k))?;
            let format = DiskFormat::parse(&format)
                .with_context(|| format!("unknown disk format '{format}' (use qcow2, vmdk, vhdx, vpc or raw)"))?;
            let m = ds.resolve(&vm, &snapshot)?;
            let Some(info) = m.vm.clone() else {
                anyhow::bail!("snapshot {}/{} was not taken from a VM (no VM description): restore its disks with `sendense image restore`", m.name, m.id);
            };
            let mut nics: Vec<NicInfo> = info.nics.clone();
            for spec in &networks {
                let (src, dst) = spec.split_once('=').with_context(|| format!("--network '{spec}': expected SRC=DST"))?;
                for nic in nics.iter_mut().filter(|n| n.network == src) {
                    nic.network = dst.to_string();
                }
            }
            let req = RestoreRequest {
                source_vm: vm.clone(),
                snapshot: m.id.clone(),
                new_name: new_name.unwrap_or_else(|| info.name.clone()),
                format: Some(format),
                vcpus: info.vcpus,
                memory_mib: info.memory_mib,
                firmware: info.firmware,
                os: info.os,
                nics,
                power_on,
                storage_pool: pool,
            };
            let progress = Arc::new(Progress::new());
            let bar = Bar::start(progress.clone(), !out.no_progress, "restore");
            let created = restore_vm(&ds, target.as_ref(), &req, &staging, workers(&out), &progress);
            drop(bar);
            let created = created?;
            println!("restored {}/{} as VM {} ({}) on {}", m.name, m.id, created.name, created.id, to.display());
        }
    }
    Ok(())
}
