//! The libvirt calls the `virt` crate's safe API lacks: checkpoints,
//! pull-mode backup jobs (`virDomainCheckpoint*`, `virDomainBackup*`) and
//! block pull jobs (`virDomainBlockPull`, `virDomainGetBlockJobInfo`),
//! the guest agent's filesystem freeze (`virDomainFSFreeze`, `virDomainFSThaw`),
//! holes on a sparse upload stream (`virStreamSendHole`),
//! called through `virt-sys` with the pointers and strings checked here and
//! nowhere else.

use std::ffi::{c_char, c_void, CStr, CString};

use virt::domain::Domain;
use virt::sys;

use crate::platforms::error::{PlatformError, Result};

extern "C" {
    fn free(p: *mut c_void);
}

fn last_error(what: &str) -> PlatformError {
    PlatformError::Invalid(format!("libvirt: {what}: {}", virt::error::Error::last_error().message()))
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| PlatformError::Invalid(format!("{what} holds a NUL byte")))
}

/// Takes a string libvirt allocated and frees it.
unsafe fn owned_string(p: *mut c_char) -> String {
    let s = CStr::from_ptr(p).to_string_lossy().into_owned();
    free(p as *mut c_void);
    s
}

/// One checkpoint handle, freed on drop.
struct Checkpoint(sys::virDomainCheckpointPtr);

impl Drop for Checkpoint {
    fn drop(&mut self) {
        unsafe {
            sys::virDomainCheckpointFree(self.0);
        }
    }
}

impl Checkpoint {
    fn name(&self) -> String {
        unsafe {
            let p = sys::virDomainCheckpointGetName(self.0);
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    fn xml(&self) -> Result<String> {
        let p = unsafe { sys::virDomainCheckpointGetXMLDesc(self.0, 0) };
        if p.is_null() {
            return Err(last_error("reading a checkpoint's definition"));
        }
        Ok(unsafe { owned_string(p) })
    }
}

/// The names of the domain's checkpoints, each with its parent's name.
pub fn list_checkpoints(dom: &Domain) -> Result<Vec<(String, Option<String>)>> {
    let mut array: *mut sys::virDomainCheckpointPtr = std::ptr::null_mut();
    let n = unsafe { sys::virDomainListAllCheckpoints(dom.as_ptr(), &mut array, 0) };
    if n < 0 {
        return Err(last_error("listing checkpoints"));
    }
    let handles: Vec<Checkpoint> = (0..n as usize).map(|i| Checkpoint(unsafe { *array.add(i) })).collect();
    unsafe { free(array as *mut c_void) };
    let mut out = Vec::with_capacity(handles.len());
    for cp in &handles {
        let parent = super::domain_xml::checkpoint_parent(&cp.xml()?)?;
        out.push((cp.name(), parent));
    }
    Ok(out)
}

/// Deletes one checkpoint (its changes merge into its parent's); a missing
/// one is not an error.
pub fn delete_checkpoint(dom: &Domain, name: &str) -> Result<()> {
    let c = cstring(name, "a checkpoint name")?;
    let p = unsafe { sys::virDomainCheckpointLookupByName(dom.as_ptr(), c.as_ptr(), 0) };
    if p.is_null() {
        return Ok(());
    }
    let cp = Checkpoint(p);
    if unsafe { sys::virDomainCheckpointDelete(cp.0, 0) } < 0 {
        return Err(last_error(&format!("deleting checkpoint '{name}'")));
    }
    Ok(())
}

/// Forgets a checkpoint in libvirt's records only (its bitmaps, if any are
/// left in the disk images, are not touched): for a checkpoint whose
/// bitmaps are gone. A missing one is not an error.
pub fn delete_checkpoint_metadata(dom: &Domain, name: &str) -> Result<()> {
    let c = cstring(name, "a checkpoint name")?;
    let p = unsafe { sys::virDomainCheckpointLookupByName(dom.as_ptr(), c.as_ptr(), 0) };
    if p.is_null() {
        return Ok(());
    }
    let cp = Checkpoint(p);
    if unsafe { sys::virDomainCheckpointDelete(cp.0, sys::VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY) } < 0 {
        return Err(last_error(&format!("forgetting checkpoint '{name}'")));
    }
    Ok(())
}

/// Starts a pull-mode backup job and, atomically with it, the checkpoint
/// `checkpoint_xml` describes.
pub fn backup_begin(dom: &Domain, backup_xml: &str, checkpoint_xml: &str) -> Result<()> {
    let b = cstring(backup_xml, "the backup XML")?;
    let c = cstring(checkpoint_xml, "the checkpoint XML")?;
    if unsafe { sys::virDomainBackupBegin(dom.as_ptr(), b.as_ptr(), c.as_ptr(), 0) } < 0 {
        return Err(last_error("starting the backup job"));
    }
    Ok(())
}

/// The running backup job's XML, `None` when the domain has none.
pub fn backup_job(dom: &Domain) -> Option<String> {
    let p = unsafe { sys::virDomainBackupGetXMLDesc(dom.as_ptr(), 0) };
    if p.is_null() {
        return None;
    }
    Some(unsafe { owned_string(p) })
}

/// Ends the domain's running backup job (stops the NBD export, removes the
/// scratch files) and waits until libvirt no longer reports it. The end is
/// asynchronous: usually milliseconds, but a guest agent connecting or
/// leaving during the job holds libvirt's event queue for the domain until
/// its state-change lock times out (30 s), so up to 45 s.
const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(45);

pub fn abort_job(dom: &Domain) -> Result<()> {
    if unsafe { sys::virDomainAbortJob(dom.as_ptr()) } < 0 {
        // Read the error before another call replaces it.
        let error = last_error("ending the backup job");
        if backup_job(dom).is_some() {
            return Err(error);
        }
    }
    let started = std::time::Instant::now();
    while backup_job(dom).is_some() {
        if started.elapsed() > ABORT_WAIT {
            return Err(PlatformError::Invalid(format!("the backup job did not end within {} s of being aborted", ABORT_WAIT.as_secs())));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// Starts copying into disk `disk` (a target name such as `vda`) of a
/// running domain everything it reads from its backing chain; when the job
/// ends the disk has no backing chain any more. `bandwidth_mib_s`: a cap
/// (0: none).
pub fn block_pull(dom: &Domain, disk: &str, bandwidth_mib_s: u64) -> Result<()> {
    let d = cstring(disk, "the disk name")?;
    if unsafe { sys::virDomainBlockPull(dom.as_ptr(), d.as_ptr(), bandwidth_mib_s as std::ffi::c_ulong, 0) } < 0 {
        return Err(last_error(&format!("starting to pull the backing data of disk '{disk}'")));
    }
    Ok(())
}

/// The progress (bytes done, bytes in all) of the block job on `disk`;
/// `None` when it has none (ended, or never started).
pub fn block_job_progress(dom: &Domain, disk: &str) -> Result<Option<(u64, u64)>> {
    let d = cstring(disk, "the disk name")?;
    let mut info = sys::virDomainBlockJobInfo { type_: 0, bandwidth: 0, cur: 0, end: 0 };
    match unsafe { sys::virDomainGetBlockJobInfo(dom.as_ptr(), d.as_ptr(), &mut info, 0) } {
        r if r < 0 => Err(last_error(&format!("reading the block job of disk '{disk}'"))),
        0 => Ok(None),
        _ => Ok(Some((info.cur as u64, info.end as u64))),
    }
}

/// Cancels the block job on `disk` (what it copied stays in the disk).
pub fn block_job_abort(dom: &Domain, disk: &str) -> Result<()> {
    let d = cstring(disk, "the disk name")?;
    if unsafe { sys::virDomainBlockJobAbort(dom.as_ptr(), d.as_ptr(), 0) } < 0 {
        return Err(last_error(&format!("cancelling the block job of disk '{disk}'")));
    }
    Ok(())
}

/// Changes the speed cap of the block job on `disk` (0: none).
pub fn block_job_set_speed(dom: &Domain, disk: &str, bandwidth_mib_s: u64) -> Result<()> {
    let d = cstring(disk, "the disk name")?;
    if unsafe { sys::virDomainBlockJobSetSpeed(dom.as_ptr(), d.as_ptr(), bandwidth_mib_s as std::ffi::c_ulong, 0) } < 0 {
        return Err(last_error(&format!("changing the speed of the block job of disk '{disk}'")));
    }
    Ok(())
}

/// Asks the guest agent of a running domain to freeze its mounted
/// filesystems; how many it froze. `timeout_s`: how long the agent may
/// take to answer (this and every later agent call on the domain).
pub fn fs_freeze(dom: &Domain, timeout_s: i32) -> Result<u32> {
    unsafe { sys::virDomainAgentSetResponseTimeout(dom.as_ptr(), timeout_s, 0) };
    match unsafe { sys::virDomainFSFreeze(dom.as_ptr(), std::ptr::null_mut(), 0, 0) } {
        r if r < 0 => Err(PlatformError::Invalid(virt::error::Error::last_error().message().to_string())),
        n => Ok(n as u32),
    }
}

/// Thaws the filesystems the guest agent froze; how many it thawed.
pub fn fs_thaw(dom: &Domain) -> Result<u32> {
    match unsafe { sys::virDomainFSThaw(dom.as_ptr(), std::ptr::null_mut(), 0, 0) } {
        r if r < 0 => Err(last_error("thawing the guest's filesystems")),
        n => Ok(n as u32),
    }
}

/// Puts the domain's guest agent timeout back to libvirt's default (after
/// [`fs_freeze`] set its own).
pub fn agent_default_timeout(dom: &Domain) {
    unsafe { sys::virDomainAgentSetResponseTimeout(dom.as_ptr(), -1, 0) };
}

/// Tells the other end of a sparse upload stream (opened with
/// `VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM`) that the next `length` bytes are
/// a hole: nothing is sent and the volume file keeps it unallocated.
pub fn send_hole(stream: &virt::stream::Stream, length: u64) -> Result<()> {
    let length = i64::try_from(length).map_err(|_| PlatformError::Invalid(format!("a hole of {length} bytes is too long to send")))?;
    // SAFETY: the stream pointer is valid for the borrow of `stream`.
    if unsafe { sys::virStreamSendHole(stream.as_ptr(), length, 0) } < 0 {
        return Err(last_error("sending a hole on an upload stream"));
    }
    Ok(())
}
