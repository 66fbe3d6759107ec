//! The compatibility check of a full VM restore: what the target will get
//! (format, firmware, disk bus and drivers), whether it has room (CPU,
//! memory, disk), and how long it should take from earlier jobs' measured
//! throughput. Pure: the API gathers the facts, this module judges them.

use std::path::Path;

use shared_types::platform::{DiskFormat, Firmware, GuestOs, HostInfo, PlatformKind, VmInfo};
use shared_types::recovery::{format_family, CompatibilityNote, CompatibilityReport, NoteSeverity};

/// Facts about one restore.
pub struct Facts<'a> {
    /// The VM as recorded in the restore point.
    pub source: &'a VmInfo,
    pub source_kind: PlatformKind,
    pub target: &'a HostInfo,
    pub format: DiskFormat,
    /// Data bytes the restore writes (holes excluded).
    pub required_bytes: u64,
    /// Free bytes where the target keeps its disks.
    pub free_bytes: u64,
    /// Measured throughput of earlier jobs in bytes per second, and the
    /// bytes that throughput applies to for this restore.
    pub history: Option<(f64, u64)>,
}

fn note(severity: NoteSeverity, message: String) -> CompatibilityNote {
    CompatibilityNote { severity, message }
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The blocker when `required` bytes do not fit in `free`.
pub fn space_note(host: &str, required: u64, free: u64) -> Option<CompatibilityNote> {
    (required > free).then(|| {
        note(
            NoteSeverity::Blocker,
            format!(
                "not enough space on host '{host}': the restore needs {required} bytes ({}), {free} bytes ({}) are free; free space or choose another target",
                gib(required),
                gib(free)
            ),
        )
    })
}

/// Bytes free for an unprivileged writer on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The filesystem id of `path`, to tell whether two paths share space.
pub fn filesystem_id(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(path)?.dev())
}

fn family_name(format: DiskFormat) -> &'static str {
    match format {
        DiskFormat::Qcow2 | DiskFormat::Raw => "KVM",
        DiskFormat::Vmdk => "VMware",
        DiskFormat::Vhdx => "Hyper-V",
        DiskFormat::Vpc => "Azure",
    }
}

pub fn check(f: &Facts<'_>) -> CompatibilityReport {
    let mut notes = Vec::new();
    let target_kind = f.target.kind;
    let host = f.target.name.as_str();
    // Format against the target platform.
    if format_family(f.format).contains(&target_kind) {
        notes.push(note(NoteSeverity::Info, format!("{} is a native format of {} hosts", f.format.qemu_name(), target_kind.label())));
    } else {
        notes.push(note(
            NoteSeverity::Warning,
            format!(
                "{} format ({}) on a {} host: the VM is registered but {} does not run it natively; convert again or use it as a transfer image",
                family_name(f.format),
                f.format.qemu_name(),
                target_kind.label(),
                target_kind.label()
            ),
        ));
    }
    if target_kind == PlatformKind::Kvm && f.format == DiskFormat::Vhdx {
        notes.push(note(
            NoteSeverity::Blocker,
            "libvirt storage pools hold no VHDX volumes: restore to a KVM host as qcow2, raw, vmdk or vpc (VHD)".into(),
        ));
    }
    // Firmware.
    match (f.source.firmware, f.format) {
        (Firmware::Uefi, DiskFormat::Vpc) => notes.push(note(
            NoteSeverity::Warning,
            "UEFI guest in a VHD (Azure): create it as a Generation 2 VM, Generation 1 boots BIOS only".into(),
        )),
        (Firmware::Bios, DiskFormat::Vhdx) => notes.push(note(
            NoteSeverity::Info,
            "BIOS guest in a VHDX (Hyper-V): create it as a Generation 1 VM".into(),
        )),
        (Firmware::Uefi, _) => notes.push(note(NoteSeverity::Info, "UEFI firmware: the target boots it with OVMF/UEFI, keep Secure Boot settings as on the source".into())),
        (Firmware::Bios, _) => notes.push(note(NoteSeverity::Info, "BIOS firmware: boots as on the source".into())),
    }
    // Disk bus and drivers.
    let cross = !(f.source_kind == target_kind && format_family(f.format).contains(&f.source_kind));
    if cross {
        let target_family = family_name(f.format);
        match f.source.os {
            GuestOs::Windows => notes.push(note(
                NoteSeverity::Warning,
                format!("Windows guest moving to {target_family}: install the target's storage and network drivers (VMware Tools, Hyper-V integration services) before it boots there, or it stops at INACCESSIBLE_BOOT_DEVICE"),
            )),
            GuestOs::Linux => notes.push(note(
                NoteSeverity::Info,
                format!("Linux guest: virtio drivers are built in on KVM; on {target_family} the kernel needs its storage driver (pvscsi, hv_storvsc), present in common distributions' kernels"),
            )),
            GuestOs::Other => notes.push(note(NoteSeverity::Warning, format!("unknown guest OS: check it has storage drivers for {target_family}"))),
        }
    } else {
        notes.push(note(NoteSeverity::Info, "disks attach on virtio as on the source; no driver change".into()));
    }
    // Resources.
    if f.source.vcpus > f.target.cpu_cores {
        notes.push(note(NoteSeverity::Warning, format!("the VM has {} vCPUs, host '{host}' has {} cores: it will be overcommitted", f.source.vcpus, f.target.cpu_cores)));
    }
    if f.source.memory_mib > f.target.memory_mib {
        notes.push(note(
            NoteSeverity::Blocker,
            format!("the VM needs {} MiB of memory, host '{host}' has {} MiB: it could never start there; choose another target", f.source.memory_mib, f.target.memory_mib),
        ));
    } else {
        notes.push(note(NoteSeverity::Info, format!("host '{host}': {} cores and {} MiB for a VM of {} vCPUs and {} MiB", f.target.cpu_cores, f.target.memory_mib, f.source.vcpus, f.source.memory_mib)));
    }
    match space_note(host, f.required_bytes, f.free_bytes) {
        Some(n) => notes.push(n),
        None => notes.push(note(NoteSeverity::Info, format!("space: {} needed, {} free on host '{host}'", gib(f.required_bytes), gib(f.free_bytes)))),
    }
    let estimated_seconds = f.history.and_then(|(bps, bytes)| (bps > 0.0).then(|| (bytes as f64 / bps).ceil().max(1.0) as u64));
    let ok = !notes.iter().any(|n| n.severity == NoteSeverity::Blocker);
    CompatibilityReport { ok, target_format: f.format, notes, estimated_seconds, required_bytes: f.required_bytes, free_bytes: f.free_bytes, storage_pools: Vec::new(), nics: Vec::new(), target_networks: Vec::new(), read_from: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_types::platform::PowerState;

    fn vm(os: GuestOs, firmware: Firmware, memory_mib: u64) -> VmInfo {
        VmInfo { id: "u".into(), name: "web-01".into(), vcpus: 4, memory_mib, power: PowerState::Running, firmware, os, role: None, disks: vec![], nics: vec![] }
    }

    fn host() -> HostInfo {
        HostInfo { name: "kvm-dr-01".into(), kind: PlatformKind::Kvm, address: "/h".into(), cpu_cores: 2, memory_mib: 8192 }
    }

    #[test]
    fn space_is_a_blocker_with_both_numbers() {
        let n = space_note("kvm-dr-01", 10 << 30, 1 << 30).unwrap();
        assert_eq!(n.severity, NoteSeverity::Blocker);
        assert!(n.message.contains(&(10u64 << 30).to_string()) && n.message.contains(&(1u64 << 30).to_string()), "{}", n.message);
        assert!(space_note("h", 5, 5).is_none());
    }

    #[test]
    fn same_platform_qcow2_is_ok_with_an_estimate() {
        let (v, h) = (vm(GuestOs::Linux, Firmware::Bios, 2048), host());
        let r = check(&Facts { source: &v, source_kind: PlatformKind::Kvm, target: &h, format: DiskFormat::Qcow2, required_bytes: 100, free_bytes: 1000, history: Some((50.0, 1000)) });
        assert!(r.ok, "{r:?}");
        assert_eq!(r.estimated_seconds, Some(20));
        assert!(r.notes.iter().any(|n| n.message.contains("4 vCPUs") && n.severity == NoteSeverity::Warning));
    }

    #[test]
    fn vmdk_on_kvm_warns_windows_needs_drivers_and_blockers_stop_it() {
        let (v, h) = (vm(GuestOs::Windows, Firmware::Uefi, 16384), host());
        let r = check(&Facts { source: &v, source_kind: PlatformKind::Kvm, target: &h, format: DiskFormat::Vmdk, required_bytes: 2000, free_bytes: 1000, history: None });
        assert!(!r.ok);
        assert_eq!(r.estimated_seconds, None);
        let text: Vec<&str> = r.notes.iter().map(|n| n.message.as_str()).collect();
        assert!(text.iter().any(|m| m.starts_with("VMware format (vmdk) on a KVM/QEMU host")), "{text:?}");
        assert!(text.iter().any(|m| m.contains("Windows guest") && m.contains("drivers")), "{text:?}");
        assert_eq!(r.blockers().count(), 2, "{text:?}");
    }
}
