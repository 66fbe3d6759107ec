//! A thread that owns a parser whose objects may not cross threads (ext4-view
//! keeps its state in `Rc`). Callers send it closures and wait for the
//! answer, so the owning handle is `Send + Sync` without any `unsafe`.
//! A panic inside the parser ends the thread: that call and all later ones
//! return [`Error::Worker`]. A call that takes longer than the stall timeout
//! returns an error instead of hanging the caller.

use std::sync::mpsc::{channel, sync_channel, Sender};
use std::sync::Mutex;

use crate::detect::FsKind;
use crate::error::{Error, Result};
use crate::pump::STALL_TIMEOUT;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// Handle to the thread owning a state `S`.
pub(crate) struct Worker<S> {
    fs: FsKind,
    tx: Mutex<Sender<Job<S>>>,
}

impl<S: 'static> Worker<S> {
    /// Starts the thread and builds the state on it with `init`.
    pub(crate) fn start<I>(fs: FsKind, init: I) -> Result<Self>
    where
        I: FnOnce() -> Result<S> + Send + 'static,
    {
        let (tx, rx) = channel::<Job<S>>();
        let (ready_tx, ready_rx) = sync_channel::<Result<()>>(1);
        std::thread::Builder::new()
            .name(format!("guest-fs {fs}"))
            .spawn(move || {
                let mut state = match init() {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut state);
                }
            })
            .map_err(|e| Error::Worker {
                fs,
                reason: format!("cannot start the thread: {e}"),
            })?;
        match ready_rx.recv_timeout(STALL_TIMEOUT) {
            Ok(Ok(())) => Ok(Worker {
                fs,
                tx: Mutex::new(tx),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Worker {
                fs,
                reason: "opening the filesystem failed (parser panic or stall)".into(),
            }),
        }
    }

    /// Runs `f` on the thread and returns its result.
    pub(crate) fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> Result<R> + Send + 'static,
    {
        let (reply_tx, reply_rx) = sync_channel::<Result<R>>(1);
        let job: Job<S> = Box::new(move |s| {
            let _ = reply_tx.send(f(s));
        });
        let sent = match self.tx.lock() {
            Ok(tx) => tx.send(job).is_ok(),
            Err(_) => false,
        };
        if !sent {
            return Err(self.gone());
        }
        match reply_rx.recv_timeout(STALL_TIMEOUT) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::Worker {
                fs: self.fs,
                reason: "the parser stalled (timeout)".into(),
            }),
            Err(_) => Err(self.gone()),
        }
    }

    /// Runs `f` on the thread without waiting for it (clean-up in `Drop`).
    pub(crate) fn post<F>(&self, f: F)
    where
        F: FnOnce(&mut S) + Send + 'static,
    {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Box::new(f));
        }
    }

    fn gone(&self) -> Error {
        Error::Worker {
            fs: self.fs,
            reason: "the parser thread stopped after a panic on corrupt data".into(),
        }
    }
}
