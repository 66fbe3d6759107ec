//! Security headers on every response (API, cockpit files, errors).
//!
//! * `Content-Security-Policy`: scripts only from the server itself, plus
//!   WebAssembly compilation (`'wasm-unsafe-eval'`) and the inline module
//!   script in `index.html` that starts the app, allowed by its
//!   SHA-256 (computed from the served `index.html` when the router is
//!   built); no framing (`frame-ancestors 'none'`), no plugins, no `<base>`.
//!   Styles may be inline (the cockpit and its SVG charts set `style`
//!   attributes), which cannot run code.
//! * `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//!   `X-Frame-Options: DENY` (for browsers without `frame-ancestors`).
//! * Under TLS, `Strict-Transport-Security`.

use std::path::Path;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

/// One year, the usual HSTS lifetime.
const HSTS: &str = "max-age=31536000";

/// The `Content-Security-Policy` for the cockpit in `web_dir`.
pub fn content_security_policy(web_dir: &Path) -> String {
    let index = std::fs::read_to_string(web_dir.join("index.html")).unwrap_or_default();
    let hashes: String = inline_scripts(&index)
        .map(|body| format!(" 'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()))))
        .collect();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The bodies of the `<script>` elements without a `src` in an HTML page,
/// exactly as written (what the browser hashes).
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || loop {
        let start = find_ci(rest, "<script")?;
        let after = &rest[start..];
        let open_end = after.find('>')?;
        let open = &after[..open_end];
        let body_and_more = &after[open_end + 1..];
        let close = find_ci(body_and_more, "</script")?;
        let body = &body_and_more[..close];
        rest = &body_and_more[close..];
        if !has_attribute(open, "src") {
            return Some(body);
        }
    })
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.to_ascii_lowercase().find(needle)
}

fn has_attribute(open_tag: &str, name: &str) -> bool {
    open_tag
        .split(|c: char| c.is_ascii_whitespace())
        .any(|part| part.split('=').next().is_some_and(|n| n.eq_ignore_ascii_case(name)))
}

/// The headers added to every response.
#[derive(Clone)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    pub fn new(web_dir: &Path, tls: bool) -> Self {
        let csp = content_security_policy(web_dir);
        let mut headers = vec![
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"))),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        ];
        if tls {
            headers.push((header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS)));
        }
        Self { headers }
    }

    /// Adds the headers a response does not set itself.
    pub fn apply(&self, mut response: Response) -> Response {
        let target = response.headers_mut();
        for (name, value) in &self.headers {
            if !target.contains_key(name) {
                target.insert(name.clone(), value.clone());
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_inline_scripts_and_skips_external_ones() {
        let dir = tempfile::tempdir().unwrap();
        let boot = "\nimport init from '/app.js';\nawait init();\n";
        std::fs::write(
            dir.path().join("index.html"),
            format!("<html><head><script src=\"/x.js\"></script><SCRIPT type=\"module\">{boot}</SCRIPT></head></html>"),
        )
        .unwrap();
        let csp = content_security_policy(dir.path());
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(boot.as_bytes()));
        assert!(csp.contains(&format!("'sha256-{expected}'")), "{csp}");
        assert_eq!(csp.matches("'sha256-").count(), 1, "{csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'"));
        let script_src = csp.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
        assert!(!script_src.contains("unsafe-inline"), "{script_src}");
    }
}
