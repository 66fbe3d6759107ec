//! Writing into a disk of a shut-off libvirt VM (files restored into it,
//! a rollback's write-back).
//!
//! On a host on this machine (a URI without a host name) whose volume file
//! is here, the writes go to a qcow2 overlay on top of the volume, served
//! writable by `qemu-nbd`; a commit merges the overlay into the volume
//! (`qemu-img commit`: only the clusters written move, and the volume's
//! persistent dirty bitmaps record them, so the VM's checkpoints see the
//! writes); an abort deletes the overlay and the volume is untouched.
//!
//! On a remote host (no file access): the disk's volume is downloaded through
//! libvirt into the work directory, served writable there by `qemu-nbd`
//! (which keeps the image's persistent dirty bitmaps, so the VM's
//! checkpoints see the writes and the next incremental backup carries
//! them), and on commit uploaded back into the volume in place. The volume
//! as it was is kept beside the copy until the upload is done: an upload
//! that fails part way is undone with it.
//!
//! A disk that is not a volume of one of the host's storage pools cannot be
//! reached this way and is refused with the reason.

use std::path::{Path, PathBuf};

use shared_types::platform::{DiskFormat, PowerState};
use virt::connect::Connect;
use virt::storage_vol::StorageVol;

use super::create::{download_from, upload_into};
use super::{power_of, LibvirtPlatform};
use crate::platforms::error::{PlatformError, Result};
use crate::platforms::nbd::{self, QemuNbd, QemuNbdOptions};
use crate::platforms::{tools, DiskWrite};

fn stopped(platform: &LibvirtPlatform, conn: &Connect, vm: &str) -> Result<String> {
    let dom = platform.domain(conn, vm)?;
    let name = dom.name().unwrap_or_else(|_| vm.to_string());
    match power_of(&dom) {
        Ok(PowerState::Stopped) => Ok(name),
        Ok(p) => Err(PlatformError::VmNotStopped { vm: name, power: format!("{p:?}").to_lowercase() }),
        Err(e) => Err(PlatformError::Invalid(format!("reading the power state of VM '{name}': {}", e.message()))),
    }
}

/// The storage volume behind `source` (a file path, or `pool/volume`).
fn volume(conn: &Connect, vm: &str, disk: &str, source: &str) -> Result<StorageVol> {
    let lookup = || {
        if source.starts_with('/') {
            conn.lookup_storage_vol_by_path(source).ok()
        } else {
            source.split_once('/').and_then(|(pool, vol)| conn.lookup_storage_pool_by_name(pool).ok()?.lookup_storage_vol_by_name(vol).ok())
        }
    };
    // A pool lists the files it had when last refreshed: refresh and look again.
    let found = lookup().or_else(|| {
        for pool in conn.list_all_storage_pools(virt::sys::VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE).unwrap_or_default() {
            let _ = pool.refresh(0);
        }
        lookup()
    });
    found.ok_or_else(|| {
        PlatformError::Invalid(format!(
            "disk '{disk}' of VM '{vm}' ({source}) is not a volume of any storage pool of the host: Sendense writes into disks only through libvirt's storage pools (add its directory as a pool)"
        ))
    })
}

pub fn open(platform: &LibvirtPlatform, vm: &str, disk: &str, work_dir: &Path) -> Result<DiskWrite> {
    let conn = platform.connect()?;
    let name = stopped(platform, &conn, vm)?;
    let def = platform.definition(&platform.domain(&conn, vm)?)?;
    let d = def.disks.iter().find(|d| d.target == disk).ok_or_else(|| PlatformError::DiskNotFound { vm: name.clone(), disk: disk.to_string() })?;
    let source = d.source.clone().ok_or_else(|| PlatformError::Invalid(format!("disk '{disk}' of VM '{name}' has no source")))?;
    let vol = volume(&conn, &name, disk, &source)?;
    let vol_name = vol.name().unwrap_or_else(|_| source.clone());
    if super::is_local(platform.uri()) {
        if let Some(file) = vol.path().ok().map(PathBuf::from).filter(|f| f.is_file()) {
            drop(vol);
            return open_in_place(platform, vm, disk, &file, d.format, work_dir);
        }
    }
    let copy = work_dir.join(format!("{disk}.{}", d.format.extension()));
    let undo = work_dir.join(format!("{disk}.before"));
    download_from(&conn, &vol, &vol_name, &copy)?;
    crate::sparse_file::copy(&copy, &undo).map_err(|e| PlatformError::io(format!("keeping the volume as it was in {}", undo.display()), e))?;
    let disk_err = |path: &Path, e: nbd::NbdError| PlatformError::Disk { path: path.to_path_buf(), reason: e.to_string() };
    // The export's socket goes to the temporary directory: work_dir may be
    // too deep for a socket path (107 bytes).
    let server = QemuNbd::start(&copy, &QemuNbdOptions::new(d.format)).map_err(|e| disk_err(&copy, e))?;
    let client = server.connect(&[nbd::BASE_ALLOCATION]).map_err(|e| disk_err(&copy, e))?;
    let key = vol.key().map_err(|e| PlatformError::Invalid(format!("reading the key of volume '{vol_name}': {}", e.message())))?;
    drop(vol);
    let uri = platform.uri().to_string();
    let vm = vm.to_string();
    Ok(DiskWrite::new(
        client,
        Box::new(move |commit| {
            server.close().map_err(|e| disk_err(&copy, e))?;
            let cleanup = |paths: &[&PathBuf]| paths.iter().for_each(|p| drop(std::fs::remove_file(p)));
            if !commit {
                cleanup(&[&copy, &undo]);
                return Ok(());
            }
            let platform = LibvirtPlatform::new(&uri);
            let conn = platform.connect()?;
            // Started behind our back since: nothing is written.
            stopped(&platform, &conn, &vm)?;
            // A volume is used on the connection it was looked up on.
            let vol = conn.lookup_storage_vol_by_key(&key).map_err(|e| PlatformError::Invalid(format!("volume '{vol_name}' is gone from the host: {}", e.message())))?;
            if let Err(e) = upload_into(&conn, &vol, &vol_name, &copy, false) {
                tracing::warn!(vm = %vm, volume = %vol_name, error = %e, "writing the disk back failed; putting it back as it was");
                upload_into(&conn, &vol, &vol_name, &undo, false).map_err(|u| {
                    PlatformError::Invalid(format!(
                        "writing volume '{vol_name}' back failed ({e}) and so did putting it back ({u}); the volume as it was is kept in {}",
                        undo.display()
                    ))
                })?;
                cleanup(&[&copy, &undo]);
                return Err(e);
            }
            cleanup(&[&copy, &undo]);
            Ok(())
        }),
    ))
}

/// [`open`] on a host on this machine: writes land in an overlay on top of
/// the volume's `file`, merged into it on commit.
fn open_in_place(platform: &LibvirtPlatform, vm: &str, disk: &str, file: &Path, format: DiskFormat, work_dir: &Path) -> Result<DiskWrite> {
    let overlay = work_dir.join(format!("{disk}.overlay.qcow2"));
    let _ = std::fs::remove_file(&overlay);
    let arg = |p: &Path| p.as_os_str().to_owned();
    tools::run(
        "qemu-img",
        [
            "create".into(),
            "-q".into(),
            "-f".into(),
            "qcow2".into(),
            "-F".into(),
            format.qemu_name().into(),
            "-b".into(),
            arg(file),
            arg(&overlay),
        ],
    )?;
    let disk_err = |path: &Path, e: nbd::NbdError| PlatformError::Disk { path: path.to_path_buf(), reason: e.to_string() };
    let started = QemuNbd::start(&overlay, &QemuNbdOptions::new(DiskFormat::Qcow2)).and_then(|server| {
        let client = server.connect(&[nbd::BASE_ALLOCATION]);
        client.map(|c| (server, c))
    });
    let (server, client) = match started {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_file(&overlay);
            return Err(disk_err(&overlay, e));
        }
    };
    let uri = platform.uri().to_string();
    let vm = vm.to_string();
    let file = file.to_path_buf();
    Ok(DiskWrite::new(
        client,
        Box::new(move |commit| {
            if let Err(e) = server.close() {
                let _ = std::fs::remove_file(&overlay);
                return Err(disk_err(&overlay, e));
            }
            if commit {
                // Started behind our back since: nothing is written (QEMU's
                // lock on the volume would refuse the merge anyway).
                let platform = LibvirtPlatform::new(&uri);
                let conn = platform.connect()?;
                if let Err(e) = stopped(&platform, &conn, &vm) {
                    let _ = std::fs::remove_file(&overlay);
                    return Err(e);
                }
                if let Err(e) = tools::run("qemu-img", ["commit".into(), "-q".into(), "-d".into(), "-f".into(), "qcow2".into(), arg(&overlay)]) {
                    // The writes are kept beside the volume (the work
                    // directory may be temporary): merged again by hand with
                    // `qemu-img commit`, or deleted.
                    let keep = file.with_extension(format!("sendense-unmerged-{}.qcow2", chrono::Utc::now().format("%Y%m%dT%H%M%S")));
                    let kept = std::fs::rename(&overlay, &keep).or_else(|_| std::fs::copy(&overlay, &keep).map(|_| ()));
                    let _ = std::fs::remove_file(&overlay);
                    return Err(PlatformError::Invalid(match kept {
                        Ok(()) => format!(
                            "merging the writes into the disk of VM '{vm}' failed ({e}); the disk may hold part of them; all of them are kept in {} (merge with `qemu-img commit` or delete it)",
                            keep.display()
                        ),
                        Err(k) => format!("merging the writes into the disk of VM '{vm}' failed ({e}), and keeping them failed too ({k}); the disk may hold part of them"),
                    }));
                }
            }
            let _ = std::fs::remove_file(&overlay);
            Ok(())
        }),
    ))
}
