//! Serving the built cockpit: static files, and `index.html` for every other
//! path so deep links (`/flows`) load the app, which routes in the browser.
//!
//! The build (scripts/lib.sh `build_web`) writes a brotli and a gzip copy
//! beside each file; a browser that accepts one gets it as is, nothing is
//! compressed per request. Files whose names carry a content hash
//! (`sendense-frontend-<hash>_bg.wasm`, the lazily loaded pages'
//! `split_<page>-<hash>.wasm`, `chunk_<n>-<hash>.wasm` and their loader
//! `__wasm_split-<hash>.js`, trunk's `cockpit-<hash>.css`, the fonts) never
//! change under that name, so browsers keep them for a year without asking;
//! `index.html`, which names them, is checked on every load.
//!
//! `index.html` itself is answered per page ([`page_shell`]): the loading
//! shell it paints before the wasm arrives gets the page's own header (its
//! name and purpose, from [`shared_types::pages`], the table the cockpit's
//! navigation uses), and the head preloads the cockpit's fonts, so text
//! drawn when the app mounts does not move when a font arrives late.

use std::path::Path;

use axum::extract::Request;
use axum::handler::HandlerWithoutStateExt;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::Router;
use tower_http::services::ServeDir;

use crate::markup::escape;

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
    let dir = web_dir.to_path_buf();
    let page = move |uri: Uri| {
        let dir = dir.clone();
        async move { page_shell(&dir, uri.path()).await }
    };
    let files = ServeDir::new(web_dir)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(false)
        .fallback(page.clone().into_service());
    Router::new()
        .route("/index.html", axum::routing::get(page))
        .fallback_service(files)
        .layer(middleware::from_fn(cache_control))
}

/// Where `index.html`'s loading shell takes the page's header.
const PAGE_MARK: &str = "<!-- sendense:page -->";
/// Where `index.html`'s head takes the font preloads.
const PRELOAD_MARK: &str = "<!-- sendense:preload -->";

/// `index.html` for a page the browser asked for by its path: the page's
/// name and purpose in the loading shell, the fonts preloaded.
async fn page_shell(web_dir: &Path, path: &str) -> Response {
    let html = match tokio::fs::read_to_string(web_dir.join("index.html")).await {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(dir = %web_dir.display(), error = %e, "the cockpit's index.html cannot be read");
            return (StatusCode::SERVICE_UNAVAILABLE, "The cockpit's index.html cannot be read; rebuild it with scripts/run.sh.").into_response();
        }
    };
    let head = shared_types::pages::for_path(path)
        .map(|p| format!("<header class=\"boot-head\"><h1>{}</h1><p class=\"boot-purpose\">{}</p></header>", escape(p.label), escape(p.purpose)))
        .unwrap_or_default();
    let preloads: String = font_files(web_dir)
        .await
        .iter()
        .map(|name| format!("<link rel=\"preload\" href=\"/fonts/{}\" as=\"font\" type=\"font/woff2\" crossorigin>", escape(name)))
        .collect();
    Html(html.replacen(PAGE_MARK, &head, 1).replacen(PRELOAD_MARK, &preloads, 1)).into_response()
}

/// The WOFF2 files in the cockpit's `fonts/`, sorted by name.
async fn font_files(web_dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(mut dir) = tokio::fs::read_dir(web_dir.join("fonts")).await {
        while let Ok(Some(entry)) = dir.next_entry().await {
            if let Some(name) = entry.file_name().to_str().filter(|n| n.ends_with(".woff2")) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    names
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
/// least 12 hex digits, as trunk, build_web and the font build write them.
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
            // The lazily loaded pages (scripts/lib.sh build_web_wasm): the
            // loader, a page's own file and a chunk pages share.
            "/__wasm_split-cc8549eba88c2785.js",
            "/split_assets_page_1696954252662496550-cc8549eba88c2785.wasm",
            "/chunk_15-cc8549eba88c2785.wasm",
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
