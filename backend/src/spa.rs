//! Serving the built cockpit: static files, and `index.html` for every other
//! path so deep links (`/flows`) load the app, which routes in the browser.
//!
//! The build (scripts/lib.sh `build_web`) writes a brotli and a gzip copy
//! beside each file; a browser that accepts one gets it as is, nothing is
//! compressed per request. Files whose names carry trunk's content hash
//! (`sendense-frontend-<hash>_bg.wasm`, `cockpit-<hash>.css`, the fonts) never
//! change under that name, so browsers keep them for a year without asking;
//! `index.html`, which names them, is checked on every load.

use std::path::Path;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::services::{ServeDir, ServeFile};

/// `Cache-Control` of a file named by its content's hash.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of everything else: use it only after checking it is current.
const REVALIDATE: &str = "no-cache";

/// The cockpit's routes, or a page saying how to build it when `web_dir` has
/// no `index.html`.
pub fn router(web_dir: &Path) -> Router {
    let index = web_dir.join("index.html");
    if !index.is_file() {
        tracing::warn!(dir = %web_dir.display(), "the cockpit is not built; the API still works");
        let message = format!(
            "The Sendense cockpit is not built: {} has no index.html. Build it with scripts/run.sh \
             (or point --web-dir / SENDENSE_WEB_DIR at trunk's output). The API is available under /api/v1.",
            web_dir.display()
        );
        return Router::new().fallback(move || {
            let message = message.clone();
            async move { (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message).into_response() }
        });
    }
    let index = ServeFile::new(index).precompressed_br().precompressed_gzip();
    let files = ServeDir::new(web_dir).precompressed_br().precompressed_gzip().fallback(index);
    Router::new().fallback_service(files).layer(middleware::from_fn(cache_control))
}

/// Sets how long browsers may keep what was served. A path that looks hashed
/// but answered `index.html` (a file that is gone) is not kept.
async fn cache_control(request: Request, next: Next) -> Response {
    let hashed = is_content_addressed(request.uri().path());
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let policy = if hashed && !html && response.status() == StatusCode::OK { IMMUTABLE } else { REVALIDATE };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}

/// Whether a URL path names a file by its content's hash: its last name's stem
/// (before the first dot, without wasm-bindgen's `_bg`) ends in `-` and at
/// least 12 hex digits, as trunk and the font build write them.
fn is_content_addressed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let stem = name.split('.').next().unwrap_or_default();
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    match stem.rsplit_once('-') {
        Some((_, hash)) => hash.len() >= 12 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_content_addressed;

    #[test]
    fn hashed_names_are_recognised() {
        for path in [
            "/sendense-frontend-cc8549eba88c2785_bg.wasm",
            "/sendense-frontend-cc8549eba88c2785.js",
            "/cockpit-1ad783d80e4f625.css",
            "/fonts/inter-400-b69dc4446ac04180.woff2",
        ] {
            assert!(is_content_addressed(path), "{path}");
        }
        for path in ["/", "/index.html", "/flows", "/app.js", "/fonts/inter-400.woff2", "/x-notahexhashvalue.js", "/a-1234.js"] {
            assert!(!is_content_addressed(path), "{path}");
        }
    }
}
