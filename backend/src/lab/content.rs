//! The files inside the lab's filesystems, generated deterministically from
//! the VM's name (timestamps follow the clock): text that reads like the
//! real thing (logs with timestamps, HTML, configuration, CSV, JSON), and
//! binary formats as their magic bytes followed by incompressible data
//! (executables, images, office documents, compressed archives). Database
//! files are 8 KiB pages of rows; registry hives 4 KiB bins.
//!
//! [`paths`] names the files `lab activity` changes later.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use super::catalog::Content;
use super::filesystem::FsKind;
use super::rng::Rng;
use super::{LabError, Result};

/// Files that `lab activity` appends to, rewrites or writes next to.
pub mod paths {
    pub const SYSLOG: &str = "/var/log/syslog";
    pub const ACCESS_LOG: &str = "/var/log/nginx/access.log";
    pub const ERROR_LOG: &str = "/var/log/nginx/error.log";
    pub const WEB_ROOT: &str = "/var/www/html";
    pub const WEB_INDEX: &str = "/var/www/html/index.html";
    pub const WEB_NEWS: &str = "/var/www/html/news";
    pub const PG_LOG: &str = "/var/log/postgresql/postgresql-15-main.log";
    /// On the database data disk (mounted at /var/lib/postgresql).
    pub const PG_BASE: &str = "/15/main/base/16384";
    pub const PG_WAL: &str = "/15/main/pg_wal";
    pub const PG_EXPORTS: &str = "/exports";
    pub const SAMBA_LOG: &str = "/var/log/samba/log.smbd";
    /// On the file share (mounted at /srv/share).
    pub const LEDGER: &str = "/Finance/2026/General Ledger 2026.csv";
    pub const ROSTER: &str = "/HR/2026/Staff roster.xlsx";
    pub const APP_LOG: &str = "/var/log/orders-api/app.log";
    pub const APP_CACHE: &str = "/opt/orders-api/data/cache.json";
    pub const CBS_LOG: &str = "/Windows/Logs/CBS/CBS.log";
    pub const SOFTWARE_HIVE: &str = "/Windows/System32/config/SOFTWARE";
    pub const BUDGET: &str = "/Users/alice/Documents/Budget 2026.xlsx";
    pub const DOWNLOADS: &str = "/Users/alice/Downloads";
    pub const BCD: &str = "/EFI/Microsoft/Boot/BCD";
    /// The departments of the file share (top-level directories).
    pub const DEPARTMENTS: [&str; 10] = ["Finance", "HR", "Sales", "Marketing", "Engineering", "Legal", "IT", "Operations", "Projects", "Public"];
}

/// PostgreSQL relations of the shop database: name, relfilenode, MiB.
pub const PG_RELATIONS: [(&str, &str, u64); 5] =
    [("customers", "16385", 4), ("orders", "16392", 12), ("order_items", "16398", 16), ("products", "16404", 2), ("orders_pkey", "16411", 3)];
pub const PG_PAGE: usize = 8192;
pub const WAL_SEGMENT: &str = "00000001000000000000003F";

/// The VM a filesystem belongs to, as its files describe it.
pub struct Guest {
    pub hostname: String,
    pub role: String,
    pub efi: bool,
    pub now: DateTime<Utc>,
    pub nics: Vec<GuestNic>,
    pub mounts: Vec<GuestMount>,
}

pub struct GuestNic {
    pub network: String,
    pub ip: String,
    pub mac: String,
}

pub struct GuestMount {
    pub mount: String,
    pub kind: FsKind,
    pub uuid: String,
}

impl GuestMount {
    /// The UUID as blkid and fstab spell it (`ABCD-1234` for FAT).
    pub fn fstab_uuid(&self) -> String {
        if self.kind == FsKind::Vfat && self.uuid.len() == 8 {
            format!("{}-{}", &self.uuid[..4], &self.uuid[4..]).to_uppercase()
        } else {
            self.uuid.clone()
        }
    }
}

/// A directory tree being filled (the source of `mkfs -d` and friends).
pub struct Tree {
    root: PathBuf,
    pub files: u64,
    pub bytes: u64,
}

impl Tree {
    pub fn new(root: &Path) -> Result<Tree> {
        std::fs::create_dir_all(root).map_err(|e| LabError::io(format!("creating {}", root.display()), e))?;
        Ok(Tree { root: root.into(), files: 0, bytes: 0 })
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    pub fn dir(&mut self, path: &str) -> Result<()> {
        let p = self.full(path);
        std::fs::create_dir_all(&p).map_err(|e| LabError::io(format!("creating {}", p.display()), e))
    }

    pub fn file(&mut self, path: &str, data: impl AsRef<[u8]>) -> Result<()> {
        let p = self.full(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LabError::io(format!("creating {}", parent.display()), e))?;
        }
        let data = data.as_ref();
        std::fs::write(&p, data).map_err(|e| LabError::io(format!("writing {}", p.display()), e))?;
        self.files += 1;
        self.bytes += data.len() as u64;
        Ok(())
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let p = self.full(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LabError::io(format!("creating {}", parent.display()), e))?;
        }
        std::os::unix::fs::symlink(target, &p).map_err(|e| LabError::io(format!("linking {}", p.display()), e))
    }
}

/// Fills `tree` with the content of a filesystem of `guest`.
pub fn generate(content: Content, guest: &Guest, tree: &mut Tree) -> Result<()> {
    let mut rng = Rng::seeded(&format!("{}/{content:?}", guest.hostname));
    match content {
        Content::LinuxRoot => linux_root(guest, tree, &mut rng),
        Content::DebianEsp => debian_esp(guest, tree),
        Content::PostgresData => postgres_data(guest, tree, &mut rng),
        Content::FileShare => file_share(guest, tree, &mut rng),
        Content::WindowsEsp => windows_esp(tree, &mut rng),
        Content::WindowsSystem => windows_system(guest, tree, &mut rng),
        Content::Empty => Ok(()),
    }
}

// ---------------------------------------------------------------- binary data

const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x00\x48\x00\x48\x00\x00";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR";
const ZIP: &[u8] = b"PK\x03\x04\x14\x00\x06\x00\x08\x00";
const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00";
const GZIP: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03";
const ZSTD: &[u8] = b"\x28\xb5\x2f\xfd";
const PE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00\x00\x00\x00\x00@\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x00\x00\x00\x0e\x1f\xba\x0e\x00\xb4\t\xcd!\xb8\x01L\xcd!This program cannot be run in DOS mode.\r\r\n$\x00\x00\x00\x00\x00\x00\x00";

/// `magic` followed by random bytes, `size` in all (compressed or encoded data).
pub fn blob(rng: &mut Rng, magic: &[u8], size: usize) -> Vec<u8> {
    let mut v = rng.bytes(size.max(magic.len()));
    v[..magic.len()].copy_from_slice(magic);
    v
}

/// A binary of `size` bytes with a fixed seed, so the same program is the
/// same bytes on every VM (as on real installs).
fn program(name: &str, magic: &[u8], size: usize) -> Vec<u8> {
    blob(&mut Rng::seeded(&format!("program/{name}")), magic, size)
}

// ------------------------------------------------------------------ words

const WORDS: [&str; 64] = [
    "customer", "order", "delivery", "invoice", "quarterly", "review", "team", "project", "service", "update", "release", "support", "network", "storage",
    "backup", "policy", "security", "report", "budget", "forecast", "meeting", "schedule", "product", "catalog", "price", "discount", "warehouse",
    "shipment", "account", "payment", "contract", "partner", "supplier", "quality", "process", "improvement", "migration", "capacity", "performance",
    "availability", "incident", "change", "approval", "training", "onboarding", "compliance", "audit", "summary", "roadmap", "milestone", "deadline",
    "estimate", "revenue", "margin", "growth", "region", "office", "inventory", "request", "feedback", "analysis", "design", "proposal", "strategy",
];
const FIRST: [&str; 16] =
    ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack", "Karen", "Liam", "Maria", "Nina", "Oscar", "Paula"];
const LAST: [&str; 16] = [
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Wilson", "Moore", "Taylor", "Anderson", "Thomas", "Martin", "Lee", "Clark", "Lewis", "Walker",
];
const COMPANIES: [&str; 12] = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne", "Soylent", "Vandelay"];
const CITIES: [&str; 10] = ["Berlin", "Paris", "Madrid", "Rome", "Vienna", "Prague", "Warsaw", "Lisbon", "Dublin", "Oslo"];

pub fn sentence(rng: &mut Rng) -> String {
    let n = rng.range(6, 14) as usize;
    let mut s = String::new();
    for i in 0..n {
        let w = *rng.pick(&WORDS);
        if i == 0 {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                s.extend(f.to_uppercase());
                s.push_str(c.as_str());
            }
        } else {
            s.push(' ');
            s.push_str(w);
        }
    }
    s.push('.');
    s
}

fn paragraph(rng: &mut Rng) -> String {
    (0..rng.range(3, 7)).map(|_| sentence(rng)).collect::<Vec<_>>().join(" ")
}

fn person(rng: &mut Rng) -> (String, String) {
    (rng.pick(&FIRST).to_string(), rng.pick(&LAST).to_string())
}

fn title(rng: &mut Rng) -> String {
    let s = sentence(rng);
    s.trim_end_matches('.').split(' ').take(rng.range(2, 5) as usize).collect::<Vec<_>>().join(" ")
}

// ------------------------------------------------------------------- logs

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// `n` timestamps from `start` to `end`, in order.
fn times(rng: &mut Rng, start: DateTime<Utc>, end: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let span = (end - start).num_milliseconds().max(1) as u64;
    let mut v: Vec<DateTime<Utc>> = (0..n).map(|_| start + Duration::milliseconds(rng.below(span) as i64)).collect();
    v.sort();
    v
}

const CLIENTS: [&str; 12] = [
    "203.0.113.17", "203.0.113.45", "198.51.100.23", "198.51.100.78", "192.0.2.14", "192.0.2.201", "203.0.113.92", "198.51.100.150", "10.10.0.5",
    "203.0.113.160", "192.0.2.66", "198.51.100.9",
];
const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/7.88.1",
];

/// nginx "combined" access log lines.
pub fn access_log(rng: &mut Rng, start: DateTime<Utc>, end: DateTime<Utc>, n: usize) -> String {
    let mut out = String::with_capacity(n * 200);
    for t in times(rng, start, end, n) {
        let page = match rng.below(10) {
            0 => "/".to_string(),
            1..=4 => format!("/products/{}-{}.html", rng.pick(&WORDS), rng.range(1, 60)),
            5 => format!("/assets/img/photo-{:03}.jpg", rng.range(1, 40)),
            6 => "/assets/css/site.css".into(),
            7 => "/assets/js/app.js".into(),
            8 => format!("/news/{}.html", rng.pick(&WORDS)),
            _ => format!("/api/v1/stock?sku={}", rng.range(10000, 99999)),
        };
        let status = match rng.below(100) {
            0..=84 => 200,
            85..=91 => 304,
            92..=96 => 404,
            97..=98 => 301,
            _ => 502,
        };
        let bytes = if status == 200 { rng.range(300, 90_000) } else { rng.range(0, 600) };
        let method = if page.starts_with("/api") && rng.chance(30) { "POST" } else { "GET" };
        let _ = writeln!(
            out,
            "{} - - [{}] \"{method} {page} HTTP/1.1\" {status} {bytes} \"{}\" \"{}\"",
            rng.pick(&CLIENTS),
            t.format("%d/%b/%Y:%H:%M:%S +0000"),
            if rng.chance(40) { "https://www.example.com/" } else { "-" },
            rng.pick(&AGENTS)
        );
    }
    out
}

pub fn nginx_errors(rng: &mut Rng, start: DateTime<Utc>, end: DateTime<Utc>, n: usize) -> String {
    let mut out = String::new();
    for t in times(rng, start, end, n) {
        let _ = writeln!(
            out,
            "{} [error] {}#{}: *{} open() \"/var/www/html/{}.html\" failed (2: No such file or directory), client: {}, server: www.example.com, request: \"GET /{}.html HTTP/1.1\"",
            t.format("%Y/%m/%d %H:%M:%S"),
            rng.range(700, 760),
            0,
            rng.range(1000, 999_999),
            rng.pick(&WORDS),
            rng.pick(&CLIENTS),
            rng.pick(&WORDS)
        );
    }
    out
}

/// rsyslog lines (Debian 12's high-precision format) from the services of `role`.
pub fn syslog(rng: &mut Rng, host: &str, role: &str, start: DateTime<Utc>, end: DateTime<Utc>, n: usize) -> String {
    let mut out = String::with_capacity(n * 120);
    for t in times(rng, start, end, n) {
        let pid = rng.range(400, 60000);
        let msg = match rng.below(9) {
            0 => format!("CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
            1 => "systemd[1]: Starting apt-daily.service - Daily apt download activities...".into(),
            2 => "systemd[1]: logrotate.service: Deactivated successfully.".into(),
            3 => format!("sshd[{pid}]: Accepted publickey for deploy from 10.10.0.5 port {} ssh2: ED25519 SHA256:{}", rng.range(40000, 65000), rng.hex(16)),
            4 => format!("systemd-timesyncd[{}]: Contacted time server 10.10.0.1:123 (ntp.lab.internal).", rng.range(300, 500)),
            5 => format!("kernel: [{}.{:06}] perf: interrupt took too long, lowering kernel.perf_event_max_sample_rate", rng.range(1000, 900000), rng.below(1_000_000)),
            _ => match role {
                "web" => format!("nginx[{pid}]: worker process {} exited on signal 0", rng.range(700, 760)),
                "database" => format!("postgres[{pid}]: [{}] LOG:  checkpoint starting: time", rng.range(1, 9)),
                "file-server" => format!("smbd[{pid}]: [{}] ../../source3/smbd/server.c:1741(main) smbd version 4.17.12-Debian started.", t.format("%Y/%m/%d %H:%M:%S")),
                "application" => format!("orders-api[{pid}]: {} INFO  o.e.orders.Scheduler - reconciled {} payments", t.format("%H:%M:%S%.3f"), rng.range(1, 400)),
                _ => format!("systemd[1]: Started session-{}.scope - Session of User deploy.", rng.range(1, 900)),
            },
        };
        let _ = writeln!(out, "{} {host} {msg}", rfc3339(t));
    }
    out
}

pub fn postgres_log(rng: &mut Rng, start: DateTime<Utc>, end: DateTime<Utc>, n: usize) -> String {
    let mut out = String::new();
    for t in times(rng, start, end, n) {
        let pid = rng.range(1000, 90000);
        let msg = match rng.below(6) {
            0 => format!(
                "[{pid}] LOG:  checkpoint complete: wrote {} buffers ({:.1}%); 0 WAL file(s) added, 0 removed, 1 recycled; write={:.3} s, sync={:.3} s, total={:.3} s",
                rng.range(20, 4000),
                rng.below(300) as f64 / 10.0,
                rng.below(30000) as f64 / 1000.0,
                rng.below(200) as f64 / 1000.0,
                rng.below(30000) as f64 / 1000.0
            ),
            1 => format!("[{pid}] shop@shop LOG:  duration: {}.{:03} ms  statement: SELECT o.id, o.total FROM orders o WHERE o.customer_id = {} ORDER BY o.created_at DESC LIMIT 20", rng.range(200, 2500), rng.below(1000), rng.range(1, 40000)),
            2 => format!("[{pid}] LOG:  automatic vacuum of table \"shop.public.order_items\": index scans: 1, pages: 0 removed, {} remain", rng.range(1000, 3000)),
            3 => format!("[{pid}] shop@shop ERROR:  duplicate key value violates unique constraint \"orders_pkey\""),
            _ => format!("[{pid}] LOG:  connection authorized: user=shop database=shop application_name=orders-api"),
        };
        let _ = writeln!(out, "{} UTC {msg}", t.format("%Y-%m-%d %H:%M:%S%.3f"));
    }
    out
}

pub fn samba_log(rng: &mut Rng, start: DateTime<Utc>, end: DateTime<Utc>, n: usize) -> String {
    let mut out = String::new();
    for t in times(rng, start, end, n) {
        let (first, _) = person(rng);
        let user = first.to_lowercase();
        let ip = format!("10.10.0.{}", rng.range(100, 220));
        let _ = writeln!(
            out,
            "[{}.{:06},  2] ../../source3/smbd/service.c:1123(make_connection_snum)\n  {ip} (ipv4:{ip}:{}) connect to service {} initially as user {user} (uid={}, gid=1001) (pid {})",
            t.format("%Y/%m/%d %H:%M:%S"),
            rng.below(1_000_000),
            rng.range(49152, 65535),
            rng.pick(&paths::DEPARTMENTS),
            rng.range(1001, 1040),
            rng.range(1000, 60000)
        );
    }
    out
}

pub fn app_log(rng: &mut Rng, start: DateTime<Utc>, end: DateTime<Utc>, n: usize) -> String {
    let mut out = String::new();
    for t in times(rng, start, end, n) {
        let (level, msg) = match rng.below(20) {
            0 => ("WARN", "payment provider slow".to_string()),
            1 => ("ERROR", "order rejected: stock reservation failed".to_string()),
            2..=9 => ("INFO", "order created".to_string()),
            10..=15 => ("INFO", "order shipped".to_string()),
            _ => ("DEBUG", "cache refreshed".to_string()),
        };
        let _ = writeln!(
            out,
            "{{\"ts\":\"{}\",\"level\":\"{level}\",\"logger\":\"orders.api\",\"msg\":\"{msg}\",\"order_id\":{},\"customer_id\":{},\"duration_ms\":{},\"trace_id\":\"{}\"}}",
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            rng.range(100_000, 999_999),
            rng.range(1, 40_000),
            rng.range(2, 900),
            rng.hex(8)
        );
    }
    out
}

pub fn cbs_log(rng: &mut Rng, start: DateTime<Utc>, end: DateTime<Utc>, n: usize) -> String {
    let mut out = String::new();
    for t in times(rng, start, end, n) {
        let msg = match rng.below(5) {
            0 => format!("Session: 31{}_{} initialized by client WindowsUpdateAgent, external staging directory: (null), external registry directory: (null)", rng.range(100000, 999999), rng.range(1000000000, 9999999999)),
            1 => "Loaded Servicing Stack v10.0.20348.2700 with Core: C:\\Windows\\winsxs\\amd64_microsoft-windows-servicingstack_31bf3856ad364e35_10.0.20348.2700_none_f1b6c2c7e4b1d2a3\\cbscore.dll".into(),
            2 => format!("Appl: detect Parent, Package: Package_for_RollupFix~31bf3856ad364e35~amd64~~20348.{}.1.{}, Parent: Microsoft-Windows-ServerDatacenterEdition~31bf3856ad364e35~amd64~~10.0.20348.1, Disposition = Detect, VersionComp: EQ, ServiceComp: GE, BuildComp: EQ, DistributionComp: GE, RevisionComp: GE, Exist: present", rng.range(2000, 2900), rng.range(1, 20)),
            3 => "Ending TrustedInstaller finalization.".into(),
            _ => format!("Reboot mark refs: {}", rng.range(0, 3)),
        };
        let _ = writeln!(out, "{}, Info                  CBS    {msg}", t.format("%Y-%m-%d %H:%M:%S"));
    }
    out
}

// ------------------------------------------------------------- web content

fn html_page(rng: &mut Rng, site: &str, title: &str, extra: &str) -> String {
    let mut body = String::new();
    for _ in 0..rng.range(3, 8) {
        let _ = writeln!(body, "      <p>{}</p>", paragraph(rng));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n  <title>{title} | {site}</title>\n  <link rel=\"stylesheet\" href=\"/assets/css/site.css\">\n  <script src=\"/assets/js/app.js\" defer></script>\n</head>\n<body>\n  <header>\n    <nav><a href=\"/\">Home</a> <a href=\"/products/\">Products</a> <a href=\"/news/\">News</a> <a href=\"/contact.html\">Contact</a></nav>\n  </header>\n  <main>\n    <article>\n      <h1>{title}</h1>\n{body}{extra}    </article>\n  </main>\n  <footer>&copy; 2026 Example Trading Ltd. &middot; {site}</footer>\n</body>\n</html>\n"
    )
}

/// The home page of a web VM; `lab activity` rewrites it with fresh news.
pub fn web_index(rng: &mut Rng, site: &str, now: DateTime<Utc>) -> String {
    let mut news = String::from("      <section class=\"news\"><h2>Latest news</h2><ul>\n");
    for i in 0..5 {
        let _ = writeln!(news, "        <li><time>{}</time> {}</li>", (now - Duration::days(i)).format("%Y-%m-%d %H:%M"), sentence(rng));
    }
    news.push_str("      </ul></section>\n");
    html_page(rng, site, "Welcome", &news)
}

pub fn news_page(rng: &mut Rng, site: &str) -> String {
    let t = title(rng);
    html_page(rng, site, &t, "")
}

// -------------------------------------------------------------- Linux root

const PACKAGES: [(&str, &str); 40] = [
    ("adduser", "3.134"), ("apt", "2.6.1"), ("base-files", "12.4+deb12u8"), ("bash", "5.2.15-2+b7"), ("bsdutils", "1:2.38.1-5+deb12u2"),
    ("ca-certificates", "20230311"), ("coreutils", "9.1-1"), ("cron", "3.0pl1-162"), ("curl", "7.88.1-10+deb12u8"), ("dbus", "1.14.10-1~deb12u1"),
    ("debconf", "1.5.82"), ("dpkg", "1.21.22"), ("e2fsprogs", "1.47.0-2"), ("findutils", "4.9.0-4"), ("gpgv", "2.2.40-1.1"), ("grep", "3.8-5"),
    ("grub-common", "2.06-13+deb12u1"), ("gzip", "1.12-1"), ("hostname", "3.23+nmu1"), ("ifupdown", "0.8.41"), ("init-system-helpers", "1.65.2"),
    ("iproute2", "6.1.0-3"), ("less", "590-2.1~deb12u2"), ("libc6", "2.36-9+deb12u9"), ("libssl3", "3.0.15-1~deb12u1"), ("linux-image-6.1.0-28-amd64", "6.1.119-1"),
    ("login", "1:4.13+dfsg1-1+b1"), ("logrotate", "3.21.0-1"), ("mount", "2.38.1-5+deb12u2"), ("openssh-server", "1:9.2p1-2+deb12u3"),
    ("passwd", "1:4.13+dfsg1-1+b1"), ("procps", "2:4.0.2-3"), ("rsyslog", "8.2302.0-1"), ("sed", "4.9-1"), ("sudo", "1.9.13p3-1+deb12u1"),
    ("systemd", "252.31-1~deb12u1"), ("tar", "1.34+dfsg-1.2+deb12u1"), ("tzdata", "2024b-0+deb12u1"), ("util-linux", "2.38.1-5+deb12u2"), ("vim-tiny", "2:9.0.1378-2"),
];

fn role_packages(role: &str) -> &'static [(&'static str, &'static str)] {
    match role {
        "web" => &[("nginx", "1.22.1-9"), ("nginx-common", "1.22.1-9"), ("certbot", "2.1.0-4")],
        "database" => &[("postgresql-15", "15.10-0+deb12u1"), ("postgresql-client-15", "15.10-0+deb12u1"), ("postgresql-common", "248")],
        "file-server" => &[("samba", "2:4.17.12+dfsg-0+deb12u1"), ("samba-common-bin", "2:4.17.12+dfsg-0+deb12u1"), ("acl", "2.3.1-3")],
        "application" => &[("openjdk-17-jre-headless", "17.0.13+11-2~deb12u1"), ("shim-signed", "1.44~1+deb12u1+15.8-1~deb12u1"), ("grub-efi-amd64-signed", "1+2.06+13+deb12u1")],
        _ => &[],
    }
}

fn linux_root(g: &Guest, t: &mut Tree, rng: &mut Rng) -> Result<()> {
    let host = g.hostname.as_str();
    let now = g.now;
    let day = Duration::days(1);
    let midnight = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();

    // /etc
    t.file("/etc/hostname", format!("{host}\n"))?;
    t.file("/etc/debian_version", "12.8\n")?;
    t.file(
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n",
    )?;
    let mut hosts = format!("127.0.0.1\tlocalhost\n127.0.1.1\t{host}.lab.internal\t{host}\n");
    for (name, last) in [("web-01", 11), ("web-02", 12), ("db-01", 21), ("files-01", 31), ("app-01", 41), ("win-01", 51)] {
        let _ = writeln!(hosts, "10.10.0.{last}\t{name}.lab.internal\t{name}");
    }
    hosts.push_str("\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
    t.file("/etc/hosts", hosts)?;
    let mut fstab = String::from("# /etc/fstab: static file system information.\n#\n# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n");
    for m in &g.mounts {
        let (ty, opts, pass) = match (m.kind, m.mount.as_str()) {
            (FsKind::Ext4, "/") => ("ext4", "errors=remount-ro", 1),
            (FsKind::Ext4, _) => ("ext4", "defaults,noatime", 2),
            (FsKind::Vfat, _) => ("vfat", "umask=0077", 1),
            (FsKind::Swap, _) => ("swap", "sw", 0),
            (FsKind::Ntfs, _) => ("ntfs-3g", "defaults", 0),
        };
        let _ = writeln!(fstab, "UUID={} {:<15} {ty:<7} {opts:<15} 0       {pass}", m.fstab_uuid(), if m.kind == FsKind::Swap { "none" } else { &m.mount });
    }
    t.file("/etc/fstab", fstab)?;
    let mut ifaces = String::from("# This file describes the network interfaces available on your system\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n");
    for (i, nic) in g.nics.iter().enumerate() {
        let gw = nic.ip.rsplit_once('.').map(|(n, _)| format!("{n}.1")).unwrap_or_default();
        let _ = write!(ifaces, "\n# {} ({})\nallow-hotplug ens{}\niface ens{} inet static\n    address {}/24\n", nic.network, nic.mac, i + 3, i + 3, nic.ip);
        if i == 0 {
            let _ = writeln!(ifaces, "    gateway {gw}");
        }
    }
    t.file("/etc/network/interfaces", ifaces)?;
    t.file("/etc/resolv.conf", "search lab.internal\nnameserver 10.10.0.2\nnameserver 10.10.0.3\n")?;
    t.file("/etc/timezone", "Etc/UTC\n")?;
    t.file(
        "/etc/apt/sources.list",
        "deb http://deb.debian.org/debian bookworm main contrib non-free-firmware\ndeb http://deb.debian.org/debian bookworm-updates main contrib non-free-firmware\ndeb http://security.debian.org/debian-security bookworm-security main contrib non-free-firmware\n",
    )?;
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nsshd:x:104:65534::/run/sshd:/usr/sbin/nologin\ndeploy:x:1000:1000:Deploy,,,:/home/deploy:/bin/bash\n");
    match g.role.as_str() {
        "database" => passwd.push_str("postgres:x:105:111:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n"),
        "application" => passwd.push_str("orders:x:999:999:orders-api service:/opt/orders-api:/usr/sbin/nologin\n"),
        "file-server" => {
            for (i, f) in FIRST.iter().enumerate() {
                let _ = writeln!(passwd, "{}:x:{}:1001:{f},,,:/home/{}:/usr/sbin/nologin", f.to_lowercase(), 1001 + i, f.to_lowercase());
            }
        }
        _ => {}
    }
    t.file("/etc/passwd", passwd)?;
    t.file("/etc/group", "root:x:0:\nsudo:x:27:deploy\nwww-data:x:33:\nusers:x:100:\ndeploy:x:1000:\nstaff:x:1001:\n")?;
    t.file(
        "/etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\nPermitRootLogin no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding no\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem sftp /usr/lib/openssh/sftp-server\n",
    )?;
    t.file("/etc/default/grub", "GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=tty0 console=ttyS0,115200\"\n")?;
    t.file("/etc/crontab", "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }\n")?;

    // /boot: the same kernel on every VM.
    let root_uuid = g.mounts.iter().find(|m| m.mount == "/").map(|m| m.uuid.clone()).unwrap_or_default();
    t.file("/boot/vmlinuz-6.1.0-28-amd64", program("vmlinuz-6.1.0-28", PE, 2_600_000))?;
    t.file("/boot/initrd.img-6.1.0-28-amd64", program(&format!("initrd/{}", g.role), ZSTD, 3_100_000))?;
    let mut config = String::from("#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 6.1.119 Kernel Configuration\n#\n");
    let mut crng = Rng::seeded("kernel-config");
    for i in 0..4000 {
        let _ = writeln!(config, "CONFIG_{}_{}_{i}={}", crng.pick(&WORDS).to_uppercase(), crng.pick(&WORDS).to_uppercase(), if crng.chance(60) { "y" } else { "m" });
    }
    t.file("/boot/config-6.1.0-28-amd64", config)?;
    let mut grub = format!("# DO NOT EDIT THIS FILE\n# It is automatically generated by grub-mkconfig\nset default=\"0\"\ninsmod part_{}\ninsmod ext2\nsearch --no-floppy --fs-uuid --set=root {root_uuid}\n", if g.efi { "gpt" } else { "msdos" });
    let _ = write!(grub, "menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os {{\n\tload_video\n\tinsmod gzio\n\tlinux\t/boot/vmlinuz-6.1.0-28-amd64 root=UUID={root_uuid} ro console=tty0 console=ttyS0,115200 quiet\n\tinitrd\t/boot/initrd.img-6.1.0-28-amd64\n}}\n");
    t.file("/boot/grub/grub.cfg", grub)?;
    let mut grubenv = b"# GRUB Environment Block\n# WARNING: Do not edit this file by tools other than grub-editenv!!!\n".to_vec();
    grubenv.resize(1024, b'#');
    t.file("/boot/grub/grubenv", grubenv)?;

    // Programs and libraries: the same bytes everywhere.
    for (path, size) in [
        ("/usr/bin/bash", 1_265_648),
        ("/usr/bin/ls", 151_344),
        ("/usr/bin/systemctl", 1_002_376),
        ("/usr/sbin/sshd", 951_568),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", 1_922_136),
        ("/usr/lib/x86_64-linux-gnu/libssl.so.3", 696_288),
    ] {
        t.file(path, program(path, ELF, size))?;
    }
    let mut status = String::new();
    let mut dpkg_log = String::new();
    for (name, version) in PACKAGES.iter().chain(role_packages(&g.role)) {
        let _ = write!(status, "Package: {name}\nStatus: install ok installed\nPriority: optional\nSection: admin\nInstalled-Size: {}\nMaintainer: Debian Developers <debian-devel@lists.debian.org>\nArchitecture: amd64\nVersion: {version}\nDescription: {}\n {}\n\n", rng.range(40, 90_000), title(rng), sentence(rng));
        let when = now - Duration::days(120) + Duration::seconds(rng.below(600) as i64);
        let _ = writeln!(dpkg_log, "{} status installed {name}:amd64 {version}", when.format("%Y-%m-%d %H:%M:%S"));
    }
    t.file("/var/lib/dpkg/status", status)?;
    t.file("/var/log/dpkg.log", dpkg_log)?;

    // Logs: today's and yesterday's.
    t.file(paths::SYSLOG, syslog(rng, host, &g.role, midnight, now, 4000))?;
    t.file("/var/log/syslog.1", syslog(rng, host, &g.role, midnight - day, midnight, 9000))?;
    t.file("/var/log/syslog.2.gz", blob(rng, GZIP, 180_000))?;
    t.file("/var/log/auth.log", syslog(rng, host, "auth", midnight, now, 600))?;
    t.file("/home/deploy/.bashrc", "# ~/.bashrc: executed by bash(1) for non-login shells.\ncase $- in\n    *i*) ;;\n      *) return;;\nesac\nHISTCONTROL=ignoreboth\nHISTSIZE=1000\nalias ll='ls -alF'\n")?;
    t.file("/home/deploy/.ssh/authorized_keys", format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} deploy@ops-laptop\n", rng.hex(21)))?;
    t.file("/root/.bash_history", "apt update\napt full-upgrade -y\nsystemctl status\njournalctl -p err -b\ndf -h\n")?;
    t.dir("/tmp")?;
    t.dir("/var/tmp")?;

    match g.role.as_str() {
        "web" => web_role(g, t, rng, midnight),
        "database" => {
            t.file("/etc/postgresql/15/main/postgresql.conf", "data_directory = '/var/lib/postgresql/15/main'\nhba_file = '/etc/postgresql/15/main/pg_hba.conf'\nlisten_addresses = '10.10.0.21,localhost'\nport = 5432\nmax_connections = 200\nshared_buffers = 2GB\neffective_cache_size = 6GB\nwal_level = replica\nmax_wal_size = 2GB\ncheckpoint_timeout = 15min\nlog_min_duration_statement = 200\nlog_line_prefix = '%m [%p] %q%u@%d '\n")?;
            t.file("/etc/postgresql/15/main/pg_hba.conf", "local   all             postgres                                peer\nlocal   all             all                                     peer\nhost    shop            shop            10.10.0.0/24            scram-sha-256\nhost    replication     replicator      10.30.0.0/24            scram-sha-256\n")?;
            t.file(paths::PG_LOG, postgres_log(rng, midnight, now, 3000))?;
            t.file("/var/log/postgresql/postgresql-15-main.log.1", postgres_log(rng, midnight - day, midnight, 6000))?;
            Ok(())
        }
        "file-server" => {
            let mut smb = String::from("[global]\n   workgroup = LAB\n   server string = %h file server\n   log file = /var/log/samba/log.%m\n   max log size = 1000\n   server role = member server\n   security = ads\n   realm = LAB.INTERNAL\n\n");
            for d in paths::DEPARTMENTS {
                let _ = write!(smb, "[{d}]\n   path = /srv/share/{d}\n   read only = no\n   valid users = @staff\n   create mask = 0660\n   directory mask = 2770\n\n");
            }
            t.file("/etc/samba/smb.conf", smb)?;
            t.file(paths::SAMBA_LOG, samba_log(rng, midnight, now, 1500))?;
            Ok(())
        }
        "application" => {
            t.file("/opt/orders-api/orders-api.jar", program("orders-api-4.12.0.jar", ZIP, 3_400_000))?;
            for (lib, size) in [("spring-core-6.1.14.jar", 1_900_000), ("jackson-databind-2.17.2.jar", 1_650_000), ("postgresql-42.7.4.jar", 1_080_000), ("netty-all-4.1.114.jar", 2_200_000)] {
                t.file(&format!("/opt/orders-api/lib/{lib}"), program(lib, ZIP, size))?;
            }
            t.file("/opt/orders-api/config/application.yml", "server:\n  port: 8443\n  ssl:\n    enabled: true\nspring:\n  datasource:\n    url: jdbc:postgresql://db-01.lab.internal:5432/shop\n    username: shop\n  jpa:\n    open-in-view: false\norders:\n  payment-provider: https://pay.example.net\n  reservation-timeout: 15m\n")?;
            t.file("/etc/systemd/system/orders-api.service", "[Unit]\nDescription=orders-api\nAfter=network-online.target\n\n[Service]\nUser=orders\nExecStart=/usr/bin/java -Xmx2g -jar /opt/orders-api/orders-api.jar --spring.config.location=/opt/orders-api/config/\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n")?;
            t.file(paths::APP_CACHE, app_cache(rng, now))?;
            t.file(paths::APP_LOG, app_log(rng, midnight, now, 5000))?;
            t.file("/var/log/orders-api/app.log.1", app_log(rng, midnight - day, midnight, 12000))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The application's JSON cache; `lab activity` rewrites it.
pub fn app_cache(rng: &mut Rng, now: DateTime<Utc>) -> String {
    let mut items = Vec::new();
    for _ in 0..rng.range(150, 250) {
        items.push(format!("{{\"sku\":\"SKU-{}\",\"stock\":{},\"price\":{}.{:02}}}", rng.range(10000, 99999), rng.range(0, 500), rng.range(1, 900), rng.below(100)));
    }
    format!("{{\"generated_at\":\"{}\",\"items\":[{}]}}\n", now.format("%Y-%m-%dT%H:%M:%SZ"), items.join(","))
}

fn web_role(g: &Guest, t: &mut Tree, rng: &mut Rng, midnight: DateTime<Utc>) -> Result<()> {
    let site = if g.hostname == "web-01" { "shop.example.com" } else { "docs.example.com" };
    let now = g.now;
    t.file("/etc/nginx/nginx.conf", "user www-data;\nworker_processes auto;\npid /run/nginx.pid;\nerror_log /var/log/nginx/error.log;\ninclude /etc/nginx/modules-enabled/*.conf;\n\nevents {\n\tworker_connections 768;\n}\n\nhttp {\n\tsendfile on;\n\ttcp_nopush on;\n\ttypes_hash_max_size 2048;\n\tinclude /etc/nginx/mime.types;\n\tdefault_type application/octet-stream;\n\tssl_protocols TLSv1.2 TLSv1.3;\n\taccess_log /var/log/nginx/access.log;\n\tgzip on;\n\tinclude /etc/nginx/conf.d/*.conf;\n\tinclude /etc/nginx/sites-enabled/*;\n}\n")?;
    t.file(&format!("/etc/nginx/sites-available/{site}"), format!("server {{\n\tlisten 443 ssl http2;\n\tserver_name {site} www.example.com;\n\troot {};\n\tindex index.html;\n\tssl_certificate /etc/letsencrypt/live/{site}/fullchain.pem;\n\tssl_certificate_key /etc/letsencrypt/live/{site}/privkey.pem;\n\tlocation / {{\n\t\ttry_files $uri $uri/ =404;\n\t}}\n\tlocation /api/ {{\n\t\tproxy_pass http://app-01.lab.internal:8443;\n\t}}\n}}\n", paths::WEB_ROOT))?;
    t.symlink(&format!("/etc/nginx/sites-enabled/{site}"), &format!("../sites-available/{site}"))?;
    t.file(paths::WEB_INDEX, web_index(rng, site, now))?;
    t.file(&format!("{}/contact.html", paths::WEB_ROOT), html_page(rng, site, "Contact", "      <p>Example Trading Ltd., 1 Harbour Street, Dublin</p>\n"))?;
    let pages = if g.hostname == "web-01" { 60 } else { 25 };
    for i in 1..=pages {
        let name = format!("{}-{i}", rng.pick(&WORDS));
        let t2 = title(rng);
        t.file(&format!("{}/products/{name}.html", paths::WEB_ROOT), html_page(rng, site, &t2, ""))?;
    }
    for i in 0..8 {
        t.file(&format!("{}/{}.html", paths::WEB_NEWS, (now - Duration::days(7 * i)).format("%Y-%m-%d")), news_page(rng, site))?;
    }
    let mut css = String::from(":root { --brand: #0b5fff; --ink: #1d2433; }\nbody { font-family: system-ui, sans-serif; color: var(--ink); margin: 0; }\n");
    for i in 0..400 {
        let _ = writeln!(css, ".c-{}-{i} {{ margin: {}px {}px; padding: {}px; color: #{}; }}", rng.pick(&WORDS), rng.below(40), rng.below(40), rng.below(24), rng.hex(3));
    }
    t.file(&format!("{}/assets/css/site.css", paths::WEB_ROOT), css)?;
    let mut js = String::from("'use strict';\n");
    for i in 0..600 {
        let _ = writeln!(js, "function {}{i}(a, b) {{ return fetch('/api/v1/{}?id=' + a).then(r => r.json()).then(d => d.{} || b); }}", rng.pick(&WORDS), rng.pick(&WORDS), rng.pick(&WORDS));
    }
    t.file(&format!("{}/assets/js/app.js", paths::WEB_ROOT), js)?;
    let images = if g.hostname == "web-01" { 40 } else { 12 };
    for i in 1..=images {
        let size = rng.range(40_000, 260_000) as usize;
        t.file(&format!("{}/assets/img/photo-{i:03}.jpg", paths::WEB_ROOT), blob(rng, JPEG, size))?;
    }
    t.file(&format!("{}/assets/img/logo.png", paths::WEB_ROOT), blob(rng, PNG, 18_000))?;
    // Today's log grows; yesterday's is rotated, older ones compressed.
    let day = Duration::days(1);
    let volume = if g.hostname == "web-01" { 1 } else { 2 };
    t.file(paths::ACCESS_LOG, access_log(rng, midnight, now, 3000 / volume))?;
    t.file("/var/log/nginx/access.log.1", access_log(rng, midnight - day, midnight, 24000 / volume))?;
    for i in 2..=7 {
        let size = rng.range(250_000, 400_000) as usize / volume;
        t.file(&format!("/var/log/nginx/access.log.{i}.gz"), blob(rng, GZIP, size))?;
    }
    t.file(paths::ERROR_LOG, nginx_errors(rng, midnight, now, 40))?;
    Ok(())
}

// ------------------------------------------------------------------ PostgreSQL

/// One 8 KiB heap page of `table` rows in PostgreSQL's page layout: a
/// 24-byte header, line pointers growing up, tuples growing down.
pub fn heap_page(rng: &mut Rng, table: &str, first_id: u64, lsn: u64) -> Vec<u8> {
    let mut page = vec![0u8; PG_PAGE];
    let mut lower = 24usize;
    let mut upper = PG_PAGE;
    let mut id = first_id;
    loop {
        let row = match table {
            "customers" => {
                let (f, l) = person(rng);
                format!("{id}\t{f} {l}\t{}.{}@example.com\t{}\t{}", f.to_lowercase(), l.to_lowercase(), rng.pick(&CITIES), rng.pick(&COMPANIES))
            }
            "orders" => format!("{id}\t{}\t{}.{:02}\t{}\t2026-{:02}-{:02} {:02}:{:02}:{:02}", rng.range(1, 40000), rng.range(5, 2500), rng.below(100), rng.pick(&["new", "paid", "shipped", "delivered", "cancelled"]), rng.range(1, 12), rng.range(1, 28), rng.below(24), rng.below(60), rng.below(60)),
            "order_items" => format!("{id}\t{}\tSKU-{}\t{}\t{}.{:02}", rng.range(1, 900_000), rng.range(10000, 99999), rng.range(1, 12), rng.range(1, 900), rng.below(100)),
            "products" => format!("{id}\tSKU-{}\t{}\t{}", rng.range(10000, 99999), title(rng), sentence(rng)),
            _ => format!("{id}\t{:016x}", rng.next_u64()),
        };
        let tuple_len = 24 + row.len();
        let aligned = tuple_len.div_ceil(8) * 8;
        if upper < aligned + lower + 4 {
            break;
        }
        upper -= aligned;
        // Tuple header: xmin, xmax, cid, ctid, infomask2, infomask, hoff.
        let xmin = (lsn as u32).wrapping_add(id as u32);
        page[upper..upper + 4].copy_from_slice(&xmin.to_le_bytes());
        page[upper + 22] = 24;
        page[upper + 24..upper + 24 + row.len()].copy_from_slice(row.as_bytes());
        // Line pointer: offset 15 bits, flags 2 bits (normal), length 15 bits.
        let lp = (upper as u32) | (1 << 15) | ((tuple_len as u32) << 17);
        page[lower..lower + 4].copy_from_slice(&lp.to_le_bytes());
        lower += 4;
        id += 1;
    }
    page[0..8].copy_from_slice(&lsn.to_le_bytes());
    page[12..14].copy_from_slice(&(lower as u16).to_le_bytes());
    page[14..16].copy_from_slice(&(upper as u16).to_le_bytes());
    page[16..18].copy_from_slice(&(PG_PAGE as u16).to_le_bytes());
    page[18..20].copy_from_slice(&(PG_PAGE as u16 | 4).to_le_bytes());
    page
}

/// `n` heap pages of `table` (or B-tree-like pages for an index).
pub fn relation(rng: &mut Rng, table: &str, pages: usize, lsn: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(pages * PG_PAGE);
    let mut id = 1;
    for _ in 0..pages {
        let page = heap_page(rng, table, id, lsn);
        id += u64::from(u16::from_le_bytes([page[12], page[13]]).saturating_sub(24) / 4);
        out.extend_from_slice(&page);
    }
    out
}

fn postgres_data(g: &Guest, t: &mut Tree, rng: &mut Rng) -> Result<()> {
    t.file("/15/main/PG_VERSION", "15\n")?;
    t.file("/15/main/base/16384/PG_VERSION", "15\n")?;
    t.file("/15/main/base/1/PG_VERSION", "15\n")?;
    t.file("/15/main/postmaster.opts", "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/var/lib/postgresql/15/main\" \"-c\" \"config_file=/etc/postgresql/15/main/postgresql.conf\"\n")?;
    let mut control = rng.bytes(PG_PAGE);
    control[..8].copy_from_slice(&7_254_812_983_441_019_u64.to_le_bytes());
    t.file("/15/main/global/pg_control", control)?;
    for (name, node, mib) in PG_RELATIONS {
        let pages = (mib << 20) as usize / PG_PAGE;
        t.file(&format!("{}/{node}", paths::PG_BASE), relation(rng, name, pages, 0x3f00_0000))?;
        t.file(&format!("{}/{node}_fsm", paths::PG_BASE), rng.bytes(3 * PG_PAGE))?;
    }
    for node in ["1247", "1249", "1255", "1259", "2608", "2658"] {
        t.file(&format!("/15/main/base/1/{node}"), relation(rng, "catalog", 12, 0x100))?;
    }
    // The current WAL segment: 16 MiB of pages with records; WAL is mostly
    // full-page images, so it compresses about as well as the tables.
    t.file(&format!("{}/{WAL_SEGMENT}", paths::PG_WAL), relation(rng, "orders", (16 << 20) / PG_PAGE, 0x3f00_0000))?;
    t.dir(&format!("{}/archive_status", paths::PG_WAL))?;
    let mut csv = String::from("order_id,customer_id,total,currency,status,created_at\n");
    for i in 0..60_000 {
        let _ = writeln!(csv, "{},{},{}.{:02},EUR,{},{}", 900_000 + i, rng.range(1, 40000), rng.range(5, 2500), rng.below(100), rng.pick(&["paid", "shipped", "delivered"]), (g.now - Duration::minutes(60_000 - i as i64)).format("%Y-%m-%d %H:%M"));
    }
    t.file(&format!("{}/orders-{}.csv", paths::PG_EXPORTS, g.now.format("%Y-%m")), csv)?;
    Ok(())
}

// ------------------------------------------------------------- file share

const EXTENSIONS: [(&str, u64, u64); 8] =
    [("docx", 12_000, 180_000), ("xlsx", 9_000, 250_000), ("pdf", 40_000, 900_000), ("pptx", 200_000, 1_800_000), ("txt", 800, 12_000), ("csv", 2_000, 120_000), ("jpg", 60_000, 1_200_000), ("png", 20_000, 400_000)];

/// A document of a kind (by extension) and about `size` bytes.
pub fn document(rng: &mut Rng, ext: &str, size: usize) -> Vec<u8> {
    match ext {
        "txt" => {
            let mut s = String::new();
            while s.len() < size {
                s.push_str(&paragraph(rng));
                s.push_str("\n\n");
            }
            s.into_bytes()
        }
        "csv" => {
            let mut s = String::from("date,reference,party,account,amount,currency,status\n");
            while s.len() < size {
                s.push_str(&ledger_rows(rng, 50));
            }
            s.into_bytes()
        }
        "jpg" => blob(rng, JPEG, size),
        "png" => blob(rng, PNG, size),
        "pdf" => blob(rng, PDF, size),
        _ => blob(rng, ZIP, size),
    }
}

/// Rows of a ledger CSV (`date,reference,party,account,amount,currency,status`).
pub fn ledger_rows(rng: &mut Rng, n: usize) -> String {
    let mut s = String::new();
    for _ in 0..n {
        let _ = writeln!(s, "2026-{:02}-{:02},INV-{},{},{},{}.{:02},EUR,{}", rng.range(1, 12), rng.range(1, 28), rng.range(10000, 99999), rng.pick(&COMPANIES), rng.range(4000, 4999), rng.range(10, 90_000), rng.below(100), rng.pick(&["open", "paid", "overdue"]));
    }
    s
}

pub fn file_name(rng: &mut Rng, ext: &str) -> String {
    let kind = *rng.pick(&["Report", "Minutes", "Budget", "Forecast", "Contract", "Proposal", "Invoice", "Plan", "Review", "Summary", "Notes", "Policy"]);
    match rng.below(3) {
        0 => format!("{kind} {} {}.{ext}", rng.pick(&COMPANIES), rng.range(2022, 2026)),
        1 => format!("{kind} Q{} {}.{ext}", rng.range(1, 4), rng.range(2022, 2026)),
        _ => format!("{}-{}-{}.{ext}", kind.to_lowercase(), rng.pick(&WORDS), rng.range(1, 999)),
    }
}

fn file_share(_g: &Guest, t: &mut Tree, rng: &mut Rng) -> Result<()> {
    let budget: u64 = 52 << 20;
    let mut dirs = Vec::new();
    for d in paths::DEPARTMENTS {
        for year in 2022..=2026 {
            for sub in ["", "/Q1", "/Q2", "/Q3", "/Q4"] {
                dirs.push(format!("/{d}/{year}{sub}"));
            }
        }
        for _ in 0..rng.range(2, 5) {
            dirs.push(format!("/{d}/Projects/{} {}", rng.pick(&COMPANIES), title(rng)));
        }
        dirs.push(format!("/{d}/Templates"));
    }
    for d in &dirs {
        t.dir(d)?;
    }
    let start = t.bytes;
    while t.bytes - start < budget {
        let dir = rng.pick(&dirs).clone();
        let &(ext, lo, hi) = rng.pick(&EXTENSIONS);
        // Most files are small; a few are large.
        let size = if rng.chance(85) { rng.range(lo, lo + (hi - lo) / 4) } else { rng.range(lo, hi) } as usize;
        let name = file_name(rng, ext);
        let data = document(rng, ext, size);
        t.file(&format!("{dir}/{name}"), data)?;
    }
    t.file("/Public/README.txt", "Department shares of LAB. Ask IT (it@example.com) for access.\n")?;
    let mut ledger = String::from("date,reference,party,account,amount,currency,status\n");
    ledger.push_str(&ledger_rows(rng, 4000));
    t.file(paths::LEDGER, ledger)?;
    t.file(paths::ROSTER, document(rng, "xlsx", 96_000))?;
    Ok(())
}

// ----------------------------------------------------------------- EFI

fn debian_esp(g: &Guest, t: &mut Tree) -> Result<()> {
    let root_uuid = g.mounts.iter().find(|m| m.mount == "/").map(|m| m.uuid.as_str()).unwrap_or_default();
    for (path, size) in [("/EFI/debian/shimx64.efi", 952_768), ("/EFI/debian/grubx64.efi", 2_605_440), ("/EFI/debian/mmx64.efi", 849_280), ("/EFI/debian/fbx64.efi", 86_600)] {
        t.file(path, program(path, PE, size))?;
    }
    t.file("/EFI/BOOT/BOOTX64.EFI", program("/EFI/debian/shimx64.efi", PE, 952_768))?;
    t.file("/EFI/BOOT/fbx64.efi", program("/EFI/debian/fbx64.efi", PE, 86_600))?;
    t.file("/EFI/debian/BOOTX64.CSV", "shimx64.efi,debian,,This is the boot entry for debian\n".encode_utf16().flat_map(|u| u.to_le_bytes()).collect::<Vec<u8>>())?;
    t.file("/EFI/debian/grub.cfg", format!("search.fs_uuid {root_uuid} root hd0,gpt2\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n"))?;
    Ok(())
}

/// A registry hive: a `regf` base block, then 4 KiB `hbin` bins of cells
/// (key names in UTF-16, value data).
pub fn hive(rng: &mut Rng, name: &str, size: usize) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    out[..4].copy_from_slice(b"regf");
    out[4..8].copy_from_slice(&7u32.to_le_bytes());
    out[8..12].copy_from_slice(&7u32.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..28].copy_from_slice(&6u32.to_le_bytes());
    for (i, u) in name.encode_utf16().enumerate().take(32) {
        out[48 + 2 * i..50 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    while out.len() < size {
        out.extend_from_slice(&hbin(rng, out.len() - 4096));
    }
    out.truncate(size);
    out
}

pub fn hbin(rng: &mut Rng, offset: usize) -> Vec<u8> {
    let mut bin = vec![0u8; 4096];
    bin[..4].copy_from_slice(b"hbin");
    bin[4..8].copy_from_slice(&(offset as u32).to_le_bytes());
    bin[8..12].copy_from_slice(&4096u32.to_le_bytes());
    let mut pos = 32;
    while pos < 4000 {
        let key = format!("{}\\{}{}", rng.pick(&["Microsoft", "Classes", "Policies", "Contoso", "WOW6432Node"]), rng.pick(&WORDS), rng.range(1, 99));
        let mut cell = b"nk".to_vec();
        cell.extend(key.encode_utf16().flat_map(|u| u.to_le_bytes()));
        if rng.chance(50) {
            let n = rng.range(8, 96) as usize;
            cell.extend(rng.bytes(n));
        }
        let n = cell.len().min(4096 - pos);
        bin[pos..pos + n].copy_from_slice(&cell[..n]);
        pos += n.div_ceil(8) * 8;
    }
    bin
}

fn windows_esp(t: &mut Tree, rng: &mut Rng) -> Result<()> {
    t.file("/EFI/Microsoft/Boot/bootmgfw.efi", program("bootmgfw.efi", PE, 1_462_224))?;
    t.file("/EFI/Microsoft/Boot/bootmgr.efi", program("bootmgr.efi", PE, 1_447_904))?;
    t.file("/EFI/Microsoft/Boot/memtest.efi", program("memtest.efi", PE, 1_254_864))?;
    t.file("/EFI/Microsoft/Boot/en-US/bootmgfw.efi.mui", program("bootmgfw.efi.mui", PE, 81_240))?;
    t.file("/EFI/Boot/bootx64.efi", program("bootmgfw.efi", PE, 1_462_224))?;
    t.file(paths::BCD, hive(rng, "\\Device\\HarddiskVolume1\\EFI\\Microsoft\\Boot\\BCD", 32_768))?;
    t.file("/EFI/Microsoft/Boot/BCD.LOG", rng.bytes(8192))?;
    t.file("/EFI/Microsoft/Recovery/BCD", hive(rng, "\\EFI\\Microsoft\\Recovery\\BCD", 24_576))?;
    Ok(())
}

// ----------------------------------------------------------------- Windows

fn windows_system(g: &Guest, t: &mut Tree, rng: &mut Rng) -> Result<()> {
    let now = g.now;
    for (hive_name, size) in [("SYSTEM", 3 << 20), ("SOFTWARE", 6 << 20), ("SAM", 65_536), ("SECURITY", 65_536), ("DEFAULT", 524_288)] {
        t.file(&format!("/Windows/System32/config/{hive_name}"), hive(rng, &format!("\\SystemRoot\\System32\\Config\\{hive_name}"), size))?;
    }
    for (name, size) in [
        ("ntoskrnl.exe", 2_100_000),
        ("kernel32.dll", 780_000),
        ("ntdll.dll", 1_900_000),
        ("user32.dll", 1_650_000),
        ("svchost.exe", 57_000),
        ("lsass.exe", 84_000),
        ("winload.efi", 1_700_000),
        ("drivers/ntfs.sys", 1_200_000),
        ("drivers/tcpip.sys", 900_000),
        ("drivers/e1g6032e.sys", 520_000),
    ] {
        t.file(&format!("/Windows/System32/{name}"), program(name, PE, size))?;
    }
    for log in ["System", "Application", "Security", "Setup"] {
        let mut evtx = b"ElfFile\0".to_vec();
        evtx.extend(rng.bytes(1_048_576 - 8));
        t.file(&format!("/Windows/System32/winevt/Logs/{log}.evtx"), evtx)?;
    }
    let day = Duration::days(1);
    t.file(paths::CBS_LOG, cbs_log(rng, now - day, now, 6000))?;
    t.file("/Windows/INF/setupapi.dev.log", cbs_log(rng, now - day * 30, now, 2500))?;
    t.file("/Windows/bootstat.dat", rng.bytes(65_536))?;
    for (name, size) in [("erpclient.exe", 4_200_000), ("Contoso.Erp.Core.dll", 2_300_000), ("Contoso.Erp.Reports.dll", 1_400_000)] {
        t.file(&format!("/Program Files/Contoso/ERP Client/{name}"), program(name, PE, size))?;
    }
    t.file("/Program Files/Contoso/ERP Client/erpclient.exe.config", "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<configuration>\n  <connectionStrings>\n    <add name=\"Erp\" connectionString=\"Server=db-01.lab.internal;Database=shop;Integrated Security=false\" />\n  </connectionStrings>\n  <appSettings>\n    <add key=\"ReportShare\" value=\"\\\\files-01\\Finance\\Reports\" />\n  </appSettings>\n</configuration>\n")?;
    for i in 0..40 {
        t.file(&format!("/ProgramData/Contoso/ERP/cache/{i:04}.dat"), document(rng, "txt", 20_000))?;
    }
    for user in ["Administrator", "alice", "bob"] {
        for folder in ["Desktop", "Documents", "Downloads", "Pictures"] {
            t.dir(&format!("/Users/{user}/{folder}"))?;
        }
        t.file(&format!("/Users/{user}/NTUSER.DAT"), hive(rng, &format!("\\??\\C:\\Users\\{user}\\ntuser.dat"), 786_432))?;
    }
    t.file(paths::BUDGET, document(rng, "xlsx", 180_000))?;
    for _ in 0..30 {
        let &(ext, lo, hi) = rng.pick(&EXTENSIONS[..6]);
        let size = rng.range(lo, lo + (hi - lo) / 3) as usize;
        let name = file_name(rng, ext);
        t.file(&format!("/Users/alice/Documents/{name}"), document(rng, ext, size))?;
    }
    for i in 0..12 {
        let size = rng.range(300_000, 900_000) as usize;
        t.file(&format!("/Users/alice/Pictures/IMG_{:04}.jpg", 2100 + i), document(rng, "jpg", size))?;
    }
    t.file("/Users/alice/Desktop/ERP Client.lnk", rng.bytes(1_900))?;
    for _ in 0..10 {
        let name = file_name(rng, "pdf");
        let size = rng.range(60_000, 400_000) as usize;
        t.file(&format!("{}/{name}", paths::DOWNLOADS), document(rng, "pdf", size))?;
    }
    t.file("/Users/Administrator/Documents/server-notes.txt", "win-01: ERP client terminal server. Patched monthly (second Tuesday). Contact: it@example.com\n")?;
    t.dir("/Windows/Temp")?;
    t.dir("/inetpub/wwwroot")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_pages_are_full_pages_of_rows() {
        let mut rng = Rng::seeded("t");
        let page = heap_page(&mut rng, "orders", 1, 42);
        assert_eq!(page.len(), PG_PAGE);
        let lower = u16::from_le_bytes([page[12], page[13]]) as usize;
        let upper = u16::from_le_bytes([page[14], page[15]]) as usize;
        assert!(lower > 24 && upper > lower && upper - lower < 200, "{lower} {upper}");
        assert!(String::from_utf8_lossy(&page).contains("\t"));
    }

    #[test]
    fn logs_have_one_timestamped_line_per_entry() {
        let mut rng = Rng::seeded("t");
        let now = Utc::now();
        let log = access_log(&mut rng, now - Duration::hours(1), now, 50);
        assert_eq!(log.lines().count(), 50);
        assert!(log.lines().all(|l| l.contains(" +0000] \"")), "{log}");
        assert_eq!(syslog(&mut rng, "h", "web", now - Duration::hours(1), now, 7).lines().count(), 7);
    }

    #[test]
    fn blobs_keep_their_magic_and_size() {
        let mut rng = Rng::seeded("t");
        let b = blob(&mut rng, JPEG, 1000);
        assert_eq!(b.len(), 1000);
        assert!(b.starts_with(b"\xff\xd8\xff"));
        assert_eq!(program("x", ELF, 100), program("x", ELF, 100));
        assert_eq!(hive(&mut rng, "X", 20_000).len(), 20_000);
    }
}
