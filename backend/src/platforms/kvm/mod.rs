//! KVM/QEMU image tools Sendense uses on files of this machine: `qemu-img`
//! ([`qemu_img`]), qcow2 headers ([`qcow2_header`]), read-only NBD exports
//! of an image ([`disk_read`]), and the host layout directory the demo lab
//! builds its VMs in ([`definition`]; defined on a libvirt host by
//! [`crate::lab::host_import`]). KVM hosts themselves are reached only
//! through libvirt ([`crate::platforms::libvirt`]).

pub mod definition;
pub mod disk_read;
pub mod qcow2_header;
pub mod qemu_img;
