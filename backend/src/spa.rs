//! Serving the built cockpit: static files, and `index.html` for every other
//! path so deep links (`/flows`) load the app, which routes in the browser.

use std::path::Path;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};

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
    let files = ServeDir::new(web_dir).fallback(ServeFile::new(index));
    Router::new().fallback_service(files).layer(CompressionLayer::new())
}
