//! Replacing a VM on a KVM host (an overwrite restore) without ever losing
//! both the old and the new one.
//!
//! The new VM is built beside the old one in `vms/.replace-<name>-<uuid>.new`
//! (disks converted, `vm.json` written last). Only when it is complete, and
//! the caller still wants it, the switch runs:
//!
//! 1. `vms/<name>` is renamed to `vms/.replace-<name>-<uuid>.old` (under the
//!    old disks' locks, so no backup or replication is reading them);
//! 2. `.new` is renamed to `vms/<name>`: the commit point;
//! 3. `.old` is removed.
//!
//! A failure before step 2 puts `.old` back and removes `.new`: the old VM
//! is the same directory, its files never opened for writing. A crash at any
//! point leaves names that [`recover`] (run when the server starts) reads:
//! `.old` without `vms/<name>` means the switch had not committed, so it is
//! rolled back; `.old` beside `vms/<name>` means it had, so it is finished;
//! a lone `.new` was never switched in and is removed.

use std::path::{Path, PathBuf};

use crate::platforms::error::{PlatformError, Result};
use crate::platforms::NewVm;

use super::definition::{self, VmDefinition};
use super::KvmHost;

const PREFIX: &str = ".replace-";
const NEW: &str = ".new";
const OLD: &str = ".old";
/// `-` and a uuid.
const TAG_LEN: usize = 37;

fn aside(vms: &Path, name: &str, tag: &str, suffix: &str) -> PathBuf {
    vms.join(format!("{PREFIX}{name}-{tag}{suffix}"))
}

/// Makes the renames in `dir` durable before going on.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| PlatformError::io(format!("syncing {}", dir.display()), e))
}

/// Builds `spec` beside the VM of the same name and switches it in (see the
/// module docs). `go_on` is asked between the build and the switch.
pub(super) fn replace(host: &KvmHost, spec: &NewVm, go_on: &dyn Fn() -> bool) -> Result<VmDefinition> {
    let vms = host.dir().join(definition::VMS_DIR);
    let tag = uuid::Uuid::new_v4().to_string();
    let new = aside(&vms, &spec.name, &tag, NEW);
    let old = aside(&vms, &spec.name, &tag, OLD);
    let live = definition::vm_dir(host.dir(), &spec.name);
    let def = host.build_vm(spec, &new)?;
    let give_up = |e: PlatformError| -> PlatformError {
        let _ = std::fs::remove_dir_all(&new);
        e
    };
    if !go_on() {
        return Err(give_up(PlatformError::Invalid(format!(
            "stopped before the switch: VM '{}' was not replaced and is unchanged",
            spec.name
        ))));
    }
    // The old VM's disks are locked for the switch: nobody is reading them.
    let old_def = host.definition(&spec.name).map_err(give_up)?;
    let mut locks = Vec::new();
    for d in &old_def.disks {
        locks.push(definition::disk_lock(&definition::disk_path(host.dir(), &old_def.name, d)).map_err(give_up)?);
    }
    sync_dir(&new).map_err(give_up)?;
    std::fs::rename(&live, &old).map_err(|e| give_up(PlatformError::io(format!("moving {} aside", live.display()), e)))?;
    if let Err(e) = std::fs::rename(&new, &live) {
        let undo = std::fs::rename(&old, &live);
        let _ = std::fs::remove_dir_all(&new);
        return Err(match undo {
            Ok(()) => PlatformError::io(format!("publishing the new VM {} (the old one is back)", live.display()), e),
            Err(u) => PlatformError::io(
                format!("publishing the new VM {} failed ({e}) and putting the old one back from {} failed too; the server puts it back when it starts again", live.display(), old.display()),
                u,
            ),
        });
    }
    // Committed: the new VM is in place.
    let _ = sync_dir(&vms);
    drop(locks);
    if let Err(e) = std::fs::remove_dir_all(&old) {
        tracing::warn!(path = %old.display(), error = %e, "removing the replaced VM; the server removes it when it starts again");
    }
    Ok(def)
}

/// Finishes or undoes replacements a stop of the server interrupted on the
/// host in `host_dir` (see the module docs). Run only when nothing else is
/// working on the host (at start-up). Returns one sentence per repair.
pub fn recover(host_dir: &Path) -> Result<Vec<String>> {
    let vms = host_dir.join(definition::VMS_DIR);
    let entries = match std::fs::read_dir(&vms) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(PlatformError::io(format!("listing {}", vms.display()), e)),
    };
    let mut found: Vec<(String, String, bool)> = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(PREFIX) else { continue };
        let (rest, is_old) = match (rest.strip_suffix(OLD), rest.strip_suffix(NEW)) {
            (Some(r), _) => (r, true),
            (None, Some(r)) => (r, false),
            _ => continue,
        };
        if rest.len() <= TAG_LEN || !rest.is_char_boundary(rest.len() - TAG_LEN) {
            continue;
        }
        let (name, tag) = rest.split_at(rest.len() - TAG_LEN);
        if uuid::Uuid::parse_str(&tag[1..]).is_err() || !definition::valid_name(name) {
            continue;
        }
        found.push((name.to_owned(), tag[1..].to_owned(), is_old));
    }
    let mut done = Vec::new();
    // Old copies first: a rollback must see its `.new` still there to remove it.
    found.sort_by_key(|(_, _, is_old)| !*is_old);
    for (name, tag, is_old) in found {
        let (new, old, live) = (aside(&vms, &name, &tag, NEW), aside(&vms, &name, &tag, OLD), vms.join(&name));
        let remove = |p: &Path| match std::fs::remove_dir_all(p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PlatformError::io(format!("removing {}", p.display()), e)),
        };
        if is_old && !live.exists() {
            std::fs::rename(&old, &live).map_err(|e| PlatformError::io(format!("putting {} back", live.display()), e))?;
            remove(&new)?;
            done.push(format!("VM '{name}': an interrupted replacement was rolled back, the old VM is back unchanged"));
        } else if is_old {
            remove(&old)?;
            done.push(format!("VM '{name}': an interrupted replacement was finished, the replaced VM removed"));
        } else if new.exists() {
            remove(&new)?;
            done.push(format!("VM '{name}': the unfinished build of an interrupted replacement was removed"));
        }
    }
    if !done.is_empty() {
        sync_dir(&vms)?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::{NewDisk, Platform};
    use shared_types::platform::{DiskFormat, Firmware, GuestOs, PowerState};

    fn host() -> (tempfile::TempDir, KvmHost) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(definition::HOST_FILE),
            r#"{"name": "h", "cpu_cores": 4, "memory_mib": 8192, "networks": []}"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join(definition::VMS_DIR)).unwrap();
        let h = KvmHost::open(dir.path()).unwrap();
        (dir, h)
    }

    fn spec(dir: &Path, name: &str, byte: u8) -> NewVm {
        let image = dir.join(format!("src-{byte}.raw"));
        std::fs::write(&image, vec![byte; 1 << 20]).unwrap();
        NewVm {
            name: name.into(),
            vcpus: 1,
            memory_mib: 256,
            firmware: Firmware::Bios,
            os: GuestOs::Linux,
            role: None,
            nics: vec![],
            disks: vec![NewDisk { name: "disk0".into(), image, image_format: DiskFormat::Raw, format: Some(DiskFormat::Raw), in_place: false }],
            power: PowerState::Stopped,
            definition: None,
            pool: None,
        }
    }

    fn disk(h: &KvmHost, name: &str) -> Vec<u8> {
        std::fs::read(h.dir().join("vms").join(name).join("disk0.raw")).unwrap()
    }

    fn entries(h: &KvmHost) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(h.dir().join("vms")).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn replace_switches_only_a_complete_vm_and_a_no_keeps_the_old_one() {
        let (dir, h) = host();
        let first = h.create_vm(&spec(dir.path(), "vm1", 1)).unwrap();
        let refused = h.replace_vm(&spec(dir.path(), "vm1", 2), &|| false).unwrap_err();
        assert!(refused.to_string().contains("unchanged"), "{refused}");
        assert_eq!(disk(&h, "vm1"), vec![1u8; 1 << 20]);
        assert_eq!(h.vm("vm1").unwrap().id, first.id);
        assert_eq!(entries(&h), vec!["vm1"]);
        let second = h.replace_vm(&spec(dir.path(), "vm1", 2), &|| true).unwrap();
        assert_ne!(second.id, first.id);
        assert_eq!(disk(&h, "vm1"), vec![2u8; 1 << 20]);
        assert_eq!(entries(&h), vec!["vm1"]);
    }

    #[test]
    fn recovery_rolls_back_before_the_commit_and_finishes_after_it() {
        let (dir, h) = host();
        let vms = h.dir().join("vms");
        let tag = uuid::Uuid::new_v4().to_string();

        // Crash after moving the old VM aside, before publishing the new one.
        h.create_vm(&spec(dir.path(), "a", 1)).unwrap();
        h.create_vm(&spec(dir.path(), "a-next", 2)).unwrap();
        std::fs::rename(vms.join("a-next"), aside(&vms, "a", &tag, NEW)).unwrap();
        std::fs::rename(vms.join("a"), aside(&vms, "a", &tag, OLD)).unwrap();
        // Crash after publishing the new one, before removing the old one.
        h.create_vm(&spec(dir.path(), "b", 3)).unwrap();
        h.create_vm(&spec(dir.path(), "b-old", 4)).unwrap();
        std::fs::rename(vms.join("b-old"), aside(&vms, "b", &tag, OLD)).unwrap();
        // Crash during a build.
        h.create_vm(&spec(dir.path(), "c", 5)).unwrap();
        std::fs::create_dir_all(aside(&vms, "c", &tag, NEW)).unwrap();

        let done = recover(h.dir()).unwrap();
        assert_eq!(done.len(), 3, "{done:?}");
        assert_eq!(entries(&h), vec!["a", "b", "c"]);
        assert_eq!(disk(&h, "a"), vec![1u8; 1 << 20], "rolled back to the old VM");
        assert_eq!(disk(&h, "b"), vec![3u8; 1 << 20], "the new VM kept");
        assert_eq!(disk(&h, "c"), vec![5u8; 1 << 20]);
        assert!(recover(h.dir()).unwrap().is_empty(), "nothing left to repair");
    }
}
