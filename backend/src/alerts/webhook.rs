//! Webhook delivery: one JSON `POST` over HTTP/1.1 (hyper's client; TLS by
//! rustls with the system's roots for `https://`), signed with
//! `X-Sendense-Signature: sha256=<hex HMAC-SHA256 of the body>` keyed with
//! the target's shared secret. A 2xx answer is a delivery; anything else,
//! a timeout or a connection failure is an error naming it.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use shared_types::alerts::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER};
use tokio::io::{AsyncRead, AsyncWrite};

/// Longest wait for one attempt (connect, send, answer).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `sha256=<hex>` of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

struct Url {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, from the first `/`.
    path: String,
    /// `Host` header value.
    authority: String,
}

fn parse(url: &str) -> Result<Url, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("'{url}' is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let path = path.split('#').next().unwrap_or("/").to_owned();
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("'{url}' has no host (credentials in the URL are not supported)"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| format!("'{url}' has a malformed IPv6 host"))?;
        let port = after.strip_prefix(':').map(str::parse::<u16>).transpose().map_err(|_| format!("'{url}' has a bad port"))?;
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse::<u16>().map_err(|_| format!("'{url}' has a bad port"))?)),
            None => (authority.to_owned(), None),
        }
    };
    Ok(Url { tls, port: port.unwrap_or(if tls { 443 } else { 80 }), host, path, authority: authority.to_owned() })
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err("no trusted CA certificates found on this machine (install ca-certificates)".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Posts `body` once; `Ok` on a 2xx answer.
pub async fn post(url: &str, secret: &str, event: &str, delivery_id: &str, body: Vec<u8>) -> Result<(), String> {
    match tokio::time::timeout(TIMEOUT, attempt(url, secret, event, delivery_id, body)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer from {url} within {} s", TIMEOUT.as_secs())),
    }
}

async fn attempt(url: &str, secret: &str, event: &str, delivery_id: &str, body: Vec<u8>) -> Result<(), String> {
    let u = parse(url)?;
    let tcp = tokio::net::TcpStream::connect((u.host.as_str(), u.port))
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", u.host, u.port))?;
    let signature = signature(secret, &body);
    let req = hyper::Request::post(u.path.as_str())
        .header(hyper::header::HOST, u.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, concat!("Sendense/", env!("CARGO_PKG_VERSION")))
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_HEADER, event)
        .header(DELIVERY_HEADER, delivery_id)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request: {e}"))?;
    if u.tls {
        let name = rustls::pki_types::ServerName::try_from(u.host.clone()).map_err(|_| format!("'{}' is not a valid TLS server name", u.host))?;
        let stream = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", u.host))?;
        send(stream, req, url).await
    } else {
        send(tcp, req, url).await
    }
}

async fn send<S>(stream: S, req: hyper::Request<Full<Bytes>>, url: &str) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("{url}: {e}"))?;
    let conn = tokio::spawn(conn);
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            let text: String = String::from_utf8_lossy(&body).chars().filter(|c| !c.is_control()).take(200).collect();
            Err(format!("{url} answered {status}{}", if text.is_empty() { String::new() } else { format!(": {text}") }))
        }
    }
    .await;
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_rfc_4231_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_split_into_host_port_and_path() {
        let u = parse("http://127.0.0.1:8099/hook?x=1").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port, u.path.as_str()), (false, "127.0.0.1", 8099, "/hook?x=1"));
        let u = parse("https://[::1]/a").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (true, "::1", 443));
        assert!(parse("ftp://x").is_err());
        assert!(parse("http://u:p@x/").is_err());
    }
}
