//! An S3 repository end to end in Chromium against the real server with the
//! demo lab (`--lab-guests`) and a real S3 server (moto, signatures checked,
//! installed by scripts/lib.sh need_moto): the Add repository form for S3
//! tests the bucket then saves; the card shows an S3 bucket, its location and
//! "unbounded" space; Backup Now of web-02 into it from ASSETS; the job
//! completes; web-02's restore points name the S3 repository and the
//! repository card counts it. The bucket has Object Lock and the repository
//! 3 immutable days in compliance mode: the restore point shows "Locked until
//! DATE (S3 Object Lock, compliance)" with DATE the retain-until date the
//! storage holds on its manifest (read with boto3). Screenshots at 1440x900,
//! 820x1180 and 390x844.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use e2e::{free_port, workspace_root, Browser, Server, ADMIN_PASSWORD};
use fantoccini::Locator;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);
const SIZES: &[(&str, u32, u32)] = &[("1440x900", 1440, 900), ("820x1180", 820, 1180), ("390x844", 390, 844)];

/// moto's S3 server on a free loopback port, killed with its process group on drop.
struct Moto {
    child: Child,
    port: u16,
    python: PathBuf,
    key: (String, String),
    _dir: tempfile::TempDir,
}

fn installed(var: &str, rel: &str) -> Result<PathBuf> {
    let p = match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME")?).join(".cache/sendense/test-services").join(rel),
    };
    ensure!(p.exists(), "{} is missing: install it with `bash -c 'source scripts/lib.sh; need_moto'` (scripts/test.sh does)", p.display());
    Ok(p)
}

impl Moto {
    fn start() -> Result<Moto> {
        let program = installed("SENDENSE_MOTO", "moto/bin/moto_server")?;
        let python = installed("SENDENSE_MOTO_PYTHON", "moto/bin/python")?;
        let dir = tempfile::Builder::new().prefix("sendense-e2e-moto-").tempdir()?;
        let log = std::fs::File::create(dir.path().join("moto.log"))?;
        let port = free_port()?;
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        let mut moto = Moto { child, port, python, key: (String::new(), String::new()), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("moto did not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let key = moto.admin(&["bootstrap"])?;
        moto.key = (
            key["access_key_id"].as_str().context("access key")?.to_owned(),
            key["secret_access_key"].as_str().context("secret")?.to_owned(),
        );
        Ok(moto)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_repository_is_added_in_the_cockpit_backed_up_to_and_its_restore_points_show() -> Result<()> {
    let moto = Moto::start()?;
    // With Object Lock: the restore points are locked by the storage.
    moto.admin(&["create-bucket", "cockpit-backups", "1"])?;
    let server = Server::start_with_lab_guests_at_full_speed()?;
    let token = server.token("admin", ADMIN_PASSWORD)?;
    let vm = server.manage_lab_vm(&token, "lab-prod", "web-02")?;

    // Add the bucket in the cockpit: test first, then save.
    let b = Browser::start(1440, 900).await?;
    b.client.goto(&server.url("/repositories")).await?;
    b.sign_in("admin", ADMIN_PASSWORD).await?;
    b.testid("repo-local", T).await?;
    click(&b, "repo-add").await?;
    b.testid("repo-form", T).await?;
    b.testid("repo-form-kind", T).await?.select_by_value("s3").await?;
    set(&b, "repo-form-name", "offsite-s3").await?;
    set(&b, "repo-form-endpoint", &moto.endpoint()).await?;
    set(&b, "repo-form-region", "us-east-1").await?;
    set(&b, "repo-form-bucket", "cockpit-backups").await?;
    set(&b, "repo-form-access-key-id", &moto.key.0).await?;
    set(&b, "repo-form-secret", &moto.key.1).await?;
    set(&b, "repo-form-immutable", "3").await?;
    b.testid("repo-form-lock-mode", T).await?.select_by_value("compliance").await?;
    click(&b, "repo-form-test").await?;
    b.until("a passing test of the bucket", Duration::from_secs(60), || async {
        Ok(b.testid("repo-test", T).await?.attr("data-ok").await?.filter(|v| v == "true"))
    })
    .await
    .with_context(|| "the S3 test did not pass")?;
    b.screenshot("object-repository-tested-1440x900").await?;
    click(&b, "repo-form-save").await?;
    let message = b.testid("repo-message", Duration::from_secs(60)).await?.text().await?;
    ensure!(message.contains("offsite-s3"), "message: {message:?}");
    let card = b.testid("repo-offsite-s3", T).await?;
    let text = card.text().await?;
    ensure!(text.contains("S3 bucket") && text.contains("cockpit-backups"), "card: {text:?}");
    ensure!(text.contains("unbounded"), "an object store's space is unbounded, not a number: {text:?}");
    ensure!(!text.contains(&moto.key.1), "the secret shows on the card");
    let listed = server.get_json("/api/v1/repositories")?;
    let repo = listed.as_array().and_then(|a| a.iter().find(|r| r["name"] == "offsite-s3")).context("offsite-s3 in the API")?.clone();
    let repo_id = repo["id"].as_str().context("id")?.to_owned();
    ensure!(repo["kind"] == "s3" && repo["encrypted"] == true && repo["status"] == "online", "{repo}");
    ensure!(repo["immutability"] == "storage" && repo["object_lock_mode"] == "compliance" && repo["immutable_days"] == 3, "{repo}");

    // Backup Now of web-02 into it, from ASSETS.
    b.client.goto(&server.url("/assets")).await?;
    click(&b, "backup-now-web-02").await?;
    b.testid("start-backup", T).await?;
    // The repositories load after the modal opens: wait for the new one's option.
    let option = format!("[data-testid='start-backup-repo'] option[value='{repo_id}']");
    b.until("the S3 repository among the choices", T, || async { Ok(b.client.find(Locator::Css(&option)).await.ok()) }).await?;
    b.testid("start-backup-repo", T).await?.select_by_value(&repo_id).await?;
    click(&b, "start-backup-submit").await?;
    let job = b
        .until("the backup job in the catalog", T, || async {
            let jobs = server.get_json(&format!("/api/v1/jobs?vm={vm}"))?;
            Ok(jobs["items"].as_array().and_then(|a| a.first()).and_then(|j| j["id"].as_str().map(str::to_owned)))
        })
        .await?;
    let done = server.wait_job(&token, &job, Duration::from_secs(300))?;
    ensure!(done["job"]["status"] == "completed" && done["job"]["repository_id"] == repo_id.as_str(), "backup: {}", done["job"]);

    // Its restore points name the S3 repository; the card counts it.
    b.client.goto(&server.url("/assets")).await?;
    click(&b, "restore-points-web-02").await?;
    let points = b.testid("vm-points", T).await?;
    let rows = b.until("a restore point in the list", T, || async {
        let t = b.testid("vm-points", T).await?.text().await?;
        Ok(t.contains("offsite-s3").then_some(t))
    })
    .await?;
    ensure!(rows.contains("offsite-s3"), "restore points: {rows:?}");
    let _ = points;
    // The lock date shown is the storage's: the retain-until date boto3
    // reads on the restore point's manifest in the bucket.
    let listed = server.get_json(&format!("/api/v1/backup/list?vm={vm}"))?;
    let point = listed["items"].as_array().and_then(|a| a.first()).context("the restore point in the API")?.clone();
    let manifest = format!("snapshots/{}/{}.json", point["snapshot_name"].as_str().context("name")?, point["snapshot_id"].as_str().context("id")?);
    let versions = moto.admin(&["all-versions", "cockpit-backups"])?;
    let version = versions["versions"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["key"] == manifest.as_str() && v["is_latest"] == true))
        .and_then(|v| v["version_id"].as_str())
        .with_context(|| format!("{manifest} in the bucket: {versions}"))?
        .to_owned();
    let retention = moto.admin(&["retention", "cockpit-backups", &manifest, &version])?;
    ensure!(retention["mode"] == "COMPLIANCE", "{manifest}: {retention}");
    let storage_until = chrono::DateTime::parse_from_rfc3339(retention["until"].as_str().context("until")?)?.with_timezone(&chrono::Utc);
    ensure!(point["lock"]["enforced_by"] == "storage" && point["lock"]["mode"] == "compliance", "{point}");
    for (size, w, h) in SIZES {
        b.resize(*w, *h).await?;
        tokio::time::sleep(Duration::from_millis(600)).await;
        ensure!(!b.overflows().await?, "ASSETS with restore points scrolls sideways at {size}");
        b.screenshot(&format!("object-repository-points-{size}")).await?;
        let lock = b.testid("point-lock", T).await?;
        ensure!(lock.attr("data-enforced-by").await?.as_deref() == Some("storage"), "the lock is the storage's at {size}");
        let shown = chrono::DateTime::parse_from_rfc3339(&lock.attr("data-until").await?.context("data-until")?)?.with_timezone(&chrono::Utc);
        ensure!(shown.timestamp_millis() == storage_until.timestamp_millis(), "shown {shown} vs the storage's {storage_until} at {size}");
        let text = lock.text().await?;
        let want = format!("Locked until {}", storage_until.format("%Y-%m-%d"));
        ensure!(text.contains(&want) && text.contains("S3 Object Lock, compliance"), "lock text {text:?} at {size}, want {want:?}");
    }
    b.resize(1440, 900).await?;
    b.client.goto(&server.url("/repositories")).await?;
    let card = b.testid("repo-offsite-s3", T).await?;
    b.until("the card counts the restore point", T, || async {
        let t = b.testid("repo-offsite-s3", T).await?.text().await?;
        Ok(t.contains("Stored").then_some(()))
    })
    .await?;
    let _ = card;
    let api = server.get_json(&format!("/api/v1/repositories/{repo_id}"))?;
    ensure!(api["backup_count"] == 1 && api["stats"]["snapshots"] == 1, "{api}");
    for (size, w, h) in SIZES {
        b.resize(*w, *h).await?;
        b.client.goto(&server.url("/repositories")).await?;
        let card = b.testid("repo-offsite-s3", T).await?;
        b.client.execute("arguments[0].scrollIntoView({block: 'start'})", vec![serde_json::to_value(&card)?]).await?;
        tokio::time::sleep(Duration::from_millis(600)).await;
        ensure!(!b.overflows().await?, "the Repositories page scrolls sideways at {size}");
        b.screenshot(&format!("object-repository-card-{size}")).await?;
    }
    let _ = b.client.find(Locator::Css("body")).await?;
    b.close().await?;
    Ok(())
}
