//! Test fixture: a server state on a fresh SQLite catalog with an `admin`
//! (password [`ADMIN_PASSWORD`]), the app router, and request helpers.
#![allow(dead_code)]

pub mod api;
pub mod fault_proxy;
pub mod kvm;
pub mod object_servers;
pub mod rows;
pub mod test_cache;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use sendense::db::{self, CatalogKind};
use sendense::state::AppState;
use shared_types::auth::{LoginResponse, Role, User};
use tower::ServiceExt;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

pub struct Fixture {
    pub state: AppState,
    pub health_tx: tokio::sync::watch::Sender<Option<shared_types::health::SystemHealth>>,
    pub web: tempfile::TempDir,
    pub data: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    /// The body as received (downloads).
    pub bytes: Vec<u8>,
    pub headers: axum::http::HeaderMap,
}

impl Reply {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub async fn fixture() -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let (url, kind) = db::catalog_url(data.path(), None).unwrap();
    let catalog = db::open(&url, kind).await.unwrap();
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<!DOCTYPE html><title>cockpit</title>").unwrap();
    std::fs::write(web.path().join("app.js"), "console.log(1)").unwrap();
    on_catalog(catalog, CatalogKind::Sqlite, data, web).await
}

/// A fixture on a fresh database `name` of a running PostgreSQL server
/// (`server_url`: the migrations' throw-away cluster, `PgCluster::url`).
pub async fn postgres_fixture(server_url: &str, name: &str) -> Fixture {
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(server_url).await.unwrap();
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = format!("{}/{name}", server_url.trim_end_matches("/postgres"));
    let data = tempfile::tempdir().unwrap();
    let catalog = db::open(&url, CatalogKind::Postgres).await.unwrap();
    on_catalog(catalog, CatalogKind::Postgres, data, tempfile::tempdir().unwrap()).await
}

/// The server state on `catalog`, with the `admin` user.
async fn on_catalog(catalog: sea_orm::DatabaseConnection, kind: CatalogKind, data: tempfile::TempDir, web: tempfile::TempDir) -> Fixture {
    sendense::auth::bootstrap::ensure_admin(&catalog, data.path(), Some(ADMIN_PASSWORD)).await.unwrap();
    let (mut state, health_tx) = AppState::new(catalog, kind, data.path().to_path_buf());
    allow_temp_hosts(&mut state);
    Fixture { state, health_tx, web, data }
}

/// The tests make their KVM hosts in temporary directories: a platform
/// root there (besides DATA_DIR/lab).
pub fn allow_temp_hosts(state: &mut AppState) {
    let mut roots = (*state.roots).clone();
    roots.allow_platforms_under(&std::env::temp_dir());
    state.roots = std::sync::Arc::new(roots);
}

impl Fixture {
    pub fn app(&self) -> axum::Router {
        sendense::server::app(self.state.clone(), self.web.path())
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.app().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply { status, body: String::from_utf8_lossy(&body).into_owned(), bytes: body.to_vec(), headers }
    }

    /// A request with an optional bearer token and an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<serde_json::Value>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(json) => req.header("content-type", "application/json").body(Body::from(json.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Reply {
        self.login_raw(serde_json::json!({"username": username, "password": password})).await
    }

    pub async fn login_raw(&self, body: serde_json::Value) -> Reply {
        self.call("POST", "/api/v1/auth/login", None, Some(body)).await
    }

    pub async fn admin_token(&self) -> String {
        let reply = self.login("admin", ADMIN_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.json::<LoginResponse>().token
    }

    /// Creates a user with `role` and signs them in; returns (user, token).
    pub async fn user_with_role(&self, username: &str, role: Role) -> (User, String) {
        let admin = self.admin_token().await;
        let password = format!("{username}-password");
        let reply = self
            .call(
                "POST",
                "/api/v1/users",
                Some(&admin),
                Some(serde_json::json!({"username": username, "password": password, "role": role})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let user: User = reply.json();
        let login = self.login(username, &password).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        (user, login.json::<LoginResponse>().token)
    }
}
