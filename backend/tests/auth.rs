//! Sign-in, sessions, roles and the audit log, through the real router.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use futures_util::StreamExt;
use sea_orm::{ActiveModelTrait, Set};
use sendense::auth::session;
use sendense::db::entities::sessions;
use shared_types::audit::AuditPage;
use shared_types::auth::{LoginResponse, Me, Role, User};
use shared_types::error::ErrorBody;
use support::{fixture, ADMIN_PASSWORD};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Every (method, path) in the served OpenAPI document, with `{params}`
/// filled in.
async fn documented_routes(f: &support::Fixture) -> Vec<(String, String)> {
    let reply = f.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "the OpenAPI document is public");
    let doc: serde_json::Value = reply.json();
    assert_eq!(doc["servers"][0]["url"], "/api/v1");
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let filled: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "00000000-0000-0000-0000-000000000000" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                routes.push((method.to_uppercase(), format!("/api/v1{filled}")));
            }
        }
    }
    assert!(routes.len() >= 9, "suspiciously few routes: {routes:?}");
    routes
}

const PUBLIC: &[(&str, &str)] = &[("GET", "/api/v1/health"), ("POST", "/api/v1/auth/login")];
/// Mutating routes a viewer may call.
const VIEWER_MAY_MUTATE: &[(&str, &str)] = &[("POST", "/api/v1/auth/logout")];

#[tokio::test]
async fn every_route_needs_credentials_and_viewers_cannot_mutate() {
    let f = fixture().await;
    let (_, viewer) = f.user_with_role("vera", Role::Viewer).await;
    let admin = f.admin_token().await;
    let routes = documented_routes(&f).await;
    let mut guarded = 0;
    for (method, path) in &routes {
        let public = PUBLIC.iter().any(|(m, p)| m == method && p == path);
        let anonymous = f.call(method, path, None, None).await;
        if public {
            assert_ne!(anonymous.status, StatusCode::UNAUTHORIZED, "{method} {path} should be public");
            if method != "GET" {
                refused_cross_origin(&f, method, path, &admin).await;
                guarded += 1;
            }
            continue;
        }
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{method} {path} without credentials");
        let err: ErrorBody = anonymous.json();
        assert_eq!(err.code, "sign_in_required", "{method} {path}");

        let bogus = f.call(method, path, Some("not-a-real-token"), None).await;
        assert_eq!(bogus.status, StatusCode::UNAUTHORIZED, "{method} {path} with a bogus token");

        let mutating = method != "GET";
        if mutating {
            refused_cross_origin(&f, method, path, &admin).await;
        }
        let allowed = VIEWER_MAY_MUTATE.iter().any(|(m, p)| m == method && p == path);
        if mutating && !allowed {
            let as_viewer = f.call(method, path, Some(&viewer), Some(serde_json::json!({}))).await;
            assert_eq!(as_viewer.status, StatusCode::FORBIDDEN, "{method} {path} as a viewer: {}", as_viewer.body);
            assert!(as_viewer.json::<ErrorBody>().message.contains("viewer"));
        }
        guarded += usize::from(mutating);
    }
    assert!(guarded >= 20, "only {guarded} mutating routes were checked for cross-origin refusal");
    // Admin-only reads are refused to viewers too.
    for path in ["/api/v1/users", "/api/v1/audit"] {
        assert_eq!(f.call("GET", path, Some(&viewer), None).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    // An undocumented path is refused before it is looked up.
    assert_eq!(f.call("POST", "/api/v1/not-yet-written", None, None).await.status, StatusCode::UNAUTHORIZED);
}

/// A request as a browser on another site would send it: refused with 403
/// `cross_origin` before anything else, even with a valid token; the same
/// request from the server's own origin, or without `Origin`, is not.
async fn refused_cross_origin(f: &support::Fixture, method: &str, path: &str, token: &str) {
    use axum::body::Body;
    let build = |headers: &[(&str, &str)]| {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "sendense.test:8080")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Body::from("{}")).unwrap()
    };
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")][..],
        &[("origin", "https://sendense.test:8080")][..], // another scheme: not this server's origin
        &[("sec-fetch-site", "cross-site")][..],
    ] {
        let reply = f.send(build(headers)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path} with {headers:?}: {}", reply.body);
        let err: ErrorBody = reply.json();
        assert_eq!(err.code, "cross_origin", "{method} {path}");
        assert!(err.message.contains("own pages"), "{}", err.message);
    }
    // Anonymous from the server's own pages: the usual answer, not a cross-origin refusal.
    let own = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "sendense.test:8080")
        .header("origin", "http://sendense.test:8080")
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/json");
    let reply = f.send(own.body(Body::from("{}")).unwrap()).await;
    assert_ne!(reply.status, StatusCode::FORBIDDEN, "{method} {path} from its own origin: {}", reply.body);
}

#[tokio::test]
async fn concurrent_wrong_passwords_cannot_exceed_the_limit() {
    let f = fixture().await;
    let attempts = (0..30).map(|_| f.login("admin", "wrong-password!"));
    let replies = futures_util::future::join_all(attempts).await;
    let wrong = replies.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
    let locked = replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(wrong, sendense::auth::throttle::PER_USER, "evaluated as wrong passwords");
    assert_eq!(locked, 30 - wrong, "the rest get the lockout answer");
    for r in replies.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS) {
        assert_eq!(r.json::<ErrorBody>().code, "too_many_attempts");
    }
    // And now even the right password waits out the lock.
    assert_eq!(f.login("admin", ADMIN_PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_flood_of_sign_ins_hashes_at_most_a_few_at_a_time() {
    use sendense::auth::password::{peak_concurrent_hashes, MAX_CONCURRENT_HASHES};
    let f = fixture().await;
    let started = std::time::Instant::now();
    // Fifty different (unknown) users: no throttle applies, every one is hashed.
    let names: Vec<String> = (0..50).map(|i| format!("flood-{i}")).collect();
    let replies = futures_util::future::join_all(names.iter().map(|n| f.login(n, "some-password"))).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::UNAUTHORIZED), "every sign-in is answered");
    let peak = peak_concurrent_hashes();
    println!("50 concurrent sign-ins in {:?}, peak concurrent hashes {peak}", started.elapsed());
    assert!(peak <= MAX_CONCURRENT_HASHES, "peak {peak} exceeds the bound {MAX_CONCURRENT_HASHES}");
    assert_eq!(peak, MAX_CONCURRENT_HASHES, "fifty at once should fill the bound");
}

#[tokio::test]
async fn websocket_refuses_a_foreign_origin_before_upgrading() {
    let f = fixture().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = f.app().into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let token = f.admin_token().await;
    let request = |origin: &str| {
        let mut request = format!("ws://{addr}/api/v1/ws").into_client_request().unwrap();
        request.headers_mut().insert("cookie", format!("sendense_session={token}").parse().unwrap());
        request.headers_mut().insert("origin", origin.parse().unwrap());
        request
    };
    match tokio_tungstenite::connect_async(request("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("cross_origin"), "{body}");
        }
        other => panic!("expected a 403 refusal, got {other:?}"),
    }
    // The cockpit's own origin (what a browser on this server sends) opens.
    let (mut ws, _) = tokio_tungstenite::connect_async(request(&format!("http://{addr}"))).await.expect("own origin opens");
    let hello = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
}

#[tokio::test]
async fn sign_in_gives_a_token_and_a_strict_httponly_cookie() {
    let f = fixture().await;
    let reply = f.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let login: LoginResponse = reply.json();
    assert_eq!((login.user.username.as_str(), login.user.role), ("admin", Role::Admin));
    assert!(login.expires_at > Utc::now() + chrono::Duration::hours(11));
    let cookie = reply.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains(&format!("sendense_session={}", login.token)));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: a Secure cookie would never come back: {cookie}");

    // The cookie works like the bearer token.
    let req = axum::http::Request::get("/api/v1/auth/me")
        .header("cookie", format!("sendense_session={}", login.token))
        .body(axum::body::Body::empty())
        .unwrap();
    let me = f.send(req).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json::<Me>().user.username, "admin");
}

#[tokio::test]
async fn wrong_passwords_are_throttled_without_revealing_users() {
    let f = fixture().await;
    let (_, _) = f.user_with_role("otto", Role::Operator).await;
    let unknown = f.login("nobody", "whatever-password").await;
    let wrong = f.login("admin", "wrong-password!").await;
    assert_eq!((unknown.status, wrong.status), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(unknown.json::<ErrorBody>().message, wrong.json::<ErrorBody>().message, "same answer either way");

    for _ in 0..4 {
        assert_eq!(f.login("admin", "wrong-password!").await.status, StatusCode::UNAUTHORIZED);
    }
    // Five failures: now even the right password is refused for a while.
    let locked = f.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "{}", locked.body);
    assert!(locked.headers.get("retry-after").is_some());
    assert!(locked.json::<ErrorBody>().message.contains("Try again"));
    // Other users are not locked out by it.
    assert_eq!(f.login("otto", "otto-password").await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_and_expired_tokens_are_refused() {
    let f = fixture().await;
    let token = f.admin_token().await;
    assert_eq!(f.call("GET", "/api/v1/auth/me", Some(&token), None).await.status, StatusCode::OK);
    let out = f.call("POST", "/api/v1/auth/logout", Some(&token), None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.headers.get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"));
    let after = f.call("GET", "/api/v1/auth/me", Some(&token), None).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.json::<ErrorBody>().code, "session_ended");

    // A session whose expiry has passed.
    let me = f.call("GET", "/api/v1/users", Some(&f.admin_token().await), None).await.json::<Vec<User>>();
    let (expired, row) = session::create(&f.state.db, &me[0].id, chrono::Duration::hours(1), None).await.unwrap();
    let mut active: sessions::ActiveModel = row.into();
    active.expires_at = Set(Utc::now() - chrono::Duration::seconds(1));
    active.update(&f.state.db).await.unwrap();
    assert_eq!(f.call("GET", "/api/v1/auth/me", Some(&expired), None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn websocket_refuses_strangers_and_closes_when_the_session_ends() {
    let f = fixture().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = f.app().into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected a 401 refusal, got {other:?}"),
    }

    let token = f.admin_token().await;
    let mut request = format!("ws://{addr}/api/v1/ws").into_client_request().unwrap();
    request.headers_mut().insert("cookie", format!("sendense_session={token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("signed-in socket opens");
    let hello = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));

    assert_eq!(f.call("POST", "/api/v1/auth/logout", Some(&token), None).await.status, StatusCode::NO_CONTENT);
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("close within 5 s");
        match msg {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 4401);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn users_are_managed_by_admins_and_the_last_admin_stays() {
    let f = fixture().await;
    let admin = f.admin_token().await;
    let users: Vec<User> = f.call("GET", "/api/v1/users", Some(&admin), None).await.json();
    let admin_id = users.iter().find(|u| u.username == "admin").unwrap().id.clone();

    // The last admin cannot be demoted, disabled or removed.
    for body in [serde_json::json!({"role": "viewer"}), serde_json::json!({"disabled": true})] {
        let r = f.call("PATCH", &format!("/api/v1/users/{admin_id}"), Some(&admin), Some(body)).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.json::<ErrorBody>().message.contains("last enabled admin"));
    }
    let r = f.call("DELETE", &format!("/api/v1/users/{admin_id}"), Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Add an operator, promote to admin, disable: their session ends.
    let (ops, ops_token) = f.user_with_role("olga", Role::Operator).await;
    let r = f.call("PATCH", &format!("/api/v1/users/{}", ops.id), Some(&admin), Some(serde_json::json!({"role": "admin"}))).await;
    assert_eq!((r.status, r.json::<User>().role), (StatusCode::OK, Role::Admin));
    assert_eq!(f.call("GET", "/api/v1/users", Some(&ops_token), None).await.status, StatusCode::OK, "role applies at once");
    let r = f.call("PATCH", &format!("/api/v1/users/{}", ops.id), Some(&admin), Some(serde_json::json!({"disabled": true}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(f.call("GET", "/api/v1/auth/me", Some(&ops_token), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.login("olga", "olga-password").await.status, StatusCode::UNAUTHORIZED, "disabled users cannot sign in");

    // Reset a password: old sessions end, the new password works.
    let (viewer, viewer_token) = f.user_with_role("vic", Role::Viewer).await;
    let r = f
        .call("POST", &format!("/api/v1/users/{}/password", viewer.id), Some(&admin), Some(serde_json::json!({"password": "a brand new password"})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(f.call("GET", "/api/v1/auth/me", Some(&viewer_token), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(f.login("vic", "a brand new password").await.status, StatusCode::OK);

    // Remove a user.
    assert_eq!(f.call("DELETE", &format!("/api/v1/users/{}", viewer.id), Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(f.call("DELETE", &format!("/api/v1/users/{}", viewer.id), Some(&admin), None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_a_person_can_act_on() {
    let f = fixture().await;
    let admin = f.admin_token().await;
    let cases = [
        (serde_json::json!({"username": "", "password": "long enough pw", "role": "viewer"}), 400, "username"),
        (serde_json::json!({"username": "x".repeat(65), "password": "long enough pw", "role": "viewer"}), 400, "64"),
        (serde_json::json!({"username": "bob", "password": "short", "role": "viewer"}), 400, "password"),
        (serde_json::json!({"username": "bob", "password": "p".repeat(300), "role": "viewer"}), 400, "256"),
        (serde_json::json!({"username": "bob", "password": "long enough pw", "role": "root"}), 400, "role"),
        (serde_json::json!({"username": "admin", "password": "long enough pw", "role": "viewer"}), 409, "exists"),
    ];
    for (body, status, word) in cases {
        let r = f.call("POST", "/api/v1/users", Some(&admin), Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.body);
        let err: ErrorBody = r.json();
        assert!(err.message.contains(word), "{body}: message {:?} should mention {word}", err.message);
    }
    for body in [
        serde_json::json!({"username": "", "password": "x"}),
        serde_json::json!({"username": "admin", "password": ""}),
        serde_json::json!({"username": "a".repeat(1000), "password": "x"}),
    ] {
        let r = f.login_raw(body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
    }
    // Malformed JSON on a real endpoint: 400 naming the problem, in the error shape.
    let req = axum::http::Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"username\": \"admin\", "))
        .unwrap();
    let r = f.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let err: ErrorBody = r.json();
    assert_eq!(err.code, "invalid_json");
    assert!(err.message.contains("EOF") || err.message.contains("line 1"), "{}", err.message);

    // Disabling yourself is refused even when other admins exist.
    let (other, _) = f.user_with_role("ada", Role::Admin).await;
    let users: Vec<User> = f.call("GET", "/api/v1/users", Some(&admin), None).await.json();
    let me = users.iter().find(|u| u.username == "admin").unwrap();
    let r = f.call("PATCH", &format!("/api/v1/users/{}", me.id), Some(&admin), Some(serde_json::json!({"disabled": true}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(!other.disabled);
    let r = f.call("GET", "/api/v1/audit?limit=abc", Some(&admin), None).await;
    assert_eq!((r.status, r.json::<ErrorBody>().code.as_str()), (StatusCode::BAD_REQUEST, "invalid_query"));
}

#[tokio::test]
async fn mutating_actions_are_audited_with_who_what_and_result() {
    let f = fixture().await;
    let _ = f.login("admin", "wrong-password!").await;
    let admin = f.admin_token().await;
    let (_, viewer) = f.user_with_role("val", Role::Viewer).await;
    let _ = f.call("POST", "/api/v1/users", Some(&viewer), Some(serde_json::json!({}))).await;

    let page: AuditPage = f.call("GET", "/api/v1/audit?limit=50", Some(&admin), None).await.json();
    let find = |action: &str, result: &str| {
        page.entries.iter().find(|e| e.action == action && e.result == result).cloned()
    };
    let failed = find("auth.login", "denied").expect("failed sign-in audited");
    assert_eq!(failed.actor.as_deref(), Some("admin"));
    assert_eq!(failed.status, 401);
    let created = find("user.create", "ok").expect("user creation audited");
    assert_eq!((created.actor.as_deref(), created.target.as_str()), (Some("admin"), "val"));
    let denied = page.entries.iter().find(|e| e.actor.as_deref() == Some("val") && e.status == 403).expect("denied attempt audited");
    assert_eq!(denied.result, "denied");
    assert!(page.total as usize >= page.entries.len() && page.entries.windows(2).all(|w| w[0].id > w[1].id));
}
