//! End-to-end harness: the real `sendense` binary on a free port with a
//! temporary data directory, and Debian's Chromium driven through
//! chromedriver (WebDriver).
//!
//! Prerequisites (the README's test command provides them): the server built
//! at `target/debug/sendense` (or `SENDENSE_BIN`), the cockpit built into
//! `dist/` (or `SENDENSE_WEB_DIR`), `/usr/bin/chromium` and
//! `/usr/bin/chromedriver`. A missing one fails the test with a message
//! saying how to get it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e lives in the workspace").to_path_buf()
}

pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("unable to find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn require_file(path: &Path, hint: &str) -> Result<()> {
    if !path.exists() {
        bail!("{} is missing - {hint}", path.display());
    }
    Ok(())
}

/// Prints a measured figure and appends it to `target/e2e-metrics.txt`,
/// which the README's test command shows at the end of the run.
pub fn metric(name: &str, value: impl std::fmt::Display) {
    let line = format!("{name}={value}");
    println!("METRIC {line}");
    let path = workspace_root().join("target/e2e-metrics.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        use std::io::Write;
        let _ = writeln!(file, "{line}");
    }
}

/// The `admin` password every e2e server starts with.
pub const ADMIN_PASSWORD: &str = "e2e-admin-password";

/// A running `sendense serve`; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    pub port: u16,
    pub data_dir: tempfile::TempDir,
    child: Option<Child>,
    pub log: PathBuf,
    /// Whether the server creates the demo lab (`--demo-lab`).
    lab: bool,
    /// With `lab`: the lab also runs on real libvirt hosts (`--lab-guests`).
    lab_guests: bool,
    /// The engine's read cap (`SENDENSE_READ_LIMIT_BPS`; 0: none).
    read_limit_bps: u64,
    /// With `lab_guests`: this process's one turn to run a lab on libvirt
    /// (dropped after the server's own drop has stopped it).
    _lab_turn: Option<LabTurn>,
}

/// Whether a server of this process runs the lab on libvirt.
static LAB_GUESTS_RUNNING: AtomicBool = AtomicBool::new(false);

/// The turn [`Server::start_with_lab_guests`] takes; given back on drop.
struct LabTurn;

impl Drop for LabTurn {
    fn drop(&mut self) {
        LAB_GUESTS_RUNNING.store(false, Ordering::Release);
    }
}

/// Read-rate cap (bytes/s) the lab server's backups run at, so a test can
/// watch a backup of a small lab VM move, pause it and stop it.
pub const LAB_READ_LIMIT_BPS: u64 = 4 * 1024 * 1024;

impl Server {
    pub fn binary() -> Result<PathBuf> {
        let bin = std::env::var_os("SENDENSE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target/debug/sendense"));
        require_file(&bin, "build it with `cargo build -p sendense` (scripts/test.sh does)")?;
        Ok(bin)
    }

    pub fn web_dir() -> Result<PathBuf> {
        let dir = std::env::var_os("SENDENSE_WEB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("dist"));
        require_file(&dir.join("index.html"), "build the cockpit with scripts/build-web.sh (scripts/test.sh does)")?;
        Ok(dir)
    }

    /// Starts a server on a free port with a fresh data directory.
    pub fn start() -> Result<Self> {
        let data_dir = tempfile::Builder::new().prefix("sendense-e2e-").tempdir()?;
        let log = data_dir.path().join("server.log");
        let mut server = Self { port: free_port()?, data_dir, child: None, log, lab: false, lab_guests: false, read_limit_bps: 0, _lab_turn: None };
        server.launch()?;
        Ok(server)
    }

    /// Starts a server with the demo lab on its real libvirt hosts
    /// (`--demo-lab --lab-guests`, what scripts/run.sh runs): the guests boot
    /// and the hosts become platforms while the server already answers.
    /// Needs root, libvirt and the guest kit (scripts/test.sh installs them).
    /// Backups read at [`LAB_READ_LIMIT_BPS`], so a test can watch one move,
    /// pause and stop it.
    pub fn start_with_lab_guests() -> Result<Self> {
        Self::lab_guests_reading_at(LAB_READ_LIMIT_BPS)
    }

    /// [`Server::start_with_lab_guests`] with backups reading as fast as
    /// they can: for tests that need restore points, not to watch jobs run
    /// (a full backup of the lab's VMs takes ~90 s at the cap).
    pub fn start_with_lab_guests_at_full_speed() -> Result<Self> {
        Self::lab_guests_reading_at(0)
    }

    fn lab_guests_reading_at(read_limit_bps: u64) -> Result<Self> {
        // One lab on libvirt at a time in a test process: the lab's
        // networks have fixed bridge names in a lab slot (sdp-lan… in
        // slot 0, sd1p-lan… with SENDENSE_LAB_SLOT=1, inherited by the
        // server), so a second lab started beside it fails ("Network is
        // already in use"). Released when the server is dropped.
        while LAB_GUESTS_RUNNING.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err() {
            std::thread::sleep(Duration::from_millis(200));
        }
        let turn = LabTurn;
        let data_dir = tempfile::Builder::new().prefix("sendense-e2e-").tempdir()?;
        let log = data_dir.path().join("server.log");
        let mut server = Self { port: free_port()?, data_dir, child: None, log, lab: true, lab_guests: true, read_limit_bps, _lab_turn: Some(turn) };
        server.launch()?;
        Ok(server)
    }

    /// The id of the platform named `name`, once it is in the catalog (the
    /// lab's libvirt hosts are added when their guests are up).
    pub fn wait_platform(&self, token: &str, name: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, list) = self.call(token, "GET", "/api/v1/platforms", None)?;
            if let Some(id) = list.as_array().and_then(|a| a.iter().find(|p| p["name"] == name)).and_then(|p| p["id"].as_str()) {
                return Ok(id.to_string());
            }
            if Instant::now() > deadline {
                bail!("platform {name} was not added within {} s; log:\n{}", timeout.as_secs(), self.log_text());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Discovers the lab's VM `name` on the platform `platform` (once the
    /// platform is added) and adds it to management: its managed id.
    /// The id of the newest job of `kind` for the VM `vm` (catalog id),
    /// waiting up to a minute for one to be queued.
    pub fn newest_job(&self, vm: &str, kind: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let jobs = self.get_json(&format!("/api/v1/jobs?vm={vm}&kind={kind}"))?;
            if let Some(id) = jobs["items"].as_array().and_then(|a| a.first()).and_then(|j| j["id"].as_str()) {
                return Ok(id.to_owned());
            }
            anyhow::ensure!(Instant::now() < deadline, "no {kind} job of {vm} within a minute");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn manage_lab_vm(&self, token: &str, platform: &str, name: &str) -> Result<String> {
        let platform = self.wait_platform(token, platform, Duration::from_secs(180))?;
        let found = self.expect(token, "POST", "/api/v1/discovery/discover-vms", Some(serde_json::json!({"platform_id": platform})), 200)?;
        let vm = found["vms"]
            .as_array()
            .context("discover-vms answered no vms")?
            .iter()
            .find(|v| v["vm"]["name"] == name)
            .with_context(|| format!("{name} is not on {platform}"))?;
        let added = self.expect(
            token,
            "POST",
            "/api/v1/discovery/bulk-add",
            Some(serde_json::json!({"platform_id": platform, "vm_ids": [vm["vm"]["id"]]})),
            200,
        )?;
        Ok(added["added"][0]["id"].as_str().context("bulk-add answered no managed id")?.to_owned())
    }

    /// Runs `sendense lab activity --json` on the server's lab: one round,
    /// its report.
    pub fn lab_activity(&self) -> Result<serde_json::Value> {
        let out = std::process::Command::new(Self::binary()?).args(["lab", "activity", "--json", "--dir"]).arg(self.lab_dir()).output()?;
        if !out.status.success() {
            bail!("lab activity failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The server's data directory (`--data-dir`).
    pub fn data_path(&self) -> PathBuf {
        self.data_dir.path().join("data")
    }

    /// Where the demo lab lives: DATA_DIR/lab.
    pub fn lab_dir(&self) -> PathBuf {
        self.data_path().join("lab")
    }

    /// `GET` a JSON document of the API as admin.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let token = self.token("admin", ADMIN_PASSWORD)?;
        let mut resp = ureq::get(&self.url(path))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .with_context(|| format!("GET {path}"))?;
        Ok(resp.body_mut().read_json()?)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// (Re)starts the process on the same port and data directory, and waits
    /// until the health endpoint answers.
    pub fn launch(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut command = Command::new(Self::binary()?);
        command.arg("serve");
        if self.lab {
            command.arg("--demo-lab");
        }
        if self.lab_guests {
            command.arg("--lab-guests");
        }
        let child = command
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.data_dir.path().join("data"))
            .arg("--web-dir")
            .arg(Self::web_dir()?)
            .env_remove("DATABASE_URL")
            .env("SENDENSE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("SENDENSE_DEMO_LAB")
            .env("SENDENSE_READ_LIMIT_BPS", self.read_limit_bps.to_string())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("unable to start the sendense binary")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = ureq::get(&self.url("/api/v1/health")).call() {
                if resp.status() == 200 {
                    return Ok(());
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("the server exited ({status}) during start-up; log:\n{}", self.log_text());
                }
            }
            if Instant::now() > deadline {
                bail!("the server did not answer /api/v1/health within 30 s; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Signs in through the API; returns the bearer token.
    pub fn token(&self, username: &str, password: &str) -> Result<String> {
        let mut resp = ureq::post(&self.url("/api/v1/auth/login"))
            .send_json(serde_json::json!({"username": username, "password": password}))
            .with_context(|| format!("signing in as {username}"))?;
        let body: serde_json::Value = resp.body_mut().read_json()?;
        Ok(body["token"].as_str().context("no token in the sign-in answer")?.to_owned())
    }

    /// Creates a user through the API as admin.
    pub fn create_user(&self, username: &str, password: &str, role: &str) -> Result<()> {
        let admin = self.token("admin", ADMIN_PASSWORD)?;
        ureq::post(&self.url("/api/v1/users"))
            .header("authorization", &format!("Bearer {admin}"))
            .send_json(serde_json::json!({"username": username, "password": password, "role": role}))
            .with_context(|| format!("creating user {username}"))?;
        Ok(())
    }

    /// Stops the process with SIGTERM and waits for it to exit (graceful shutdown).
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else { bail!("the server is not running") };
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        // The lab's hosts and guests stop with the server: give them time.
        let deadline = Instant::now() + Duration::from_secs(if self.lab_guests { 90 } else { 15 });
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                child.kill()?;
                bail!("the server did not stop within its time after SIGTERM; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed or
    /// finished) and waits for it to be gone.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else { bail!("the server is not running") };
        child.kill().context("sending SIGKILL")?;
        child.wait()?;
        Ok(())
    }

    /// A request to the API as `token`: the status and the JSON body (4xx
    /// and 5xx are answers, not errors).
    pub fn call(&self, token: &str, method: &str, path: &str, body: Option<serde_json::Value>) -> Result<(u16, serde_json::Value)> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let auth = format!("Bearer {token}");
        let url = self.url(path);
        let mut resp = match (method, body) {
            ("GET", _) => agent.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => agent.delete(&url).header("authorization", &auth).call(),
            (m, b) => {
                let b = b.unwrap_or_else(|| serde_json::json!({}));
                match m {
                    "PATCH" => agent.patch(&url).header("authorization", &auth).send_json(b),
                    _ => agent.post(&url).header("authorization", &auth).send_json(b),
                }
            }
        }
        .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)))
    }

    /// [`Server::call`] that must answer `status`; the body.
    pub fn expect(&self, token: &str, method: &str, path: &str, body: Option<serde_json::Value>, status: u16) -> Result<serde_json::Value> {
        let (got, value) = self.call(token, method, path, body)?;
        if got != status {
            bail!("{method} {path}: expected {status}, got {got}: {value}");
        }
        Ok(value)
    }

    /// Waits up to `timeout` for job `id` to end; the job with its log.
    pub fn wait_job(&self, token: &str, id: &str, timeout: Duration) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let j = self.expect(token, "GET", &format!("/api/v1/jobs/{id}"), None, 200)?;
            if matches!(j["job"]["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
                return Ok(j);
            }
            if Instant::now() > deadline {
                bail!("job {id} did not end within {timeout:?}: {}", j["job"]);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// chromedriver plus one headless Chromium session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(width: u32, height: u32) -> Result<Self> {
        let chromium = PathBuf::from("/usr/bin/chromium");
        let chromedriver = PathBuf::from("/usr/bin/chromedriver");
        let hint = "install Debian's chromium and chromium-driver (scripts/test.sh does)";
        require_file(&chromium, hint)?;
        require_file(&chromedriver, hint)?;

        let port = free_port()?;
        // Its own process group: Chromium joins it, and dropping the browser
        // ends the whole group, so no Chromium outlives a failed test.
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("unable to start chromedriver")?;
        // Drain chromedriver's stderr so it can never block on a full pipe.
        if let Some(stderr) = driver.stderr.take() {
            std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
        }
        let profile = tempfile::Builder::new().prefix("sendense-chromium-").tempdir()?;
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ]
            }
        });
        let serde_json::Value::Object(caps) = caps else { unreachable!("a JSON object literal") };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(err) if Instant::now() > deadline => {
                    let _ = driver.kill();
                    bail!("unable to start a Chromium session through chromedriver: {err}");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let browser = Self { client, driver, _profile: profile };
        browser.resize(width, height).await?;
        Ok(browser)
    }

    /// From now on, every page this browser loads records its Content
    /// Security Policy violations (`securitypolicyviolation` events, from
    /// before the page's first script runs); read them with
    /// [`Browser::csp_violations`].
    pub async fn watch_csp(&self) -> Result<()> {
        let source = "window.__cspViolations = [];\n\
            document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(\n\
              `${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`));";
        let cmd = Cdp { cmd: "Page.addScriptToEvaluateOnNewDocument", params: serde_json::json!({ "source": source }) };
        self.client.issue_cmd(cmd).await.context("installing the CSP violation listener through chromedriver")?;
        Ok(())
    }

    /// The CSP violations the current page recorded since it loaded (see
    /// [`Browser::watch_csp`]); an error when the page is not watched.
    pub async fn csp_violations(&self) -> Result<Vec<String>> {
        let found = self.client.execute("return window.__cspViolations === undefined ? null : window.__cspViolations", vec![]).await?;
        let list = found.as_array().context("this page is not watched for CSP violations (call watch_csp before loading it)")?;
        Ok(list.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect())
    }

    /// Sets the viewport (not the window) to exactly `width` x `height`.
    pub async fn resize(&self, width: u32, height: u32) -> Result<()> {
        self.client.set_window_size(width, height).await?;
        let inner = self.client.execute("return [window.innerWidth, window.innerHeight]", vec![]).await?;
        let (iw, ih) = (inner[0].as_u64().unwrap_or(0) as u32, inner[1].as_u64().unwrap_or(0) as u32);
        if (iw, ih) != (width, height) {
            self.client.set_window_size(width + (width - iw.min(width)), height + (height - ih.min(height))).await?;
        }
        Ok(())
    }

    /// The element with `data-testid`, waiting up to `timeout` for it.
    pub async fn testid(&self, id: &str, timeout: Duration) -> Result<fantoccini::elements::Element> {
        let css = format!("[data-testid='{id}']");
        self.client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(&css))
            .await
            .with_context(|| format!("no element [data-testid='{id}'] appeared within {timeout:?}"))
    }

    /// Clicks the element with `data-testid` once it is there and enabled,
    /// waiting up to `timeout` for each; a click that lands on an element
    /// the page has just re-rendered (stale) is tried again, up to 5 times.
    pub async fn click_testid(&self, id: &str, timeout: Duration) -> Result<()> {
        let mut tries = 0;
        loop {
            let el = self.testid(id, timeout).await?;
            let enabled = self
                .until(&format!("{id} enabled"), timeout, || {
                    let el = el.clone();
                    async move { Ok(el.is_enabled().await?.then_some(())) }
                })
                .await;
            match enabled.and(el.click().await.map_err(anyhow::Error::from)) {
                Ok(()) => return Ok(()),
                Err(e) if tries < 5 && e.to_string().contains("stale") => tries += 1,
                Err(e) => return Err(e.context(format!("clicking {id}"))),
            }
        }
    }

    /// Signs in through the sign-in page and waits for the cockpit.
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<()> {
        self.testid("sign-in", Duration::from_secs(20)).await?;
        self.testid("sign-in-username", Duration::from_secs(5)).await?.send_keys(username).await?;
        self.testid("sign-in-password", Duration::from_secs(5)).await?.send_keys(password).await?;
        self.testid("sign-in-submit", Duration::from_secs(5)).await?.click().await?;
        self.testid("cockpit", Duration::from_secs(10)).await.with_context(|| format!("signing in as {username}"))?;
        Ok(())
    }

    /// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout`.
    pub async fn until<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            match check().await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                // An element found and then made again by the page (a keyed
                // list whose key holds what the row shows) before it was
                // read: not yet, look again.
                Err(e) if e.to_string().contains("stale element") && Instant::now() <= deadline => {}
                Err(e) => return Err(e),
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the page scrolls sideways: the document is wider than the window.
    pub async fn overflows(&self) -> Result<bool> {
        Ok(self
            .client
            .execute("return document.documentElement.scrollWidth > document.documentElement.clientWidth", vec![])
            .await?
            .as_bool()
            .unwrap_or(false))
    }

    /// Saves a PNG under `target/e2e-screenshots/NAME.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let dir = workspace_root().join("target/e2e-screenshots");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        let png = self.client.screenshot().await?;
        std::fs::write(&path, png)?;
        Ok(path)
    }

    pub async fn close(mut self) -> Result<()> {
        let result = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        result.map_err(Into::into)
    }
}

/// A Chrome DevTools Protocol command, sent through chromedriver's
/// `goog/cdp/execute` endpoint.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(serde_json::json!({ "cmd": self.cmd, "params": self.params }).to_string()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The bytes of `path` in partition `partition` (0-based) of a VM disk
/// image as it is now, read with guest-fs from a raw copy (`qemu-img
/// convert`), nothing mounted: what the guest would read.
pub fn guest_file(disk: &Path, partition: usize, path: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::sync::Arc;
    let tmp = tempfile::tempdir()?;
    let raw = tmp.path().join("disk.raw");
    let out = Command::new("qemu-img").args(["convert", "-U", "-O", "raw"]).arg(disk).arg(&raw).output()?;
    if !out.status.success() {
        bail!("qemu-img convert {}: {}", disk.display(), String::from_utf8_lossy(&out.stderr));
    }
    let image = guest_fs::FileDisk::open(&raw)?;
    let d = guest_fs::open(Arc::new(image)).with_context(|| format!("partition table of {}", disk.display()))?;
    let fs = d.filesystem(partition).with_context(|| format!("filesystem {partition} of {}", disk.display()))?;
    let mut bytes = Vec::new();
    fs.open_file(&guest_fs::GuestPath::parse(path)?)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}
