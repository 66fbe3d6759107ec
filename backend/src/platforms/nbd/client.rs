//! [`NbdClient`]: a blocking NBD client over a unix socket or TCP, one
//! request in flight at a time.
//!
//! * Reads and writes larger than the server's maximum payload (32 MiB when
//!   the server names none, and never more) are split.
//! * Reads accept simple and structured replies: `OFFSET_DATA` lands straight
//!   in the caller's buffer, `OFFSET_HOLE` is zero-filled, `ERROR` and
//!   `ERROR_OFFSET` become [`NbdError::Command`]; a successful structured
//!   read must cover every byte asked for.
//! * Block status asks at most 4 GiB − 64 KiB at a time and repeats until the
//!   range is covered; a server may answer with less than asked.
//! * An I/O or protocol error leaves the stream at an unknown place, so the
//!   client refuses further requests ([`NbdError::Poisoned`]); an error the
//!   server reports for one request does not.

use std::path::Path;
use std::time::Duration;

use super::conn::{Conn, MAX_META_PAYLOAD};
use super::handshake::{self, Negotiated};
use super::proto::*;
use super::{Extent, NbdError};

/// Default read/write timeout on the socket: generous, but a hung server
/// cannot stall a job forever.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(300);
/// How long connecting to a server over TCP may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

pub struct NbdClient {
    conn: Conn,
    export: String,
    negotiated: Negotiated,
    max_payload: u32,
    next_cookie: u64,
    poisoned: bool,
    disconnected: bool,
}

impl std::fmt::Debug for NbdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NbdClient")
            .field("socket", &self.conn.socket)
            .field("export", &self.export)
            .field("size", &self.negotiated.size)
            .field("read_only", &self.read_only())
            .field("contexts", &self.negotiated.contexts)
            .field("block_size", &self.negotiated.block_size)
            .field("structured_replies", &self.negotiated.structured_replies)
            .finish()
    }
}

/// One reply header: a simple reply or a structured reply chunk.
enum Reply {
    Simple { error: u32 },
    Chunk { flags: u16, kind: u16, length: u32 },
}

impl NbdClient {
    /// Connects to `socket`, negotiates structured replies and the given meta
    /// contexts (e.g. `base:allocation`, `qemu:dirty-bitmap:NAME`), then
    /// enters transmission on `export`. Contexts the server does not offer
    /// are left out: check [`has_context`](Self::has_context).
    pub fn connect_unix(socket: &Path, export: &str, meta_contexts: &[&str]) -> Result<NbdClient, NbdError> {
        NbdClient::negotiate(Conn::open(socket)?, export, meta_contexts)
    }

    /// [`connect_unix`](Self::connect_unix) to a server reached over TCP
    /// (an export opened on another machine).
    pub fn connect_tcp(host: &str, port: u16, export: &str, meta_contexts: &[&str]) -> Result<NbdClient, NbdError> {
        NbdClient::negotiate(Conn::open_tcp(host, port, CONNECT_TIMEOUT)?, export, meta_contexts)
    }

    fn negotiate(mut conn: Conn, export: &str, meta_contexts: &[&str]) -> Result<NbdClient, NbdError> {
        conn.set_timeouts(Some(DEFAULT_IO_TIMEOUT)).map_err(|source| NbdError::Connect { socket: conn.socket.clone(), source })?;
        let negotiated = handshake::negotiate(&mut conn, export, meta_contexts)?;
        let max_payload = match negotiated.block_size {
            Some((_, _, max)) if max > 0 => max.min(DEFAULT_MAX_PAYLOAD),
            _ => DEFAULT_MAX_PAYLOAD,
        };
        tracing::debug!(server = %conn.socket.display(), export, size = negotiated.size, flags = negotiated.transmission_flags,
            block_size = ?negotiated.block_size, contexts = ?negotiated.contexts, "NBD connected");
        Ok(NbdClient {
            conn,
            export: export.to_string(),
            negotiated,
            max_payload,
            next_cookie: 1,
            poisoned: false,
            disconnected: false,
        })
    }

    /// Size of the export in bytes.
    pub fn size(&self) -> u64 {
        self.negotiated.size
    }

    pub fn read_only(&self) -> bool {
        self.negotiated.transmission_flags & TFLAG_READ_ONLY != 0
    }

    /// Whether the server selected the meta context `name` (exact name).
    pub fn has_context(&self, name: &str) -> bool {
        self.context_id(name).is_some()
    }

    /// Names of the meta contexts the server selected.
    pub fn contexts(&self) -> impl Iterator<Item = &str> {
        self.negotiated.contexts.iter().map(|(n, _)| n.as_str())
    }

    /// Largest payload of one read or write request.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    pub fn socket(&self) -> &Path {
        &self.conn.socket
    }

    pub fn export_name(&self) -> &str {
        &self.export
    }

    /// Changes the socket read/write timeout (`None`: wait forever).
    pub fn set_io_timeout(&mut self, timeout: Option<Duration>) -> Result<(), NbdError> {
        self.conn
            .set_timeouts(timeout)
            .map_err(|source| NbdError::Io {
                socket: self.conn.socket.clone(),
                during: "setting the I/O timeout".into(),
                source,
            })
    }

    /// Fills `buf` with the export's bytes at `offset`.
    pub fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<(), NbdError> {
        self.check_range("read", offset, buf.len() as u64)?;
        let max = self.max_payload as usize;
        let mut off = offset;
        for chunk in buf.chunks_mut(max) {
            self.guarded(|c| c.read_one(chunk, off))?;
            off += chunk.len() as u64;
        }
        Ok(())
    }

    /// Writes `data` to the export at `offset` (durable after [`flush`](Self::flush)).
    pub fn write_at(&mut self, data: &[u8], offset: u64) -> Result<(), NbdError> {
        if self.read_only() {
            return Err(NbdError::ReadOnly {
                socket: self.conn.socket.clone(),
                export: self.export.clone(),
                op: "write",
            });
        }
        self.check_range("write", offset, data.len() as u64)?;
        let max = self.max_payload as usize;
        let mut off = offset;
        for chunk in data.chunks(max) {
            self.guarded(|c| c.write_one(chunk, off))?;
            off += chunk.len() as u64;
        }
        Ok(())
    }

    /// Makes `[offset, offset + len)` read as zeros (`NBD_CMD_WRITE_ZEROES`;
    /// the server may record it without writing data, e.g. qcow2 zero
    /// clusters). A server that does not offer the command gets zero-filled
    /// writes instead.
    pub fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), NbdError> {
        if self.read_only() {
            return Err(NbdError::ReadOnly {
                socket: self.conn.socket.clone(),
                export: self.export.clone(),
                op: "write zeroes",
            });
        }
        self.check_range("write zeroes", offset, len)?;
        let native = self.negotiated.transmission_flags & TFLAG_SEND_WRITE_ZEROES != 0;
        // At most 1 GiB per request (the length is 32 bits; servers split anyway).
        let step = if native { 1u64 << 30 } else { u64::from(self.max_payload).min(4 << 20) };
        let zeros = if native { Vec::new() } else { vec![0u8; step as usize] };
        let mut off = offset;
        let end = offset + len;
        while off < end {
            let n = (end - off).min(step);
            if native {
                self.guarded(|c| {
                    let cookie = c.send_request(0, CMD_WRITE_ZEROES, off, n as u32, None)?;
                    c.receive_ack(cookie, "write zeroes", off)
                })?;
            } else {
                self.guarded(|c| c.write_one(&zeros[..n as usize], off))?;
            }
            off += n;
        }
        Ok(())
    }

    /// Asks the server to make completed writes durable. A server that does
    /// not advertise flush is accepted on a read-only export only.
    pub fn flush(&mut self) -> Result<(), NbdError> {
        if self.negotiated.transmission_flags & TFLAG_SEND_FLUSH == 0 {
            if self.read_only() {
                return Ok(());
            }
            return Err(NbdError::Unsupported {
                socket: self.conn.socket.clone(),
                what: "flush (NBD_FLAG_SEND_FLUSH is not set), so writes may not be durable".into(),
            });
        }
        self.guarded(|c| {
            let cookie = c.send_request(0, CMD_FLUSH, 0, 0, None)?;
            c.receive_ack(cookie, "flush", 0)
        })
    }

    /// Extents of meta context `context` covering `[offset, offset + len)`,
    /// in order, adjacent extents with equal flags merged, clipped to the
    /// range. Every negotiated context is answered by the server on each
    /// request; only `context` is kept.
    pub fn block_status(&mut self, context: &str, offset: u64, len: u64) -> Result<Vec<Extent>, NbdError> {
        let id = self.context_id(context).ok_or_else(|| NbdError::ContextUnavailable {
            socket: self.conn.socket.clone(),
            export: self.export.clone(),
            context: context.to_string(),
        })?;
        self.check_range("block status", offset, len)?;
        let end = offset + len;
        let mut extents: Vec<Extent> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let want = (end - pos).min(MAX_STATUS_LEN);
            let next = self.guarded(|c| c.block_status_one(id, context, pos, want, &mut extents))?;
            pos = next;
        }
        Ok(extents)
    }

    /// Sends `NBD_CMD_DISC` (after a flush on a writable export) and closes
    /// the connection.
    pub fn disconnect(mut self) -> Result<(), NbdError> {
        if self.poisoned {
            return Err(NbdError::Poisoned {
                socket: self.conn.socket.clone(),
            });
        }
        if !self.read_only() && self.negotiated.transmission_flags & TFLAG_SEND_FLUSH != 0 {
            self.flush()?;
        }
        self.send_disc()
    }

    // ---- internals ----

    fn context_id(&self, name: &str) -> Option<u32> {
        self.negotiated
            .contexts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    fn check_range(&self, op: &'static str, offset: u64, len: u64) -> Result<(), NbdError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.negotiated.size => Ok(()),
            _ => Err(NbdError::OutOfRange {
                socket: self.conn.socket.clone(),
                export: self.export.clone(),
                op,
                offset,
                len,
                size: self.negotiated.size,
            }),
        }
    }

    /// Runs one request; an I/O or protocol error poisons the connection.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, NbdError>) -> Result<T, NbdError> {
        if self.poisoned || self.disconnected {
            return Err(NbdError::Poisoned {
                socket: self.conn.socket.clone(),
            });
        }
        let result = f(self);
        if let Err(NbdError::Io { .. } | NbdError::Protocol { .. }) = &result {
            self.poisoned = true;
        }
        result
    }

    fn send_request(
        &mut self,
        flags: u16,
        kind: u16,
        offset: u64,
        length: u32,
        data: Option<&[u8]>,
    ) -> Result<u64, NbdError> {
        let cookie = self.next_cookie;
        self.next_cookie = self.next_cookie.wrapping_add(1);
        self.conn
            .write_all(&request(flags, kind, cookie, offset, length), "sending a request")?;
        if let Some(data) = data {
            self.conn.write_all(data, "sending write data")?;
        }
        Ok(cookie)
    }

    fn send_disc(&mut self) -> Result<(), NbdError> {
        self.disconnected = true;
        self.conn
            .write_all(&request(0, CMD_DISC, 0, 0, 0), "sending NBD_CMD_DISC")?;
        self.conn.shutdown();
        Ok(())
    }

    fn next_reply(&mut self, cookie: u64) -> Result<Reply, NbdError> {
        let during = "reading a reply";
        let magic = self.conn.read_u32(during)?;
        let reply = match magic {
            SIMPLE_REPLY_MAGIC => {
                let error = self.conn.read_u32(during)?;
                let got = self.conn.read_u64(during)?;
                self.check_cookie(cookie, got)?;
                Reply::Simple { error }
            }
            STRUCTURED_REPLY_MAGIC if self.negotiated.structured_replies => {
                let flags = self.conn.read_u16(during)?;
                let kind = self.conn.read_u16(during)?;
                let got = self.conn.read_u64(during)?;
                self.check_cookie(cookie, got)?;
                let length = self.conn.read_u32(during)?;
                Reply::Chunk { flags, kind, length }
            }
            other => return Err(self.conn.protocol(format!("bad reply magic {other:#010x}"))),
        };
        Ok(reply)
    }

    fn check_cookie(&self, sent: u64, got: u64) -> Result<(), NbdError> {
        if sent != got {
            return Err(self
                .conn
                .protocol(format!("reply for request {got} while waiting for request {sent}")));
        }
        Ok(())
    }

    fn command_error(&self, op: &'static str, offset: u64, errno: u32, message: String) -> NbdError {
        NbdError::Command {
            socket: self.conn.socket.clone(),
            op,
            offset,
            errno,
            message,
        }
    }

    /// Reads the payload of an error chunk (`kind` has the error bit).
    fn read_error_chunk(
        &mut self,
        kind: u16,
        length: u32,
        op: &'static str,
        offset: u64,
    ) -> Result<NbdError, NbdError> {
        let payload = self.conn.read_payload(length, "reading an error reply")?;
        let mut c = Cursor::new(&payload);
        let short = || self.conn.protocol("error reply chunk is too short");
        let errno = c.u32().ok_or_else(short)?;
        let msg_len = c.u16().ok_or_else(short)?;
        let message = String::from_utf8_lossy(c.take(msg_len as usize).ok_or_else(short)?).into_owned();
        let at = if kind == REPLY_TYPE_ERROR_OFFSET {
            c.u64().ok_or_else(short)?
        } else {
            offset
        };
        Ok(self.command_error(op, at, errno, message))
    }

    fn read_one(&mut self, buf: &mut [u8], offset: u64) -> Result<(), NbdError> {
        let len = buf.len() as u64;
        let cookie = self.send_request(0, CMD_READ, offset, buf.len() as u32, None)?;
        let mut covered = 0u64;
        let mut error = None;
        loop {
            match self.next_reply(cookie)? {
                Reply::Simple { error: 0 } => return self.conn.read_exact(buf, "reading data"),
                Reply::Simple { error: errno } => return Err(self.command_error("read", offset, errno, String::new())),
                Reply::Chunk { flags, kind, length } => {
                    match kind {
                        REPLY_TYPE_OFFSET_DATA => {
                            let data_len = u64::from(length)
                                .checked_sub(8)
                                .ok_or_else(|| self.conn.protocol("OFFSET_DATA chunk shorter than its offset"))?;
                            let at = self.conn.read_u64("reading a data chunk")?;
                            let rel = self.relative(at, data_len, offset, len, "OFFSET_DATA")?;
                            self.conn
                                .read_exact(&mut buf[rel..rel + data_len as usize], "reading data")?;
                            covered += data_len;
                        }
                        REPLY_TYPE_OFFSET_HOLE => {
                            if length != 12 {
                                return Err(self
                                    .conn
                                    .protocol(format!("OFFSET_HOLE chunk of {length} bytes, not 12")));
                            }
                            let at = self.conn.read_u64("reading a hole chunk")?;
                            let hole = u64::from(self.conn.read_u32("reading a hole chunk")?);
                            let rel = self.relative(at, hole, offset, len, "OFFSET_HOLE")?;
                            buf[rel..rel + hole as usize].fill(0);
                            covered += hole;
                        }
                        REPLY_TYPE_NONE if length == 0 => {}
                        k if k & REPLY_TYPE_ERROR_BIT != 0 => {
                            let e = self.read_error_chunk(k, length, "read", offset)?;
                            error.get_or_insert(e);
                        }
                        k => {
                            return Err(self
                                .conn
                                .protocol(format!("unexpected reply chunk type {k} ({length} bytes) to a read")))
                        }
                    }
                    if flags & REPLY_FLAG_DONE != 0 {
                        break;
                    }
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        if covered != len {
            return Err(self.conn.protocol(format!(
                "read reply covered {covered} of {len} bytes at offset {offset}"
            )));
        }
        Ok(())
    }

    /// Position of a reply chunk `[at, at + len)` inside the request
    /// `[offset, offset + req_len)`, or a protocol error if it lies outside.
    fn relative(&self, at: u64, len: u64, offset: u64, req_len: u64, what: &str) -> Result<usize, NbdError> {
        match (at.checked_sub(offset), at.checked_add(len)) {
            (Some(rel), Some(end)) if end <= offset + req_len => Ok(rel as usize),
            _ => Err(self.conn.protocol(format!(
                "{what} chunk [{at}, +{len}) lies outside the request [{offset}, +{req_len})"
            ))),
        }
    }

    fn write_one(&mut self, data: &[u8], offset: u64) -> Result<(), NbdError> {
        let cookie = self.send_request(0, CMD_WRITE, offset, data.len() as u32, Some(data))?;
        self.receive_ack(cookie, "write", offset)
    }

    /// Waits for the reply to a request that carries no data back.
    fn receive_ack(&mut self, cookie: u64, op: &'static str, offset: u64) -> Result<(), NbdError> {
        let mut error = None;
        loop {
            match self.next_reply(cookie)? {
                Reply::Simple { error: 0 } => return Ok(()),
                Reply::Simple { error: errno } => return Err(self.command_error(op, offset, errno, String::new())),
                Reply::Chunk { flags, kind, length } => {
                    match kind {
                        REPLY_TYPE_NONE if length == 0 => {}
                        k if k & REPLY_TYPE_ERROR_BIT != 0 => {
                            let e = self.read_error_chunk(k, length, op, offset)?;
                            error.get_or_insert(e);
                        }
                        k => return Err(self.conn.protocol(format!("unexpected reply chunk type {k} to a {op}"))),
                    }
                    if flags & REPLY_FLAG_DONE != 0 {
                        break;
                    }
                }
            }
        }
        error.map_or(Ok(()), Err)
    }

    /// One `NBD_CMD_BLOCK_STATUS` for `[offset, offset + len)`; appends the
    /// extents of context `id` and returns where they end.
    fn block_status_one(
        &mut self,
        id: u32,
        context: &str,
        offset: u64,
        len: u64,
        out: &mut Vec<Extent>,
    ) -> Result<u64, NbdError> {
        let end = offset + len;
        let cookie = self.send_request(0, CMD_BLOCK_STATUS, offset, len as u32, None)?;
        let mut pos = offset;
        let mut seen = false;
        let mut error = None;
        loop {
            match self.next_reply(cookie)? {
                Reply::Simple { error: 0 } => {
                    return Err(self.conn.protocol("simple reply without error to block status"))
                }
                Reply::Simple { error: errno } => {
                    return Err(self.command_error("block status", offset, errno, String::new()))
                }
                Reply::Chunk { flags, kind, length } => {
                    match kind {
                        REPLY_TYPE_BLOCK_STATUS => {
                            if length < 12 || (length - 4) % 8 != 0 || length > MAX_META_PAYLOAD {
                                return Err(self.conn.protocol(format!("block status chunk of {length} bytes")));
                            }
                            let payload = self.conn.read_payload(length, "reading block status")?;
                            let mut c = Cursor::new(&payload);
                            let chunk_id = c.u32().ok_or_else(|| self.conn.protocol("short block status chunk"))?;
                            if chunk_id == id {
                                seen = true;
                                while c.remaining() >= 8 && pos < end {
                                    let (Some(ext_len), Some(ext_flags)) = (c.u32(), c.u32()) else {
                                        break;
                                    };
                                    if ext_len == 0 {
                                        return Err(self
                                            .conn
                                            .protocol(format!("zero-length extent in '{context}' at offset {pos}")));
                                    }
                                    let ext_len = u64::from(ext_len).min(end - pos);
                                    push_merged(
                                        out,
                                        Extent {
                                            offset: pos,
                                            length: ext_len,
                                            flags: ext_flags,
                                        },
                                    );
                                    pos += ext_len;
                                }
                            }
                        }
                        REPLY_TYPE_NONE if length == 0 => {}
                        k if k & REPLY_TYPE_ERROR_BIT != 0 => {
                            let e = self.read_error_chunk(k, length, "block status", offset)?;
                            error.get_or_insert(e);
                        }
                        k => {
                            return Err(self
                                .conn
                                .protocol(format!("unexpected reply chunk type {k} to block status")))
                        }
                    }
                    if flags & REPLY_FLAG_DONE != 0 {
                        break;
                    }
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        if !seen || pos == offset {
            return Err(self.conn.protocol(format!(
                "block status reply has no extents for '{context}' at offset {offset}"
            )));
        }
        Ok(pos)
    }
}

/// Appends `e`, merging it into the last extent when adjacent with equal flags.
pub(super) fn push_merged(out: &mut Vec<Extent>, e: Extent) {
    if let Some(last) = out.last_mut() {
        if last.flags == e.flags && last.offset + last.length == e.offset {
            last.length += e.length;
            return;
        }
    }
    out.push(e);
}

impl Drop for NbdClient {
    fn drop(&mut self) {
        if !self.disconnected && !self.poisoned {
            let _ = self.send_disc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_equal_extents_merge() {
        let mut v = Vec::new();
        push_merged(
            &mut v,
            Extent {
                offset: 0,
                length: 10,
                flags: 1,
            },
        );
        push_merged(
            &mut v,
            Extent {
                offset: 10,
                length: 5,
                flags: 1,
            },
        );
        push_merged(
            &mut v,
            Extent {
                offset: 15,
                length: 5,
                flags: 0,
            },
        );
        push_merged(
            &mut v,
            Extent {
                offset: 20,
                length: 5,
                flags: 1,
            },
        );
        assert_eq!(
            v,
            vec![
                Extent {
                    offset: 0,
                    length: 15,
                    flags: 1
                },
                Extent {
                    offset: 15,
                    length: 5,
                    flags: 0
                },
                Extent {
                    offset: 20,
                    length: 5,
                    flags: 1
                },
            ]
        );
    }
}
