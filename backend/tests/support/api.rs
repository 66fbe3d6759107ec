//! An admin's view of the API for the lab tests: requests with its token,
//! expected answers, waiting for jobs, and putting a lab VM under
//! protection with a first backup.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};
use shared_types::backups::{Backup, BackupPage};
use shared_types::discovery::{BulkAddResponse, DiscoverVmsResponse, Platform};
use shared_types::error::ErrorBody;
use shared_types::jobs::QueuedJobs;

use super::{Fixture, Reply};

pub struct Api {
    pub f: Fixture,
    pub token: String,
}

impl Api {
    /// Signs the fixture's admin in.
    pub async fn admin(f: Fixture) -> Api {
        let token = f.admin_token().await;
        Api { f, token }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.f.call(method, path, Some(&self.token), body).await
    }

    /// A request that must answer `status`; its body as `T`.
    pub async fn ok<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: Option<Value>, status: StatusCode) -> T {
        let reply = self.call(method, path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        reply.json()
    }

    /// A request that must be refused with `status` and `code`; the error.
    pub async fn rejected(&self, method: &str, path: &str, body: Option<Value>, status: StatusCode, code: &str) -> ErrorBody {
        let shown = body.as_ref().map(Value::to_string).unwrap_or_default();
        let reply = self.call(method, path, body).await;
        assert_eq!(reply.status, status, "{method} {path} {shown}: {}", reply.body);
        let e: ErrorBody = reply.json();
        assert_eq!(e.code, code, "{method} {path} {shown}: {}", reply.body);
        e
    }

    /// A GET that must fail with `status` and `code`; its message.
    pub async fn error(&self, path: &str, status: StatusCode, code: &str) -> String {
        self.rejected("GET", path, None, status, code).await.message
    }

    /// A POST that must be refused with `status` and `code`; its message.
    pub async fn refused(&self, path: &str, body: Value, status: StatusCode, code: &str) -> String {
        self.rejected("POST", path, Some(body), status, code).await.message
    }

    /// Waits up to `secs` for a job to end; the job with its log.
    pub async fn wait(&self, job: &str, secs: u64) -> Value {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let j: Value = self.ok("GET", &format!("/api/v1/jobs/{job}"), None, StatusCode::OK).await;
            match j["job"]["status"].as_str() {
                Some("completed" | "failed" | "cancelled") => return j,
                _ if Instant::now() > until => panic!("job {job} did not finish in {secs} s: {}", j["job"]),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Adds the test's libvirt host as a platform, by its URI.
    pub async fn add_host(&self, host: &super::kvm::TestHost) -> Platform {
        self.ok("POST", "/api/v1/platforms", Some(json!({"kind": "kvm", "address": host.uri()})), StatusCode::CREATED).await
    }

    /// Discovers `platform` and manages its VMs named `names`; their
    /// managed-VM ids, in the same order.
    pub async fn manage(&self, platform: &Platform, names: &[&str]) -> Vec<String> {
        let found: DiscoverVmsResponse = self.ok("POST", "/api/v1/discovery/discover-vms", Some(json!({"platform_id": platform.id})), StatusCode::OK).await;
        let ids: Vec<String> = names
            .iter()
            .map(|n| found.vms.iter().find(|v| v.vm.name == *n).unwrap_or_else(|| panic!("{n} on {}", platform.name)).vm.id.clone())
            .collect();
        let added: BulkAddResponse = self.ok("POST", "/api/v1/discovery/bulk-add", Some(json!({"platform_id": platform.id, "vm_ids": ids})), StatusCode::OK).await;
        names.iter().map(|n| added.added.iter().find(|a| a.name == *n).unwrap_or_else(|| panic!("{n} managed")).id.clone()).collect()
    }

    /// Backs up the managed VM `vm` (`full` or `incremental`) through the
    /// job runner; the new restore point's id.
    pub async fn back_up(&self, vm: &str, backup_type: &str) -> String {
        let queued: QueuedJobs = self.ok("POST", "/api/v1/backup/start", Some(json!({"vm_ids": [vm], "backup_type": backup_type})), StatusCode::ACCEPTED).await;
        let j = self.wait(&queued.jobs[0].id, 120).await;
        assert_eq!(j["job"]["status"], "completed", "{}", j["job"]);
        let newest = self.points(vm).await.into_iter().max_by_key(|b| b.created_at).expect("a restore point");
        newest.id
    }

    /// Queues a backup of `vm` (`full` or `incremental`) into `repository`;
    /// the job's id.
    pub async fn start_backup(&self, vm: &str, backup_type: &str, repository: &str) -> String {
        let body = json!({"vm_ids": [vm], "backup_type": backup_type, "repository_id": repository});
        let queued: QueuedJobs = self.ok("POST", "/api/v1/backup/start", Some(body), StatusCode::ACCEPTED).await;
        queued.jobs[0].id.clone()
    }

    /// A backup of `vm` into `repository`, waited for up to `secs`, however
    /// it ends; the ended job with its log.
    pub async fn backup_into(&self, vm: &str, backup_type: &str, repository: &str, secs: u64) -> Value {
        let job = self.start_backup(vm, backup_type, repository).await;
        self.wait(&job, secs).await
    }

    /// The restore points of `vm`, newest first.
    pub async fn points(&self, vm: &str) -> Vec<Backup> {
        let page: BackupPage = self.ok("GET", &format!("/api/v1/backup/list?vm={vm}"), None, StatusCode::OK).await;
        page.items
    }
}
