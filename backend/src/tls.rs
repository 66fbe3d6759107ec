//! HTTPS built in: a certificate and key from PEM files (`--tls-cert`,
//! `--tls-key`), or one generated on first start and kept in the data
//! directory (`--tls self-signed`), and the listener that does the TLS
//! handshakes.
//!
//! Handshakes run in their own tasks (with a time limit), so a client that
//! stalls mid-handshake never holds up the others; the HTTP server only
//! sees finished TLS streams.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use shared_types::settings::CertificateInfo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// File names of the generated certificate and key in the data directory.
pub const SELF_SIGNED_CERT: &str = "tls-self-signed.crt";
pub const SELF_SIGNED_KEY: &str = "tls-self-signed.key";

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the HTTP server to take them.
const ACCEPT_BACKLOG: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("unable to read the TLS certificate '{path}' - {source}")]
    Cert { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("the TLS certificate file '{0}' holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)")]
    NoCert(PathBuf),
    #[error("unable to read the TLS private key '{path}' - {source} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)")]
    Key { path: PathBuf, source: rustls::pki_types::pem::Error },
    #[error("the TLS certificate and key do not fit together - {0}")]
    Config(#[from] rustls::Error),
    #[error("unable to generate a self-signed certificate - {0}")]
    Generate(#[from] rcgen::Error),
    #[error("unable to write '{path}' - {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    Files { cert: PathBuf, key: PathBuf },
    /// Generated into the data directory on first start, reused afterwards.
    SelfSigned { data_dir: PathBuf, names: Vec<String> },
}

/// A loaded certificate: the server's rustls configuration and the
/// SHA-256 fingerprint of the certificate it presents.
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: String,
    /// The certificate file (for the log).
    pub cert_path: PathBuf,
    /// What the Settings page shows of it.
    pub info: CertificateInfo,
}

/// `AB:CD:…`: the SHA-256 of a certificate's DER bytes, as browsers and
/// `openssl x509 -fingerprint -sha256` show it.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The subject, issuer, names and validity of a certificate (DER) and its
/// fingerprint. A field the certificate does not decode to stays empty:
/// rustls accepted it, the page still shows the fingerprint.
pub fn describe(path: &Path, der: &[u8]) -> CertificateInfo {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let mut info = CertificateInfo {
        path: path.display().to_string(),
        subject: String::new(),
        issuer: String::new(),
        names: Vec::new(),
        not_before: None,
        not_after: None,
        fingerprint_sha256: fingerprint(der),
    };
    let cert = match x509_cert::Certificate::from_der(der) {
        Ok(cert) => cert,
        Err(e) => {
            tracing::warn!(cert = %path.display(), error = %e, "unable to decode the TLS certificate's fields");
            return info;
        }
    };
    let tbs = &cert.tbs_certificate;
    info.subject = tbs.subject.to_string();
    info.issuer = tbs.issuer.to_string();
    let time = |t: &x509_cert::time::Time| {
        let secs = i64::try_from(t.to_unix_duration().as_secs()).ok()?;
        chrono::DateTime::from_timestamp(secs, 0)
    };
    info.not_before = time(&tbs.validity.not_before);
    info.not_after = time(&tbs.validity.not_after);
    if let Ok(Some((_, SubjectAltName(names)))) = tbs.get::<SubjectAltName>() {
        info.names = names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DnsName(dns) => Some(dns.to_string()),
                GeneralName::IpAddress(ip) => match ip.as_bytes().len() {
                    4 => <[u8; 4]>::try_from(ip.as_bytes()).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                    16 => <[u8; 16]>::try_from(ip.as_bytes()).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
    }
    info
}

/// Loads (or first generates) the certificate and key.
pub fn load(source: &TlsSource) -> Result<Tls, TlsError> {
    let (cert, key) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone()),
        TlsSource::SelfSigned { data_dir, names } => {
            let (cert, key) = (data_dir.join(SELF_SIGNED_CERT), data_dir.join(SELF_SIGNED_KEY));
            if !(cert.is_file() && key.is_file()) {
                generate(&cert, &key, names)?;
                tracing::info!(cert = %cert.display(), key = %key.display(), "generated a self-signed TLS certificate");
            }
            (cert, key)
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|source| TlsError::Cert { path: cert.clone(), source })?;
    let Some(leaf) = chain.first() else { return Err(TlsError::NoCert(cert)) };
    let fingerprint = fingerprint(leaf);
    let info = describe(&cert, leaf);
    let private = PrivateKeyDer::from_pem_file(&key).map_err(|source| TlsError::Key { path: key.clone(), source })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls { config: Arc::new(config), fingerprint, cert_path: cert, info })
}

/// Names a self-signed certificate covers: localhost, the loopback
/// addresses, this host's name and the address the server listens on.
pub fn self_signed_names(listen: SocketAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && host.is_ascii() {
            names.push(host.to_owned());
        }
    }
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    names.dedup();
    names
}

fn generate(cert_path: &Path, key_path: &Path, names: &[String]) -> Result<(), TlsError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "Sendense (self-signed)");
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    // The key first and owner-only, so a certificate never exists without it.
    write_file(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_path, cert.pem().as_bytes(), 0o644)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| TlsError::Write { path: path.to_owned(), source })
}

/// A listener that hands the HTTP server finished TLS streams.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` until `stop` is cancelled.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>, stop: CancellationToken) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(ACCEPT_BACKLOG);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tx.closed() => break,
                    accepted = tcp.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of file descriptors and the like: wait a little, as axum does.
                        tracing::warn!(error = %err, "unable to accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The accept loop ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_generated_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let source = TlsSource::SelfSigned { data_dir: dir.path().to_owned(), names: vec!["localhost".into()] };
        let first = load(&source).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(SELF_SIGNED_KEY)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let again = load(&source).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint, "reused, not regenerated");
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        let info = &first.info;
        assert_eq!(info.subject, "CN=Sendense (self-signed)");
        assert_eq!(info.fingerprint_sha256, first.fingerprint);
        assert_eq!(info.names, vec!["localhost".to_owned()]);
        assert!(info.not_before.unwrap() < info.not_after.unwrap());
    }

    #[test]
    fn unreadable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let err = load(&TlsSource::Files { cert: cert.clone(), key: dir.path().join("k.pem") }).err().unwrap();
        assert!(err.to_string().contains("c.pem"), "{err}");
    }
}
