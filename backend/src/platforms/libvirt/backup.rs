//! A VM-level backup read on a libvirt host: one checkpoint + pull-mode
//! backup job covering every disk of the domain (one point in time for all
//! of them), each disk read over NBD from the export libvirt opens
//! (`base:allocation` for holes, the job's `backup-<disk>` dirty bitmap for
//! what changed since the previous checkpoint of the same chain).
//!
//! Checkpoint chains: each consumer (the backups of one managed VM, each
//! replication of it) names its checkpoints `<prefix><n>` with its own
//! prefix ([`Chain`]), so one consumer's token never serves another. A
//! token that is not in this chain, or whose checkpoint is gone, means a
//! full read with the reason. When the read succeeds the chain's older
//! checkpoints are deleted; when it fails the new one is (its changes merge
//! into the previous one, which then still covers everything since it).
//!
//! A running domain with a guest agent channel is quiesced: the agent
//! freezes its mounted filesystems while the job starts (the point in
//! time) and thaws them right after; without an agent, or when it does not
//! answer, the read is crash-consistent and says why ([`Quiesce`]).
//!
//! A shut-off domain is started paused for the read (QEMU runs no guest
//! code; its checkpoints persist as qcow2 bitmaps) and stopped after. A job
//! left by a killed server (its export socket is one of ours, and no read
//! of this process holds the domain) is ended before the next read.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use shared_types::platform::DiskFormat;
use virt::domain::Domain;

use super::domain_xml::{escape, DomainDef};
use super::ffi;
use crate::platforms::error::{PlatformError, Result};
use crate::platforms::nbd::{self, NbdClient, NbdSource};
use crate::platforms::{DiskRead, Quiesce};

/// Where export sockets are made; the prefix marks a job as Sendense's.
const SOCKET_PREFIX: &str = "sendense-nbd-";

/// Domains with a read open in this process, by [`active_key`].
static ACTIVE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// A domain's key in [`ACTIVE`]: its host's URI and its uuid (VMs on two
/// hosts may share a uuid: a clone, a host restored from another).
fn active_key(dom: &Domain, uuid: &str) -> String {
    let host = dom.connect().and_then(|c| c.uri()).unwrap_or_default();
    format!("{host} {uuid}")
}

/// One consumer's checkpoint chain on a domain.
#[derive(Debug, Clone)]
pub struct Chain {
    prefix: String,
}

impl Chain {
    /// The backups of managed VM `owner`.
    pub fn backups_of(owner: &str) -> Chain {
        Chain { prefix: format!("sendense-b.{}.", sanitize(owner)) }
    }
    /// A replication flow (or any other consumer) with its own tracking.
    pub fn consumer(id: &str) -> Chain {
        Chain { prefix: format!("sendense-r.{}.", sanitize(id)) }
    }
    fn generation(&self, checkpoint: &str) -> Option<u64> {
        checkpoint.strip_prefix(&self.prefix)?.parse().ok()
    }
    fn name(&self, generation: u64) -> String {
        format!("{}{generation}", self.prefix)
    }
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Opens every disk of `dom` for one backup's read. `since`: the token of
/// the previous read of this chain (all disks share one checkpoint).
/// `export_host`: where the export is opened, see
/// [`LibvirtPlatform::export_host`](super::LibvirtPlatform::export_host).
pub fn open(dom: Domain, def: &DomainDef, since: Option<&str>, chain: &Chain, export_host: Option<&str>) -> Result<Vec<DiskRead>> {
    let tcp_host = export_host.map(export_address).transpose()?;
    {
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        if !active.get_or_insert_with(HashSet::new).insert(active_key(&dom, &def.uuid)) {
            return Err(PlatformError::Invalid(format!("a backup read of VM '{}' is already running; try again when it ends", def.name)));
        }
    }
    let session = Session {
        dom,
        uuid: def.uuid.clone(),
        name: def.name.clone(),
        new_checkpoint: None,
        older: Vec::new(),
        started_paused: false,
        job_started: false,
        dir: None,
        tcp_host,
    };
    let reads = session.begin(def, since, chain)?;
    Ok(reads)
}

/// Ends the pull-backup jobs a stopped Sendense left running on the host's
/// domains (their export socket is one of ours and no read of this process
/// holds the domain), and removes their socket directories; how many.
pub fn end_dangling(conn: &virt::connect::Connect) -> Result<usize> {
    let domains = conn
        .list_all_domains(virt::sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        .map_err(|e| PlatformError::Invalid(format!("listing domains: {}", e.message())))?;
    let mut ended = 0;
    for dom in domains {
        let uuid = dom.uuid_string().unwrap_or_default();
        let key = active_key(&dom, &uuid);
        let held = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|s| s.contains(&key));
        if !held && marked(&dom, QUIESCE_NS) {
            tracing::warn!(vm = %dom.name().unwrap_or_default(), "thawing the filesystems a stopped server froze for a backup");
            match ffi::fs_thaw(&dom) {
                Ok(_) => mark(&dom, QUIESCE_NS, "", false),
                Err(e) => tracing::warn!(vm = %dom.name().unwrap_or_default(), error = %e, "thawing a guest's filesystems"),
            }
        }
        let Some(job) = ffi::backup_job(&dom) else { continue };
        let tcp = marked(&dom, EXPORT_NS);
        if !job.contains(SOCKET_PREFIX) && !tcp {
            continue;
        }
        if held {
            continue;
        }
        let name = dom.name().unwrap_or_default();
        tracing::warn!(vm = %name, "ending a backup job a stopped server left running");
        ffi::abort_job(&dom)?;
        if tcp {
            mark(&dom, EXPORT_NS, "", false);
        }
        if let Some(dir) = socket_dir(&job) {
            let _ = std::fs::remove_dir_all(dir);
        }
        ended += 1;
        // A shut-off VM the stopped server had started paused for that read
        // goes back to shut off.
        if is_paused(&dom) && paused_for_backup(&dom) {
            tracing::warn!(vm = %name, "stopping the VM a stopped server started paused for its backup");
            if let Err(e) = dom.destroy() {
                tracing::warn!(vm = %name, error = %e.message(), "stopping a VM started paused for a backup");
            }
        }
    }
    Ok(ended)
}

/// The namespace of the live-only mark on a VM started paused for a read.
const PAUSED_NS: &str = "https://sendense.io/xmlns/paused-for-backup/1";
/// The namespace of the live-only mark on a VM whose backup job exports
/// over TCP (no socket of ours names that job as Sendense's).
const EXPORT_NS: &str = "https://sendense.io/xmlns/tcp-export/1";
/// The namespace of the live-only mark on a VM whose filesystems a read
/// froze (a server killed before the thaw leaves it; the next start thaws).
const QUIESCE_NS: &str = "https://sendense.io/xmlns/frozen-for-backup/1";
/// How long the guest agent may take to answer a freeze.
const AGENT_TIMEOUT_S: i32 = 10;
/// The virtio-serial port name of the QEMU guest agent.
const AGENT_CHANNEL: &str = "org.qemu.guest_agent.0";

/// The state libvirt reports for the guest agent's channel of a running
/// domain (`connected`, `disconnected`), if it has one.
fn agent_state(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let target = doc.descendants().find(|n| n.has_tag_name("target") && n.attribute("name") == Some(AGENT_CHANNEL) && n.parent().is_some_and(|p| p.has_tag_name("channel")))?;
    Some(target.attribute("state").unwrap_or("of unknown state").to_string())
}

/// The TCP ports a backup export may take on a host reached remotely.
const PORTS: (u16, u16) = (10810, 10999);
/// Ports tried before a backup gives up on finding a free one.
const PORT_TRIES: u32 = 40;

/// The address a TCP export is opened on and read from: `host` resolved
/// here (QEMU on the host would resolve a name its own way: its own name
/// is often 127.0.1.1 there, and an SSH alias nothing at all).
fn export_address(host: &str) -> Result<String> {
    use std::net::ToSocketAddrs;
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(host.to_string());
    }
    let addrs: Vec<std::net::IpAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|e| PlatformError::Invalid(format!("the host name '{host}' of the platform does not resolve here ({e}): use its address in the URI")))?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|ip| !ip.is_loopback())
        .or(addrs.first())
        .map(|ip| ip.to_string())
        .ok_or_else(|| PlatformError::Invalid(format!("the host name '{host}' of the platform has no address")))
}

/// Where the search for a free export port starts (spread, so concurrent
/// backups rarely try the same ports).
fn first_port() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    PORTS.0 + (nanos % u32::from(PORTS.1 - PORTS.0 + 1)) as u16
}

/// Whether a failed backup start means the export's port is taken.
fn port_in_use(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("address already in use") || m.contains("failed to bind")
}

/// Sets (or clears) a live-only mark (gone when the VM stops) in namespace
/// `ns`, so a server killed meanwhile recognises what it left.
fn mark(dom: &Domain, ns: &str, element: &str, on: bool) {
    let flags = virt::sys::VIR_DOMAIN_AFFECT_LIVE;
    let kind = virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32;
    let r = if on { dom.set_metadata(kind, Some(element), Some("sdp"), Some(ns), flags) } else { dom.set_metadata(kind, None, None, Some(ns), flags) };
    if let Err(e) = r {
        tracing::warn!(vm = %dom.name().unwrap_or_default(), error = %e.message(), namespace = ns, "marking a VM for its backup");
    }
}

fn marked(dom: &Domain, ns: &str) -> bool {
    dom.metadata(virt::sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some(ns), virt::sys::VIR_DOMAIN_AFFECT_LIVE).is_ok()
}

/// Marks (or unmarks) `dom` as started paused by a backup, so a server
/// killed meanwhile can stop it at start.
fn mark_paused_for_backup(dom: &Domain, on: bool) {
    mark(dom, PAUSED_NS, "<paused-for-backup/>", on);
}

pub(super) fn paused_for_backup(dom: &Domain) -> bool {
    marked(dom, PAUSED_NS)
}

fn is_paused(dom: &Domain) -> bool {
    matches!(dom.state(), Ok((virt::enumutil::Enum::Known(virt::domain::DomainState::Paused), _)))
}

/// The export socket's directory a backup job's XML names, when it is ours.
fn socket_dir(job_xml: &str) -> Option<PathBuf> {
    let doc = roxmltree::Document::parse(job_xml).ok()?;
    let server = doc.descendants().find(|n| n.has_tag_name("server"))?;
    let dir = PathBuf::from(server.attribute("socket")?).parent()?.to_path_buf();
    dir.file_name()?.to_str()?.starts_with(SOCKET_PREFIX).then_some(dir)
}

/// Ends the chain: every checkpoint of `chain` on `dom` is deleted.
pub fn forget_chain(dom: &Domain, chain: &Chain) -> Result<()> {
    let ours: Vec<String> = ffi::list_checkpoints(dom)?.into_iter().map(|(n, _)| n).filter(|n| chain.generation(n).is_some()).collect();
    if ours.is_empty() {
        return Ok(());
    }
    let name = dom.name().unwrap_or_default();
    // libvirt deletes a checkpoint's bitmaps through the running QEMU: a
    // shut-off VM is started paused for it, and stopped again.
    let started = if dom.is_active().map_err(|e| lv(&name, "reading the power state", e))? {
        false
    } else {
        dom.create_with_flags(virt::sys::VIR_DOMAIN_START_PAUSED).map_err(|e| lv(&name, "starting the shut-off VM paused to delete its checkpoints", e))?;
        true
    };
    let deleted = ours.iter().try_for_each(|c| ffi::delete_checkpoint(dom, c));
    if started && is_paused(dom) {
        if let Err(e) = dom.destroy() {
            tracing::warn!(vm = %name, error = %e.message(), "stopping the VM started paused to delete its checkpoints");
        }
    }
    deleted
}


struct Session {
    dom: Domain,
    uuid: String,
    name: String,
    new_checkpoint: Option<String>,
    /// This chain's checkpoints before this read (deleted once it succeeds).
    older: Vec<String>,
    started_paused: bool,
    job_started: bool,
    dir: Option<tempfile::TempDir>,
    /// The export is opened on a TCP port of this address of the host.
    tcp_host: Option<String>,
}

struct Shared {
    session: Mutex<Option<Session>>,
    remaining: Mutex<(usize, bool)>,
}

impl Session {
    fn begin(mut self, def: &DomainDef, since: Option<&str>, chain: &Chain) -> Result<Vec<DiskRead>> {
        // A job left by a killed server: end it (it is ours and nobody here holds it).
        if let Some(job) = ffi::backup_job(&self.dom) {
            if job.contains(SOCKET_PREFIX) || marked(&self.dom, EXPORT_NS) {
                tracing::warn!(vm = %self.name, "ending a backup job a stopped server left running");
                ffi::abort_job(&self.dom)?;
            } else {
                return Err(PlatformError::Invalid(format!("VM '{}' has a backup job that is not Sendense's running; end it first", self.name)));
            }
        }
        let checkpoints = ffi::list_checkpoints(&self.dom)?;
        let ours: Vec<(u64, String)> = checkpoints.iter().filter_map(|(n, _)| Some((chain.generation(n)?, n.clone()))).collect();
        self.older = ours.iter().map(|(_, n)| n.clone()).collect();
        let tracked = def.disks.iter().all(|d| d.format == DiskFormat::Qcow2);
        let mut incremental = match since {
            None => Err("no previous backup of this VM on this chain".to_string()),
            Some(_) if !tracked => Err("a disk that is not qcow2 cannot hold checkpoints".to_string()),
            Some(s) if chain.generation(s).is_none() => Err(format!("the previous token '{s}' belongs to another VM or consumer")),
            Some(s) if !ours.iter().any(|(_, n)| n == s) => {
                Err(format!("checkpoint '{s}' is gone from the VM (deleted, or the VM was redefined)"))
            }
            Some(s) => Ok(s.to_string()),
        };
        // Never a name used before, even once the chain was emptied (a
        // stale bitmap of that name left in an image would fail every
        // backup): the next generation is at least the time in milliseconds.
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let next = ours.iter().map(|(g, _)| g + 1).max().unwrap_or(1).max(now_ms);
        let checkpoint = chain.name(next);

        if !self.dom.is_active().map_err(|e| lv(&self.name, "reading the power state", e))? {
            self.dom
                .create_with_flags(virt::sys::VIR_DOMAIN_START_PAUSED)
                .map_err(|e| lv(&self.name, "starting the shut-off VM paused for its backup", e))?;
            self.started_paused = true;
            mark_paused_for_backup(&self.dom, true);
        }
        let dir = tempfile::Builder::new()
            .prefix(SOCKET_PREFIX)
            .tempdir_in("/tmp")
            .map_err(|e| PlatformError::io("making the export socket directory".to_string(), e))?;
        let socket = dir.path().join("nbd.sock");
        let mut disks_xml = String::new();
        let mut cp_disks = String::new();
        for d in &def.disks {
            // A host on another machine gets its scratch files in its own
            // /var/tmp (libvirt makes them there and removes them at the end).
            let scratch = match self.tcp_host {
                None => dir.path().join(format!("scratch-{}.qcow2", d.target)),
                Some(_) => PathBuf::from(format!("/var/tmp/{SOCKET_PREFIX}{}-{}-{}.qcow2", sanitize(&self.uuid), sanitize(&d.target), uuid::Uuid::new_v4().simple())),
            };
            disks_xml.push_str(&format!(
                "<disk name='{}' backup='yes' type='file'><scratch file='{}'/></disk>",
                escape(&d.target),
                escape(&scratch.to_string_lossy())
            ));
            cp_disks.push_str(&format!(
                "<disk name='{}' checkpoint='{}'/>",
                escape(&d.target),
                if d.format == DiskFormat::Qcow2 { "bitmap" } else { "no" }
            ));
        }
        let checkpoint_xml = format!("<domaincheckpoint><name>{}</name><disks>{cp_disks}</disks></domaincheckpoint>", escape(&checkpoint));
        let socket_attr = escape(&socket.to_string_lossy());
        self.dir = Some(dir);
        let mut port = first_port();
        let mut port_tries = 0;
        if self.tcp_host.is_some() {
            mark(&self.dom, EXPORT_NS, "<tcp-export/>", true);
        }
        let quiesce = self.freeze();
        let begun: Result<()> = loop {
            let server = match &self.tcp_host {
                None => format!("<server transport='unix' socket='{socket_attr}'/>"),
                Some(host) => format!("<server transport='tcp' name='{}' port='{port}'/>", escape(host)),
            };
            let backup_xml = format!(
                "<domainbackup mode='pull'>{}{server}<disks>{disks_xml}</disks></domainbackup>",
                incremental.as_ref().map(|s| format!("<incremental>{}</incremental>", escape(s))).unwrap_or_default(),
            );
            match ffi::backup_begin(&self.dom, &backup_xml, &checkpoint_xml) {
                Ok(()) => break Ok(()),
                // Another export (or anything else) has the port: the next one.
                Err(e) if self.tcp_host.is_some() && port_tries < PORT_TRIES && port_in_use(&e.to_string()) => {
                    port_tries += 1;
                    port = if port >= PORTS.1 { PORTS.0 } else { port + 1 };
                }
                Err(e) => match incremental {
                    // The checkpoint exists in libvirt but cannot serve (its
                    // bitmap is missing or broken in a disk image): the chain
                    // starts again with a full read that says why.
                    Ok(since) if e.to_string().to_lowercase().contains("bitmap") => {
                        tracing::warn!(vm = %self.name, checkpoint = %since, error = %e, "the checkpoint cannot serve an incremental read; reading in full");
                        for name in std::mem::take(&mut self.older) {
                            if ffi::delete_checkpoint(&self.dom, &name).is_err() {
                                let _ = ffi::delete_checkpoint_metadata(&self.dom, &name);
                            }
                        }
                        incremental = Err(format!("checkpoint '{since}' could not be used ({e}); the chain starts again"));
                    }
                    // Anything else (a block job running, a disk gone) is
                    // the backup's error: the chain is left as it is.
                    _ => break Err(e),
                },
            }
        };
        // The point in time is taken: the guest's filesystems go on.
        if matches!(quiesce, Quiesce::Frozen { .. }) {
            self.thaw();
        }
        if begun.is_err() && self.tcp_host.is_some() {
            mark(&self.dom, EXPORT_NS, "", false);
        }
        begun?;
        self.job_started = true;
        self.new_checkpoint = Some(checkpoint.clone());

        let mut opened = Vec::new();
        for d in &def.disks {
            let bitmap = format!("backup-{}", d.target);
            let ctx = nbd::bitmap_context(&bitmap);
            let mut contexts = vec![nbd::BASE_ALLOCATION];
            if incremental.is_ok() {
                contexts.push(&ctx);
            }
            let label = format!("{}/{}", self.name, d.target);
            let nbd_err = |e: nbd::NbdError| PlatformError::Disk { path: PathBuf::from(&label), reason: e.to_string() };
            let mut client = match &self.tcp_host {
                None => NbdClient::connect_unix(&socket, &d.target, &contexts),
                Some(host) => NbdClient::connect_tcp(host, port, &d.target, &contexts),
            }
            .map_err(nbd_err)?;
            let changed = match incremental {
                Ok(_) => Some(nbd::dirty_ranges(&mut client, &bitmap).map_err(nbd_err)?),
                Err(_) => None,
            };
            let source = Arc::new(NbdSource::open(&label, client, None).map_err(nbd_err)?);
            opened.push((source, changed, d.format, d.target.clone()));
        }
        let shared = Arc::new(Shared { session: Mutex::new(Some(self)), remaining: Mutex::new((opened.len(), true)) });
        let mut reads = Vec::new();
        for (source, changed, format, target) in opened {
            let shared = Arc::clone(&shared);
            let closer = Arc::clone(&source);
            let mut read = DiskRead::new(source, Box::new(move |success| {
                closer.close();
                let last = {
                    let mut r = shared.remaining.lock().unwrap_or_else(|e| e.into_inner());
                    r.0 -= 1;
                    r.1 &= success;
                    (r.0 == 0).then_some(r.1)
                };
                match last {
                    Some(all_ok) => match shared.session.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        Some(s) => s.end(all_ok),
                        None => Ok(()),
                    },
                    None => Ok(()),
                }
            }));
            read.changed_ranges = changed;
            read.full_read_reason = incremental.as_ref().err().cloned();
            read.token = (format == DiskFormat::Qcow2).then(|| checkpoint.clone());
            read.disk = Some(target);
            read.quiesce = Some(quiesce.clone());
            reads.push(read);
        }
        Ok(reads)
    }

    /// Freezes the running guest's filesystems through its guest agent,
    /// when it has one that answers; what was done, or why not.
    fn freeze(&self) -> Quiesce {
        if self.started_paused {
            return Quiesce::AtRest;
        }
        let xml = self.dom.xml_desc(0).unwrap_or_default();
        let Some(state) = agent_state(&xml) else { return Quiesce::NoAgent };
        // libvirt knows whether the agent has its port open: a freeze sent
        // to an agent that is not there is not sent at all.
        if state != "connected" {
            return Quiesce::AgentFailed { reason: format!("the guest agent is not running in the guest (its channel is {state})") };
        }
        mark(&self.dom, QUIESCE_NS, "<frozen-for-backup/>", true);
        match ffi::fs_freeze(&self.dom, AGENT_TIMEOUT_S) {
            Ok(n) => {
                tracing::info!(vm = %self.name, filesystems = n, "guest filesystems frozen for the backup's point in time");
                Quiesce::Frozen { filesystems: n }
            }
            Err(e) => {
                // A freeze that timed out may still complete in the guest:
                // thaw (a no-op when nothing is frozen) before going on.
                self.thaw();
                tracing::info!(vm = %self.name, error = %e, "the guest agent did not freeze the filesystems; reading crash-consistent");
                Quiesce::AgentFailed { reason: e.to_string() }
            }
        }
    }

    /// Thaws the guest (a few tries: a frozen guest cannot write); the
    /// freeze mark goes once a thaw succeeded, else it stays for the end of
    /// the read and the next server start to try again.
    fn thaw(&self) -> bool {
        for attempt in 0..3 {
            match ffi::fs_thaw(&self.dom) {
                Ok(_) => {
                    mark(&self.dom, QUIESCE_NS, "", false);
                    ffi::agent_default_timeout(&self.dom);
                    return true;
                }
                Err(e) => {
                    tracing::error!(vm = %self.name, attempt, error = %e, "thawing the guest's filesystems");
                    std::thread::sleep(std::time::Duration::from_millis(500 << attempt));
                }
            }
        }
        false
    }

    /// Ends the job, settles the chain, and stops a VM started for the read.
    fn end(mut self, success: bool) -> Result<()> {
        let r = self.end_inner(success);
        self.job_started = false;
        self.new_checkpoint = None;
        self.started_paused = false;
        r
    }

    fn end_inner(&mut self, success: bool) -> Result<()> {
        let mut first_error = None;
        if self.job_started && ffi::backup_job(&self.dom).is_some() {
            if let Err(e) = ffi::abort_job(&self.dom) {
                first_error.get_or_insert(e);
            }
        }
        if self.tcp_host.is_some() {
            mark(&self.dom, EXPORT_NS, "", false);
        }
        if marked(&self.dom, QUIESCE_NS) && !self.thaw() {
            first_error.get_or_insert(PlatformError::Invalid(format!("VM '{}': its filesystems could not be thawed after the backup's freeze", self.name)));
        }
        let stale: Vec<String> = if success { std::mem::take(&mut self.older) } else { self.new_checkpoint.iter().cloned().collect() };
        for name in stale {
            if let Err(e) = ffi::delete_checkpoint(&self.dom, &name) {
                tracing::warn!(vm = %self.name, checkpoint = %name, error = %e, "deleting a checkpoint");
                first_error.get_or_insert(e);
            }
        }
        // A VM started paused for the read is stopped again, unless someone
        // resumed it meanwhile: then it is a running guest and stays one.
        let still_paused = is_paused(&self.dom);
        if self.started_paused && !still_paused {
            // Resumed by someone: a guest like any other from now on.
            mark_paused_for_backup(&self.dom, false);
        }
        if self.started_paused && still_paused {
            // SIGTERM: QEMU closes its images cleanly, which writes the bitmaps.
            if self.dom.destroy_flags(virt::sys::VIR_DOMAIN_DESTROY_GRACEFUL).is_err() {
                if let Err(e) = self.dom.destroy() {
                    first_error.get_or_insert(lv(&self.name, "stopping the VM started for its backup", e));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.job_started || self.started_paused {
            if let Err(e) = self.end_inner(false) {
                tracing::warn!(vm = %self.name, error = %e, "ending a backup read that failed");
            }
        }
        let key = active_key(&self.dom, &self.uuid);
        let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = active.as_mut() {
            set.remove(&key);
        }
    }
}

pub(super) fn lv(vm: &str, what: &str, e: virt::error::Error) -> PlatformError {
    PlatformError::Invalid(format!("VM '{vm}': {what}: {}", e.message()))
}
