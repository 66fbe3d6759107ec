//! The HTTP client under the object stores: object_store's [`HttpConnector`]
//! over hyper's pooled HTTP/1.1 client, TLS by rustls on ring with the
//! system's CA certificates (hyper-rustls), instead of object_store's reqwest
//! features (they build aws-lc from C).
//!
//! Every request is counted per method ([`RequestCounts`]): for the whole
//! process ([`request_counts`]) and per backend
//! ([`super::object::ObjectRepository::requests`]); benchmarks and tests
//! read them. Retries by object_store count as requests: they are. The
//! answers that make object_store retry are counted too: throttling (503,
//! 429: S3 SlowDown, Azure ServerBusy) and other server errors; a job says
//! how often its storage throttled it.
//!
//! Timeouts: connecting [`CONNECT_TIMEOUT`]; the whole exchange (request body
//! sent, response read to its end) [`REQUEST_TIMEOUT`]. Responses are read
//! whole inside the timeout (objects are at most a pack, ~8 MiB), so a server
//! that stalls mid-body is a timeout that object_store retries, not a hang.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Long enough for a pack (8 MiB) at ~100 KiB/s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Sent with every request (server logs, provider support).
const USER_AGENT: &str = concat!("sendense/", env!("CARGO_PKG_VERSION"));

const METHODS: [&str; 6] = ["GET", "PUT", "HEAD", "DELETE", "POST", "other"];

/// Requests sent, by HTTP method (`other` for the rest), and the answers
/// object_store retries: throttling (503, 429) and other server errors.
#[derive(Debug, Default)]
pub struct Counters {
    by_method: [AtomicU64; 6],
    throttled: AtomicU64,
    server_errors: AtomicU64,
}

impl Counters {
    const fn new() -> Self {
        Counters { by_method: [const { AtomicU64::new(0) }; 6], throttled: AtomicU64::new(0), server_errors: AtomicU64::new(0) }
    }
    fn count(&self, method: &http::Method) {
        let i = METHODS.iter().position(|m| *m == method.as_str()).unwrap_or(METHODS.len() - 1);
        self.by_method[i].fetch_add(1, Ordering::Relaxed);
    }
    fn answered(&self, status: http::StatusCode) {
        if status == http::StatusCode::SERVICE_UNAVAILABLE || status == http::StatusCode::TOO_MANY_REQUESTS {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        } else if status.is_server_error() {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn snapshot(&self) -> RequestCounts {
        let v = |i: usize| self.by_method[i].load(Ordering::Relaxed);
        RequestCounts {
            get: v(0),
            put: v(1),
            head: v(2),
            delete: v(3),
            post: v(4),
            other: v(5),
            throttled: self.throttled.load(Ordering::Relaxed),
            server_errors: self.server_errors.load(Ordering::Relaxed),
        }
    }
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    pub get: u64,
    pub put: u64,
    pub head: u64,
    pub delete: u64,
    pub post: u64,
    pub other: u64,
    /// Of those, answered 503 or 429 (S3 SlowDown, Azure ServerBusy):
    /// object_store sent them again after a backoff (each retry is a
    /// request above).
    pub throttled: u64,
    /// Of those, answered with another 5xx (retried the same way).
    pub server_errors: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.get + self.put + self.head + self.delete + self.post + self.other
    }
    /// Requests made since `earlier` (a reading of the same counters).
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get - earlier.get,
            put: self.put - earlier.put,
            head: self.head - earlier.head,
            delete: self.delete - earlier.delete,
            post: self.post - earlier.post,
            other: self.other - earlier.other,
            throttled: self.throttled - earlier.throttled,
            server_errors: self.server_errors - earlier.server_errors,
        }
    }
}

static PROCESS: Counters = Counters::new();

/// Requests this process has sent to object stores so far.
pub fn request_counts() -> RequestCounts {
    PROCESS.snapshot()
}

/// The connector given to object_store's builders; every client it makes
/// counts into `counters` (and the process totals).
#[derive(Debug, Clone)]
pub struct Connector {
    pub counters: Arc<Counters>,
}

impl Connector {
    pub fn new() -> Self {
        Connector { counters: Arc::default() }
    }
}

impl Default for Connector {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let tls = tls_config();
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(16)
            .build(https);
        Ok(HttpClient::new(Service { client, counters: self.counters.clone() }))
    }
}

/// rustls on ring with the system's CA certificates; none found leaves an
/// empty store (plain-HTTP endpoints still work, HTTPS ones fail naming the
/// certificate).
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no trusted CA certificates found on this machine: HTTPS object stores will fail (install ca-certificates)");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

type HyperClient = Client<hyper_rustls::HttpsConnector<TcpConnector>, HttpRequestBody>;

#[derive(Debug, Clone)]
struct Service {
    client: HyperClient,
    counters: Arc<Counters>,
}

#[async_trait::async_trait]
impl HttpService for Service {
    /// One request, sent again while the storage throttles it (see
    /// [`THROTTLE_PATIENCE`]); any other answer goes to object_store, which
    /// retries server errors and lost connections its own way.
    async fn call(&self, mut req: HttpRequest) -> Result<HttpResponse, HttpError> {
        if !req.headers().contains_key(http::header::USER_AGENT) {
            req.headers_mut().insert(http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT));
        }
        let patience = throttle_patience();
        let started = tokio::time::Instant::now();
        let mut wait = THROTTLE_FIRST_WAIT;
        let mut throttled = 0u32;
        loop {
            let (parts, bytes) = self.exchange(req.clone()).await?;
            let status = parts.status;
            if status != http::StatusCode::SERVICE_UNAVAILABLE && status != http::StatusCode::TOO_MANY_REQUESTS {
                let body = Full::new(bytes).map_err(|never| match never {});
                return Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)));
            }
            throttled += 1;
            let pause = retry_after(&parts.headers).unwrap_or_else(|| jittered(wait)).min(THROTTLE_MAX_WAIT);
            if started.elapsed() + pause > patience {
                // Not handed back as a 503: object_store would send it
                // again ten times, each throttled this long.
                let reason = status.canonical_reason().unwrap_or("");
                let why = format!(
                    "the storage throttled this request {throttled} times over {:.1} s; its last answer: Server returned non-2xx status code: {} {reason}: {}",
                    started.elapsed().as_secs_f64(),
                    status.as_u16(),
                    String::from_utf8_lossy(&bytes)
                );
                return Err(HttpError::new(HttpErrorKind::Unknown, std::io::Error::other(why)));
            }
            tracing::debug!(status = status.as_u16(), pause_ms = pause.as_millis() as u64, throttled, "the storage throttles: sending again after a pause");
            tokio::time::sleep(pause).await;
            wait = (wait * 2).min(THROTTLE_MAX_WAIT);
        }
    }
}

impl Service {
    /// Sends `req` once (counted) and reads the whole answer, within
    /// [`REQUEST_TIMEOUT`].
    async fn exchange(&self, req: HttpRequest) -> Result<(http::response::Parts, bytes::Bytes), HttpError> {
        self.counters.count(req.method());
        PROCESS.count(req.method());
        let exchange = async {
            let resp = self.client.request(req).await.map_err(classify)?;
            self.counters.answered(resp.status());
            PROCESS.answered(resp.status());
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e))?
                .to_bytes();
            Ok((parts, bytes))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::new(
                HttpErrorKind::Timeout,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no complete answer within {} s", REQUEST_TIMEOUT.as_secs()),
                ),
            )),
        }
    }
}

/// How long one request may stay throttled (answered 503 SlowDown on S3,
/// 503 ServerBusy or 429 on Azure) before it fails: it is sent again after
/// a pause that doubles from [`THROTTLE_FIRST_WAIT`] up to
/// [`THROTTLE_MAX_WAIT`] (with jitter, or the storage's `Retry-After`). A
/// store scaling up under a backup's load throttles for seconds to
/// minutes; object_store's own retries (10, from 100 ms) give up within a
/// few seconds. `SENDENSE_THROTTLE_PATIENCE_SECS` changes it (tests).
pub const THROTTLE_PATIENCE: Duration = Duration::from_secs(120);
const THROTTLE_FIRST_WAIT: Duration = Duration::from_millis(200);
const THROTTLE_MAX_WAIT: Duration = Duration::from_secs(10);

fn throttle_patience() -> Duration {
    std::env::var("SENDENSE_THROTTLE_PATIENCE_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(THROTTLE_PATIENCE)
}

/// A `Retry-After` in seconds (the HTTP-date form is not used by S3 or Azure).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// Between half of `wait` and all of it, so parallel uploads throttled
/// together do not come back together.
fn jittered(wait: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(PROCESS.throttled.load(Ordering::Relaxed));
    let fraction = (h.finish() % 1000) as f64 / 1000.0;
    wait.mul_f64(0.5 + fraction / 2.0)
}

/// hyper-util's errors to object_store's kinds (which decide retries): a
/// failed connect (refused, DNS) is `Connect`, an untrusted TLS certificate
/// `Unknown` (not retried); a connection
/// closed or reset mid-request `Interrupted`; others `Request`.
fn classify(e: hyper_util::client::legacy::Error) -> HttpError {
    let kind = if e.is_connect() && chain_mentions(&e, "certificate") {
        // An untrusted certificate stays untrusted: not retried.
        HttpErrorKind::Unknown
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        let mut kind = HttpErrorKind::Request;
        while let Some(s) = source {
            if let Some(h) = s.downcast_ref::<hyper::Error>() {
                if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                    kind = HttpErrorKind::Interrupted;
                }
            }
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) {
                    kind = HttpErrorKind::Interrupted;
                }
            }
            source = s.source();
        }
        kind
    };
    HttpError::new(kind, e)
}

fn chain_mentions(e: &dyn std::error::Error, word: &str) -> bool {
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = next {
        if s.to_string().contains(word) {
            return true;
        }
        next = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method() {
        let c = Counters::default();
        c.count(&http::Method::GET);
        c.count(&http::Method::PUT);
        c.count(&http::Method::PUT);
        c.count(&http::Method::OPTIONS);
        c.answered(http::StatusCode::SERVICE_UNAVAILABLE);
        c.answered(http::StatusCode::TOO_MANY_REQUESTS);
        c.answered(http::StatusCode::INSUFFICIENT_STORAGE);
        c.answered(http::StatusCode::FORBIDDEN);
        c.answered(http::StatusCode::OK);
        let s = c.snapshot();
        assert_eq!((s.get, s.put, s.other, s.total()), (1, 2, 1, 4));
        assert_eq!((s.throttled, s.server_errors), (2, 1));
        assert_eq!(s.since(&RequestCounts { put: 1, ..Default::default() }).put, 1);
    }
}
