//! The KVM/QEMU connector: a host directory (see [`definition`]) with VM
//! definitions and qcow2 disks, read through `qemu-nbd` with persistent dirty
//! bitmaps for changed-block tracking ([`cbt`]).

pub mod cbt;
pub mod definition;
pub mod disk_read;
pub mod host;
pub mod qcow2_header;
pub mod qemu_img;
pub mod replace;

pub use host::KvmHost;
