//! Cross-origin protection: a request a browser sends on behalf of another
//! site is refused before it reaches authentication.
//!
//! Guarded are every mutating request (POST, PUT, PATCH, DELETE) and the
//! WebSocket upgrade (`/api/v1/ws`, which carries the session cookie). Such a
//! request is refused with 403 `cross_origin` when it carries
//! `Sec-Fetch-Site: cross-site`, or an `Origin` other than the server's own:
//! the scheme the server speaks (`https` under TLS) and the `Host` the
//! browser addressed (or, behind a proxy, `X-Forwarded-Proto` and
//! `X-Forwarded-Host`, which a cross-site page cannot set). Requests without
//! `Origin` (scripts with a bearer token, curl, node appliances) pass:
//! browsers always send `Origin` on these requests.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::policy;
use crate::api::ApiError;
use crate::state::AppState;

/// The path of the WebSocket, relative to the API prefix.
const WS_PATH: &str = "/ws";

/// Whether the request must come from the server's own pages.
fn guarded(method: &Method, path: &str) -> bool {
    policy::is_mutating(method)
        || path.strip_prefix(shared_types::API_PREFIX).is_some_and(|rest| rest.trim_end_matches('/') == WS_PATH)
}

fn header_str<'a>(headers: &'a HeaderMap, name: impl header::AsHeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Why the request is refused as cross-origin, if it is.
pub fn refusal(method: &Method, path: &str, headers: &HeaderMap, tls: bool) -> Option<String> {
    if !guarded(method, path) {
        return None;
    }
    if header_str(headers, "sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return Some("This request was sent by another site (Sec-Fetch-Site: cross-site); Sendense accepts changes only \
                     from its own pages. Scripts: send no Origin header and sign in with a bearer token."
            .into());
    }
    let origin = header_str(headers, header::ORIGIN)?;
    let scheme = if tls { "https" } else { "http" };
    let own = header_str(headers, header::HOST).map(|host| format!("{scheme}://{host}"));
    let proxied = match (header_str(headers, "x-forwarded-proto"), header_str(headers, "x-forwarded-host")) {
        (Some(proto), Some(host)) => Some(format!("{proto}://{host}")),
        _ => None,
    };
    if [&own, &proxied].into_iter().flatten().any(|o| o.eq_ignore_ascii_case(origin)) {
        return None;
    }
    let expected = own.unwrap_or_else(|| format!("{scheme}://<the address you opened>"));
    Some(format!(
        "This request came from another origin ({origin}); Sendense accepts changes only from its own pages at \
         {expected}. Open the cockpit at that address, or (scripts) send no Origin header and sign in with a bearer token."
    ))
}

/// The layer over `/api/v1`.
pub async fn refuse_cross_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(message) = refusal(req.method(), req.uri().path(), req.headers(), state.tls) {
        tracing::warn!(method = %req.method(), path = %req.uri().path(), "refused a cross-origin request");
        return ApiError::ForbiddenCode { code: "cross_origin", message }.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn own_origin_and_no_origin_pass_foreign_ones_do_not() {
        let post = Method::POST;
        let own = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert!(refusal(&post, "/api/v1/flows", &own, false).is_none());
        assert!(refusal(&post, "/api/v1/flows", &own, true).is_some(), "under TLS the origin is https");
        assert!(refusal(&post, "/api/v1/flows", &headers(&[("host", "a:1")]), false).is_none(), "no Origin: a script");
        let foreign = headers(&[("host", "127.0.0.1:8080"), ("origin", "https://evil.example")]);
        assert!(refusal(&post, "/api/v1/flows", &foreign, false).unwrap().contains("evil.example"));
        assert!(refusal(&Method::GET, "/api/v1/flows", &foreign, false).is_none(), "reads are not guarded");
        assert!(refusal(&Method::GET, "/api/v1/ws", &foreign, false).is_some(), "the WebSocket is");
        let fetch = headers(&[("host", "h"), ("sec-fetch-site", "cross-site")]);
        assert!(refusal(&Method::DELETE, "/api/v1/flows/x", &fetch, false).is_some());
        let proxied = headers(&[
            ("host", "10.0.0.5:8080"),
            ("origin", "https://backup.example"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "backup.example"),
        ]);
        assert!(refusal(&post, "/api/v1/flows", &proxied, false).is_none());
    }
}
