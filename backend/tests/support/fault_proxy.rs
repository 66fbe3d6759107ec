//! A fault-injecting HTTP proxy in front of a real object store (moto,
//! Azurite): it forwards every request unchanged (signatures still check
//! out: the Host header is passed on as sent) and, when told to at run
//! time, answers some requests itself the way a real storage does when it
//! throttles (503 SlowDown, 503 ServerBusy) or stops taking writes (507 on a
//! full MinIO, 403 QuotaExceeded on a Ceph bucket over quota, 403 on a
//! revoked Azure write permission) after a budget of PUT bytes.
//!
//! One request per connection: the proxy adds `Connection: close` on both
//! sides, so a connection never outlives its answer (the client opens a new
//! one; loopback makes that cheap). Request bodies must have a
//! Content-Length (object_store sends whole objects).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// An error answer of the storage's own: status, reason phrase, error code
/// and message, and whether it is written the Azure way (`x-ms-error-code`).
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub reason: &'static str,
    pub code: &'static str,
    pub message: &'static str,
    pub azure: bool,
}

/// S3's throttling answer (AWS: "Please reduce your request rate").
pub const S3_SLOW_DOWN: Answer =
    Answer { status: 503, reason: "Slow Down", code: "SlowDown", message: "Please reduce your request rate.", azure: false };
/// Azure Blob's throttling answer (account or partition over its targets).
pub const AZURE_SERVER_BUSY: Answer = Answer {
    status: 503,
    reason: "Server Busy",
    code: "ServerBusy",
    message: "The server is currently unable to receive requests. Please retry your request.",
    azure: true,
};
/// MinIO when its drives are full.
pub const MINIO_STORAGE_FULL: Answer = Answer {
    status: 507,
    reason: "Insufficient Storage",
    code: "XMinioStorageFull",
    message: "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed.",
    azure: false,
};
/// Ceph RGW when a bucket or user quota is used up.
pub const S3_QUOTA_EXCEEDED: Answer =
    Answer { status: 403, reason: "Forbidden", code: "QuotaExceeded", message: "Quota exceeded.", azure: false };
/// Azure when the credential no longer allows writes (role or SAS changed).
pub const AZURE_WRITE_DENIED: Answer = Answer {
    status: 403,
    reason: "Forbidden",
    code: "AuthorizationPermissionMismatch",
    message: "This request is not authorized to perform this operation using this permission.",
    azure: true,
};
/// A storage failing inside (S3's generic 500).
pub const S3_INTERNAL_ERROR: Answer = Answer {
    status: 500,
    reason: "Internal Server Error",
    code: "InternalError",
    message: "We encountered an internal error. Please try again.",
    azure: false,
};

/// What the proxy does now; changed at run time with [`FaultProxy::set`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Every `n`-th request (counted from when this was set) is answered
    /// with `.1` instead of being forwarded; `None`: none.
    pub throttle: Option<(u64, Answer)>,
    /// Once this many PUT body bytes went through (counted from when this
    /// was set), every PUT is answered with `.1`.
    pub refuse_puts_after: Option<(u64, Answer)>,
}

/// What the proxy did, counted since it started (`throttled`: answers of
/// the `throttle` rule, `refused`: of the `refuse_puts_after` rule).
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    pub throttled: AtomicU64,
    pub refused: AtomicU64,
    pub put_bytes: AtomicU64,
}

struct State {
    faults: Faults,
    /// Requests and PUT bytes since the faults were set.
    seen: u64,
    put_bytes: u64,
}

pub struct FaultProxy {
    port: u16,
    upstream: u16,
    state: Arc<Mutex<State>>,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `127.0.0.1:upstream`,
    /// forwarding everything until faults are set.
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State { faults: Faults::default(), seen: 0, put_bytes: 0 }));
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, c, st) = (state.clone(), counts.clone(), stop.clone());
        let accept = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if st.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (s, c) = (s.clone(), c.clone());
                    std::thread::spawn(move || {
                        if let Err(e) = serve(conn, upstream, &s, &c) {
                            eprintln!("fault proxy: {e}");
                        }
                    });
                }
            })
            .unwrap();
        FaultProxy { port, upstream, state, counts, stop, accept: Some(accept) }
    }

    /// Replaces the faults (their request and byte counts start again).
    pub fn set(&self, faults: Faults) {
        let mut s = self.state.lock().unwrap();
        *s = State { faults, seen: 0, put_bytes: 0 };
    }

    /// Forwards everything again.
    pub fn clear(&self) {
        self.set(Faults::default());
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    pub fn throttled(&self) -> u64 {
        self.counts.throttled.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> u64 {
        self.counts.refused.load(Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (append Azurite's `/devstoreaccount1`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn upstream(&self) -> u16 {
        self.upstream
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// One request: read it, answer it with a fault or forward it.
fn serve(client: TcpStream, upstream: u16, state: &Mutex<State>, counts: &Counts) -> Result<(), String> {
    client.set_read_timeout(Some(Duration::from_secs(300))).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(client.try_clone().map_err(|e| e.to_string())?);
    let Some((head, lines)) = read_head(&mut reader)? else { return Ok(()) };
    let method = head.split(' ').next().unwrap_or_default().to_string();
    let mut length = 0usize;
    for l in &lines {
        let (name, value) = l.split_once(':').unwrap_or((l, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().map_err(|e| format!("Content-Length {value}: {e}"))?;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("{head}: a chunked request body (the proxy wants a Content-Length)"));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| format!("{head}: reading its body: {e}"))?;
    counts.requests.fetch_add(1, Ordering::SeqCst);

    let fault = {
        let mut s = state.lock().unwrap();
        s.seen += 1;
        let throttled = s.faults.throttle.and_then(|(every, answer)| (every > 0 && s.seen % every == 0).then_some((answer, &counts.throttled)));
        let refused = match s.faults.refuse_puts_after {
            Some((budget, answer)) if method == "PUT" && s.put_bytes >= budget => Some((answer, &counts.refused)),
            _ => None,
        };
        let fault = throttled.or(refused);
        if fault.is_none() && method == "PUT" {
            s.put_bytes += length as u64;
        }
        fault
    };
    let mut client = client;
    if let Some((a, counter)) = fault {
        counter.fetch_add(1, Ordering::SeqCst);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>fault-proxy</RequestId></Error>",
            a.code, a.message
        );
        let extra = if a.azure { format!("x-ms-error-code: {}\r\n", a.code) } else { String::new() };
        let answer = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/xml\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            a.status,
            a.reason,
            body.len()
        );
        let _ = client.write_all(answer.as_bytes());
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    if method == "PUT" {
        counts.put_bytes.fetch_add(length as u64, Ordering::SeqCst);
    }
    counts.forwarded.fetch_add(1, Ordering::SeqCst);

    let mut up = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)).map_err(|e| format!("{head}: connecting upstream: {e}"))?;
    up.set_read_timeout(Some(Duration::from_secs(300))).map_err(|e| e.to_string())?;
    let mut request = format!("{head}\r\n");
    for l in lines.iter().filter(|l| !is_connection(l)) {
        request.push_str(l);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    up.write_all(request.as_bytes()).and_then(|()| up.write_all(&body)).map_err(|e| format!("{head}: sending upstream: {e}"))?;
    let mut upr = BufReader::new(up);
    let Some((status, lines)) = read_head(&mut upr)? else {
        return Err(format!("{head}: upstream closed without an answer"));
    };
    let mut answer = format!("{status}\r\n");
    for l in lines.iter().filter(|l| !is_connection(l)) {
        answer.push_str(l);
        answer.push_str("\r\n");
    }
    answer.push_str("Connection: close\r\n\r\n");
    client.write_all(answer.as_bytes()).map_err(|e| format!("{head}: answering: {e}"))?;
    // The rest is the body: upstream closes after it (Connection: close).
    let _ = std::io::copy(&mut upr, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

fn is_connection(line: &str) -> bool {
    let name = line.split(':').next().unwrap_or_default();
    name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("keep-alive")
}

/// The first line and the header lines of a request or answer; `None` when
/// the connection closed before one began.
fn read_head(r: &mut impl BufRead) -> Result<Option<(String, Vec<String>)>, String> {
    let mut first = String::new();
    if r.read_line(&mut first).map_err(|e| format!("reading a head: {e}"))? == 0 {
        return Ok(None);
    }
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).map_err(|e| format!("reading a header: {e}"))? == 0 {
            return Err(format!("{}: the connection closed inside the head", first.trim_end()));
        }
        let l = l.trim_end_matches(['\r', '\n']).to_string();
        if l.is_empty() {
            break;
        }
        lines.push(l);
    }
    Ok(Some((first.trim_end().to_string(), lines)))
}
