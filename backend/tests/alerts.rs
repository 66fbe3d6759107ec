//! The alert center and its notifications, end to end through the API and
//! the runner's own alert calls: a backup flow's failure raised, folded
//! (count 2), acknowledged (by whom), resolved by the flow's next good run
//! and reopened by a later failure; routing by severity; filters; roles.
//! Notifications go to a webhook receiver and a real SMTP server
//! (aiosmtpd: STARTTLS required, AUTH required) the test starts on
//! loopback: the webhook's HMAC is checked, a refused delivery is retried,
//! an undeliverable one gives up and its failure is shown on its target.
//! The lifecycle runs on SQLite and on PostgreSQL.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use hmac::{Hmac, Mac};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sendense::db::entities::{jobs, notification_deliveries};
use sendense::runner::telemetry;
use serde_json::{json, Value};
use sha2::Sha256;
use shared_types::alerts::{AlertCount, AlertPage, AlertRecord, AlertSeverity, AlertState, NotificationTarget, TestResult, WebhookPayload};
use shared_types::auth::Role;
use tokio::io::{AsyncBufReadExt, BufReader};

mod support;

// The migrations' throw-away PostgreSQL server, shared rather than copied.
#[path = "../../migrations/tests/support/mod.rs"]
mod pg;

const WEBHOOK_SECRET: &str = "webhook-secret-for-tests-0123456789";
const SMTP_USER: &str = "sendense";
const SMTP_PASSWORD: &str = "smtp-password-for-tests";

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
struct Hook {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A webhook receiver on loopback: records every request; answers 500 to
/// the first `fail_next` of them, 204 to the rest.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Hook>>>,
    fail_next: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn webhook_receiver() -> Receiver {
    let got: Arc<Mutex<Vec<Hook>>> = Arc::default();
    let fail_next = Arc::new(AtomicUsize::new(0));
    let (g, f) = (got.clone(), fail_next.clone());
    let app = axum::Router::new().route(
        "/hooks/sendense",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (g, f) = (g.clone(), f.clone());
            async move {
                g.lock().unwrap().push(Hook { headers, body: body.to_vec() });
                if f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                    (StatusCode::INTERNAL_SERVER_ERROR, "receiver is down for the test")
                } else {
                    (StatusCode::NO_CONTENT, "")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/sendense", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver { url, got, fail_next, task }
}

/// The hook's body, after checking its signature like a receiver would.
fn verified(h: &Hook) -> WebhookPayload {
    let sig = h.headers.get("x-sendense-signature").expect("signature header").to_str().unwrap();
    let hex_mac = sig.strip_prefix("sha256=").expect("sha256= prefix");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(&h.body);
    mac.verify_slice(&hex::decode(hex_mac).expect("hex signature")).expect("the HMAC of the body with the shared secret");
    let payload: WebhookPayload = serde_json::from_slice(&h.body).expect("JSON payload");
    assert_eq!(h.headers.get("x-sendense-event").unwrap().to_str().unwrap(), payload.event);
    assert_eq!(h.headers.get("x-sendense-delivery").unwrap().to_str().unwrap(), payload.delivery_id);
    payload
}

/// One mail the SMTP server accepted.
#[derive(Debug, Clone, serde::Deserialize)]
struct Received {
    from: String,
    to: Vec<String>,
    data: String,
    tls: bool,
    user: Option<String>,
}

/// aiosmtpd on loopback with STARTTLS (a certificate from a CA made here)
/// and AUTH, both required. Killed when dropped; it also exits when its
/// standard input closes, so a test killed outright leaves nothing behind.
struct SmtpServer {
    port: u16,
    ca_pem: String,
    mails: Arc<Mutex<VecDeque<Received>>>,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn python() -> String {
    std::env::var("SENDENSE_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

async fn smtp_server() -> SmtpServer {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Sendense test mail CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
    let mut child = tokio::process::Command::new(python())
        .arg(script)
        .arg(port.to_string())
        .arg(dir.path().join("cert.pem"))
        .arg(dir.path().join("key.pem"))
        .args([SMTP_USER, SMTP_PASSWORD])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {} (install python3-aiosmtpd: scripts/test.sh does): {e}", python()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
    match ready {
        Ok(Ok(Some(l))) if l == "READY" => {}
        other => panic!("the SMTP server did not start (is python3-aiosmtpd installed?): {other:?}"),
    }
    let mails: Arc<Mutex<VecDeque<Received>>> = Arc::default();
    let m = mails.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            m.lock().unwrap().push_back(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    });
    SmtpServer { port, ca_pem: ca.pem(), mails, child, _dir: dir }
}

impl SmtpServer {
    async fn next_mail(&self) -> Received {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(m) = self.mails.lock().unwrap().pop_front() {
                return m;
            }
            assert!(Instant::now() < until, "no mail arrived within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "waited 30 s for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A backup job of a flow, as the runner would have it when it ends.
fn backup_job(flow: &str, vm: &str, status: &str) -> jobs::Model {
    let now = Utc::now();
    jobs::Model {
        id: uuid_like(),
        flow_id: Some(flow.into()),
        vm_context_id: Some(vm.into()),
        repository_id: Some("repo-1".into()),
        kind: "backup".into(),
        backup_type: Some("incremental".into()),
        status: status.into(),
        priority: 0,
        bytes_total: 0,
        bytes_read: 0,
        bytes_written: 0,
        error: None,
        requested_by: Some("schedule".into()),
        created_at: now,
        started_at: Some(now),
        finished_at: Some(now),
        updated_at: now,
        backup_id: None,
        target_platform_id: None,
        options: None,
        replication_id: None,
        operation: None,
    }
}

fn uuid_like() -> String {
    sendense::catalog::new_id()
}

/// Hooks received so far with this event.
fn hooks(r: &Receiver, event: &str) -> Vec<WebhookPayload> {
    r.got.lock().unwrap().iter().map(verified).filter(|p| p.event == event).collect()
}

async fn deliveries_of(f: &support::Fixture, target: &str) -> Vec<notification_deliveries::Model> {
    notification_deliveries::Entity::find()
        .filter(notification_deliveries::Column::TargetId.eq(target))
        .all(&f.state.db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_raised_folded_acknowledged_resolved_and_notified_by_webhook_and_smtp() {
    lifecycle_on(support::fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_lifecycle_works_on_postgresql() {
    let cluster = pg::PgCluster::start().expect("start PostgreSQL for the test");
    lifecycle_on(support::postgres_fixture(&cluster.url(), "alerts").await).await;
}


/// Raise, fold, acknowledge, resolve, reopen, route and notify, on `f`'s catalog.
async fn lifecycle_on(f: support::Fixture) {
    f.state.alerts.set_retry_delays(vec![Duration::from_millis(300); 2]);
    let admin = f.admin_token().await;
    let (_, operator) = f.user_with_role("olga", Role::Operator).await;
    let (_, viewer) = f.user_with_role("victor", Role::Viewer).await;
    let hook = webhook_receiver().await;
    let smtp = smtp_server().await;
    let call = |token: &str, method: &str, path: &str, body: Option<Value>| {
        let token = token.to_owned();
        let (method, path) = (method.to_owned(), path.to_owned());
        let f = &f;
        async move { f.call(&method, &path, Some(&token), body).await }
    };

    // Targets: a webhook for warnings and worse, a mailbox for critical only.
    let reply = call(&admin, "POST", "/api/v1/notification-targets", Some(json!({
        "name": "ops webhook", "kind": "webhook", "min_severity": "warning",
        "webhook": {"url": hook.url}, "secret": WEBHOOK_SECRET,
    })))
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(!reply.body.contains(WEBHOOK_SECRET), "the secret is never shown: {}", reply.body);
    let webhook: NotificationTarget = reply.json();
    assert!(webhook.has_secret);
    let reply = call(&admin, "POST", "/api/v1/notification-targets", Some(json!({
        "name": "on-call mail", "kind": "smtp", "min_severity": "critical",
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "starttls", "username": SMTP_USER,
                 "from": "sendense@example.com", "to": ["oncall@example.com", "backup-team@example.com"], "ca_pem": smtp.ca_pem},
        "secret": SMTP_PASSWORD,
    })))
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(!reply.body.contains(SMTP_PASSWORD));
    let mail: NotificationTarget = reply.json();
    // The catalog holds the secrets sealed, not in clear.
    let stored = sendense::db::entities::notification_targets::Entity::find().all(&f.state.db).await.unwrap();
    assert!(stored.iter().all(|t| t.secret.as_deref().is_some_and(|s| !s.contains(WEBHOOK_SECRET) && !s.contains(SMTP_PASSWORD))));

    // Bad input gets a message a person can act on; operators cannot add targets.
    let reply = call(&admin, "POST", "/api/v1/notification-targets", Some(json!({
        "name": "no secret", "kind": "webhook", "min_severity": "info", "webhook": {"url": hook.url},
    })))
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    assert!(reply.body.contains("signing secret"), "{}", reply.body);
    let reply = call(&admin, "POST", "/api/v1/notification-targets", Some(json!({
        "name": "ops webhook", "kind": "webhook", "min_severity": "info", "webhook": {"url": hook.url}, "secret": WEBHOOK_SECRET,
    })))
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let reply = call(&operator, "POST", &format!("/api/v1/notification-targets/{}/test", webhook.id), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);

    // "Send test": the receiver is down for the first one, which fails and says why.
    hook.fail_next.store(1, Ordering::SeqCst);
    let reply = call(&admin, "POST", &format!("/api/v1/notification-targets/{}/test", webhook.id), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let t: TestResult = reply.json();
    assert!(!t.delivered && t.error.as_deref().is_some_and(|e| e.contains("500")), "{t:?}");
    let shown: NotificationTarget = call(&viewer, "GET", &format!("/api/v1/notification-targets/{}", webhook.id), None).await.json();
    let last = shown.last_delivery.expect("the failed test is shown");
    assert!(!last.ok && last.error.as_deref().is_some_and(|e| e.contains("500")) && last.event == "test", "{last:?}");
    let t: TestResult = call(&admin, "POST", &format!("/api/v1/notification-targets/{}/test", webhook.id), None).await.json();
    assert!(t.delivered, "{t:?}");
    assert_eq!(hooks(&hook, "test").len(), 2, "both test requests carried a valid signature");
    let t: TestResult = call(&admin, "POST", &format!("/api/v1/notification-targets/{}/test", mail.id), None).await.json();
    assert!(t.delivered, "{t:?}");
    let m = smtp.next_mail().await;
    assert!(m.tls, "the mail went over STARTTLS");
    assert_eq!(m.user.as_deref(), Some(SMTP_USER));
    assert_eq!(m.from, "sendense@example.com");
    assert_eq!(m.to, vec!["oncall@example.com", "backup-team@example.com"]);
    assert!(m.data.contains("Subject: [Sendense] Test notification"), "{}", m.data);

    // A flow's backup of a VM fails: raised, critical, about the flow.
    let runner = &f.state.runner;
    let failed = backup_job("flow-nightly", "vm-web-1", "failed");
    hook.fail_next.store(1, Ordering::SeqCst); // the first delivery is refused, then retried
    telemetry::alert(runner, &failed, "web-1", "reading disk vda: connection reset").await;
    let count: AlertCount = call(&viewer, "GET", "/api/v1/alerts/count", None).await.json();
    assert_eq!(count, AlertCount { unacknowledged: 1, critical: 1 });
    let page: AlertPage = call(&viewer, "GET", "/api/v1/alerts?state=open", None).await.json();
    assert_eq!(page.total, 1);
    let a = page.alerts[0].clone();
    assert_eq!((a.severity, a.state, a.count), (AlertSeverity::Critical, AlertState::Open, 1));
    assert_eq!((a.source_kind.as_str(), a.source_id.as_deref()), ("flow", Some("flow-nightly")));
    assert_eq!(a.title, "Backup of web-1 failed");
    assert_eq!(a.job_id.as_deref(), Some(failed.id.as_str()));

    // Both targets hear of it; the webhook's refused first attempt is retried.
    let raised = until("the raised alert at the webhook", async || hooks(&hook, "alert.raised").into_iter().next()).await;
    assert_eq!(raised.alert.as_ref().map(|x| x.id.as_str()), Some(a.id.as_str()));
    let refused_then_delivered = until("the webhook delivery's retry", async || {
        let d = deliveries_of(&f, &webhook.id).await;
        d.into_iter().find(|d| d.state == "delivered" && d.attempts == 2)
    })
    .await;
    assert_eq!(refused_then_delivered.alert_id.as_deref(), Some(a.id.as_str()));
    let m = smtp.next_mail().await;
    assert!(m.data.contains("Subject: [Sendense] CRITICAL: Backup of web-1 failed"), "{}", m.data);
    assert!(m.data.contains("reading disk vda: connection reset"), "{}", m.data);

    // The same failure again folds into it: count 2, one alert, nobody notified twice.
    let again = backup_job("flow-nightly", "vm-web-1", "failed");
    telemetry::alert(runner, &again, "web-1", "reading disk vda: timed out").await;
    let page: AlertPage = call(&viewer, "GET", "/api/v1/alerts", None).await.json();
    assert_eq!(page.total, 1);
    let a2 = &page.alerts[0];
    assert_eq!((a2.id.as_str(), a2.count, a2.state), (a.id.as_str(), 2, AlertState::Open));
    assert_eq!(a2.message, "reading disk vda: timed out");
    assert_eq!(a2.first_seen, a.first_seen);
    assert!(a2.last_seen > a.last_seen);
    assert_eq!(deliveries_of(&f, &webhook.id).await.iter().filter(|d| d.event == "alert.raised").count(), 1);
    assert_eq!(deliveries_of(&f, &mail.id).await.iter().filter(|d| d.event == "alert.raised").count(), 1);

    // Acknowledged by whom; a viewer may not; an unknown id is a 404.
    let reply = call(&viewer, "POST", &format!("/api/v1/alerts/{}/acknowledge", a.id), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let reply = call(&operator, "POST", "/api/v1/alerts/no-such-alert/acknowledge", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    let reply = call(&operator, "POST", &format!("/api/v1/alerts/{}/acknowledge", a.id), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let acked: AlertRecord = reply.json();
    assert_eq!((acked.state, acked.acknowledged_by.as_deref()), (AlertState::Acknowledged, Some("olga")));
    assert!(acked.acknowledged_at.is_some());
    let count: AlertCount = call(&viewer, "GET", "/api/v1/alerts/count", None).await.json();
    assert_eq!(count.unacknowledged, 0);

    // A warning (a skipped schedule) goes to the webhook only (the mailbox takes critical).
    telemetry::schedule_alert(runner, "flow-weekly", "weekly", "repository 'local' is in maintenance").await;
    let warning = until("the warning at the webhook", async || {
        hooks(&hook, "alert.raised").into_iter().find(|p| p.alert.as_ref().is_some_and(|x| x.severity == AlertSeverity::Warning))
    })
    .await;
    assert_eq!(warning.alert.unwrap().title, "Scheduled run of flow weekly skipped");
    assert_eq!(deliveries_of(&f, &mail.id).await.len(), 1, "no mail queued for a warning");
    let page: AlertPage = call(&viewer, "GET", "/api/v1/alerts?severity=warning", None).await.json();
    assert_eq!((page.total, page.alerts[0].source_id.as_deref()), (1, Some("flow-weekly")));
    let page: AlertPage = call(&viewer, "GET", "/api/v1/alerts?source_kind=flow&source_id=flow-nightly", None).await.json();
    assert_eq!(page.total, 1);
    let reply = call(&viewer, "GET", "/api/v1/alerts?state=sleeping", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    // The flow's next good run of that VM resolves its failure alert.
    let good = backup_job("flow-nightly", "vm-web-1", "completed");
    telemetry::job_succeeded(runner, &good).await;
    let resolved: AlertRecord = call(&viewer, "GET", &format!("/api/v1/alerts/{}", a.id), None).await.json();
    assert_eq!(resolved.state, AlertState::Resolved);
    assert!(resolved.resolution.as_deref().is_some_and(|r| r.contains(&good.id)), "{resolved:?}");
    assert_eq!(resolved.acknowledged_by.as_deref(), Some("olga"), "who acknowledged it stays in the history");
    let page: AlertPage = call(&viewer, "GET", "/api/v1/alerts?state=resolved", None).await.json();
    assert_eq!(page.total, 1);
    let r = until("the resolution at the webhook", async || hooks(&hook, "alert.resolved").into_iter().next()).await;
    assert_eq!(r.alert.unwrap().state, AlertState::Resolved);
    let m = smtp.next_mail().await;
    assert!(m.data.contains("Subject: [Sendense] Resolved: Backup of web-1 failed"), "{}", m.data);

    // It fails again later: the same alert reopens, unacknowledged, count 3.
    telemetry::alert(runner, &backup_job("flow-nightly", "vm-web-1", "failed"), "web-1", "snapshot refused").await;
    let reopened: AlertRecord = call(&viewer, "GET", &format!("/api/v1/alerts/{}", a.id), None).await.json();
    assert_eq!((reopened.state, reopened.count, reopened.acknowledged_by.clone()), (AlertState::Open, 3, None));
    assert!(reopened.resolved_at.is_none());
    let m = smtp.next_mail().await;
    assert!(m.data.contains("snapshot refused"), "{}", m.data);
    // Another VM of the same flow failing is its own alert.
    telemetry::alert(runner, &backup_job("flow-nightly", "vm-db-1", "failed"), "db-1", "disk full").await;
    let count: AlertCount = call(&viewer, "GET", "/api/v1/alerts/count", None).await.json();
    assert_eq!(count, AlertCount { unacknowledged: 3, critical: 2 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeliverable_notification_is_retried_then_shown_as_failed() {
    let f = support::fixture().await;
    f.state.alerts.set_retry_delays(vec![Duration::from_millis(200); 2]);
    let admin = f.admin_token().await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let reply = f
        .call("POST", "/api/v1/notification-targets", Some(&admin), Some(json!({
            "name": "gone", "kind": "webhook", "min_severity": "info",
            "webhook": {"url": format!("http://127.0.0.1:{port}/hook")}, "secret": WEBHOOK_SECRET,
        })))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let target: NotificationTarget = reply.json();
    telemetry::alert(&f.state.runner, &backup_job("flow-a", "vm-a", "failed"), "a", "boom").await;
    let d = until("the delivery to give up", async || {
        deliveries_of(&f, &target.id).await.into_iter().find(|d| d.state == "failed")
    })
    .await;
    assert_eq!(d.attempts, 3, "the first attempt and two retries");
    assert!(d.last_error.as_deref().is_some_and(|e| e.contains("cannot connect")), "{d:?}");
    let shown: NotificationTarget = f.call("GET", &format!("/api/v1/notification-targets/{}", target.id), Some(&admin), None).await.json();
    assert_eq!((shown.failed, shown.pending), (1, 0));
    let last = shown.last_delivery.expect("the failure is shown");
    assert!(!last.ok && last.error.as_deref().is_some_and(|e| e.contains("cannot connect")), "{last:?}");
    // Removing the target removes its queue.
    let reply = f.call("DELETE", &format!("/api/v1/notification-targets/{}", target.id), Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert!(deliveries_of(&f, &target.id).await.is_empty());
}

/// Editing a target (PUT): its name, what it receives and where it sends
/// change; a secret left out keeps the stored one (the next test is signed
/// with it), `""` removes it (refused for a webhook); the kind cannot
/// change; a taken name, an unknown id and a short secret are refused;
/// operators cannot edit; the edit is in the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_is_edited_and_keeps_its_secret_when_none_is_given() {
    let f = support::fixture().await;
    let admin = f.admin_token().await;
    let (_, operator) = f.user_with_role("olga", Role::Operator).await;
    let (old_hook, new_hook) = (webhook_receiver().await, webhook_receiver().await);
    let create = |name: &str, url: &str| json!({
        "name": name, "kind": "webhook", "min_severity": "warning", "webhook": {"url": url}, "secret": WEBHOOK_SECRET,
    });
    let reply = f.call("POST", "/api/v1/notification-targets", Some(&admin), Some(create("ops webhook", &old_hook.url))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let target: NotificationTarget = reply.json();
    let reply = f.call("POST", "/api/v1/notification-targets", Some(&admin), Some(create("other", &old_hook.url))).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let path = format!("/api/v1/notification-targets/{}", target.id);
    let edit = |name: &str, url: &str| json!({
        "name": name, "kind": "webhook", "enabled": true, "min_severity": "critical", "webhook": {"url": url},
    });

    let reply = f.call("PUT", &path, Some(&admin), Some(edit("ops pager", &new_hook.url))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let edited: NotificationTarget = reply.json();
    assert_eq!((edited.id.as_str(), edited.name.as_str(), edited.min_severity), (target.id.as_str(), "ops pager", AlertSeverity::Critical));
    assert_eq!(edited.webhook.as_ref().map(|w| w.url.as_str()), Some(new_hook.url.as_str()));
    assert!(edited.has_secret, "the stored secret is kept");
    let shown: NotificationTarget = f.call("GET", &path, Some(&admin), None).await.json();
    assert_eq!(shown, edited, "read back as saved");
    // The next test goes to the new URL, signed with the kept secret.
    let t: TestResult = f.call("POST", &format!("{path}/test"), Some(&admin), None).await.json();
    assert!(t.delivered, "{t:?}");
    assert_eq!(hooks(&new_hook, "test").len(), 1, "signed with the secret given at creation");
    assert!(old_hook.got.lock().unwrap().is_empty(), "nothing to the old URL");
    let before: NotificationTarget = f.call("GET", &path, Some(&admin), None).await.json();

    // Refused: the kind, a taken name, an unknown id, a short or removed secret, an operator.
    let mut smtp = edit("ops pager", &new_hook.url);
    smtp["kind"] = json!("smtp");
    let reply = f.call("PUT", &path, Some(&admin), Some(smtp)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    assert!(reply.body.contains("cannot change"), "{}", reply.body);
    let reply = f.call("PUT", &path, Some(&admin), Some(edit("other", &new_hook.url))).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let reply = f.call("PUT", "/api/v1/notification-targets/no-such-target", Some(&admin), Some(edit("x", &new_hook.url))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    for (secret, says) in [("short", "16"), ("", "signing secret")] {
        let mut b = edit("ops pager", &new_hook.url);
        b["secret"] = json!(secret);
        let reply = f.call("PUT", &path, Some(&admin), Some(b)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{secret:?}: {}", reply.body);
        assert!(reply.body.contains(says), "{}", reply.body);
    }
    let reply = f.call("PUT", &path, Some(&operator), Some(edit("by operator", &new_hook.url))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let shown: NotificationTarget = f.call("GET", &path, Some(&admin), None).await.json();
    assert_eq!(shown, before, "nothing refused was saved");

    // A new secret replaces the old one: the receiver's check with the old one fails.
    let mut b = edit("ops pager", &new_hook.url);
    b["secret"] = json!("a-brand-new-secret-0123456789");
    let reply = f.call("PUT", &path, Some(&admin), Some(b)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(!reply.body.contains("a-brand-new-secret"), "{}", reply.body);
    let t: TestResult = f.call("POST", &format!("{path}/test"), Some(&admin), None).await.json();
    assert!(t.delivered, "{t:?}");
    let last = new_hook.got.lock().unwrap().last().cloned().expect("a second test");
    let sig = last.headers.get("x-sendense-signature").unwrap().to_str().unwrap().trim_start_matches("sha256=").to_owned();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"a-brand-new-secret-0123456789").unwrap();
    mac.update(&last.body);
    mac.verify_slice(&hex::decode(sig).unwrap()).expect("signed with the new secret");

    let audit: shared_types::audit::AuditPage = f.call("GET", "/api/v1/audit?limit=50", Some(&admin), None).await.json();
    let updates: Vec<&str> = audit.entries.iter().filter(|e| e.action == "notification_target.update").map(|e| e.target.as_str()).collect();
    assert_eq!(updates, vec!["ops pager (webhook)", "ops pager (webhook)"], "{updates:?}");
}

/// A real job through the runner: the local repository's verify fails
/// while its key file is away (raised, critical, about the repository;
/// again: folded), and the next verify with the key back resolves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_repository_verify_raises_an_alert_that_the_next_good_verify_resolves() {
    let f = support::fixture().await;
    let repo = sendense::catalog::repositories::ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let key = sendense::catalog::repository_keys::key_path(f.data.path(), &repo.id).unwrap();
    let aside = f.data.path().join("key-aside");
    let api = support::api::Api::admin(f).await;
    let verify = async || {
        let job: Value = api.ok("POST", &format!("/api/v1/repositories/{}/verify", repo.id), None, StatusCode::ACCEPTED).await;
        let id = job["id"].as_str().unwrap().to_string();
        let done = api.wait(&id, 60).await;
        (id, done["job"]["status"].as_str().unwrap_or_default().to_string())
    };
    let mine = format!("/api/v1/alerts?source_kind=repository&source_id={}", repo.id);

    std::fs::rename(&key, &aside).unwrap();
    let (first, status) = verify().await;
    assert_eq!(status, "failed");
    let page: AlertPage = api.ok("GET", &mine, None, StatusCode::OK).await;
    assert_eq!(page.total, 1, "{page:?}");
    let a = &page.alerts[0];
    assert_eq!((a.severity, a.state, a.count), (AlertSeverity::Critical, AlertState::Open, 1));
    assert_eq!(a.title, "verify of repository local failed");
    assert_eq!(a.job_id.as_deref(), Some(first.as_str()));
    let (second, status) = verify().await;
    assert_eq!(status, "failed");
    let page: AlertPage = api.ok("GET", &mine, None, StatusCode::OK).await;
    assert_eq!((page.total, page.alerts[0].count), (1, 2));
    assert_eq!(page.alerts[0].job_id.as_deref(), Some(second.as_str()));

    std::fs::rename(&aside, &key).unwrap();
    let (good, status) = verify().await;
    assert_eq!(status, "completed");
    let page: AlertPage = api.ok("GET", &mine, None, StatusCode::OK).await;
    let a = &page.alerts[0];
    assert_eq!(a.state, AlertState::Resolved);
    assert!(a.resolution.as_deref().is_some_and(|r| r.contains(&good)), "{a:?}");
    let count: AlertCount = api.ok("GET", "/api/v1/alerts/count", None, StatusCode::OK).await;
    assert_eq!(count.unacknowledged, 0);
}

/// The daily catalog pruning removes notification deliveries that ended
/// longer ago than the job-history retention; pending ones and alerts stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_finished_deliveries_are_pruned_pending_ones_stay() {
    use sea_orm::{ActiveModelTrait, PaginatorTrait, Set};
    let f = support::fixture().await;
    let db = &f.state.db;
    let now = Utc::now();
    let target = sendense::db::entities::notification_targets::ActiveModel {
        id: Set("t1".into()),
        name: Set("hook".into()),
        kind: Set("webhook".into()),
        enabled: Set(false),
        min_severity: Set("info".into()),
        config: Set(r#"{"webhook":{"url":"http://127.0.0.1:9/"}}"#.into()),
        secret: Set(None),
        last_at: Set(None),
        last_ok: Set(None),
        last_error: Set(None),
        last_event: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    target.insert(db).await.unwrap();
    for (id, state, age_days) in [("old-done", "delivered", 100), ("old-failed", "failed", 100), ("old-pending", "pending", 100), ("new-done", "delivered", 1)] {
        let at = now - chrono::Duration::days(age_days);
        notification_deliveries::ActiveModel {
            id: Set(id.into()),
            target_id: Set("t1".into()),
            alert_id: Set(None),
            event: Set("test".into()),
            payload: Set("{}".into()),
            state: Set(state.into()),
            attempts: Set(1),
            next_attempt_at: Set(at + chrono::Duration::days(1000)),
            last_error: Set(None),
            created_at: Set(at),
            delivered_at: Set(None),
        }
        .insert(db)
        .await
        .unwrap();
    }
    let pruned = sendense::catalog::housekeeping::prune(db, Default::default(), now).await.unwrap();
    assert_eq!(pruned.notifications, 2);
    let mut left: Vec<String> = notification_deliveries::Entity::find().all(db).await.unwrap().into_iter().map(|d| d.id).collect();
    left.sort();
    assert_eq!(left, vec!["new-done".to_string(), "old-pending".to_string()]);
    assert_eq!(sendense::db::entities::notification_targets::Entity::find().count(db).await.unwrap(), 1);
}
