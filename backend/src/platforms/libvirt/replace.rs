//! Replacing a VM on a libvirt host (an overwrite restore) without ever
//! losing both the old and the new one.
//!
//! The new VM is defined stopped beside the old one, under the name
//! `<name>.sendense-new-<8 hex>` (its volumes named after it), and marked in
//! its persistent metadata with the old VM's uuid and volumes. Only when it
//! is complete, and the caller still wants it, the switch runs:
//!
//! 1. the old VM is stopped (hard) and undefined; its volumes stay;
//! 2. the new one is renamed to `<name>`: the commit point;
//! 3. the old volumes are deleted and the mark removed; the new VM starts
//!    when asked.
//!
//! A failure before step 2 removes the new VM; the old one was never
//! touched before step 1, and step 1 failing leaves it defined. A stop of
//! the server at any point leaves what [`recover`] reads at the next start:
//! a marked VM whose old VM still exists was never switched in (removed); a
//! marked VM whose old VM is gone had passed step 1 (renamed, old volumes
//! deleted); a new VM without its mark never got past its build (removed).

use virt::connect::Connect;
use virt::domain::Domain;

use super::create::{self, lv};
use super::domain_xml::{escape, parse_domain};
use crate::platforms::error::{PlatformError, Result};
use crate::platforms::NewVm;
use shared_types::platform::PowerState;

const MARKER: &str = ".sendense-new-";
const NS: &str = "https://sendense.io/xmlns/replacing/1";

/// What a new VM being switched in remembers of the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    name: String,
    old_uuid: String,
    volumes: Vec<String>,
}

impl Mark {
    fn xml(&self) -> String {
        let vols: String = self.volumes.iter().map(|v| format!("<volume path='{}'/>", escape(v))).collect();
        format!("<replacing name='{}' old='{}'>{vols}</replacing>", escape(&self.name), escape(&self.old_uuid))
    }

    fn parse(xml: &str) -> Option<Mark> {
        let doc = roxmltree::Document::parse(xml).ok()?;
        let root = doc.root_element();
        Some(Mark {
            name: root.attribute("name")?.to_string(),
            old_uuid: root.attribute("old")?.to_string(),
            volumes: root.children().filter(|n| n.has_tag_name("volume")).filter_map(|n| n.attribute("path").map(String::from)).collect(),
        })
    }
}

const CONFIG: u32 = virt::sys::VIR_DOMAIN_AFFECT_CONFIG;

fn read_mark(dom: &Domain) -> Option<Mark> {
    dom.metadata(virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some(NS), CONFIG).ok().and_then(|x| Mark::parse(&x))
}

fn set_mark(dom: &Domain, mark: Option<&Mark>) -> std::result::Result<(), virt::error::Error> {
    let kind = virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32;
    match mark {
        Some(m) => dom.set_metadata(kind, Some(&m.xml()), Some("sdr"), Some(NS), CONFIG).map(|_| ()),
        None => dom.set_metadata(kind, None, None, Some(NS), CONFIG).map(|_| ()),
    }
}

/// The volume paths (or `pool/volume` names) of a VM's disks.
fn volumes_of(conn: &Connect, dom: &Domain) -> Result<Vec<String>> {
    let name = dom.name().unwrap_or_default();
    let xml = dom.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).map_err(|e| lv(&format!("reading the definition of '{name}'"), e))?;
    let def = parse_domain(&xml)?;
    // Kept by path, which outlives the domain; only volumes of a pool are
    // deleted (a file outside every pool is not Sendense's).
    Ok(def.disks.iter().filter_map(|d| create::volume_of(conn, d.source.as_deref()?)?.path().ok()).collect())
}

fn delete_volumes(conn: &Connect, paths: &[String]) {
    for p in paths {
        if let Ok(vol) = conn.lookup_storage_vol_by_path(p) {
            if let Err(e) = vol.delete(0) {
                tracing::warn!(volume = %p, error = %e.message(), "deleting a disk volume of a replaced VM");
            }
        }
    }
}

fn remove_new(conn: &Connect, dom: &Domain) -> Result<()> {
    let xml = dom.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).map_err(|e| lv("reading the new VM's definition", e))?;
    create::delete(conn, dom, &parse_domain(&xml)?)
}

/// Builds `spec` beside the VM of the same name and switches it in (see the
/// module docs). `go_on` is asked between the build and the switch. The
/// new VM's uuid.
pub fn replace(conn: &Connect, spec: &NewVm, go_on: &dyn Fn() -> bool) -> Result<String> {
    let old = conn.lookup_domain_by_name(&spec.name).map_err(|_| PlatformError::VmNotFound(spec.name.clone()))?;
    let old_uuid = old.uuid_string().map_err(|e| lv(&format!("reading the uuid of '{}'", spec.name), e))?;
    let temp = format!("{}{MARKER}{}", spec.name, &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut building = spec.clone();
    building.name = temp.clone();
    building.power = PowerState::Stopped;
    let uuid = create::create(conn, &building)?;
    let new = conn.lookup_domain_by_uuid_string(&uuid).map_err(|e| lv("finding the new VM", e))?;
    let give_up = |e: PlatformError| -> PlatformError {
        if let Err(r) = remove_new(conn, &new) {
            tracing::warn!(vm = %temp, error = %r, "removing the unfinished new VM; the server removes it when it starts again");
        }
        e
    };
    if !go_on() {
        return Err(give_up(PlatformError::Invalid(format!("stopped before the switch: VM '{}' was not replaced and is unchanged", spec.name))));
    }
    let mark = Mark { name: spec.name.clone(), old_uuid, volumes: volumes_of(conn, &old).map_err(give_up)? };
    set_mark(&new, Some(&mark)).map_err(|e| give_up(lv("marking the new VM for the switch", e)))?;
    // 1. The old VM goes (its volumes stay until the new one is in place).
    if old.is_active().unwrap_or(false) {
        old.destroy().map_err(|e| give_up(lv(&format!("powering off the existing VM '{}'", spec.name), e)))?;
    }
    old.undefine_flags(virt::sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM)
        .or_else(|_| old.undefine())
        .map_err(|e| give_up(lv(&format!("removing the existing VM '{}'", spec.name), e)))?;
    // 2. The commit point.
    new.rename(&spec.name, 0).map_err(|e| {
        lv(&format!("renaming the new VM '{temp}' to '{}' (the existing VM is removed; the server finishes the switch when it starts again)", spec.name), e)
    })?;
    finish(conn, &new, &mark);
    if spec.power == PowerState::Running {
        new.create().map_err(|e| lv(&format!("starting VM '{}', which replaced the existing one", spec.name), e))?;
    }
    Ok(uuid)
}

/// Step 3: the old volumes deleted, the mark removed.
fn finish(conn: &Connect, new: &Domain, mark: &Mark) {
    delete_volumes(conn, &mark.volumes);
    if let Err(e) = set_mark(new, None) {
        tracing::warn!(vm = %mark.name, error = %e.message(), "removing the replacement mark");
    }
}

/// Finishes or undoes the replacements a stop of the server interrupted
/// (see the module docs). One sentence per repair.
pub fn recover(conn: &Connect) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let domains = conn.list_all_domains(0).map_err(|e| lv("listing VMs", e))?;
    for dom in domains {
        let Ok(name) = dom.name() else { continue };
        let Some((base, _)) = name.split_once(MARKER) else { continue };
        match read_mark(&dom) {
            Some(mark) if conn.lookup_domain_by_uuid_string(&mark.old_uuid).is_err() => {
                if conn.lookup_domain_by_name(&mark.name).is_err() {
                    dom.rename(&mark.name, 0).map_err(|e| lv(&format!("renaming '{name}' to '{}'", mark.name), e))?;
                }
                finish(conn, &dom, &mark);
                done.push(format!("finished replacing VM '{}': the new VM took its place", mark.name));
            }
            _ => {
                remove_new(conn, &dom)?;
                done.push(format!("removed '{name}', an unfinished replacement of VM '{base}', which is unchanged"));
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::Mark;

    #[test]
    fn the_mark_reads_back_as_written() {
        let m = Mark { name: "web's".into(), old_uuid: "5c1f".into(), volumes: vec!["/p/a.qcow2".into(), "/p/b&c.raw".into()] };
        assert_eq!(Mark::parse(&m.xml()), Some(m));
        assert_eq!(Mark::parse("<replacing/>"), None);
    }
}
