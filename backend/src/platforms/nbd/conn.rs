//! [`Conn`]: the stream to an NBD server (a unix socket, or TCP for a
//! server on another machine) with read/write helpers that turn I/O
//! failures into [`NbdError::Io`] naming the address and the step.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::NbdError;

/// Largest option-reply or structured-reply payload (other than read data,
/// which goes straight into the caller's buffer) the client accepts; the
/// protocol caps strings at 4 KiB and block-status replies stay far below.
pub const MAX_META_PAYLOAD: u32 = 16 * 1024 * 1024;

/// One connected stream.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

pub struct Conn {
    /// The server's address: its socket's path, or `nbd://host:port`.
    pub socket: PathBuf,
    reader: BufReader<Stream>,
    writer: Stream,
}

impl Conn {
    pub fn open(socket: &Path) -> Result<Conn, NbdError> {
        let connect_err = |source| NbdError::Connect {
            socket: socket.to_path_buf(),
            source,
        };
        let writer = UnixStream::connect(socket).map_err(connect_err)?;
        Conn::with(socket.to_path_buf(), Stream::Unix(writer))
    }

    /// Connects over TCP (an export on another machine), within `timeout`.
    pub fn open_tcp(host: &str, port: u16, timeout: Duration) -> Result<Conn, NbdError> {
        use std::net::ToSocketAddrs;
        let label = PathBuf::from(format!("nbd://{host}:{port}"));
        let connect_err = |source| NbdError::Connect { socket: label.clone(), source };
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, format!("'{host}' has no address"));
        for addr in (host, port).to_socket_addrs().map_err(connect_err)? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    s.set_nodelay(true).map_err(connect_err)?;
                    return Conn::with(label, Stream::Tcp(s));
                }
                Err(e) => last = e,
            }
        }
        Err(connect_err(last))
    }

    fn with(socket: PathBuf, writer: Stream) -> Result<Conn, NbdError> {
        let reader = writer.try_clone().map_err(|source| NbdError::Connect { socket: socket.clone(), source })?;
        Ok(Conn {
            socket,
            reader: BufReader::with_capacity(64 * 1024, reader),
            writer,
        })
    }

    /// Closes both directions (a blocked read on a clone returns).
    pub fn shutdown(&self) {
        let _ = match &self.writer {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }

    /// Sets the read and write timeout of the stream (`None`: wait forever).
    pub fn set_timeouts(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match &self.writer {
            Stream::Unix(s) => s.set_read_timeout(timeout).and_then(|_| s.set_write_timeout(timeout)),
            Stream::Tcp(s) => s.set_read_timeout(timeout).and_then(|_| s.set_write_timeout(timeout)),
        }
    }

    fn io_err(&self, during: &str, source: std::io::Error) -> NbdError {
        use std::io::ErrorKind::{TimedOut, WouldBlock};
        let source = match source.kind() {
            WouldBlock | TimedOut => std::io::Error::new(TimedOut, "the server did not answer within the I/O timeout"),
            _ => source,
        };
        NbdError::Io {
            socket: self.socket.clone(),
            during: during.to_string(),
            source,
        }
    }

    pub fn protocol(&self, detail: impl Into<String>) -> NbdError {
        NbdError::Protocol {
            socket: self.socket.clone(),
            detail: detail.into(),
        }
    }

    pub fn read_exact(&mut self, buf: &mut [u8], during: &str) -> Result<(), NbdError> {
        self.reader.read_exact(buf).map_err(|e| self.io_err(during, e))
    }

    pub fn read_array<const N: usize>(&mut self, during: &str) -> Result<[u8; N], NbdError> {
        let mut b = [0u8; N];
        self.read_exact(&mut b, during)?;
        Ok(b)
    }

    pub fn read_u16(&mut self, during: &str) -> Result<u16, NbdError> {
        self.read_array::<2>(during).map(u16::from_be_bytes)
    }

    pub fn read_u32(&mut self, during: &str) -> Result<u32, NbdError> {
        self.read_array::<4>(during).map(u32::from_be_bytes)
    }

    pub fn read_u64(&mut self, during: &str) -> Result<u64, NbdError> {
        self.read_array::<8>(during).map(u64::from_be_bytes)
    }

    /// Reads a payload of `len` bytes whose size the server announced,
    /// refusing absurd sizes instead of allocating them.
    pub fn read_payload(&mut self, len: u32, during: &str) -> Result<Vec<u8>, NbdError> {
        if len > MAX_META_PAYLOAD {
            return Err(self.protocol(format!(
                "{during}: payload of {len} bytes is larger than the {MAX_META_PAYLOAD} bytes allowed"
            )));
        }
        let mut v = vec![0u8; len as usize];
        self.read_exact(&mut v, during)?;
        Ok(v)
    }

    /// Reads and drops `len` bytes.
    pub fn skip(&mut self, len: u64, during: &str) -> Result<(), NbdError> {
        let copied = std::io::copy(&mut (&mut self.reader).take(len), &mut std::io::sink())
            .map_err(|e| self.io_err(during, e))?;
        if copied != len {
            return Err(self.io_err(during, std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    pub fn write_all(&mut self, buf: &[u8], during: &str) -> Result<(), NbdError> {
        self.writer.write_all(buf).map_err(|e| self.io_err(during, e))
    }
}
