//! Issue 18's "done means", as an operator does it, in Chromium against the
//! real server with the demo lab on its libvirt hosts, a real S3 server (moto,
//! signatures checked, a bucket with Object Lock) and a real Azure Blob
//! service (Azurite), both installed by scripts/lib.sh (need_moto,
//! need_azurite):
//! 1. REPOSITORIES → Add repository: the S3 bucket, 2 immutable days in
//!    governance mode; Test, then Add.
//! 2. ASSETS → Backup Now of web-02 into it; the job completes.
//! 3. web-02's restore points: the point shows "Locked until DATE (S3 Object
//!    Lock, governance)", DATE the retain-until moto holds on its manifest.
//! 4. REPOSITORIES → Add repository: the Azurite container; Test, then Add.
//! 5. The restore point's "Copy…" → the Azure repository; the copy job
//!    completes; its badges show the S3 primary and the Azure copy, present.
//!    Screenshots at 1440x900 and 820x1180.
//! 6. moto is stopped (the primary is gone); the restore wizard reads the
//!    point from the Azure copy ("Read from") onto the DR host, powered on:
//!    the job completes, the restored disk equals the restore point as the
//!    engine reads it from the Azure copy (qemu-img compare) and the guest
//!    boots from it (its console's SENDENSE-GUEST-UP line).

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{free_port, workspace_root, Browser, Server, ADMIN_PASSWORD};
use fantoccini::Locator;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);
const BUCKET: &str = "offsite-primary";
const CONTAINER: &str = "offsite-copies";
/// Azurite's one account and its well-known key (public; Azurite's docs).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn installed(var: &str, rel: &str, installer: &str) -> Result<PathBuf> {
    let p = match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME")?).join(".cache/sendense/test-services").join(rel),
    };
    ensure!(p.exists(), "{} is missing: install it with `bash -c 'source scripts/lib.sh; {installer}'` (scripts/test.sh does)", p.display());
    Ok(p)
}

/// A child process in its own process group on a free loopback port, killed
/// with its group on drop (or by `stop`).
struct Service {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start(name: &str, program: &Path, envs: &[(&str, &str)], args: impl Fn(u16, &Path) -> Vec<String>) -> Result<Service> {
        let dir = tempfile::Builder::new().prefix(&format!("sendense-e2e-{name}-")).tempdir()?;
        let log = std::fs::File::create(dir.path().join(format!("{name}.log")))?;
        let port = free_port()?;
        let child = Command::new(program)
            .args(args(port, dir.path()))
            .envs(envs.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let service = Service { child: Some(child), port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("{name} did not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(service)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// moto's S3 server, its IAM user's key made by moto_admin.py bootstrap.
struct Moto {
    service: Service,
    python: PathBuf,
    key: (String, String),
}

impl Moto {
    fn start() -> Result<Moto> {
        let program = installed("SENDENSE_MOTO", "moto/bin/moto_server", "need_moto")?;
        let python = installed("SENDENSE_MOTO_PYTHON", "moto/bin/python", "need_moto")?;
        let service = Service::start("moto", &program, &[("INITIAL_NO_AUTH_ACTION_COUNT", "3")], |port, _| {
            vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()]
        })?;
        let mut moto = Moto { service, python, key: (String::new(), String::new()) };
        let key = moto.admin(&["bootstrap"])?;
        moto.key = (
            key["access_key_id"].as_str().context("access key")?.to_owned(),
            key["secret_access_key"].as_str().context("secret")?.to_owned(),
        );
        Ok(moto)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.service.port)
    }

    fn admin(&self, args: &[&str]) -> Result<Value> {
        let out = Command::new(&self.python)
            .arg(workspace_root().join("backend/tests/support/moto_admin.py"))
            .arg(self.endpoint())
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.key.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.key.1)
            .output()?;
        ensure!(out.status.success(), "moto_admin.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

/// Azurite's Blob service.
struct Azurite {
    service: Service,
}

/// Create Container, signed with Shared Key (python's standard library).
const CREATE_CONTAINER: &str = r#"
import base64, datetime, hashlib, hmac, sys, urllib.request
endpoint, account, key, name = sys.argv[1:5]
date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
version = "2021-08-06"
ct = "application/octet-stream"
to_sign = "PUT\n" + "\n" * 4 + ct + "\n" * 7 + f"x-ms-date:{date}\nx-ms-version:{version}\n/{account}/{account}/{name}\nrestype:container"
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"{endpoint}/{name}?restype=container", method="PUT", data=b"",
    headers={"Content-Type": ct, "x-ms-date": date, "x-ms-version": version, "Authorization": f"SharedKey {account}:{sig}"})
print(urllib.request.urlopen(req).status)
"#;

impl Azurite {
    fn start() -> Result<Azurite> {
        let program = installed("SENDENSE_AZURITE", "azurite/node_modules/.bin/azurite-blob", "need_azurite")?;
        let service = Service::start("azurite", &program, &[], |port, dir| {
            vec![
                "--blobHost".into(),
                "127.0.0.1".into(),
                "--blobPort".into(),
                port.to_string(),
                "--location".into(),
                dir.join("data").display().to_string(),
                "--skipApiVersionCheck".into(),
                "--loose".into(),
            ]
        })?;
        Ok(Azurite { service })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.service.port)
    }

    fn create_container(&self, python: &Path, name: &str) -> Result<()> {
        let out = Command::new(python).args(["-c", CREATE_CONTAINER, &self.endpoint(), AZURITE_ACCOUNT, AZURITE_KEY, name]).output()?;
        ensure!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "201",
            "creating container {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

async fn set(b: &Browser, testid: &str, text: &str) -> Result<()> {
    let input = b.testid(testid, T).await?;
    input.clear().await?;
    input.send_keys(text).await?;
    Ok(())
}

async fn click(b: &Browser, id: &str) -> Result<()> {
    b.click_testid(id, T).await
}

/// Test, then Add, of the Add repository form as filled in; the new
/// repository as the API lists it.
async fn test_and_save(b: &Browser, server: &Server, name: &str) -> Result<Value> {
    click(b, "repo-form-test").await?;
    b.until(&format!("a passing test of {name}"), Duration::from_secs(60), || async {
        if let Ok(e) = b.client.find(Locator::Css("[data-testid='repo-test-error']")).await {
            bail!("testing {name}: {}", e.text().await?);
        }
        Ok(b.testid("repo-test", T).await?.attr("data-ok").await?.filter(|v| v == "true"))
    })
    .await?;
    click(b, "repo-form-save").await?;
    let message = b.testid("repo-message", Duration::from_secs(60)).await?.text().await?;
    ensure!(message.contains(name), "message: {message:?}");
    b.testid(&format!("repo-{name}"), T).await?;
    let listed = server.get_json("/api/v1/repositories")?;
    listed.as_array().and_then(|a| a.iter().find(|r| r["name"] == name)).cloned().with_context(|| format!("{name} in the API: {listed}"))
}

/// The badges of the restore points table: (role, state, repository id).
async fn badges(b: &Browser) -> Result<Vec<(String, String, String)>> {
    let found = b.client.find_all(Locator::Css("[data-testid='vm-points'] [data-testid='point-location']")).await?;
    let mut out = Vec::new();
    for e in found {
        out.push((
            e.attr("data-role").await?.unwrap_or_default(),
            e.attr("data-state").await?.unwrap_or_default(),
            e.attr("data-repository").await?.unwrap_or_default(),
        ));
    }
    Ok(out)
}

fn dr_volume(server: &Server, vm: &str) -> Result<PathBuf> {
    let pool = server.lab_dir().join("libvirt/dr/images");
    let mut found: Vec<_> = std::fs::read_dir(&pool)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&format!("{vm}-")) && !n.ends_with(".log")))
        .collect();
    found.sort();
    found.into_iter().next().with_context(|| format!("no volume of {vm} in {}", pool.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_restore_point_is_locked_copied_to_azure_and_restored_from_the_copy() -> Result<()> {
    let started = Instant::now();
    let mut moto = Moto::start()?;
    moto.admin(&["create-bucket", BUCKET, "1"])?;
    let azurite = Azurite::start()?;
    azurite.create_container(&moto.python, CONTAINER)?;
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let vm = server.manage_lab_vm(&token, "lab-prod", "web-02")?;
    let dr_id = server.wait_platform(&token, "lab-dr", Duration::from_secs(60))?;

    // 1. The S3 bucket, in the cockpit's Add repository form.
    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/repositories")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("repo-local", T).await?;
    click(&b, "repo-add").await?;
    b.testid("repo-form", T).await?;
    b.testid("repo-form-kind", T).await?.select_by_value("s3").await?;
    set(&b, "repo-form-name", "site-s3").await?;
    set(&b, "repo-form-endpoint", &moto.endpoint()).await?;
    set(&b, "repo-form-region", "us-east-1").await?;
    set(&b, "repo-form-bucket", BUCKET).await?;
    set(&b, "repo-form-access-key-id", &moto.key.0).await?;
    set(&b, "repo-form-secret", &moto.key.1).await?;
    set(&b, "repo-form-immutable", "2").await?;
    b.testid("repo-form-lock-mode", T).await?.select_by_value("governance").await?;
    let s3 = test_and_save(&b, &server, "site-s3").await?;
    let s3_id = s3["id"].as_str().context("id")?.to_owned();
    ensure!(s3["kind"] == "s3" && s3["immutability"] == "storage" && s3["object_lock_mode"] == "governance" && s3["immutable_days"] == 2, "{s3}");

    // 2. Backup Now of web-02 into it, from ASSETS.
    b.client.goto(&server.url("/assets")).await?;
    click(&b, "backup-now-web-02").await?;
    b.testid("start-backup", T).await?;
    let option = format!("[data-testid='start-backup-repo'] option[value='{s3_id}']");
    b.until("the S3 repository among the choices", T, || async { Ok(b.client.find(Locator::Css(&option)).await.ok()) }).await?;
    b.testid("start-backup-repo", T).await?.select_by_value(&s3_id).await?;
    click(&b, "start-backup-submit").await?;
    let job = b
        .until("the backup job in the catalog", T, || async {
            let jobs = server.get_json(&format!("/api/v1/jobs?vm={vm}&kind=backup"))?;
            Ok(jobs["items"].as_array().and_then(|a| a.first()).and_then(|j| j["id"].as_str().map(str::to_owned)))
        })
        .await?;
    let backup_started = Instant::now();
    let done = server.wait_job(&token, &job, Duration::from_secs(600))?;
    ensure!(done["job"]["status"] == "completed" && done["job"]["repository_id"] == s3_id.as_str(), "backup: {}", done["job"]);
    e2e::metric("offsite_backup_to_s3_s", format!("{:.1}", backup_started.elapsed().as_secs_f64()));
    let point = server.get_json(&format!("/api/v1/backup/list?vm={vm}"))?["items"][0].clone();
    let point_id = point["id"].as_str().context("point id")?.to_owned();

    // 3. Its lock date is the storage's: the retain-until moto holds on the manifest.
    let manifest = format!("snapshots/{}/{}.json", point["snapshot_name"].as_str().context("name")?, point["snapshot_id"].as_str().context("id")?);
    let versions = moto.admin(&["all-versions", BUCKET])?;
    let version = versions["versions"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["key"] == manifest.as_str() && v["is_latest"] == true))
        .and_then(|v| v["version_id"].as_str())
        .with_context(|| format!("{manifest} in the bucket: {versions}"))?
        .to_owned();
    let retention = moto.admin(&["retention", BUCKET, &manifest, &version])?;
    ensure!(retention["mode"] == "GOVERNANCE", "{manifest}: {retention}");
    let storage_until = chrono::DateTime::parse_from_rfc3339(retention["until"].as_str().context("until")?)?.with_timezone(&chrono::Utc);
    let days = (storage_until - chrono::Utc::now()).num_hours();
    ensure!((47..=48).contains(&days), "the storage's retain-until {storage_until} is not 2 days ahead");
    b.client.goto(&server.url("/assets")).await?;
    click(&b, "restore-points-web-02").await?;
    b.testid(&format!("point-{point_id}"), T).await?;
    let lock = b.testid("point-lock", T).await?;
    ensure!(lock.attr("data-enforced-by").await?.as_deref() == Some("storage"), "the lock is not the storage's");
    let shown = chrono::DateTime::parse_from_rfc3339(&lock.attr("data-until").await?.context("data-until")?)?.with_timezone(&chrono::Utc);
    ensure!(shown.timestamp_millis() == storage_until.timestamp_millis(), "shown {shown} vs the storage's {storage_until}");
    let text = lock.text().await?;
    let want = format!("Locked until {}", storage_until.format("%Y-%m-%d"));
    ensure!(text.contains(&want) && text.contains("(S3 Object Lock, governance)"), "lock text {text:?}, want {want:?}");
    click(&b, "vm-points-close").await?;

    // 4. The Azurite container, in the same form.
    b.client.goto(&server.url("/repositories")).await?;
    click(&b, "repo-add").await?;
    b.testid("repo-form", T).await?;
    b.testid("repo-form-kind", T).await?.select_by_value("azure").await?;
    set(&b, "repo-form-name", "site-azure").await?;
    set(&b, "repo-form-endpoint", &azurite.endpoint()).await?;
    set(&b, "repo-form-account", AZURITE_ACCOUNT).await?;
    set(&b, "repo-form-container", CONTAINER).await?;
    set(&b, "repo-form-secret", AZURITE_KEY).await?;
    let azure = test_and_save(&b, &server, "site-azure").await?;
    let azure_id = azure["id"].as_str().context("id")?.to_owned();
    ensure!(azure["kind"] == "azure" && azure["status"] == "online", "{azure}");

    // 5. Copy… the restore point to Azure, from the table.
    b.client.goto(&server.url("/assets")).await?;
    click(&b, "restore-points-web-02").await?;
    click(&b, &format!("copy-point-{point_id}")).await?;
    b.until("the Azure repository among the targets", T, || async {
        Ok(b.testid("copy-to-repo", T).await?.html(false).await?.contains(&azure_id).then_some(()))
    })
    .await?;
    let options = b.testid("copy-to-repo", T).await?.html(false).await?;
    ensure!(!options.contains(&s3_id), "the primary holds it already, yet is offered: {options}");
    b.testid("copy-to-repo", T).await?.select_by_value(&azure_id).await?;
    click(&b, "copy-to-start").await?;
    let copy = b
        .until("the copy job in the catalog", T, || async {
            if let Ok(e) = b.client.find(Locator::Css("[data-testid='copy-error']")).await {
                bail!("the copy was refused: {}", e.text().await?);
            }
            let jobs = server.get_json(&format!("/api/v1/jobs?vm={vm}&kind=copy"))?;
            Ok(jobs["items"].as_array().and_then(|a| a.first()).and_then(|j| j["id"].as_str().map(str::to_owned)))
        })
        .await?;
    let copy_started = Instant::now();
    // The operator is told the copy is queued (the list reloads at once,
    // with the copy's 'copying' badge: the note must survive that).
    let note = b.testid("copy-queued", T).await?.text().await?;
    ensure!(note.contains(&copy), "the queued note {note:?} names job {copy}");
    let copied = server.wait_job(&token, &copy, Duration::from_secs(600))?;
    ensure!(copied["job"]["status"] == "completed", "copy: {copied}");
    e2e::metric("offsite_copy_s3_to_azure_s", format!("{:.1}", copy_started.elapsed().as_secs_f64()));
    // The open table follows the copy job's end by itself: both badges, present.
    let want = vec![("primary".to_string(), "present".to_string(), s3_id.clone()), ("copy".to_string(), "present".to_string(), azure_id.clone())];
    let seen = b
        .until("the S3 primary and the Azure copy", T, || async {
            let got = badges(&b).await?;
            Ok((got == want).then_some(got))
        })
        .await
        .with_context(|| format!("the point's locations in the API: {}", server.get_json(&format!("/api/v1/backup/{point_id}")).map(|p| p["locations"].to_string()).unwrap_or_default()))?;
    println!("badges: {seen:?}");
    let copy_badge = b.client.find(Locator::Css("[data-testid='point-location'][data-role='copy']")).await?;
    let copy_text = copy_badge.text().await?;
    ensure!(copy_text == "copy: site-azure", "copy badge: {copy_text:?}");
    for (size, w, h) in [("1440x900", 1440, 900), ("820x1180", 820, 1180)] {
        b.resize(w, h).await?;
        tokio::time::sleep(Duration::from_millis(600)).await;
        ensure!(!b.overflows().await?, "the restore points scroll sideways at {size}");
        let lock = b.testid("point-lock", T).await?;
        ensure!(lock.is_displayed().await?, "the lock is not shown at {size}");
        ensure!(lock.text().await?.contains(&format!("Locked until {}", storage_until.format("%Y-%m-%d"))), "lock at {size}");
        b.screenshot(&format!("offsite-copy-points-{size}")).await?;
    }
    b.resize(1440, 900).await?;

    // 6. The primary is gone: restore from the Azure copy with the wizard.
    moto.service.stop();
    click(&b, &format!("restore-{point_id}")).await?;
    b.testid("wizard-step-point", T).await?;
    let source = format!("[data-testid='wizard-source'] option[value='{azure_id}']");
    b.until("the Azure copy among the sources", T, || async { Ok(b.client.find(Locator::Css(&source)).await.ok()) }).await?;
    b.testid("wizard-source", T).await?.select_by_value(&azure_id).await?;
    b.screenshot("offsite-copy-read-from-1440x900").await?;
    click(&b, "wizard-next").await?;
    b.testid("wizard-step-target", T).await?;
    let target = b.testid("wizard-target", T).await?;
    b.until("the DR host proposed", T, || async { Ok((target.prop("value").await?.unwrap_or_default() == dr_id).then_some(())) }).await?;
    set(&b, "wizard-name", "web-02-from-azure").await?;
    click(&b, "wizard-next").await?;
    click(&b, "wizard-power-on").await?;
    let report = b
        .until("the compatibility check", Duration::from_secs(60), || async {
            if let Ok(e) = b.client.find(Locator::Css("[data-testid='wizard-check-error']")).await {
                bail!("the compatibility check failed: {}", e.text().await?);
            }
            Ok(b.client.find(Locator::Css("[data-testid='wizard-report']")).await.ok())
        })
        .await?;
    ensure!(report.attr("data-ok").await?.as_deref() == Some("true"), "compatibility check: {}", report.text().await?);
    let restore_started = Instant::now();
    click(&b, "wizard-start").await?;
    b.until("the restore running", T, || async {
        if let Ok(e) = b.client.find(Locator::Css("[data-testid='wizard-start-error']")).await {
            bail!("the restore did not start: {}", e.text().await?);
        }
        Ok(b.client.find(Locator::Css("[data-testid='wizard-step-run']")).await.ok())
    })
    .await?;
    let restore = b
        .until("the restore job", T, || async {
            let jobs = server.get_json("/api/v1/jobs?kind=restore&limit=5")?;
            Ok(jobs["items"].as_array().and_then(|a| a.first()).and_then(|j| j["id"].as_str().map(str::to_owned)))
        })
        .await?;
    let restored = server.wait_job(&token, &restore, Duration::from_secs(600))?;
    ensure!(restored["job"]["status"] == "completed", "restore from the Azure copy: {restored}");
    ensure!(restored["job"]["repository_id"] == azure_id.as_str(), "the restore did not read the Azure copy: {}", restored["job"]);
    e2e::metric("offsite_restore_from_azure_s", format!("{:.1}", restore_started.elapsed().as_secs_f64()));

    // The restored disk is the restore point as the engine reads it from the
    // Azure copy (its key: DATA_DIR/keys/ID.key), and the guest boots from it.
    let spec_file = server.data_dir.path().join("azure-spec.json");
    std::fs::write(
        &spec_file,
        json!({"kind": "azure", "account": AZURITE_ACCOUNT, "container": CONTAINER, "prefix": "", "access_key": AZURITE_KEY, "sas": null, "endpoint": azurite.endpoint()}).to_string(),
    )?;
    std::fs::set_permissions(&spec_file, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let image = server.data_dir.path().join("restore-point.raw");
    let mut engine = Command::new(Server::binary()?);
    // Its index cache beside the server's (removed with the data directory), not in ~/.cache.
    engine.env("SENDENSE_CACHE_DIR", server.data_path().join("cache"));
    engine.args(["image", "restore", "--no-progress", "--spec-file"]).arg(&spec_file);
    let key = server.data_path().join("keys").join(format!("{azure_id}.key"));
    if azure["encrypted"] == true {
        engine.arg("--key").arg(&key);
    }
    let out = engine
        .args(["--id", point["snapshot_name"].as_str().unwrap_or(""), "--snapshot", point["snapshot_id"].as_str().unwrap_or("")])
        .arg(&image)
        .output()?;
    ensure!(out.status.success(), "engine restore from the Azure copy: {}", String::from_utf8_lossy(&out.stderr));
    let disk = dr_volume(&server, "web-02-from-azure")?;
    let cmp = Command::new("qemu-img").args(["compare", "-U"]).arg(&image).arg(&disk).output()?;
    ensure!(cmp.status.success(), "the restored disk differs: {}{}", String::from_utf8_lossy(&cmp.stdout), String::from_utf8_lossy(&cmp.stderr));
    std::fs::remove_file(&image)?;
    let console = server.lab_dir().join("libvirt/dr/images/web-02-from-azure.console.log");
    let boot = b
        .until("the restored guest's boot line", Duration::from_secs(120), || async {
            let text = std::fs::read_to_string(&console).unwrap_or_default();
            Ok(text.lines().find(|l| l.contains("SENDENSE-GUEST-UP name=web-02")).map(str::to_string))
        })
        .await?;
    println!("restored from the Azure copy, booted on the DR host: {boot}");
    e2e::metric("offsite_restore_start_to_guest_boot_s", format!("{:.1}", restore_started.elapsed().as_secs_f64()));
    b.close().await?;
    println!("offsite copy journey: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
