//! `lab init`: builds the lab described by [`super::catalog`] in a new or
//! empty directory.
//!
//! Each filesystem is made from a generated tree in a scratch directory
//! inside the lab directory, copied (sparsely) to its partition's offset in
//! a raw disk that already holds the partition table, and the raw disk is
//! converted to qcow2 with `qemu-img convert`; then the Sendense bitmap is
//! added. `lab.json` is written last; until then a marker file says the
//! directory holds an unfinished lab. A failed init removes what it made.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use shared_types::platform::{DiskFormat, Firmware, NicInfo};
use uuid::Uuid;

use super::catalog::{self, Content, HostSpec, VmSpec};
use super::content::{self, Guest, GuestMount, GuestNic, Tree};
use super::filesystem::{self, FsIdentity, FsKind};
use super::image;
use super::manifest::{LabDisk, LabHost, LabManifest, LabPartition, LabVm, HOSTS_DIR, INCOMPLETE_MARKER, LAB_FILE, LAB_FORMAT};
use super::partition::{self, PartSpec, Placed, TableKind, SECTOR};
use super::rng::Rng;
use super::{allocated_bytes, human, LabError, Result};
use crate::platforms::kvm::definition;

#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Replace an existing (or unfinished) lab in the directory.
    pub force: bool,
}

#[derive(Debug)]
pub enum InitOutcome {
    /// A lab was made.
    Created(LabManifest),
    /// The directory already holds a lab; nothing was touched.
    Exists(LabManifest),
}

/// What to do with the directory.
#[derive(Debug, PartialEq)]
enum Plan {
    Build,
    /// Remove the previous (or unfinished) lab's files, then build.
    Replace,
    Keep,
}

fn plan(dir: &Path, force: bool) -> Result<Plan> {
    if !dir.exists() {
        return Ok(Plan::Build);
    }
    if !dir.is_dir() {
        return Err(LabError::NotADirectory { dir: dir.into() });
    }
    if dir.join(LAB_FILE).exists() {
        return Ok(if force { Plan::Replace } else { Plan::Keep });
    }
    if dir.join(INCOMPLETE_MARKER).exists() {
        return if force { Ok(Plan::Replace) } else { Err(LabError::Incomplete { dir: dir.into() }) };
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| LabError::io(format!("listing {}", dir.display()), e))?;
    if entries.next().is_some() {
        return Err(LabError::NotEmpty { dir: dir.into() });
    }
    Ok(Plan::Build)
}

/// Creates the lab in `dir` (absent or empty), or reports the lab already
/// there. `progress` gets one line per step.
pub fn init(dir: &Path, options: &InitOptions, progress: &mut dyn FnMut(&str)) -> Result<InitOutcome> {
    match plan(dir, options.force)? {
        Plan::Keep => return Ok(InitOutcome::Exists(LabManifest::read(dir)?)),
        Plan::Replace => {
            progress(&format!("removing the previous lab in {}", dir.display()));
            remove_lab(dir)?;
        }
        Plan::Build => {}
    }
    progress(&format!("building the demo lab in {}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
    let marker = dir.join(INCOMPLETE_MARKER);
    std::fs::write(&marker, b"lab init is building this lab\n").map_err(|e| LabError::io(format!("writing {}", marker.display()), e))?;
    match build(dir, progress) {
        Ok(manifest) => {
            let _ = std::fs::remove_file(&marker);
            Ok(InitOutcome::Created(manifest))
        }
        Err(e) => {
            // Leave the directory as it was: empty.
            let _ = remove_lab(dir);
            Err(e)
        }
    }
}

/// Removes what `lab init` makes in `dir` (and nothing else).
fn remove_lab(dir: &Path) -> Result<()> {
    let hosts = dir.join(HOSTS_DIR);
    if hosts.exists() {
        std::fs::remove_dir_all(&hosts).map_err(|e| LabError::io(format!("removing {}", hosts.display()), e))?;
    }
    for name in [LAB_FILE, INCOMPLETE_MARKER] {
        let p = dir.join(name);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| LabError::io(format!("removing {}", p.display()), e))?;
        }
    }
    Ok(())
}

fn build(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<LabManifest> {
    let started = Instant::now();
    let created_at = Utc::now();
    let scratch = tempfile::Builder::new()
        .prefix(".lab-build-")
        .tempdir_in(dir)
        .map_err(|e| LabError::io(format!("creating a scratch directory in {}", dir.display()), e))?;
    let mut hosts = Vec::new();
    let mut content_bytes = 0;
    for spec in catalog::hosts() {
        let rel = format!("{HOSTS_DIR}/{}", spec.name);
        let host_dir = dir.join(&rel);
        definition::write_host(
            &host_dir,
            &definition::HostDefinition { name: spec.name.into(), cpu_cores: spec.cpu_cores, memory_mib: spec.memory_mib, networks: spec.networks.clone() },
        )?;
        let mut vms = Vec::new();
        for vm in &spec.vms {
            let t = Instant::now();
            let (lab_vm, bytes) = build_vm(dir, &rel, &spec, vm, scratch.path(), created_at)?;
            let virtual_size: u64 = lab_vm.disks.iter().map(|d| d.virtual_size).sum();
            let allocated: u64 = lab_vm.disks.iter().map(|d| d.allocated_bytes).sum();
            progress(&format!(
                "{}/{}: {} disk(s), {} virtual, {} of files, {} on disk, {:.1} s",
                spec.name,
                vm.name,
                lab_vm.disks.len(),
                human(virtual_size),
                human(bytes),
                human(allocated),
                t.elapsed().as_secs_f64()
            ));
            content_bytes += bytes;
            vms.push(lab_vm);
        }
        if spec.vms.is_empty() {
            progress(&format!("{}: empty host ({})", spec.name, spec.role));
        }
        hosts.push(LabHost { name: spec.name.into(), dir: rel, role: spec.role.into(), vms });
    }
    drop(scratch);
    let mut manifest = LabManifest {
        format: LAB_FORMAT,
        sendense_version: crate::VERSION.into(),
        created_at,
        build_seconds: 0.0,
        content_bytes,
        allocated_bytes: 0,
        hosts,
    };
    manifest.allocated_bytes = allocated_bytes(&dir.join(HOSTS_DIR)).map_err(|e| LabError::io(format!("measuring {}", dir.display()), e))?;
    manifest.build_seconds = started.elapsed().as_secs_f64();
    manifest.write(dir)?;
    Ok(manifest)
}

/// A partition of a disk being built, with its filesystem's identity.
struct PlannedPartition {
    placed: Placed,
    fs: Option<(FsKind, FsIdentity, &'static str, Content)>,
}

fn build_vm(dir: &Path, host_rel: &str, host: &HostSpec, vm: &VmSpec, scratch: &Path, now: chrono::DateTime<Utc>) -> Result<(LabVm, u64)> {
    let host_dir = dir.join(host_rel);
    let vm_dir = definition::vm_dir(&host_dir, vm.name);
    std::fs::create_dir_all(&vm_dir).map_err(|e| LabError::io(format!("creating {}", vm_dir.display()), e))?;
    let mut rng = Rng::seeded(vm.name);

    // Lay out every disk first: the root filesystem's fstab names them all.
    let mut disks: Vec<Vec<PlannedPartition>> = Vec::new();
    for disk in &vm.disks {
        let specs: Vec<PartSpec> =
            disk.partitions.iter().map(|p| PartSpec { ptype: p.ptype, size: p.size, name: p.name.into(), bootable: p.bootable }).collect();
        let placed = partition::layout(disk.table, disk.size, &specs).map_err(|reason| LabError::Disk { path: vm_dir.join(disk.name), reason })?;
        let planned = placed
            .into_iter()
            .zip(&disk.partitions)
            .map(|(placed, spec)| PlannedPartition {
                placed,
                fs: spec.fs.as_ref().map(|f| {
                    let uuid = match f.kind {
                        FsKind::Vfat => format!("{:08x}", rng.next_u64() as u32),
                        FsKind::Ntfs => String::new(),
                        FsKind::Ext4 | FsKind::Swap => Uuid::new_v4().to_string(),
                    };
                    (f.kind, FsIdentity { label: f.label.into(), uuid }, f.mount, f.content)
                }),
            })
            .collect();
        disks.push(planned);
    }
    let network_of = |name: &str| host.networks.iter().find(|n| n.name == name);
    let guest = Guest {
        hostname: vm.name.into(),
        role: vm.role.into(),
        efi: vm.firmware == Firmware::Uefi,
        now,
        nics: vm
            .nics
            .iter()
            .enumerate()
            .map(|(i, (network, _, last))| GuestNic {
                network: (*network).into(),
                ip: network_of(network).and_then(|n| n.cidr.as_deref()).and_then(|c| catalog::address(c, *last)).unwrap_or_default(),
                mac: catalog::mac(vm.name, i),
            })
            .collect(),
        mounts: disks
            .iter()
            .flatten()
            .filter_map(|p| p.fs.as_ref().map(|(kind, id, mount, _)| GuestMount { mount: (*mount).into(), kind: *kind, uuid: id.uuid.clone() }))
            .collect(),
    };

    let mut lab_disks = Vec::new();
    let mut content_bytes = 0;
    for (disk, planned) in vm.disks.iter().zip(&disks) {
        let work = scratch.join(format!("{}-{}", vm.name, disk.name));
        std::fs::create_dir_all(&work).map_err(|e| LabError::io(format!("creating {}", work.display()), e))?;
        let raw_path = work.join("disk.raw");
        let raw = File::create(&raw_path).map_err(|e| LabError::io(format!("creating {}", raw_path.display()), e))?;
        raw.set_len(disk.size).map_err(|e| LabError::io(format!("sizing {}", raw_path.display()), e))?;
        let placed: Vec<Placed> = planned.iter().map(|p| p.placed.clone()).collect();
        partition::write_table(&raw, disk.table, disk.size, Uuid::new_v4(), &placed)
            .map_err(|e| LabError::io(format!("writing the partition table of {}", raw_path.display()), e))?;
        let mut partitions = Vec::new();
        for p in planned {
            let mut entry = LabPartition {
                number: p.placed.number,
                ptype: p.placed.ptype,
                start: p.placed.start,
                size: p.placed.size,
                guid: if disk.table == TableKind::Gpt { p.placed.guid.to_string() } else { String::new() },
                filesystem: None,
                label: None,
                uuid: None,
                mount: None,
                files: 0,
                content_bytes: 0,
            };
            if let Some((kind, id, mount, content)) = &p.fs {
                let tree_dir = work.join(format!("p{}-tree", p.placed.number));
                let fs_image = work.join(format!("p{}.img", p.placed.number));
                let staging = if *kind == FsKind::Swap {
                    None
                } else {
                    let mut tree = Tree::new(&tree_dir)?;
                    content::generate(*content, &guest, &mut tree)?;
                    entry.files = tree.files;
                    entry.content_bytes = tree.bytes;
                    Some(tree_dir.as_path())
                };
                filesystem::build(*kind, staging, &fs_image, p.placed.size, id, p.placed.start / SECTOR, &work)?;
                image::sparse_copy(&fs_image, &raw, p.placed.start)?;
                let _ = std::fs::remove_file(&fs_image);
                let _ = std::fs::remove_dir_all(&tree_dir);
                entry.filesystem = Some(*kind);
                entry.label = Some(id.label.clone());
                entry.uuid = (!id.uuid.is_empty()).then(|| id.uuid.clone());
                entry.mount = Some((*mount).into());
                content_bytes += entry.content_bytes;
            }
            partitions.push(entry);
        }
        drop(raw);
        let file_name = format!("{}.{}", disk.name, DiskFormat::Qcow2.extension());
        let qcow2 = vm_dir.join(&file_name);
        image::raw_to_qcow2(&raw_path, &qcow2)?;
        let _ = std::fs::remove_dir_all(&work);
        {
            let _lock = definition::disk_lock(&qcow2)?;
            image::add_activity_bitmap(&qcow2)?;
        }
        let allocated = allocated_bytes(&qcow2).map_err(|e| LabError::io(format!("measuring {}", qcow2.display()), e))?;
        lab_disks.push(LabDisk {
            name: disk.name.into(),
            file: format!("{host_rel}/{}/{}/{file_name}", definition::VMS_DIR, vm.name),
            virtual_size: disk.size,
            allocated_bytes: allocated,
            table: disk.table,
            partitions,
        });
    }

    definition::write_vm(
        &host_dir,
        &definition::VmDefinition {
            name: vm.name.into(),
            uuid: Uuid::new_v4().to_string(),
            vcpus: vm.vcpus,
            memory_mib: vm.memory_mib,
            firmware: vm.firmware,
            os: vm.os,
            power: vm.power,
            role: Some(vm.role.into()),
            nics: vm
                .nics
                .iter()
                .enumerate()
                .map(|(i, (network, model, _))| NicInfo { mac: catalog::mac(vm.name, i), network: (*network).into(), model: (*model).into() })
                .collect(),
            disks: vm
                .disks
                .iter()
                .map(|d| definition::DiskDefinition {
                    name: d.name.into(),
                    file: format!("{}.{}", d.name, DiskFormat::Qcow2.extension()),
                    format: DiskFormat::Qcow2,
                    bus: vm.bus.into(),
                })
                .collect(),
        },
    )?;
    Ok((LabVm { name: vm.name.into(), role: vm.role.into(), disks: lab_disks }, content_bytes))
}

/// The lab's image of `disk`, checked to exist.
pub fn disk_file(dir: &Path, disk: &LabDisk) -> Result<PathBuf> {
    let path = dir.join(&disk.file);
    if !path.is_file() {
        return Err(LabError::Disk { path, reason: "is missing (was the lab moved or partly deleted?)".into() });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_protects_foreign_directories() {
        let dir = tempfile::tempdir().unwrap();
        let lab = dir.path().join("lab");
        assert_eq!(plan(&lab, false).unwrap(), Plan::Build);
        std::fs::create_dir(&lab).unwrap();
        assert_eq!(plan(&lab, false).unwrap(), Plan::Build);
        std::fs::write(lab.join("notes.txt"), b"mine").unwrap();
        for force in [false, true] {
            let err = plan(&lab, force).unwrap_err().to_string();
            assert!(err.contains(&lab.display().to_string()) && err.contains("not empty"), "{err}");
        }
        std::fs::remove_file(lab.join("notes.txt")).unwrap();
        std::fs::write(lab.join(INCOMPLETE_MARKER), b"").unwrap();
        assert!(plan(&lab, false).unwrap_err().to_string().contains("did not finish"));
        assert_eq!(plan(&lab, true).unwrap(), Plan::Replace);
        std::fs::write(lab.join(LAB_FILE), b"{}").unwrap();
        assert_eq!(plan(&lab, false).unwrap(), Plan::Keep);
        assert_eq!(plan(&lab, true).unwrap(), Plan::Replace);
        // --force removes the lab's own files and nothing else.
        std::fs::create_dir_all(lab.join("hosts/kvm-prod-01/vms")).unwrap();
        std::fs::write(lab.join(INCOMPLETE_MARKER), b"").unwrap();
        std::fs::write(lab.join("notes.txt"), b"mine").unwrap();
        remove_lab(&lab).unwrap();
        let left: Vec<_> = std::fs::read_dir(&lab).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["notes.txt"]);
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(plan(&file, false).unwrap_err().to_string().contains("not a directory"));
    }
}
