//! Typed calls to the Sendense REST API, with the shared types. Requests
//! carry the HttpOnly session cookie; a 401 means the session has ended.

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared_types::audit::AuditPage;
use shared_types::auth::{CreateUserRequest, LoginRequest, LoginResponse, Me, SetPasswordRequest, UpdateUserRequest, User};
use shared_types::error::{ErrorBody, FieldError};
use shared_types::health::HealthResponse;

/// A failed call: the server's error body, or a transport problem.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status; 0 when the server could not be reached.
    pub status: u16,
    pub message: String,
    /// The fields the server named (`mappings[2].target_network`), if any.
    pub details: Vec<FieldError>,
}

impl ApiError {
    pub fn unauthorized(&self) -> bool {
        self.status == 401
    }

    /// A problem that names no field.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), details: Vec::new() }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn transport(e: gloo_net::Error) -> ApiError {
    ApiError::new(0, format!("The server could not be reached: {e}"))
}

async fn check(resp: Response) -> Result<Response, ApiError> {
    if resp.ok() {
        return Ok(resp);
    }
    let status = resp.status();
    let (message, details) = match resp.json::<ErrorBody>().await {
        Ok(body) => (body.message, body.details),
        Err(_) => (format!("The server answered HTTP {status}."), Vec::new()),
    };
    Err(ApiError { status, message, details })
}

async fn json<T: DeserializeOwned>(req: RequestBuilder) -> Result<T, ApiError> {
    let resp = check(req.send().await.map_err(transport)?).await?;
    resp.json::<T>().await.map_err(transport)
}

async fn json_with<B: Serialize, T: DeserializeOwned>(req: RequestBuilder, body: &B) -> Result<T, ApiError> {
    let resp = check(req.json(body).map_err(transport)?.send().await.map_err(transport)?).await?;
    resp.json::<T>().await.map_err(transport)
}

async fn unit(req: Request) -> Result<(), ApiError> {
    check(req.send().await.map_err(transport)?).await.map(|_| ())
}

/// `GET /api/v1/health`. A 503 (catalog down) still carries a health body.
pub async fn health() -> Result<HealthResponse, String> {
    let resp = Request::get("/api/v1/health").send().await.map_err(|e| e.to_string())?;
    resp.json::<HealthResponse>().await.map_err(|e| e.to_string())
}

pub async fn login(username: String, password: String) -> Result<LoginResponse, ApiError> {
    json_with(Request::post("/api/v1/auth/login"), &LoginRequest { username, password }).await
}

pub async fn logout() -> Result<(), ApiError> {
    unit(Request::post("/api/v1/auth/logout").build().map_err(transport)?).await
}

pub async fn me() -> Result<Me, ApiError> {
    json(Request::get("/api/v1/auth/me")).await
}

pub async fn users() -> Result<Vec<User>, ApiError> {
    json(Request::get("/api/v1/users")).await
}

pub async fn create_user(req: CreateUserRequest) -> Result<User, ApiError> {
    json_with(Request::post("/api/v1/users"), &req).await
}

pub async fn update_user(id: String, req: UpdateUserRequest) -> Result<User, ApiError> {
    json_with(Request::patch(&format!("/api/v1/users/{id}")), &req).await
}

pub async fn set_password(id: String, password: String) -> Result<(), ApiError> {
    let req = Request::post(&format!("/api/v1/users/{id}/password")).json(&SetPasswordRequest { password }).map_err(transport)?;
    unit(req).await
}

pub async fn delete_user(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/users/{id}")).build().map_err(transport)?).await
}

pub async fn audit(limit: u64, offset: u64) -> Result<AuditPage, ApiError> {
    json(Request::get(&format!("/api/v1/audit?limit={limit}&offset={offset}"))).await
}

// ---------- alert center, notification targets ----------

use shared_types::alerts::{AlertCount, AlertPage, AlertRecord, NotificationTarget, TargetRequest, TestResult};

/// `GET /alerts?{query}`: `query` is built from the page's filters (words
/// of the shared enums and ids, encoded).
pub async fn alerts(query: String) -> Result<AlertPage, ApiError> {
    json(Request::get(&format!("/api/v1/alerts?{query}"))).await
}

pub async fn alert_count() -> Result<AlertCount, ApiError> {
    json(Request::get("/api/v1/alerts/count")).await
}

pub async fn acknowledge_alert(id: String) -> Result<AlertRecord, ApiError> {
    json(Request::post(&format!("/api/v1/alerts/{}/acknowledge", enc(&id)))).await
}

pub async fn notification_targets() -> Result<Vec<NotificationTarget>, ApiError> {
    json(Request::get("/api/v1/notification-targets")).await
}

pub async fn create_notification_target(req: TargetRequest) -> Result<NotificationTarget, ApiError> {
    json_with(Request::post("/api/v1/notification-targets"), &req).await
}

pub async fn test_notification_target(id: String) -> Result<TestResult, ApiError> {
    json(Request::post(&format!("/api/v1/notification-targets/{}/test", enc(&id)))).await
}

pub async fn update_notification_target(id: String, req: TargetRequest) -> Result<NotificationTarget, ApiError> {
    json_with(Request::put(&format!("/api/v1/notification-targets/{}", enc(&id))), &req).await
}

pub async fn delete_notification_target(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/notification-targets/{}", enc(&id))).build().map_err(transport)?).await
}

// ---------- platforms, discovery, VMs, groups ----------

use shared_types::discovery::{AddPlatformRequest, BulkAddRequest, BulkAddResponse, DiscoverVmsRequest, DiscoverVmsResponse, Platform};
use shared_types::flow::{ActiveFlows, CreateFlowRequest, Flow, FlowDetails, UpdateFlowRequest};
use shared_types::groups::{CreateGroupRequest, GroupDetails, GroupVmsRequest, ProtectionGroup};
use shared_types::jobs::{Job, JobDetails, JobPage, JobsAffected, QueuedJobs, StartBackupRequest};
use shared_types::overview::Overview;
use shared_types::repositories::{Repository, SetMaintenanceRequest, MaintenanceScheduleRequest};
use shared_types::vms::VmContextPage;

/// Path segments and query values come from the server's own ids; this
/// keeps any other character from changing the URL's meaning.
fn enc(s: &str) -> String {
    js_sys::encode_uri_component(s).into()
}

async fn post_empty<T: DeserializeOwned>(url: &str) -> Result<T, ApiError> {
    json(Request::post(url)).await
}

pub async fn platforms() -> Result<Vec<Platform>, ApiError> {
    json(Request::get("/api/v1/platforms")).await
}

pub async fn test_platform(req: shared_types::discovery::TestPlatformRequest) -> Result<shared_types::discovery::PlatformTest, ApiError> {
    json_with(Request::post("/api/v1/platforms/test"), &req).await
}

pub async fn rediscover_platform(id: String) -> Result<DiscoverVmsResponse, ApiError> {
    post_empty(&format!("/api/v1/platforms/{}/rediscover", enc(&id))).await
}

pub async fn delete_platform(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/platforms/{}", enc(&id))).build().map_err(transport)?).await
}

pub async fn add_platform(req: AddPlatformRequest) -> Result<Platform, ApiError> {
    json_with(Request::post("/api/v1/platforms"), &req).await
}

pub async fn update_platform(id: String, req: shared_types::discovery::UpdatePlatformRequest) -> Result<Platform, ApiError> {
    json_with(Request::patch(&format!("/api/v1/platforms/{}", enc(&id))), &req).await
}

pub async fn discover_vms(platform_id: String) -> Result<DiscoverVmsResponse, ApiError> {
    json_with(Request::post("/api/v1/discovery/discover-vms"), &DiscoverVmsRequest { platform_id }).await
}

pub async fn bulk_add(req: BulkAddRequest) -> Result<BulkAddResponse, ApiError> {
    json_with(Request::post("/api/v1/discovery/bulk-add"), &req).await
}

pub async fn ungrouped_vms() -> Result<VmContextPage, ApiError> {
    json(Request::get("/api/v1/discovery/ungrouped-vms?limit=1000")).await
}

pub async fn vm_contexts() -> Result<VmContextPage, ApiError> {
    json(Request::get("/api/v1/vm-contexts?limit=1000")).await
}

pub async fn groups() -> Result<Vec<ProtectionGroup>, ApiError> {
    json(Request::get("/api/v1/protection-groups")).await
}

pub async fn create_group(req: CreateGroupRequest) -> Result<GroupDetails, ApiError> {
    json_with(Request::post("/api/v1/protection-groups"), &req).await
}

pub async fn add_to_group(group_id: String, vm_ids: Vec<String>) -> Result<GroupDetails, ApiError> {
    json_with(Request::post(&format!("/api/v1/protection-groups/{}/vms", enc(&group_id))), &GroupVmsRequest { vm_ids }).await
}

/// Managed VMs answering `query` (already encoded, e.g. `power=running&limit=1000`).
pub async fn vm_list(query: String) -> Result<VmContextPage, ApiError> {
    json(Request::get(&format!("/api/v1/vm-contexts?{query}"))).await
}

/// Each VM into the group, with its own outcome.
pub async fn bulk_add_to_group(group_id: String, vm_ids: Vec<String>) -> Result<shared_types::bulk::BulkReport, ApiError> {
    json_with(Request::post("/api/v1/vm-contexts/bulk/add-to-group"), &shared_types::bulk::BulkGroupRequest { vm_ids, group_id }).await
}

/// Backup now through each VM's backup flow, with its own outcome.
pub async fn bulk_backup_now(vm_ids: Vec<String>) -> Result<shared_types::bulk::BulkReport, ApiError> {
    json_with(Request::post("/api/v1/vm-contexts/bulk/backup-now"), &shared_types::bulk::BulkVmsRequest { vm_ids }).await
}

// ---------- flows, jobs, repositories ----------

pub async fn flows() -> Result<Vec<Flow>, ApiError> {
    json(Request::get("/api/v1/flows")).await
}

pub async fn create_flow(req: CreateFlowRequest) -> Result<Flow, ApiError> {
    json_with(Request::post("/api/v1/flows"), &req).await
}

pub async fn update_flow(id: String, req: UpdateFlowRequest) -> Result<Flow, ApiError> {
    json_with(Request::patch(&format!("/api/v1/flows/{}", enc(&id))), &req).await
}

pub async fn flow(id: String) -> Result<FlowDetails, ApiError> {
    json(Request::get(&format!("/api/v1/flows/{}", enc(&id)))).await
}

pub async fn flows_active() -> Result<ActiveFlows, ApiError> {
    json(Request::get("/api/v1/flows/active")).await
}

pub async fn flows_history(limit: u64) -> Result<JobPage, ApiError> {
    json(Request::get(&format!("/api/v1/flows/history?limit={limit}"))).await
}

pub async fn run_flow(id: String) -> Result<JobsAffected, ApiError> {
    post_empty(&format!("/api/v1/flows/{}/run", enc(&id))).await
}

/// `enable` or `disable`.
pub async fn set_flow_enabled(id: String, enable: bool) -> Result<Flow, ApiError> {
    let verb = if enable { "enable" } else { "disable" };
    post_empty(&format!("/api/v1/flows/{}/{verb}", enc(&id))).await
}

pub async fn delete_flow(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/flows/{}", enc(&id))).build().map_err(transport)?).await
}

/// `GET /api/v1/vms/{id}/console`: the last `lines` console lines.
pub async fn vm_console(vm_id: &str, lines: u32) -> Result<shared_types::vms::VmConsole, ApiError> {
    json(Request::get(&format!("/api/v1/vms/{vm_id}/console?lines={lines}"))).await
}

/// `POST /api/v1/vms/{id}/power`.
pub async fn vm_power(vm_id: &str, req: shared_types::platform::PowerRequest) -> Result<shared_types::vms::VmDetails, ApiError> {
    json_with(Request::post(&format!("/api/v1/vms/{vm_id}/power")), &req).await
}

pub async fn start_backup(req: StartBackupRequest) -> Result<QueuedJobs, ApiError> {
    json_with(Request::post("/api/v1/backup/start"), &req).await
}

/// `GET /api/v1/jobs` with an already-encoded query (`vm=…&status=…`).
pub async fn jobs(query: String) -> Result<JobPage, ApiError> {
    json(Request::get(&format!("/api/v1/jobs?{query}"))).await
}

/// Newest jobs of one VM.
pub async fn vm_jobs(vm_id: &str, limit: u64) -> Result<JobPage, ApiError> {
    jobs(format!("vm={}&limit={limit}", enc(vm_id))).await
}

pub async fn job(id: String) -> Result<JobDetails, ApiError> {
    json(Request::get(&format!("/api/v1/jobs/{}", enc(&id)))).await
}

/// `pause`, `resume` or `stop` (the job), or `retry` (the new job).
pub async fn job_action(id: String, action: &'static str) -> Result<Job, ApiError> {
    post_empty(&format!("/api/v1/jobs/{}/{action}", enc(&id))).await
}

pub async fn pause_all() -> Result<JobsAffected, ApiError> {
    post_empty("/api/v1/jobs/pause-all").await
}

pub async fn emergency_stop() -> Result<JobsAffected, ApiError> {
    post_empty("/api/v1/jobs/emergency-stop").await
}

pub async fn repositories() -> Result<Vec<Repository>, ApiError> {
    json(Request::get("/api/v1/repositories")).await
}

/// The URL a link downloads a repository's key file from (admins; the
/// session cookie authorises it, the server audits it).
pub fn repository_key_url(id: &str) -> String {
    format!("/api/v1/repositories/{}/key", enc(id))
}

pub async fn set_maintenance(id: String, req: SetMaintenanceRequest) -> Result<Repository, ApiError> {
    json_with(Request::put(&format!("/api/v1/repositories/{}/maintenance", enc(&id))), &req).await
}

/// `verify`, `gc` or `prune` of a repository now (202 with the job).
pub async fn repository_job(id: String, verb: &'static str) -> Result<Job, ApiError> {
    post_empty(&format!("/api/v1/repositories/{}/{verb}", enc(&id))).await
}

pub async fn set_maintenance_schedule(id: String, req: MaintenanceScheduleRequest) -> Result<Repository, ApiError> {
    json_with(Request::patch(&format!("/api/v1/repositories/{}/maintenance-schedule", enc(&id))), &req).await
}

/// Tries a new repository's settings; nothing is saved (admins).
pub async fn test_repository(req: shared_types::repository_setup::CreateRepository) -> Result<shared_types::repository_setup::RepositoryTest, ApiError> {
    json_with(Request::post("/api/v1/repositories/test"), &req).await
}

pub async fn create_repository(req: shared_types::repository_setup::CreateRepository) -> Result<Repository, ApiError> {
    json_with(Request::post("/api/v1/repositories"), &req).await
}

pub async fn update_repository(id: String, req: shared_types::repository_setup::UpdateRepository) -> Result<Repository, ApiError> {
    json_with(Request::patch(&format!("/api/v1/repositories/{}", enc(&id))), &req).await
}

/// Removes a repository from the catalog (its data stays where it is).
pub async fn delete_repository(id: String) -> Result<shared_types::repository_setup::RepositoryRemoved, ApiError> {
    json(Request::delete(&format!("/api/v1/repositories/{}", enc(&id)))).await
}

/// Tests a saved repository (probe written, read, deleted); a pass clears
/// its last storage failure, a failure records it.
pub async fn test_saved_repository(id: String) -> Result<shared_types::repository_setup::RepositoryTest, ApiError> {
    post_empty(&format!("/api/v1/repositories/{}/test", enc(&id))).await
}

pub async fn set_default_repository(id: String) -> Result<Repository, ApiError> {
    post_empty(&format!("/api/v1/repositories/{}/default", enc(&id))).await
}

pub async fn import_repository(id: String) -> Result<shared_types::repository_setup::RepositoryImport, ApiError> {
    post_empty(&format!("/api/v1/repositories/{}/import", enc(&id))).await
}

pub async fn overview() -> Result<Overview, ApiError> {
    json(Request::get("/api/v1/telemetry/overview")).await
}

pub async fn schedules(days: u32) -> Result<shared_types::schedules::ScheduleTimeline, ApiError> {
    json(Request::get(&format!("/api/v1/schedules?days={days}"))).await
}

pub async fn telemetry_history(window: shared_types::telemetry::HistoryWindow) -> Result<shared_types::telemetry::TelemetryHistory, ApiError> {
    json(Request::get(&format!("/api/v1/telemetry/history?window={}", window.key()))).await
}

// ---------- restore points and file-level restore ----------

use shared_types::backups::BackupPage;
use shared_types::restore::{FileListing, FileRestoreRequest, Mount, MountRequest};

/// Newest restore points first (`query` already encoded, e.g. `vm=…&limit=50`).
pub async fn backups(query: String) -> Result<BackupPage, ApiError> {
    json(Request::get(&format!("/api/v1/backup/list?{query}"))).await
}

pub async fn backup(id: String) -> Result<shared_types::backups::Backup, ApiError> {
    json(Request::get(&format!("/api/v1/backup/{}", enc(&id)))).await
}

/// A restore point's chain: what it reads from, itself, what reads from it.
pub async fn point_chain(id: String) -> Result<shared_types::backups::PointChain, ApiError> {
    json(Request::get(&format!("/api/v1/backup/{}/chain", enc(&id)))).await
}

/// Deletes a restore point (refused inside its immutability window).
pub async fn delete_backup(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/backup/{}", enc(&id))).build().map_err(transport)?).await
}

/// Removes one location of a restore point (its copy, or its primary once a
/// copy holds it); the restore point as it now is.
pub async fn delete_location(id: String, repository_id: String) -> Result<shared_types::backups::Backup, ApiError> {
    json(Request::delete(&format!("/api/v1/restore-points/{}/locations/{}", enc(&id), enc(&repository_id)))).await
}

/// Reads the restore point in each repository it is in; the restore point
/// with its locations as found now (present or missing).
pub async fn check_locations(id: String) -> Result<shared_types::backups::Backup, ApiError> {
    post_empty(&format!("/api/v1/restore-points/{}/locations/check", enc(&id))).await
}

/// Copies a restore point to another repository (a copy job).
pub async fn copy_restore_point(id: String, req: shared_types::backups::CopyRestorePointRequest) -> Result<Job, ApiError> {
    json_with(Request::post(&format!("/api/v1/restore-points/{}/copy", enc(&id))), &req).await
}

pub async fn mount(backup_id: String) -> Result<Mount, ApiError> {
    json_with(Request::post("/api/v1/restore/mount"), &MountRequest { backup_id, repository_id: None }).await
}

pub async fn mounts() -> Result<Vec<Mount>, ApiError> {
    json(Request::get("/api/v1/restore/mounts")).await
}

pub async fn unmount(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/restore/{}", enc(&id))).build().map_err(transport)?).await
}

pub async fn files(mount_id: String, path: String, offset: u64, limit: u64) -> Result<FileListing, ApiError> {
    json(Request::get(&format!("/api/v1/restore/{}/files?path={}&offset={offset}&limit={limit}", enc(&mount_id), enc(&path)))).await
}

/// Restores selected files of a session to a host directory or into a VM's disk.
/// Queues a `file_restore` job (202); follow it with [`job`].
pub async fn restore_files(mount_id: String, req: FileRestoreRequest) -> Result<Job, ApiError> {
    json_with(Request::post(&format!("/api/v1/restore/{}/restore-files", enc(&mount_id))), &req).await
}

/// The URL a link downloads a file (or a directory as tar) from; the
/// session cookie authorises it.
pub fn download_url(mount_id: &str, path: &str) -> String {
    format!("/api/v1/restore/{}/download?path={}", enc(mount_id), enc(path))
}

// ---------- full VM restore and licence ----------

use shared_types::recovery::{CompatibilityReport, LicenseFeatures, RestoreVmRequest};

pub async fn license_features() -> Result<LicenseFeatures, ApiError> {
    json(Request::get("/api/v1/license/features")).await
}

/// The server's effective settings, TLS and licence (admins).
pub async fn settings() -> Result<shared_types::settings::ServerSettings, ApiError> {
    json(Request::get("/api/v1/settings")).await
}

pub async fn update_settings(req: shared_types::settings::SettingsUpdate) -> Result<shared_types::settings::ServerSettings, ApiError> {
    json_with(Request::patch("/api/v1/settings"), &req).await
}

pub async fn restore_check(req: RestoreVmRequest) -> Result<CompatibilityReport, ApiError> {
    json_with(Request::post("/api/v1/restore/check"), &req).await
}

pub async fn restore_start(req: RestoreVmRequest) -> Result<Job, ApiError> {
    json_with(Request::post("/api/v1/restore/start"), &req).await
}

// Instant recovery

use shared_types::instant::{FinalizeRequest, InstantRecovery, InstantRecoveryRequest};

/// Boots a VM from a restore point (202 with it, `starting`).
pub async fn instant_start(req: InstantRecoveryRequest) -> Result<InstantRecovery, ApiError> {
    json_with(Request::post("/api/v1/restore/instant"), &req).await
}

pub async fn instant_list() -> Result<Vec<InstantRecovery>, ApiError> {
    json(Request::get("/api/v1/restore/instant")).await
}

pub async fn instant_finalize(id: String, bandwidth_mib_s: Option<u64>) -> Result<InstantRecovery, ApiError> {
    json_with(Request::post(&format!("/api/v1/restore/instant/{}/finalize", enc(&id))), &FinalizeRequest { bandwidth_mib_s }).await
}

pub async fn instant_discard(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/restore/instant/{}", enc(&id))).build().map_err(transport)?).await
}

// Replication

use shared_types::replication::{
    CreateReplicationRequest, FailoverRequest, ReplicationAccepted, ReplicationDetails, ReplicationFlow, RollbackRequest,
    SiteFailoverRequest, SiteFailoverResult, TestFailoverRequest, UpdateReplicationRequest,
};

pub async fn replications() -> Result<Vec<ReplicationFlow>, ApiError> {
    json(Request::get("/api/v1/replication")).await
}

/// Creates a flow (`enabled: Some(false)`: paused, nothing queued).
pub async fn create_replication(req: CreateReplicationRequest) -> Result<ReplicationFlow, ApiError> {
    json_with(Request::post("/api/v1/replication"), &req).await
}

/// Creates a flow and queues its initial sync.
pub async fn start_replication(req: CreateReplicationRequest) -> Result<ReplicationAccepted, ApiError> {
    json_with(Request::post("/api/v1/replication/start"), &req).await
}

pub async fn replication(id: String) -> Result<ReplicationDetails, ApiError> {
    json(Request::get(&format!("/api/v1/replication/{}", enc(&id)))).await
}

pub async fn update_replication(id: String, req: UpdateReplicationRequest) -> Result<ReplicationFlow, ApiError> {
    json_with(Request::patch(&format!("/api/v1/replication/{}", enc(&id))), &req).await
}

/// `remove_replica`: also delete the replica's disks on the target.
pub async fn delete_replication(id: String, remove_replica: bool) -> Result<(), ApiError> {
    let url = format!("/api/v1/replication/{}?remove_replica={remove_replica}", enc(&id));
    unit(Request::delete(&url).build().map_err(transport)?).await
}

/// `sync`, `pause`, `resume`, `end-test` or `cleanup`: the actions without a body.
pub async fn replication_action(id: String, verb: &'static str) -> Result<ReplicationAccepted, ApiError> {
    post_empty(&format!("/api/v1/replication/{}/{verb}", enc(&id))).await
}

pub async fn test_failover(id: String, req: TestFailoverRequest) -> Result<ReplicationAccepted, ApiError> {
    json_with(Request::post(&format!("/api/v1/replication/{}/test-failover", enc(&id))), &req).await
}

pub async fn failover(id: String, req: FailoverRequest) -> Result<ReplicationAccepted, ApiError> {
    json_with(Request::post(&format!("/api/v1/replication/{}/failover", enc(&id))), &req).await
}

pub async fn rollback(id: String, req: RollbackRequest) -> Result<ReplicationAccepted, ApiError> {
    json_with(Request::post(&format!("/api/v1/replication/{}/rollback", enc(&id))), &req).await
}

pub async fn site_failover(req: SiteFailoverRequest) -> Result<SiteFailoverResult, ApiError> {
    json_with(Request::post("/api/v1/replication/site-failover"), &req).await
}

// Network mapping

use shared_types::networks::{BulkMappingRequest, BulkMappingResult, MappingPurpose, Recommendations, Topology, ValidateRequest, ValidationReport};

/// Every platform's networks and every mapping between them.
pub async fn network_topology() -> Result<Topology, ApiError> {
    json(Request::get("/api/v1/networks/topology")).await
}

pub async fn network_recommendations(source_platform_id: String, target_platform_id: String, purpose: MappingPurpose) -> Result<Recommendations, ApiError> {
    json(Request::get(&format!(
        "/api/v1/networks/recommendations?source_platform_id={}&target_platform_id={}&purpose={}",
        enc(&source_platform_id),
        enc(&target_platform_id),
        purpose.as_str()
    )))
    .await
}

/// Sets many mappings of one platform pair, purpose and scope, all or nothing.
pub async fn bulk_mapping(req: BulkMappingRequest) -> Result<BulkMappingResult, ApiError> {
    json_with(Request::post("/api/v1/networks/bulk-mapping"), &req).await
}

pub async fn delete_network_mapping(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/network-mappings/{}", enc(&id))).build().map_err(transport)?).await
}

/// Replication flows (their ids scope failover mappings).
pub async fn replication_flows() -> Result<Vec<shared_types::replication::ReplicationFlow>, ApiError> {
    json(Request::get("/api/v1/replication")).await
}

/// Where every NIC of the VMs lands on the target, and what blocks a failover.
pub async fn validate_networks(req: ValidateRequest) -> Result<ValidationReport, ApiError> {
    json_with(Request::post("/api/v1/networks/validate"), &req).await
}

// Global search.
use shared_types::search::SearchResults;

/// `GET /search`: what matches `q` (checked with `check_query`), best first.
pub async fn search(q: &str, limit: usize) -> Result<SearchResults, ApiError> {
    json(Request::get(&format!("/api/v1/search?q={}&limit={limit}", enc(q)))).await
}

// Policies: named retention, immutability, encryption and verify schedule.
use shared_types::policies::{CreatePolicyRequest, Policy, PolicyPreview, PolicyPreviewRequest, UpdatePolicyRequest};

pub async fn policies() -> Result<Vec<Policy>, ApiError> {
    json(Request::get("/api/v1/policies")).await
}

pub async fn create_policy(req: CreatePolicyRequest) -> Result<Policy, ApiError> {
    json_with(Request::post("/api/v1/policies"), &req).await
}

pub async fn update_policy(id: String, req: UpdatePolicyRequest) -> Result<Policy, ApiError> {
    json_with(Request::patch(&format!("/api/v1/policies/{}", enc(&id))), &req).await
}

pub async fn delete_policy(id: String) -> Result<(), ApiError> {
    unit(Request::delete(&format!("/api/v1/policies/{}", enc(&id))).build().map_err(transport)?).await
}

/// What a candidate retention would delete now, before anything is saved.
pub async fn preview_policy(req: PolicyPreviewRequest) -> Result<PolicyPreview, ApiError> {
    json_with(Request::post("/api/v1/policies/preview"), &req).await
}

/// A flow follows `policy_id`, or no policy (`None`).
pub async fn set_flow_policy(flow_id: String, policy_id: Option<String>) -> Result<Flow, ApiError> {
    update_flow(flow_id, UpdateFlowRequest { policy_id: Some(policy_id), ..Default::default() }).await
}

/// A group gives `policy_id` to its backup flows, or no policy (`None`).
pub async fn set_group_policy(group_id: String, policy_id: Option<String>) -> Result<GroupDetails, ApiError> {
    let req = shared_types::groups::UpdateGroupRequest { policy_id: Some(policy_id), ..Default::default() };
    json_with(Request::patch(&format!("/api/v1/protection-groups/{}", enc(&group_id))), &req).await
}

/// ASSETS bulk action: the backup flows protecting `vm_ids` follow the policy
/// (`preview`: nothing changes, the answer says what would).
pub async fn assign_policy_to_vms(policy_id: String, vm_ids: Vec<String>, preview: bool) -> Result<shared_types::policies::AssignVmsReport, ApiError> {
    let req = shared_types::policies::AssignVmsRequest { vm_ids, preview };
    json_with(Request::post(&format!("/api/v1/policies/{}/assign-vms", enc(&policy_id))), &req).await
}

// ---------- reports ----------

use shared_types::reports::{AnyReport, ReportKind, SuccessBy};

/// A report over `days`; `by` is the success report's rows.
pub async fn report(kind: ReportKind, days: u32, by: SuccessBy) -> Result<AnyReport, ApiError> {
    let url = |name: &str| format!("/api/v1/reports/{name}?days={days}");
    Ok(match kind {
        ReportKind::Success => AnyReport::Success(json(Request::get(&format!("{}&by={}", url("success"), by.as_str()))).await?),
        ReportKind::Backups => AnyReport::Backups(json(Request::get(&url("backups"))).await?),
        ReportKind::ChangeRate => AnyReport::ChangeRate(json(Request::get(&url("change-rate"))).await?),
        ReportKind::Throughput => AnyReport::Throughput(json(Request::get(&url("throughput"))).await?),
        ReportKind::Storage => AnyReport::Storage(json(Request::get(&url("storage"))).await?),
        ReportKind::Rpo => AnyReport::Rpo(json(Request::get(&url("rpo"))).await?),
    })
}

fn report_query(kind: ReportKind, days: u32, by: SuccessBy) -> String {
    match kind {
        ReportKind::Success => format!("days={days}&by={}", by.as_str()),
        _ => format!("days={days}"),
    }
}

/// Table `table` of a report as a CSV download (the session cookie authorises it).
pub fn report_csv_url(kind: ReportKind, days: u32, by: SuccessBy, table: usize) -> String {
    format!("/api/v1/reports/{}?{}&format=csv&table={table}", kind.as_str(), report_query(kind, days, by))
}

/// Chart `n` of a report, drawn by the server as SVG.
pub fn report_chart_url(kind: ReportKind, days: u32, by: SuccessBy, n: usize) -> String {
    format!("/api/v1/reports/{}/chart?{}&n={n}", kind.as_str(), report_query(kind, days, by))
}

/// The report's printable page.
pub fn report_print_url(kind: ReportKind, days: u32, by: SuccessBy) -> String {
    format!("/api/v1/reports/{}/print?{}", kind.as_str(), report_query(kind, days, by))
}
