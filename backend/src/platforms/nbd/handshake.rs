//! The fixed newstyle handshake: greeting, client flags, then the options
//! `NBD_OPT_STRUCTURED_REPLY`, `NBD_OPT_SET_META_CONTEXT` (when contexts are
//! asked for) and `NBD_OPT_GO`, which ends in transmission.
//!
//! Block sizes: the client does not ask for `NBD_INFO_BLOCK_SIZE`, which by
//! the protocol means the server must accept requests of any alignment (qemu
//! then reports a minimum of 1 and checks nothing), but it reads the block
//! sizes a server volunteers (qemu always does) and keeps to the maximum.
//!
//! Meta contexts the server does not offer are simply missing from the
//! result (that is how the protocol reports them), so a connection that asks
//! for a dirty bitmap which is not exported still succeeds; the client then
//! answers [`NbdError::ContextUnavailable`] when the context is used.

use super::conn::Conn;
use super::proto::*;
use super::NbdError;

/// What the handshake settled.
#[derive(Debug, Clone)]
pub struct Negotiated {
    pub size: u64,
    pub transmission_flags: u16,
    pub structured_replies: bool,
    /// Meta contexts the server selected: (full name, id).
    pub contexts: Vec<(String, u32)>,
    /// (minimum, preferred, maximum) if the server sent `NBD_INFO_BLOCK_SIZE`.
    pub block_size: Option<(u32, u32, u32)>,
}

struct OptReply {
    kind: u32,
    payload: Vec<u8>,
}

pub fn negotiate(conn: &mut Conn, export: &str, contexts: &[&str]) -> Result<Negotiated, NbdError> {
    let magic = conn.read_u64("reading the server greeting")?;
    if magic != NBDMAGIC {
        return Err(conn.protocol(format!(
            "the greeting {magic:#018x} is not NBDMAGIC: is this an NBD server?"
        )));
    }
    let style = conn.read_u64("reading the server greeting")?;
    if style == OLDSTYLE_MAGIC {
        return Err(unsupported(conn, "newstyle negotiation (it is an oldstyle NBD server)"));
    }
    if style != IHAVEOPT {
        return Err(conn.protocol(format!("the greeting has {style:#018x} where IHAVEOPT belongs")));
    }
    let handshake_flags = conn.read_u16("reading the handshake flags")?;
    if handshake_flags & FLAG_FIXED_NEWSTYLE == 0 {
        return Err(unsupported(conn, "fixed newstyle negotiation"));
    }
    let mut client_flags = FLAG_C_FIXED_NEWSTYLE;
    if handshake_flags & FLAG_NO_ZEROES != 0 {
        client_flags |= FLAG_C_NO_ZEROES;
    }
    conn.write_all(&client_flags.to_be_bytes(), "sending the client flags")?;

    let structured_replies = negotiate_structured_replies(conn)?;
    let contexts = if contexts.is_empty() {
        Vec::new()
    } else if !structured_replies {
        tracing::debug!(socket = %conn.socket.display(), "no structured replies, so no meta contexts");
        Vec::new()
    } else {
        set_meta_contexts(conn, export, contexts)?
    };
    let (size, transmission_flags, block_size) = go(conn, export)?;
    Ok(Negotiated {
        size,
        transmission_flags,
        structured_replies,
        contexts,
        block_size,
    })
}

fn unsupported(conn: &Conn, what: &str) -> NbdError {
    NbdError::Unsupported {
        socket: conn.socket.clone(),
        what: what.to_string(),
    }
}

fn send_option(conn: &mut Conn, option: u32, data: &[u8]) -> Result<(), NbdError> {
    let len = u32::try_from(data.len()).map_err(|_| conn.protocol("option data too long"))?;
    let mut msg = Vec::with_capacity(16 + data.len());
    msg.extend_from_slice(&IHAVEOPT.to_be_bytes());
    msg.extend_from_slice(&option.to_be_bytes());
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(data);
    conn.write_all(&msg, &format!("sending {}", option_name(option)))
}

fn read_opt_reply(conn: &mut Conn, option: u32) -> Result<OptReply, NbdError> {
    let during = format!("reading the reply to {}", option_name(option));
    let magic = conn.read_u64(&during)?;
    if magic != OPT_REPLY_MAGIC {
        return Err(conn.protocol(format!("{during}: bad option reply magic {magic:#x}")));
    }
    let replied_to = conn.read_u32(&during)?;
    if replied_to != option {
        return Err(conn.protocol(format!("{during}: the reply is for option {replied_to}")));
    }
    let kind = conn.read_u32(&during)?;
    let len = conn.read_u32(&during)?;
    let payload = conn.read_payload(len, &during)?;
    Ok(OptReply { kind, payload })
}

/// An option error reply turned into the error a caller can act on.
fn option_error(conn: &Conn, option: u32, export: &str, reply: &OptReply) -> NbdError {
    let message = String::from_utf8_lossy(&reply.payload).trim().to_string();
    if reply.kind == REP_ERR_UNKNOWN {
        return NbdError::ExportNotFound {
            socket: conn.socket.clone(),
            export: export.to_string(),
            message,
        };
    }
    NbdError::OptionRefused {
        socket: conn.socket.clone(),
        export: export.to_string(),
        option: option_name(option),
        reason: rep_error_name(reply.kind),
        message,
    }
}

fn negotiate_structured_replies(conn: &mut Conn) -> Result<bool, NbdError> {
    send_option(conn, OPT_STRUCTURED_REPLY, &[])?;
    let reply = read_opt_reply(conn, OPT_STRUCTURED_REPLY)?;
    match reply.kind {
        REP_ACK => Ok(true),
        k if k & REP_FLAG_ERROR != 0 => {
            tracing::debug!(socket = %conn.socket.display(), reply = %rep_error_name(k), "server refused structured replies");
            Ok(false)
        }
        k => Err(conn.protocol(format!("unexpected reply type {k} to NBD_OPT_STRUCTURED_REPLY"))),
    }
}

fn set_meta_contexts(conn: &mut Conn, export: &str, queries: &[&str]) -> Result<Vec<(String, u32)>, NbdError> {
    let mut data = Vec::new();
    push_string(conn, &mut data, export)?;
    let count = u32::try_from(queries.len()).map_err(|_| conn.protocol("too many meta contexts"))?;
    data.extend_from_slice(&count.to_be_bytes());
    for q in queries {
        push_string(conn, &mut data, q)?;
    }
    send_option(conn, OPT_SET_META_CONTEXT, &data)?;
    let mut selected = Vec::new();
    loop {
        let reply = read_opt_reply(conn, OPT_SET_META_CONTEXT)?;
        match reply.kind {
            REP_ACK => return Ok(selected),
            REP_META_CONTEXT => {
                let mut c = Cursor::new(&reply.payload);
                let id = c
                    .u32()
                    .ok_or_else(|| conn.protocol("NBD_REP_META_CONTEXT shorter than its context id"))?;
                let name = String::from_utf8_lossy(c.rest()).into_owned();
                tracing::debug!(socket = %conn.socket.display(), %name, id, "meta context selected");
                selected.push((name, id));
            }
            REP_ERR_UNSUP => {
                tracing::debug!(socket = %conn.socket.display(), "server does not support meta contexts");
                return Ok(Vec::new());
            }
            k if k & REP_FLAG_ERROR != 0 => return Err(option_error(conn, OPT_SET_META_CONTEXT, export, &reply)),
            k => return Err(conn.protocol(format!("unexpected reply type {k} to NBD_OPT_SET_META_CONTEXT"))),
        }
    }
}

fn push_string(conn: &Conn, data: &mut Vec<u8>, s: &str) -> Result<(), NbdError> {
    if s.len() > 4096 {
        return Err(conn.protocol(format!("'{s}' is longer than the 4096 bytes NBD allows for a string")));
    }
    data.extend_from_slice(&(s.len() as u32).to_be_bytes());
    data.extend_from_slice(s.as_bytes());
    Ok(())
}

type GoResult = (u64, u16, Option<(u32, u32, u32)>);

fn go(conn: &mut Conn, export: &str) -> Result<GoResult, NbdError> {
    let mut data = Vec::new();
    push_string(conn, &mut data, export)?;
    data.extend_from_slice(&0u16.to_be_bytes()); // no extra info requests: NBD_INFO_EXPORT always comes
    send_option(conn, OPT_GO, &data)?;
    let mut export_info = None;
    let mut block_size = None;
    loop {
        let reply = read_opt_reply(conn, OPT_GO)?;
        match reply.kind {
            REP_ACK => break,
            REP_INFO => {
                let mut c = Cursor::new(&reply.payload);
                let bad = |what: &str| conn.protocol(format!("NBD_REP_INFO {what} is too short"));
                match c.u16().ok_or_else(|| bad("payload"))? {
                    INFO_EXPORT => {
                        let size = c.u64().ok_or_else(|| bad("NBD_INFO_EXPORT"))?;
                        let flags = c.u16().ok_or_else(|| bad("NBD_INFO_EXPORT"))?;
                        export_info = Some((size, flags));
                    }
                    INFO_BLOCK_SIZE => {
                        let min = c.u32().ok_or_else(|| bad("NBD_INFO_BLOCK_SIZE"))?;
                        let preferred = c.u32().ok_or_else(|| bad("NBD_INFO_BLOCK_SIZE"))?;
                        let max = c.u32().ok_or_else(|| bad("NBD_INFO_BLOCK_SIZE"))?;
                        block_size = Some((min, preferred, max));
                    }
                    _ => {} // name, description, ...: not needed
                }
            }
            k if k & REP_FLAG_ERROR != 0 => return Err(option_error(conn, OPT_GO, export, &reply)),
            k => return Err(conn.protocol(format!("unexpected reply type {k} to NBD_OPT_GO"))),
        }
    }
    let (size, flags) = export_info.ok_or_else(|| conn.protocol("NBD_OPT_GO succeeded without NBD_INFO_EXPORT"))?;
    Ok((size, flags, block_size))
}
