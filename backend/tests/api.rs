//! The HTTP surface through the real router: health, the error shape for
//! unknown routes and methods, the cockpit's history fallback, and the
//! WebSocket over a real TCP connection.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use shared_types::error::ErrorBody;
use shared_types::health::HealthResponse;
use shared_types::ws::ServerMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceExt;

mod support;
use support::fixture;

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn health_reports_version_uptime_and_catalog() {
    let f = fixture().await;
    let reply = f.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let health: HealthResponse = reply.json();
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
    assert!(health.catalog.ok);
    assert_eq!(health.catalog.backend, "sqlite");
}

#[tokio::test]
async fn unknown_api_paths_and_methods_answer_in_the_error_shape() {
    let f = fixture().await;
    let token = f.admin_token().await;
    let reply = f.call("GET", "/api/v1/no-such-thing", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers.get("content-type").unwrap(), "application/json");
    let err: ErrorBody = reply.json();
    assert_eq!((err.status, err.code.as_str()), (404, "route_not_found"));
    assert!(err.message.contains("/api/v1/no-such-thing"), "{}", err.message);

    let reply = f.call("PUT", "/api/v1/auth/me", Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let err: ErrorBody = reply.json();
    assert_eq!(err.code, "method_not_allowed");
    assert!(err.message.contains("PUT"), "{}", err.message);
}

#[tokio::test]
async fn cockpit_deep_links_get_the_app_and_files_are_served() {
    let f = fixture().await;
    for path in ["/", "/flows", "/recovery/restore/abc"] {
        let reply = f.send(get(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.body.contains("<title>cockpit</title>"), "{path} did not return the app");
    }
    let reply = f.send(get("/app.js")).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "console.log(1)"));
}

#[tokio::test]
async fn a_missing_cockpit_build_is_explained() {
    let f = fixture().await;
    let empty = tempfile::tempdir().unwrap();
    let app = sendense::server::app(f.state.clone(), empty.path());
    let resp = app.oneshot(get("/flows")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("scripts/run.sh"));
}

async fn next<S>(ws: &mut S) -> tokio_tungstenite::tungstenite::Message
where
    S: futures_util::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame within 5 s");
    frame.expect("socket open").expect("valid frame")
}

#[tokio::test]
async fn websocket_greets_then_streams_heartbeats_and_closes_on_shutdown() {
    let f = fixture().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = f.state.shutdown.clone();
    let app = f.app();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
    });
    let sampler = tokio::spawn(sendense::telemetry::system::run_sampler(f.state.clone(), f.health_tx.clone()));

    let token = f.admin_token().await;
    let mut request = format!("ws://{addr}/api/v1/ws").into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello: ServerMessage = serde_json::from_str(next(&mut ws).await.to_text().unwrap()).unwrap();
    assert!(matches!(hello, ServerMessage::Hello { ref version, .. } if version == env!("CARGO_PKG_VERSION")));

    let mut beats = Vec::new();
    while beats.len() < 2 {
        if let ServerMessage::Heartbeat { health, server_time, .. } =
            serde_json::from_str(next(&mut ws).await.to_text().unwrap()).unwrap()
        {
            assert!(health.memory_total_bytes > 0 && health.data_dir_total_bytes > 0);
            beats.push(server_time);
        }
    }
    assert!(beats[1] > beats[0], "heartbeats carry advancing server time");

    f.state.shutdown.cancel();
    let close = next(&mut ws).await;
    match close {
        tokio_tungstenite::tungstenite::Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("server stops").unwrap().unwrap();
    sampler.await.unwrap();
}
