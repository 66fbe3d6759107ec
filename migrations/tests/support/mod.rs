//! A throw-away PostgreSQL server for tests: `initdb` into a temporary
//! directory, started on a free loopback port, stopped on drop. Runs the
//! server as the `postgres` user when the tests run as root (PostgreSQL
//! refuses to run as root). Needs Debian's `postgresql` package.

use std::path::PathBuf;
use std::process::Command;

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn pg_bin() -> Result<PathBuf, String> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed: install Debian's `postgresql` package (scripts/test.sh does)".to_string())?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_string())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PgCluster {
    pub fn start() -> Result<Self, String> {
        let bin = pg_bin()?;
        let dir = tempfile::Builder::new().prefix("sendense-pg-").tempdir().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let cluster = Self { dir, bin, port };
        if is_root() {
            let status = Command::new("chown").arg("-R").arg("postgres:postgres").arg(cluster.dir.path()).status();
            if !status.map(|s| s.success()).unwrap_or(false) {
                return Err("unable to hand the test cluster's directory to the postgres user".into());
            }
        }
        cluster.run(
            "initdb",
            &["-D", &cluster.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        )?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            cluster.port,
            cluster.dir.path().display()
        );
        let log = cluster.dir.path().join("server.log").display().to_string();
        cluster.run("pg_ctl", &["-D", &cluster.data(), "-o", &options, "-l", &log, "-w", "-t", "60", "start"])?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs a PostgreSQL program, as the postgres user when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).current_dir(self.dir.path()).output().map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}
