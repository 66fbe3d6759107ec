//! A repository whose storage fails writes shows it (issue 18, a repository
//! that fills up mid-backup): on real moto behind the fault-injecting proxy
//! (`support::fault_proxy`), through the server's job runner, one bucket:
//!
//! * a backup whose PUTs are refused with MinIO's 507 XMinioStorageFull
//!   fails, and the repository is `degraded` in GET /repositories and
//!   /repositories/{id}, with the cause (`full`), when, the job and the
//!   storage's words; a test of the saved repository while it still refuses
//!   fails and keeps it degraded; once the storage takes writes again a
//!   passing test clears it (online);
//! * a second refused backup degrades it again, and the next successful
//!   backup clears it by itself.
//!
//! A lighter companion of `object_store_faults` (one storage, no restores).

use axum::http::StatusCode;
use sendense::catalog::repositories::ensure_local;
use serde_json::json;
use shared_types::repositories::{Repository, RepositoryStatus, StorageFailureCause};
use shared_types::repository_setup::RepositoryTest;

mod support;

use support::api::Api;
use support::fault_proxy::{self, FaultProxy, Faults};
use support::kvm::TestHost;
use support::object_servers::{Moto, MOTO_REGION};

/// PUT bytes the bucket takes before it refuses.
const BUDGET: u64 = 2 << 20;

async fn shown(api: &Api, id: &str) -> Repository {
    let one: Repository = api.ok("GET", &format!("/api/v1/repositories/{id}"), None, StatusCode::OK).await;
    let listed: Vec<Repository> = api.ok("GET", "/api/v1/repositories", None, StatusCode::OK).await;
    let in_list = listed.into_iter().find(|r| r.id == id).expect("the repository is listed");
    assert_eq!((in_list.status, &in_list.storage_failure), (one.status, &one.storage_failure), "the list and the repository agree");
    one
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_bucket_degrades_the_repository_until_a_test_or_a_backup_succeeds_there() {
    let dir = tempfile::tempdir().unwrap();
    let (lab_dir, _source) = support::kvm::lab_in(dir.path()).await;
    let f = support::fixture().await;
    ensure_local(&f.state.db, f.data.path()).await.unwrap();
    let api = Api::admin(f).await;
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.server().port());
    let prod_host = TestHost::start(lab_dir.join("hosts/kvm-prod-01")).await;
    let prod = api.add_host(&prod_host).await;
    let vm = api.manage(&prod, &["web-01"]).await.remove(0);
    moto.create_bucket("filling", false);
    let (ak, sk) = moto.access_key();
    let body = json!({"name": "filling", "kind": "s3", "endpoint": proxy.endpoint(), "region": MOTO_REGION, "bucket": "filling", "access_key_id": ak, "secret_access_key": sk});
    let repo: Repository = api.ok("POST", "/api/v1/repositories", Some(body), StatusCode::CREATED).await;
    assert_eq!((repo.status, repo.storage_failure.is_none()), (RepositoryStatus::Online, true));

    // The bucket fills up mid-backup: the backup fails, the repository says why.
    let started = chrono::Utc::now();
    proxy.set(Faults { refuse_puts_after: Some((BUDGET, fault_proxy::MINIO_STORAGE_FULL)), ..Default::default() });
    let failed = api.backup_into(&vm, "full", &repo.id, 600).await;
    assert_eq!(failed["job"]["status"], "failed", "{}", failed["job"]);
    let job_id = failed["job"]["id"].as_str().unwrap().to_owned();
    let r = shown(&api, &repo.id).await;
    eprintln!("after the refused backup: {:?} {:?}", r.status, r.storage_failure);
    assert_eq!(r.status, RepositoryStatus::Degraded);
    let sf = r.storage_failure.expect("the storage failure is shown");
    assert_eq!((sf.cause, sf.job_id.as_deref()), (StorageFailureCause::Full, Some(job_id.as_str())));
    assert!(sf.at >= started && sf.message.contains("XMinioStorageFull") && sf.message.contains("repository 'filling'"), "{sf:?}");
    assert!(!sf.message.contains(sk), "{sf:?}");

    // A test while the storage still refuses writes: fails, still degraded (now the test's words).
    let t: RepositoryTest = api.ok("POST", &format!("/api/v1/repositories/{}/test", repo.id), None, StatusCode::OK).await;
    eprintln!("test while full: {t:?}");
    assert!(!t.ok, "{t:?}");
    let r = shown(&api, &repo.id).await;
    let sf = r.storage_failure.expect("still failing");
    assert_eq!((r.status, sf.cause, sf.job_id.as_deref()), (RepositoryStatus::Degraded, StorageFailureCause::Full, None));
    assert!(sf.message.contains("test of repository 'filling'"), "{sf:?}");

    // Space freed: a passing test clears it.
    proxy.clear();
    let t: RepositoryTest = api.ok("POST", &format!("/api/v1/repositories/{}/test", repo.id), None, StatusCode::OK).await;
    assert!(t.ok, "{t:?}");
    let r = shown(&api, &repo.id).await;
    assert_eq!((r.status, r.storage_failure), (RepositoryStatus::Online, None));

    // Full again: degraded again; the next good backup clears it by itself.
    proxy.set(Faults { refuse_puts_after: Some((BUDGET, fault_proxy::MINIO_STORAGE_FULL)), ..Default::default() });
    let failed = api.backup_into(&vm, "full", &repo.id, 600).await;
    assert_eq!(failed["job"]["status"], "failed", "{}", failed["job"]);
    assert_eq!(shown(&api, &repo.id).await.status, RepositoryStatus::Degraded);
    proxy.clear();
    let done = api.backup_into(&vm, "full", &repo.id, 600).await;
    assert_eq!(done["job"]["status"], "completed", "{}", done["job"]);
    let r = shown(&api, &repo.id).await;
    assert_eq!((r.status, r.storage_failure), (RepositoryStatus::Online, None));
    let log = done["logs"].as_array().map(|l| l.iter().filter_map(|x| x["message"].as_str()).collect::<Vec<_>>().join("\n")).unwrap_or_default();
    assert!(log.contains("last storage failure is cleared"), "{log}");
}
