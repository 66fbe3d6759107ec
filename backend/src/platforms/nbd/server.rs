//! A read-only NBD server on a unix socket: how a restore point's disks are
//! served to a hypervisor without copying them first (instant recovery's
//! backing disks). Fixed newstyle handshake (`NBD_OPT_GO`, `_INFO`,
//! `_EXPORT_NAME`, `_LIST`), structured replies with holes
//! (`NBD_REPLY_TYPE_OFFSET_HOLE`: a sparse region costs no bytes on the
//! wire) and the `base:allocation` meta context, so a client that copies
//! the export (QEMU's block stream) learns where the zeros are. Writes are
//! refused with `EPERM`; the export is `NBD_FLAG_READ_ONLY` and
//! `CAN_MULTI_CONN`.
//!
//! One thread accepts, one thread per connection serves requests in order.
//! [`NbdServer::stop`] (or dropping the server) closes the socket and every
//! connection: the client sees the export go.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::proto::*;
use super::{BASE_ALLOCATION, STATE_HOLE, STATE_ZERO};

const OPT_EXPORT_NAME: u32 = 1;
const OPT_LIST: u32 = 3;
const OPT_INFO: u32 = 6;
const OPT_LIST_META_CONTEXT: u32 = 9;
const REP_SERVER: u32 = 2;
const TFLAG_SEND_DF: u16 = 1 << 7;
const TFLAG_CAN_MULTI_CONN: u16 = 1 << 8;
const CMD_FLAG_REQ_ONE: u16 = 1 << 3;
const STATE_HOLE_ZERO: u32 = STATE_HOLE | STATE_ZERO;
const BASE_ALLOCATION_ID: u32 = 1;
const EPERM: u32 = 1;
const EIO: u32 = 5;
const EINVAL: u32 = 22;
/// Longest option payload a client may send.
const MAX_OPTION: u32 = 64 * 1024;
/// Descriptors in one block status reply at most.
const MAX_EXTENTS: usize = 2048;

/// What an export serves: a fixed-size disk read at any offset.
pub trait ExportData: Send + Sync {
    fn size(&self) -> u64;
    /// Fills `buf` from `offset` (the caller keeps within the size).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// The run starting at `offset`: whether it reads as zeros (a hole),
    /// and its length, at least 1 and at most `max`.
    fn extent(&self, offset: u64, max: u64) -> (bool, u64);
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub connections: AtomicU64,
    pub reads: AtomicU64,
    /// Data bytes sent (holes not counted).
    pub bytes_sent: AtomicU64,
}

struct Shared {
    exports: Vec<(String, Arc<dyn ExportData>)>,
    stop: AtomicBool,
    conns: Mutex<Vec<UnixStream>>,
    stats: ServerStats,
}

/// A running server; stops when dropped.
pub struct NbdServer {
    socket: PathBuf,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl NbdServer {
    /// Listens on `socket` (a stale socket file there is replaced) and
    /// serves `exports` by name until stopped.
    pub fn start(socket: &Path, exports: Vec<(String, Arc<dyn ExportData>)>) -> io::Result<NbdServer> {
        if socket.exists() {
            std::fs::remove_file(socket)?;
        }
        let listener = UnixListener::bind(socket)?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared { exports, stop: AtomicBool::new(false), conns: Mutex::new(Vec::new()), stats: ServerStats::default() });
        let s = shared.clone();
        let accept = std::thread::Builder::new().name("nbd-accept".into()).spawn(move || accept_loop(listener, s))?;
        Ok(NbdServer { socket: socket.to_path_buf(), shared, accept: Some(accept) })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn stats(&self) -> &ServerStats {
        &self.shared.stats
    }

    /// Closes the socket and every connection.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if let Ok(c) = stream.try_clone() {
                    shared.conns.lock().unwrap_or_else(|e| e.into_inner()).push(c);
                }
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                let s = shared.clone();
                let spawned = std::thread::Builder::new().name("nbd-conn".into()).spawn(move || {
                    if let Err(e) = serve(stream, &s) {
                        if e.kind() != io::ErrorKind::UnexpectedEof && !s.stop.load(Ordering::SeqCst) {
                            tracing::debug!(error = %e, "an NBD connection ended with an error");
                        }
                    }
                });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "starting an NBD connection thread");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                tracing::warn!(error = %e, "accepting an NBD connection");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn read_u32(s: &mut UnixStream) -> io::Result<u32> {
    let mut b = [0; 4];
    s.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}
fn read_u64(s: &mut UnixStream) -> io::Result<u64> {
    let mut b = [0; 8];
    s.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn opt_reply(s: &mut UnixStream, option: u32, kind: u32, data: &[u8]) -> io::Result<()> {
    let mut h = Vec::with_capacity(20 + data.len());
    h.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
    h.extend_from_slice(&option.to_be_bytes());
    h.extend_from_slice(&kind.to_be_bytes());
    h.extend_from_slice(&(data.len() as u32).to_be_bytes());
    h.extend_from_slice(data);
    s.write_all(&h)
}

/// What the handshake settled for the transmission phase.
struct Session {
    export: Arc<dyn ExportData>,
    structured: bool,
    base_allocation: bool,
}

fn transmission_flags() -> u16 {
    TFLAG_HAS_FLAGS | TFLAG_READ_ONLY | TFLAG_SEND_FLUSH | TFLAG_SEND_DF | TFLAG_CAN_MULTI_CONN
}

fn find(shared: &Shared, name: &str) -> Option<Arc<dyn ExportData>> {
    let name = if name.is_empty() { shared.exports.first().map(|(n, _)| n.as_str()).unwrap_or("") } else { name };
    shared.exports.iter().find(|(n, _)| n == name).map(|(_, e)| e.clone())
}

/// Parses `u32 len, name, u32 n, n x (u32 len, query)`.
fn meta_queries(data: &[u8]) -> Option<Vec<String>> {
    let mut c = Cursor::new(data);
    let n = c.u32()? as usize;
    c.take(n)?;
    let count = c.u32()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let len = c.u32()? as usize;
        out.push(String::from_utf8_lossy(c.take(len)?).into_owned());
    }
    Some(out)
}

fn handshake(s: &mut UnixStream, shared: &Shared) -> io::Result<Option<Session>> {
    let mut greeting = Vec::with_capacity(18);
    greeting.extend_from_slice(&NBDMAGIC.to_be_bytes());
    greeting.extend_from_slice(&IHAVEOPT.to_be_bytes());
    greeting.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    s.write_all(&greeting)?;
    let client_flags = read_u32(s)?;
    let no_zeroes = client_flags & FLAG_C_NO_ZEROES != 0;
    let mut structured = false;
    let mut base_allocation = false;
    loop {
        if read_u64(s)? != IHAVEOPT {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "an option without IHAVEOPT"));
        }
        let option = read_u32(s)?;
        let len = read_u32(s)?;
        if len > MAX_OPTION {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("an option of {len} bytes")));
        }
        let mut data = vec![0; len as usize];
        s.read_exact(&mut data)?;
        match option {
            OPT_EXPORT_NAME => {
                let Some(export) = find(shared, &String::from_utf8_lossy(&data)) else {
                    return Ok(None);
                };
                let mut r = Vec::with_capacity(134);
                r.extend_from_slice(&export.size().to_be_bytes());
                r.extend_from_slice(&transmission_flags().to_be_bytes());
                if !no_zeroes {
                    r.extend_from_slice(&[0; 124]);
                }
                s.write_all(&r)?;
                return Ok(Some(Session { export, structured, base_allocation }));
            }
            OPT_ABORT => {
                let _ = opt_reply(s, option, REP_ACK, &[]);
                return Ok(None);
            }
            OPT_LIST => {
                for (name, _) in &shared.exports {
                    let mut d = (name.len() as u32).to_be_bytes().to_vec();
                    d.extend_from_slice(name.as_bytes());
                    opt_reply(s, option, REP_SERVER, &d)?;
                }
                opt_reply(s, option, REP_ACK, &[])?;
            }
            OPT_INFO | OPT_GO => {
                let mut c = Cursor::new(&data);
                let name = c.u32().and_then(|n| c.take(n as usize)).map(|n| String::from_utf8_lossy(n).into_owned());
                let Some(name) = name else {
                    opt_reply(s, option, REP_ERR_INVALID, b"malformed export request")?;
                    continue;
                };
                let Some(export) = find(shared, &name) else {
                    opt_reply(s, option, REP_ERR_UNKNOWN, format!("no export named '{name}'").as_bytes())?;
                    continue;
                };
                let mut info = INFO_EXPORT.to_be_bytes().to_vec();
                info.extend_from_slice(&export.size().to_be_bytes());
                info.extend_from_slice(&transmission_flags().to_be_bytes());
                opt_reply(s, option, REP_INFO, &info)?;
                let mut bs = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
                for v in [1u32, 64 * 1024, DEFAULT_MAX_PAYLOAD] {
                    bs.extend_from_slice(&v.to_be_bytes());
                }
                opt_reply(s, option, REP_INFO, &bs)?;
                opt_reply(s, option, REP_ACK, &[])?;
                if option == OPT_GO {
                    return Ok(Some(Session { export, structured, base_allocation }));
                }
            }
            OPT_STRUCTURED_REPLY => {
                if data.is_empty() {
                    structured = true;
                    opt_reply(s, option, REP_ACK, &[])?;
                } else {
                    opt_reply(s, option, REP_ERR_INVALID, b"structured reply takes no data")?;
                }
            }
            OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => {
                if !structured {
                    opt_reply(s, option, REP_ERR_INVALID, b"meta contexts need structured replies first")?;
                    continue;
                }
                let Some(queries) = meta_queries(&data) else {
                    opt_reply(s, option, REP_ERR_INVALID, b"malformed meta context request")?;
                    continue;
                };
                let listing = option == OPT_LIST_META_CONTEXT;
                let wanted = queries.iter().any(|q| q == BASE_ALLOCATION || (listing && (q == "base:" || q.is_empty())));
                if wanted || (listing && queries.is_empty()) {
                    let mut d = BASE_ALLOCATION_ID.to_be_bytes().to_vec();
                    d.extend_from_slice(BASE_ALLOCATION.as_bytes());
                    opt_reply(s, option, REP_META_CONTEXT, &d)?;
                }
                if !listing {
                    base_allocation = wanted;
                }
                opt_reply(s, option, REP_ACK, &[])?;
            }
            _ => opt_reply(s, option, REP_ERR_UNSUP, b"option not supported by this read-only server")?,
        }
    }
}

fn serve(mut s: UnixStream, shared: &Shared) -> io::Result<()> {
    let Some(session) = handshake(&mut s, shared)? else { return Ok(()) };
    let size = session.export.size();
    let mut header = [0u8; 28];
    loop {
        s.read_exact(&mut header)?;
        let mut c = Cursor::new(&header);
        let (magic, flags, kind, cookie, offset, len) =
            (c.u32().unwrap_or(0), c.u16().unwrap_or(0), c.u16().unwrap_or(0), c.u64().unwrap_or(0), c.u64().unwrap_or(0), c.u32().unwrap_or(0));
        if magic != REQUEST_MAGIC {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("request magic {magic:#x}")));
        }
        let in_bounds = offset.checked_add(len as u64).is_some_and(|end| end <= size);
        match kind {
            CMD_DISC => return Ok(()),
            CMD_READ => {
                if !in_bounds || len > DEFAULT_MAX_PAYLOAD {
                    error_reply(&mut s, &session, cookie, EINVAL, "read beyond the end of the export")?;
                } else if session.structured {
                    structured_read(&mut s, &session, shared, cookie, offset, len)?;
                } else {
                    let mut buf = vec![0; len as usize];
                    match session.export.read_at(offset, &mut buf) {
                        Ok(()) => {
                            simple_reply(&mut s, cookie, 0, &buf)?;
                            shared.stats.reads.fetch_add(1, Ordering::Relaxed);
                            shared.stats.bytes_sent.fetch_add(len as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            tracing::warn!(offset, len, error = %e, "reading for an NBD client");
                            simple_reply(&mut s, cookie, EIO, &[])?;
                        }
                    }
                }
            }
            CMD_WRITE => {
                // The payload follows the header: drain it, then refuse.
                io::copy(&mut (&mut s).take(len as u64), &mut io::sink())?;
                error_reply(&mut s, &session, cookie, EPERM, "the export is read-only")?;
            }
            CMD_FLUSH => done_reply(&mut s, &session, cookie)?,
            CMD_BLOCK_STATUS => {
                if !session.base_allocation {
                    error_reply(&mut s, &session, cookie, EINVAL, "no meta context was negotiated")?;
                } else if !in_bounds || len == 0 {
                    error_reply(&mut s, &session, cookie, EINVAL, "block status beyond the end of the export")?;
                } else {
                    block_status(&mut s, &session, cookie, offset, len as u64, flags & CMD_FLAG_REQ_ONE != 0)?;
                }
            }
            _ => error_reply(&mut s, &session, cookie, if kind == CMD_WRITE_ZEROES { EPERM } else { EINVAL }, "command not supported")?,
        }
    }
}

fn simple_reply(s: &mut UnixStream, cookie: u64, error: u32, data: &[u8]) -> io::Result<()> {
    let mut h = Vec::with_capacity(16 + data.len());
    h.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    h.extend_from_slice(&error.to_be_bytes());
    h.extend_from_slice(&cookie.to_be_bytes());
    h.extend_from_slice(data);
    s.write_all(&h)
}

fn chunk_header(flags: u16, kind: u16, cookie: u64, len: u32) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    h[4..6].copy_from_slice(&flags.to_be_bytes());
    h[6..8].copy_from_slice(&kind.to_be_bytes());
    h[8..16].copy_from_slice(&cookie.to_be_bytes());
    h[16..20].copy_from_slice(&len.to_be_bytes());
    h
}

fn done_reply(s: &mut UnixStream, session: &Session, cookie: u64) -> io::Result<()> {
    if session.structured {
        s.write_all(&chunk_header(REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, 0))
    } else {
        simple_reply(s, cookie, 0, &[])
    }
}

fn error_reply(s: &mut UnixStream, session: &Session, cookie: u64, errno: u32, message: &str) -> io::Result<()> {
    if !session.structured {
        return simple_reply(s, cookie, errno, &[]);
    }
    let mut d = errno.to_be_bytes().to_vec();
    d.extend_from_slice(&(message.len() as u16).to_be_bytes());
    d.extend_from_slice(message.as_bytes());
    let mut out = chunk_header(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, cookie, d.len() as u32).to_vec();
    out.extend_from_slice(&d);
    s.write_all(&out)
}

/// A read as structured chunks: data where there is data, holes for zeros.
fn structured_read(s: &mut UnixStream, session: &Session, shared: &Shared, cookie: u64, offset: u64, len: u32) -> io::Result<()> {
    let end = offset + len as u64;
    let mut pos = offset;
    let mut out = Vec::new();
    while pos < end {
        let (hole, n) = session.export.extent(pos, end - pos);
        let n = n.clamp(1, end - pos);
        if hole {
            out.extend_from_slice(&chunk_header(0, REPLY_TYPE_OFFSET_HOLE, cookie, 12));
            out.extend_from_slice(&pos.to_be_bytes());
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            let at = out.len();
            out.extend_from_slice(&chunk_header(0, REPLY_TYPE_OFFSET_DATA, cookie, 8 + n as u32));
            out.extend_from_slice(&pos.to_be_bytes());
            out.resize(at + 28 + n as usize, 0);
            if let Err(e) = session.export.read_at(pos, &mut out[at + 28..]) {
                tracing::warn!(offset = pos, len = n, error = %e, "reading for an NBD client");
                out.truncate(at);
                s.write_all(&out)?;
                return error_reply(s, session, cookie, EIO, &format!("reading the restore point at byte {pos}: {e}"));
            }
            shared.stats.bytes_sent.fetch_add(n, Ordering::Relaxed);
        }
        pos += n;
    }
    shared.stats.reads.fetch_add(1, Ordering::Relaxed);
    out.extend_from_slice(&chunk_header(REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, 0));
    s.write_all(&out)
}

fn block_status(s: &mut UnixStream, session: &Session, cookie: u64, offset: u64, len: u64, one: bool) -> io::Result<()> {
    let end = offset + len;
    let mut extents: Vec<(u32, u32)> = Vec::new();
    let mut pos = offset;
    while pos < end && extents.len() < MAX_EXTENTS {
        // A descriptor's length is a u32.
        let (hole, n) = session.export.extent(pos, (end - pos).min(MAX_STATUS_LEN));
        let n = n.clamp(1, end - pos);
        let flags = if hole { STATE_HOLE_ZERO } else { 0 };
        match extents.last_mut() {
            Some((l, f)) if *f == flags && (*l as u64 + n) <= MAX_STATUS_LEN => *l += n as u32,
            _ => extents.push((n as u32, flags)),
        }
        pos += n;
        if one {
            break;
        }
    }
    let mut d = BASE_ALLOCATION_ID.to_be_bytes().to_vec();
    for (l, f) in &extents {
        d.extend_from_slice(&l.to_be_bytes());
        d.extend_from_slice(&f.to_be_bytes());
    }
    let mut out = chunk_header(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, cookie, d.len() as u32).to_vec();
    out.extend_from_slice(&d);
    s.write_all(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::nbd::{allocated_ranges, NbdClient};

    /// 1 MiB: data in the first and third 64 KiB, zeros elsewhere.
    struct Pattern;
    const K64: u64 = 64 * 1024;
    impl ExportData for Pattern {
        fn size(&self) -> u64 {
            1 << 20
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            for (i, b) in buf.iter_mut().enumerate() {
                let at = offset + i as u64;
                *b = if at / K64 == 0 || at / K64 == 2 { (at % 251) as u8 | 1 } else { 0 };
            }
            Ok(())
        }
        fn extent(&self, offset: u64, max: u64) -> (bool, u64) {
            let block = offset / K64;
            let n = (K64 - offset % K64).min(max);
            (block != 0 && block != 2, n)
        }
    }

    #[test]
    fn our_client_reads_data_and_holes_and_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let server = NbdServer::start(&sock, vec![("vda".into(), Arc::new(Pattern))]).unwrap();
        let mut c = NbdClient::connect_unix(&sock, "vda", &[BASE_ALLOCATION]).unwrap();
        assert_eq!(c.size(), 1 << 20);
        let mut got = vec![0u8; 3 * K64 as usize];
        c.read_at(&mut got, 1000).unwrap();
        let mut want = vec![0u8; got.len()];
        Pattern.read_at(1000, &mut want).unwrap();
        assert!(got == want, "bytes across data and a hole read as the export has them");
        assert_eq!(allocated_ranges(&mut c, 0, 1 << 20).unwrap(), vec![(0, K64), (2 * K64, K64)]);
        let err = c.write_at(&[1; 512], 0).unwrap_err().to_string();
        assert!(err.contains("EPERM") || err.contains("read-only") || err.contains("not permitted"), "{err}");
        c.disconnect().unwrap();
        assert!(NbdClient::connect_unix(&sock, "nope", &[]).unwrap_err().to_string().contains("nope"));
        server.stop();
        assert!(!sock.exists(), "stopping removes the socket");
    }

    #[test]
    fn qemu_img_copies_the_export_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let _server = NbdServer::start(&sock, vec![("vda".into(), Arc::new(Pattern))]).unwrap();
        let out = dir.path().join("copy.raw");
        let uri = format!("nbd+unix:///vda?socket={}", sock.display());
        let o = std::process::Command::new("qemu-img").args(["convert", "-O", "raw", &uri]).arg(&out).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut want = vec![0u8; 1 << 20];
        Pattern.read_at(0, &mut want).unwrap();
        assert!(std::fs::read(&out).unwrap() == want);
        let map = std::process::Command::new("qemu-img").args(["map", "--output=json", "-f", "raw", &uri]).output().unwrap();
        let map = String::from_utf8_lossy(&map.stdout);
        assert!(map.contains("\"zero\": true") && map.contains("\"data\": true"), "qemu sees holes and data: {map}");
    }
}
