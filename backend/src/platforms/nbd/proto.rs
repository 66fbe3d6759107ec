//! NBD wire constants and byte-order helpers (fixed newstyle handshake,
//! structured replies, block status), after the protocol document
//! <https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md>.
//!
//! Everything on the wire is big-endian. The [`Cursor`] parses a payload the
//! server sent without ever panicking: a short payload is a protocol error.

/// "NBDMAGIC": the first 8 bytes a server sends.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// "IHAVEOPT": follows NBDMAGIC on a newstyle server and starts every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// What an oldstyle server sends instead of IHAVEOPT.
pub const OLDSTYLE_MAGIC: u64 = 0x0000_4202_8186_1253;
/// Magic of every option reply.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;

// Handshake flags (server) and client flags.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

// Options.
pub const OPT_ABORT: u32 = 2;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;
pub const OPT_SET_META_CONTEXT: u32 = 10;

// Option reply types; errors have bit 31 set.
pub const REP_ACK: u32 = 1;
pub const REP_INFO: u32 = 3;
pub const REP_META_CONTEXT: u32 = 4;
pub const REP_FLAG_ERROR: u32 = 1 << 31;
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
pub const REP_ERR_POLICY: u32 = REP_FLAG_ERROR | 2;
pub const REP_ERR_INVALID: u32 = REP_FLAG_ERROR | 3;
pub const REP_ERR_PLATFORM: u32 = REP_FLAG_ERROR | 4;
pub const REP_ERR_TLS_REQD: u32 = REP_FLAG_ERROR | 5;
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;
pub const REP_ERR_SHUTDOWN: u32 = REP_FLAG_ERROR | 7;
pub const REP_ERR_BLOCK_SIZE_REQD: u32 = REP_FLAG_ERROR | 8;
pub const REP_ERR_TOO_BIG: u32 = REP_FLAG_ERROR | 9;

// NBD_REP_INFO types.
pub const INFO_EXPORT: u16 = 0;
pub const INFO_BLOCK_SIZE: u16 = 3;

// Transmission flags (from NBD_INFO_EXPORT).
pub const TFLAG_HAS_FLAGS: u16 = 1 << 0;
pub const TFLAG_READ_ONLY: u16 = 1 << 1;
pub const TFLAG_SEND_FLUSH: u16 = 1 << 2;
pub const TFLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;

// Requests.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_WRITE_ZEROES: u16 = 6;
pub const CMD_BLOCK_STATUS: u16 = 7;

// Replies.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
pub const REPLY_FLAG_DONE: u16 = 1 << 0;
pub const REPLY_TYPE_NONE: u16 = 0;
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
pub const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
pub const REPLY_TYPE_ERROR_BIT: u16 = 1 << 15;
pub const REPLY_TYPE_ERROR: u16 = REPLY_TYPE_ERROR_BIT | 1;
pub const REPLY_TYPE_ERROR_OFFSET: u16 = REPLY_TYPE_ERROR_BIT | 2;

/// Payload size limit the protocol recommends when the server gives none.
pub const DEFAULT_MAX_PAYLOAD: u32 = 32 * 1024 * 1024;
/// Largest block-status request: 4 GiB minus 64 KiB, so split ranges stay
/// 64 KiB aligned.
pub const MAX_STATUS_LEN: u64 = 0xFFFF_0000;

/// Name of an option, for messages.
pub fn option_name(option: u32) -> &'static str {
    match option {
        OPT_ABORT => "NBD_OPT_ABORT",
        OPT_GO => "NBD_OPT_GO",
        OPT_STRUCTURED_REPLY => "NBD_OPT_STRUCTURED_REPLY",
        OPT_SET_META_CONTEXT => "NBD_OPT_SET_META_CONTEXT",
        _ => "an NBD option",
    }
}

/// Name of an option error reply, for messages.
pub fn rep_error_name(rep: u32) -> String {
    match rep {
        REP_ERR_UNSUP => "unsupported (NBD_REP_ERR_UNSUP)".into(),
        REP_ERR_POLICY => "forbidden by server policy (NBD_REP_ERR_POLICY)".into(),
        REP_ERR_INVALID => "invalid request (NBD_REP_ERR_INVALID)".into(),
        REP_ERR_PLATFORM => "not supported on this platform (NBD_REP_ERR_PLATFORM)".into(),
        REP_ERR_TLS_REQD => "the server requires TLS (NBD_REP_ERR_TLS_REQD)".into(),
        REP_ERR_UNKNOWN => "unknown export (NBD_REP_ERR_UNKNOWN)".into(),
        REP_ERR_SHUTDOWN => "the server is shutting down (NBD_REP_ERR_SHUTDOWN)".into(),
        REP_ERR_BLOCK_SIZE_REQD => "the server requires block size negotiation (NBD_REP_ERR_BLOCK_SIZE_REQD)".into(),
        REP_ERR_TOO_BIG => "request too big (NBD_REP_ERR_TOO_BIG)".into(),
        other => format!("option error {:#x}", other),
    }
}

/// Name of an errno value the server sent in a transmission reply.
pub fn errno_name(errno: u32) -> String {
    match errno {
        1 => "EPERM (operation not permitted)".into(),
        5 => "EIO (input/output error)".into(),
        12 => "ENOMEM (out of memory)".into(),
        22 => "EINVAL (invalid argument)".into(),
        28 => "ENOSPC (no space left on the disk)".into(),
        75 => "EOVERFLOW (request too large)".into(),
        95 => "ENOTSUP (not supported)".into(),
        108 => "ESHUTDOWN (server is shutting down)".into(),
        other => format!("error {other}"),
    }
}

/// An NBD request header (28 bytes).
pub fn request(flags: u16, kind: u16, cookie: u64, offset: u64, length: u32) -> [u8; 28] {
    let mut h = [0u8; 28];
    h[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    h[4..6].copy_from_slice(&flags.to_be_bytes());
    h[6..8].copy_from_slice(&kind.to_be_bytes());
    h[8..16].copy_from_slice(&cookie.to_be_bytes());
    h[16..24].copy_from_slice(&offset.to_be_bytes());
    h[24..28].copy_from_slice(&length.to_be_bytes());
    h
}

/// Reads big-endian fields from a payload the server sent; `None` when the
/// payload is too short.
pub struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf }
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).and_then(|b| b.try_into().ok()).map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes)
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_spell_their_names() {
        assert_eq!(&NBDMAGIC.to_be_bytes(), b"NBDMAGIC");
        assert_eq!(&IHAVEOPT.to_be_bytes(), b"IHAVEOPT");
    }

    #[test]
    fn request_header_layout() {
        let h = request(1, CMD_READ, 7, 0x1_0000_0000, 4096);
        assert_eq!(&h[0..4], &[0x25, 0x60, 0x95, 0x13]);
        assert_eq!(&h[4..6], &[0, 1]);
        assert_eq!(&h[6..8], &[0, 0]);
        assert_eq!(&h[8..16], &7u64.to_be_bytes());
        assert_eq!(&h[16..24], &[0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(&h[24..28], &[0, 0, 0x10, 0]);
    }

    #[test]
    fn cursor_refuses_short_payloads() {
        let mut c = Cursor::new(&[0, 1, 0, 0, 0]);
        assert_eq!(c.u16(), Some(1));
        assert_eq!(c.u32(), None);
        assert_eq!(c.remaining(), 3);
        assert_eq!(c.take(3), Some(&[0u8, 0, 0][..]));
        assert_eq!(c.u16(), None);
    }
}
