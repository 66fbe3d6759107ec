//! Making a running domain's disks stand alone: a block pull on each disk
//! with a backing image copies what the guest still reads from there (an
//! instant recovery's NBD exports) into the disk while the guest runs; when
//! libvirt ends the job the disk has no backing chain, live and persistent.

use std::time::Duration;

use virt::domain::Domain;

use super::domain_xml::disks_with_backing;
use super::ffi;
use crate::platforms::error::{PlatformError, Result};

const POLL: Duration = Duration::from_millis(200);

fn backed(dom: &Domain, vm: &str) -> Result<Vec<String>> {
    let xml = dom.xml_desc(0).map_err(|e| super::backup::lv(vm, "reading the domain", e))?;
    disks_with_backing(&xml)
}

/// Pulls every backed disk of `dom` (running) at once; see the module.
pub fn pull(dom: &Domain, vm: &str, bandwidth_mib_s: u64, progress: &dyn Fn(u64, u64), stopped: &dyn Fn() -> bool) -> Result<()> {
    if !dom.is_active().unwrap_or(false) {
        return Err(PlatformError::Invalid(format!("VM '{vm}' is not running: its disks are copied while it runs")));
    }
    let disks = backed(dom, vm)?;
    for d in &disks {
        // A job left running (a server restart mid-pull) is followed, not
        // restarted, at this call's speed.
        if ffi::block_job_progress(dom, d)?.is_none() {
            ffi::block_pull(dom, d, bandwidth_mib_s)?;
        } else {
            ffi::block_job_set_speed(dom, d, bandwidth_mib_s)?;
        }
    }
    // Bytes of each disk: the last progress its job reported.
    let mut seen: Vec<(u64, u64)> = vec![(0, 0); disks.len()];
    loop {
        let mut running = 0;
        for (i, d) in disks.iter().enumerate() {
            match ffi::block_job_progress(dom, d)? {
                Some((cur, end)) => {
                    running += 1;
                    seen[i] = (cur, end.max(cur));
                }
                None => seen[i].0 = seen[i].1,
            }
        }
        progress(seen.iter().map(|s| s.0).sum(), seen.iter().map(|s| s.1).sum());
        if running == 0 {
            break;
        }
        if stopped() {
            for d in &disks {
                let _ = ffi::block_job_abort(dom, d);
            }
            return Err(PlatformError::Invalid(format!("copying the disks of VM '{vm}' was stopped; they still read from their backing images")));
        }
        std::thread::sleep(POLL);
    }
    // A job that failed (its backing went away) ends too: the chain tells.
    let left = backed(dom, vm)?;
    let failed: Vec<&String> = disks.iter().filter(|d| left.contains(d)).collect();
    if !failed.is_empty() {
        return Err(PlatformError::Invalid(format!(
            "copying the backing data of VM '{vm}' did not complete for disk(s) {}: see the host's log; the VM still reads from its backing images",
            failed.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}
