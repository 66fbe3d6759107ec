//! `GET /metrics`: Prometheus metrics ([`crate::telemetry::metrics`]),
//! outside the session-authenticated API. A scrape is answered when it
//! carries the bearer token set with `--metrics-token`, or comes from an
//! address `--metrics-allow` lists (default: this machine only; a request
//! carrying `Forwarded` / `X-Forwarded-For` / `X-Real-IP` came through a
//! proxy and gets no address-based access); anything else is a 403 saying
//! which of the two to set.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::ApiError;
use crate::state::AppState;

/// An address or a network (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("'{text}' is not an IP address or network (e.g. 10.0.0.0/8, ::1)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("'{text}': the prefix length must be 0 to {max}"))?,
        };
        Ok(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask(u128::from(u32::from(net)), u128::from(u32::from(ip)), 32, self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask(u128::from(net), u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

impl std::fmt::Display for Network {
    /// `10.0.0.0/8`; a single address without its prefix.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

fn mask(net: u128, ip: u128, bits: u32, prefix: u8) -> bool {
    let host_bits = bits - u32::from(prefix);
    host_bits >= 128 || (net >> host_bits) == (ip >> host_bits)
}

/// Who may scrape.
#[derive(Debug, Clone)]
pub struct MetricsAccess {
    token: Option<String>,
    allow: Vec<Network>,
}

impl Default for MetricsAccess {
    /// This machine only.
    fn default() -> Self {
        MetricsAccess { token: None, allow: vec![Network::parse("127.0.0.0/8").expect("valid"), Network::parse("::1").expect("valid")] }
    }
}

impl MetricsAccess {
    /// `allow`: `None` keeps the default (this machine); an empty list
    /// allows no address (then only the token opens it).
    pub fn new(token: Option<String>, allow: Option<Vec<Network>>) -> MetricsAccess {
        let token = token.filter(|t| !t.is_empty());
        MetricsAccess { token, allow: allow.unwrap_or_else(|| MetricsAccess::default().allow) }
    }

    /// Whether a bearer token opens the scrape (never the token itself).
    pub fn token_set(&self) -> bool {
        self.token.is_some()
    }

    /// The addresses and networks that may scrape without the token.
    pub fn allowed(&self) -> Vec<String> {
        self.allow.iter().map(ToString::to_string).collect()
    }

    fn allows(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if let (Some(want), Some(got)) = (&self.token, bearer) {
            // Compared in constant time: the token is a password.
            if want.len() == got.len() && want.bytes().zip(got.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0 {
                return true;
            }
        }
        // Behind a reverse proxy every peer is the proxy (often this
        // machine): a forwarded request gets no address-based access.
        let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| headers.contains_key(*h));
        !forwarded && peer.is_some_and(|ip| self.allow.iter().any(|n| n.contains(ip)))
    }
}

pub fn router(state: AppState) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(state)
}

async fn scrape(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if !state.metrics_access.allows(ip, request.headers()) {
        let from = ip.map(|i| i.to_string()).unwrap_or_else(|| "an unknown address".into());
        return ApiError::Forbidden {
            message: format!(
                "Metrics are not served to {from}: send 'Authorization: Bearer <token>' with the token set by --metrics-token \
                 (SENDENSE_METRICS_TOKEN), or allow the address with --metrics-allow (SENDENSE_METRICS_ALLOW)."
            ),
        }
        .into_response();
    }
    match crate::telemetry::metrics::render(&state.db, &state.data_dir, &state.repo_stats).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_only() {
        let lan = Network::parse("10.1.0.0/16").unwrap();
        assert!(lan.contains("10.1.200.3".parse().unwrap()));
        assert!(!lan.contains("10.2.0.1".parse().unwrap()));
        assert!(lan.contains("::ffff:10.1.0.9".parse().unwrap()), "an IPv4 peer on a dual-stack socket");
        assert!(Network::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains("203.0.113.9".parse().unwrap()));
        assert!(!Network::parse("fd00::/8").unwrap().contains("10.0.0.1".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(Network::parse("nope").unwrap_err().contains("not an IP address"));
    }

    #[test]
    fn the_token_or_an_allowed_address_opens_it() {
        let access = MetricsAccess::new(Some("s3cret".into()), Some(vec![]));
        let mut h = HeaderMap::new();
        assert!(!access.allows(Some("127.0.0.1".parse().unwrap()), &h), "no address is allowed, not even this machine");
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(access.allows(None, &h));
        h.insert(header::AUTHORIZATION, "Bearer s3cres".parse().unwrap());
        assert!(!access.allows(None, &h));
        assert!(MetricsAccess::default().allows(Some("127.0.0.1".parse().unwrap()), &HeaderMap::new()));
        assert!(!MetricsAccess::default().allows(Some("192.0.2.1".parse().unwrap()), &HeaderMap::new()));
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert!(!MetricsAccess::default().allows(Some("127.0.0.1".parse().unwrap()), &proxied), "a request a local proxy forwarded is not local");
    }
}
