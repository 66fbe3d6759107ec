//! Security headers on every kind of response, and what changes under TLS
//! (HSTS, Secure cookies), through the real router.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use sha2::Digest;
use support::{fixture, ADMIN_PASSWORD};

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn assert_secured(reply: &support::Reply, what: &str, tls: bool) {
    let h = |name: &str| reply.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let csp = h("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
    for directive in ["default-src 'self'", "frame-ancestors 'none'", "'wasm-unsafe-eval'", "object-src 'none'"] {
        assert!(csp.contains(directive), "{what}: CSP lacks {directive}: {csp}");
    }
    let script_src = csp.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
    assert!(!script_src.contains("unsafe-inline") && !script_src.contains("'unsafe-eval'"), "{what}: {script_src}");
    assert_eq!(h("x-content-type-options").as_deref(), Some("nosniff"), "{what}");
    assert_eq!(h("referrer-policy").as_deref(), Some("no-referrer"), "{what}");
    assert_eq!(h("strict-transport-security").is_some(), tls, "{what}: HSTS only under TLS");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let f = fixture().await;
    let token = f.admin_token().await;
    let cases = [
        ("API answer", f.call("GET", "/api/v1/auth/me", Some(&token), None).await, StatusCode::OK),
        ("API error", f.call("GET", "/api/v1/auth/me", None, None).await, StatusCode::UNAUTHORIZED),
        ("unknown API path", f.call("GET", "/api/v1/nothing-here", Some(&token), None).await, StatusCode::NOT_FOUND),
        ("wrong method", f.call("DELETE", "/api/v1/health", Some(&token), None).await, StatusCode::METHOD_NOT_ALLOWED),
        ("public API", f.call("GET", "/api/v1/health", None, None).await, StatusCode::OK),
        ("static file", f.send(get("/app.js")).await, StatusCode::OK),
        ("deep link", f.send(get("/flows")).await, StatusCode::OK),
    ];
    for (what, reply, status) in &cases {
        assert_eq!(reply.status, *status, "{what}: {}", reply.body);
        assert_secured(reply, what, false);
    }
}

#[tokio::test]
async fn the_inline_bootstrap_script_is_allowed_by_its_hash_only() {
    let f = fixture().await;
    // trunk's start-up script, written inline into index.html.
    let boot = "\nimport init, * as bindings from '/app-1a2b.js';\nconst wasm = await init({ module_or_path: '/app-1a2b_bg.wasm' });\n";
    let html = format!(
        "<!DOCTYPE html><html><head><link rel=\"modulepreload\" href=\"/app-1a2b.js\"><script type=\"module\">{boot}</script></head><body></body></html>"
    );
    std::fs::write(f.web.path().join("index.html"), html).unwrap();
    let reply = f.send(get("/")).await;
    let csp = reply.headers.get("content-security-policy").unwrap().to_str().unwrap();
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(boot.as_bytes()));
    assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
    assert_eq!(csp.matches("'sha256-").count(), 1, "{csp}");
}

#[tokio::test]
async fn under_tls_cookies_are_secure_and_responses_carry_hsts() {
    let mut f = fixture().await;
    f.state.tls = true;
    let login = f.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let cookie = login.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    assert_secured(&login, "sign-in under TLS", true);
    assert_secured(&f.send(get("/flows")).await, "cockpit under TLS", true);
}
