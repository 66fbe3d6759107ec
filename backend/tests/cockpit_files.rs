//! How the built cockpit is served: the build's pre-compressed copies to the
//! browsers that accept them, content-hashed files cached for a year, and
//! `index.html` (and deep links, and files that are gone) revalidated, and
//! painted per page: the loading shell names the page asked for and the
//! head preloads the fonts.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use support::fixture;

const WASM: &str = "sendense-frontend-0123456789abcdef_bg.wasm";
const SPLIT_FILES: [&str; 3] = [
    "__wasm_split-0123456789abcdef.js",
    "split_assets_page_1696954252662496550-0123456789abcdef.wasm",
    "chunk_15-0123456789abcdef.wasm",
];

fn get(path: &str, accept_encoding: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(encoding) = accept_encoding {
        request = request.header("accept-encoding", encoding);
    }
    request.body(Body::empty()).unwrap()
}

fn header(reply: &support::Reply, name: &str) -> Option<String> {
    reply.headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn precompressed_copies_go_to_browsers_that_accept_them() {
    let f = fixture().await;
    let web = f.web.path();
    // Distinct bytes per copy: the reply shows which file was sent.
    std::fs::write(web.join(WASM), b"\0asm plain").unwrap();
    std::fs::write(web.join(format!("{WASM}.br")), b"brotli bytes").unwrap();
    std::fs::write(web.join(format!("{WASM}.gz")), b"gzip bytes").unwrap();
    let path = format!("/{WASM}");

    let br = f.send(get(&path, Some("gzip, deflate, br"))).await;
    assert_eq!(br.status, StatusCode::OK);
    assert_eq!(br.bytes, b"brotli bytes");
    assert_eq!(header(&br, "content-encoding").as_deref(), Some("br"));
    assert_eq!(header(&br, "content-type").as_deref(), Some("application/wasm"));

    let gz = f.send(get(&path, Some("gzip"))).await;
    assert_eq!(gz.bytes, b"gzip bytes");
    assert_eq!(header(&gz, "content-encoding").as_deref(), Some("gzip"));

    let plain = f.send(get(&path, None)).await;
    assert_eq!(plain.bytes, b"\0asm plain");
    assert_eq!(header(&plain, "content-encoding"), None);
}

#[tokio::test]
async fn hashed_files_are_kept_for_a_year_and_the_page_is_revalidated() {
    let f = fixture().await;
    let web = f.web.path();
    std::fs::write(web.join(WASM), b"\0asm").unwrap();
    std::fs::create_dir(web.join("fonts")).unwrap();
    std::fs::write(web.join("fonts/inter-400-b69dc4446ac04180.woff2"), b"wOF2").unwrap();
    // The lazily loaded pages' files (scripts/lib.sh build_web_wasm): the
    // loader, a page's own wasm and a chunk pages share, named like the rest.
    for name in SPLIT_FILES {
        std::fs::write(web.join(name), b"\0asm").unwrap();
        std::fs::write(web.join(format!("{name}.br")), b"brotli bytes").unwrap();
    }

    let split = SPLIT_FILES.iter().map(|name| format!("/{name}"));
    for path in [format!("/{WASM}"), "/fonts/inter-400-b69dc4446ac04180.woff2".to_owned()].into_iter().chain(split) {
        let reply = f.send(get(&path, Some("br"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(header(&reply, "cache-control").as_deref(), Some("public, max-age=31536000, immutable"), "{path}");
        if path.contains("split") || path.contains("chunk_") {
            assert_eq!(reply.bytes, b"brotli bytes", "{path}: the build's brotli copy");
            assert_eq!(header(&reply, "content-encoding").as_deref(), Some("br"), "{path}");
        }
    }
    // The page, a deep link, an unhashed file, and a hashed name that is not
    // (or no longer) there, which answers the page: checked every time.
    for path in ["/", "/index.html", "/flows", "/app.js", "/sendense-frontend-fedcba9876543210.js"] {
        let reply = f.send(get(path, Some("br"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(header(&reply, "cache-control").as_deref(), Some("no-cache"), "{path}");
    }
    let gone = f.send(get("/sendense-frontend-fedcba9876543210.js", None)).await;
    assert!(gone.body.contains("<title>cockpit</title>"), "a missing file answers the page: {}", gone.body);
}

#[tokio::test]
async fn the_loading_shell_names_the_page_asked_for_and_preloads_the_fonts() {
    let f = fixture().await;
    let web = f.web.path();
    // The repository's own index.html: its two places for the server.
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../index.html")).unwrap();
    assert!(source.contains("<!-- sendense:page -->") && source.contains("<!-- sendense:preload -->"), "index.html lost its marks");
    std::fs::write(web.join("index.html"), &source).unwrap();
    std::fs::create_dir(web.join("fonts")).unwrap();
    for name in ["inter-600-b69dc4446ac04180.woff2", "inter-400-0123456789abcdef.woff2", "readme.txt"] {
        std::fs::write(web.join("fonts").join(name), b"wOF2").unwrap();
    }
    let preloads = concat!(
        r#"<link rel="preload" href="/fonts/inter-400-0123456789abcdef.woff2" as="font" type="font/woff2" crossorigin>"#,
        r#"<link rel="preload" href="/fonts/inter-600-b69dc4446ac04180.woff2" as="font" type="font/woff2" crossorigin>"#
    );
    for (path, label) in [("/", "COMMAND"), ("/command", "COMMAND"), ("/flows", "FLOWS"), ("/systems/users", "Systems"), ("/reports", "Reports")] {
        let page = f.send(get(path, Some("br"))).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(header(&page, "content-type").as_deref(), Some("text/html; charset=utf-8"), "{path}");
        assert_eq!(header(&page, "cache-control").as_deref(), Some("no-cache"), "{path}");
        let purpose = shared_types::pages::for_path(path).unwrap().purpose;
        assert!(page.body.contains(&format!(r#"<h1>{label}</h1><p class="boot-purpose">{purpose}</p>"#)), "{path}: {}", page.body);
        assert!(page.body.contains(preloads), "{path}: {}", page.body);
    }
    // Not a page: the shell without a name, the fonts still preloaded.
    for path in ["/index.html", "/sendense-frontend-fedcba9876543210.js", "/nowhere"] {
        let page = f.send(get(path, None)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("boot-head") && page.body.contains("Loading the cockpit"), "{path}: {}", page.body);
        assert!(page.body.contains(preloads), "{path}");
    }
}
