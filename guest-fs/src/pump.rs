//! Streaming a file from a parser that cannot leave its thread (its file
//! handles borrow the filesystem object). A thread opens the file and sends
//! chunks through a bounded channel; the reader end implements `Read`.
//! Memory is bounded by `QUEUE` chunks of `CHUNK` bytes. Dropping the reader
//! stops the thread at its next send. A panic in the parser ends the thread
//! and surfaces as an error, and a stalled parser as a timeout.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use crate::detect::FsKind;
use crate::error::{Error, Result};

/// Bytes per chunk sent by the thread.
pub(crate) const CHUNK: usize = 64 * 1024;
const QUEUE: usize = 4;
/// Longest wait for one chunk before the reader gives up.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(120);

enum Msg {
    Data(Vec<u8>),
    End,
    Failed(String),
}

/// Where the producing thread writes.
pub(crate) struct Sink {
    tx: SyncSender<Msg>,
}

impl Sink {
    /// Sends a chunk; false when the reader has gone away (stop producing).
    pub(crate) fn send(&self, data: Vec<u8>) -> bool {
        self.tx.send(Msg::Data(data)).is_ok()
    }
}

/// Spawns `produce` on its own thread; returns the reading end once the
/// thread has reported that the file is open (`ready` called), so opening
/// errors come back from this call, not from the first read.
pub(crate) fn spawn<F>(fs: FsKind, what: String, produce: F) -> Result<Box<dyn Read + Send>>
where
    F: FnOnce(&dyn Fn(), &Sink) -> Result<()> + Send + 'static,
{
    let (tx, rx) = sync_channel::<Msg>(QUEUE);
    let (ready_tx, ready_rx) = sync_channel::<Result<()>>(1);
    let worker = move || {
        let sink = Sink { tx };
        let ready_tx2 = ready_tx.clone();
        let ready = move || {
            let _ = ready_tx2.try_send(Ok(()));
        };
        match produce(&ready, &sink) {
            Ok(()) => {
                let _ = sink.tx.send(Msg::End);
            }
            Err(e) => {
                // Before `ready`: the opener gets the error; after: the reader.
                let text = e.to_string();
                let _ = ready_tx.try_send(Err(e));
                let _ = sink.tx.send(Msg::Failed(text));
            }
        }
    };
    std::thread::Builder::new()
        .name(format!("guest-fs {fs} reader"))
        .spawn(worker)
        .map_err(|e| Error::Worker {
            fs,
            reason: format!("cannot start a reader thread: {e}"),
        })?;
    match ready_rx.recv_timeout(STALL_TIMEOUT) {
        Ok(Ok(())) => Ok(Box::new(PumpReader {
            fs,
            what,
            rx,
            buf: Vec::new(),
            pos: 0,
            done: false,
        })),
        Ok(Err(e)) => Err(e),
        Err(RecvTimeoutError::Timeout) => Err(Error::Worker {
            fs,
            reason: format!("opening {what} timed out"),
        }),
        Err(RecvTimeoutError::Disconnected) => Err(Error::Worker {
            fs,
            reason: format!("opening {what}: the reader thread stopped (parser panic)"),
        }),
    }
}

struct PumpReader {
    fs: FsKind,
    what: String,
    rx: Receiver<Msg>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for PumpReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            match self.rx.recv_timeout(STALL_TIMEOUT) {
                Ok(Msg::Data(d)) => {
                    self.buf = d;
                    self.pos = 0;
                }
                Ok(Msg::End) => self.done = true,
                Ok(Msg::Failed(e)) => {
                    return Err(io::Error::other(format!("{} {}: {e}", self.fs, self.what)))
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{} {}: reading stalled", self.fs, self.what),
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other(format!(
                        "{} {}: the reader thread stopped (parser panic)",
                        self.fs, self.what
                    )));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
