//! `lab activity` on the libvirt lab: each running guest on the production
//! host is asked, over its serial console, to do a round of its role's work
//! through its own filesystem (web: a new home page and a script bundle;
//! database: data pages rewritten; file share: a new document; others: log
//! lines), `sync`, and say what it wrote: one `WROTE <path> <bytes>
//! <sha256>` line per file, path as in the guest's data filesystem (the
//! partition the guest mounts first for its role: `/var/www/html/index.html`
//! of web-01 is that file of its `disk0-p1` in a restore point).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::guest_console::GuestConsole;
use super::libvirt_lab;

/// How long one guest may take for its round (TCG is slow, sync is slower).
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestActivityReport {
    pub started_at: DateTime<Utc>,
    pub seconds: f64,
    /// Bytes of file data the guests wrote.
    pub bytes_written: u64,
    pub guests: Vec<GuestActivity>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestActivity {
    pub vm: String,
    pub role: String,
    /// Why the guest was left alone (shut off, or it did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub files: Vec<GuestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestFile {
    /// Path inside the guest's data filesystem.
    pub path: String,
    /// Bytes written this round.
    pub bytes_written: u64,
    /// The file's size and SHA-256 after the round, as the guest read them.
    pub size: u64,
    pub sha256: String,
}

/// The shell line a guest of `role` runs for one round. `$data` is its data
/// filesystem's mount point and `$name` its name (the init's variables).
fn round_line(role: &str) -> String {
    // w FILE BYTES: report a file the round wrote BYTES of.
    let report = "w() { echo \"WROTE ${1#$data} $2 $(wc -c < $1) $(sha256sum $1 | cut -d' ' -f1)\"; }";
    let work = match role {
        "web" => concat!(
            "mkdir -p $data/var/www/html/assets; ",
            "echo \"<html><body><h1>$name</h1><p>release $(date +%s) build $RANDOM</p></body></html>\" > $data/var/www/html/index.html; ",
            "dd if=/dev/urandom of=$data/var/www/html/assets/bundle.js bs=65536 count=4 2>/dev/null; sync; ",
            "w $data/var/www/html/index.html $(wc -c < $data/var/www/html/index.html); w $data/var/www/html/assets/bundle.js 262144"
        ),
        "database" | "db" => concat!(
            "mkdir -p $data/pgdata; i=0; while [ $i -lt 32 ]; do ",
            "dd if=/dev/urandom of=$data/pgdata/heap.0 bs=8192 seek=$((RANDOM % 512)) count=1 conv=notrunc 2>/dev/null; i=$((i+1)); done; sync; ",
            "w $data/pgdata/heap.0 262144"
        ),
        "fileserver" | "files" => concat!(
            "mkdir -p $data/share/reports; f=$data/share/reports/report-$(date +%s)-$RANDOM.bin; ",
            "dd if=/dev/urandom of=$f bs=65536 count=8 2>/dev/null; sync; w $f 524288"
        ),
        _ => concat!(
            "mkdir -p $data/var/log; f=$data/var/log/app.log; s0=$(cat $f 2>/dev/null | wc -c); i=0; ",
            "while [ $i -lt 64 ]; do echo \"$(date) $name request $RANDOM served\" >> $f; i=$((i+1)); done; sync; ",
            "w $f $(( $(wc -c < $f) - s0 ))"
        ),
    };
    format!("{report}; if [ -z \"$data\" ]; then echo 'NO-DATA no filesystem to write to'; else {work}; fi")
}

fn parse(output: &str) -> Vec<GuestFile> {
    output
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("WROTE ")?;
            let mut f = rest.split_whitespace();
            let path = f.next()?.to_string();
            let bytes_written = f.next()?.parse().ok()?;
            let size = f.next()?.parse().ok()?;
            let sha256 = f.next()?.to_string();
            (sha256.len() == 64).then_some(GuestFile { path, bytes_written, size, sha256 })
        })
        .collect()
}

/// Whether the lab in `dir` runs on libvirt (its production host is up).
pub fn running(dir: &Path) -> bool {
    libvirt_lab::hosts(dir)[0].is_running()
}

/// One round on every guest of the production host.
pub fn round(dir: &Path) -> Result<GuestActivityReport> {
    let started_at = Utc::now();
    let started = Instant::now();
    let host = &libvirt_lab::hosts(dir)[0];
    let conn = crate::platforms::libvirt::open(&host.uri())?;
    let mut doms = conn.list_all_domains(0).context("listing the lab's guests")?;
    doms.sort_by_key(|d| d.name().unwrap_or_default());
    let mut guests = Vec::new();
    for dom in doms {
        let vm = dom.name().unwrap_or_default();
        let xml = dom.xml_desc(0).unwrap_or_default();
        let def = crate::platforms::libvirt::domain_xml::parse_domain(&xml).ok();
        let role = def.as_ref().and_then(|d| d.role.clone()).unwrap_or_else(|| "app".into());
        let pty = def.and_then(|d| d.console_pty);
        // The word the guest's init got (lab::guest::domain_xml): `file-server` → `fileserver`.
        let role_word: String = role.split_whitespace().next().unwrap_or("app").chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let mut g = GuestActivity { vm: vm.clone(), role: role.clone(), skipped: None, files: Vec::new() };
        if !dom.is_active().unwrap_or(false) {
            g.skipped = Some("shut off".into());
            guests.push(g);
            continue;
        }
        let done = (|| -> Result<Vec<GuestFile>> {
            let pty = pty.context("the guest has no pty console")?;
            let mut console = GuestConsole::open(Path::new(&pty))?;
            let out = console.run(&round_line(&role_word), ROUND_TIMEOUT)?;
            if out.contains("NO-DATA") {
                anyhow::bail!("no filesystem to write to");
            }
            Ok(parse(&out))
        })();
        match done {
            Ok(files) => g.files = files,
            Err(e) => g.skipped = Some(format!("{e:#}")),
        }
        guests.push(g);
    }
    let bytes_written = guests.iter().flat_map(|g| &g.files).map(|f| f.bytes_written).sum();
    Ok(GuestActivityReport { started_at, seconds: started.elapsed().as_secs_f64(), bytes_written, guests })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrote_lines_are_read_and_noise_is_not() {
        let sha = "a".repeat(64);
        let out = format!("junk\r\nWROTE /var/www/html/index.html 80 80 {sha}\r\nWROTE /x 1 2 short\r\n");
        let files = parse(&out);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "/var/www/html/index.html");
        assert_eq!((files[0].bytes_written, files[0].size), (80, 80));
    }

    #[test]
    fn every_role_reports_what_it_wrote() {
        for role in ["web", "database", "fileserver", "app"] {
            let line = round_line(role);
            assert!(line.contains("; w $") && !line.contains('\n'), "{role}: {line}");
        }
    }
}
