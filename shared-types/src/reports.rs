//! Reports and analytics (`GET /api/v1/reports/*`): long-range figures
//! computed from the catalog's `jobs` rows, which are kept for good (their
//! throughput samples and log lines are pruned after the job-history
//! retention, so no report reads them).
//!
//! * `success`: backup success rate per VM, flow or protection group.
//! * `backups`: backup duration and size per day and per VM.
//! * `change-rate`: bytes changed per day per VM, from the incremental
//!   backups' changed-block tracking.
//! * `throughput`: data moved per second of job, per day.
//! * `storage`: each repository's stored bytes per day and when it fills.
//! * `rpo`: which VMs had no good restore point inside their RPO, and when.
//!
//! Every report answers in JSON, as CSV (`?format=csv`), and as a printable
//! HTML page with server-drawn SVG charts (`/reports/{report}/print`). Each
//! report turns into the same [`Table`]s and [`Chart`]s for all three (and
//! for the cockpit), so they never disagree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::health::{format_bytes, format_duration};
use crate::NamedRef;

/// The periods a report covers, in days (the catalog keeps jobs for good;
/// 365 is the longest period offered).
pub const PERIODS: &[u32] = &[7, 30, 90, 365];

/// Checks a report's period; the message says which ones exist.
pub fn check_days(days: u32) -> Result<(), String> {
    if PERIODS.contains(&days) {
        Ok(())
    } else {
        Err(format!("use one of {} days", PERIODS.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")))
    }
}

wire_enum! {
    /// The reports the server draws.
    pub enum ReportKind {
        Success = "success",
        Backups = "backups",
        ChangeRate = "change-rate",
        Throughput = "throughput",
        Storage = "storage",
        Rpo = "rpo",
    }
}

impl ReportKind {
    pub fn title(self) -> &'static str {
        match self {
            ReportKind::Success => "Backup success rate",
            ReportKind::Backups => "Backup duration and size",
            ReportKind::ChangeRate => "Change rate",
            ReportKind::Throughput => "Throughput",
            ReportKind::Storage => "Storage growth and forecast",
            ReportKind::Rpo => "RPO compliance",
        }
    }
}

wire_enum! {
    /// What the success report counts per row.
    pub enum SuccessBy {
        Vm = "vm",
        Flow = "flow",
        Group = "group",
    }
}

/// The days a report covers: whole UTC days, the last one today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportWindow {
    pub days: u32,
    /// Midnight UTC of the first day.
    pub start: DateTime<Utc>,
    /// When the report was computed.
    pub end: DateTime<Utc>,
}

/// Finished backup jobs by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcomes {
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl Outcomes {
    /// Completed ÷ (completed + failed), in percent; `None` with neither.
    /// Cancelled runs were stopped by someone and count on neither side.
    pub fn success_percent(&self) -> Option<f64> {
        let decided = self.completed + self.failed;
        (decided > 0).then(|| self.completed as f64 * 100.0 / decided as f64)
    }
}

/// One VM, flow or group in the success report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuccessRow {
    /// The VM's, flow's or group's id; empty for backups outside any flow
    /// (or VMs outside any group).
    pub id: String,
    pub name: String,
    pub outcomes: Outcomes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One day's outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayOutcomes {
    pub day: DateTime<Utc>,
    pub outcomes: Outcomes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_percent: Option<f64>,
}

/// `GET /api/v1/reports/success`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuccessReport {
    pub window: ReportWindow,
    pub by: SuccessBy,
    /// How the figures are computed, in words.
    pub method: String,
    pub total: Outcomes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_percent: Option<f64>,
    /// Lowest success rate first.
    pub rows: Vec<SuccessRow>,
    pub days: Vec<DayOutcomes>,
}

/// One day of backups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupDay {
    pub day: DateTime<Utc>,
    /// Completed backups that finished that day.
    pub runs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<u64>,
    /// Read from the VMs' disks.
    pub bytes_read: u64,
    /// Written to the repositories (after deduplication and compression).
    pub bytes_written: u64,
}

/// One VM's completed backups in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupVmRow {
    pub id: String,
    pub name: String,
    pub runs: u64,
    pub full: u64,
    pub incremental: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seconds: Option<u64>,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// `GET /api/v1/reports/backups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BackupsReport {
    pub window: ReportWindow,
    pub method: String,
    pub days: Vec<BackupDay>,
    /// Longest mean duration first.
    pub vms: Vec<BackupVmRow>,
}

/// One day's changed bytes over every VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeDay {
    pub day: DateTime<Utc>,
    pub changed_bytes: u64,
}

/// One VM's change rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeRateRow {
    pub id: String,
    pub name: String,
    /// Completed incremental backups in the period.
    pub incrementals: u64,
    /// Bytes the platform's changed-block tracking reported changed (in
    /// whole chunks), summed over those incrementals.
    pub changed_bytes: u64,
    /// Of those, bytes holding data (read from the disk; the rest were
    /// trimmed to zeros).
    pub bytes_read: u64,
    /// `changed_bytes` ÷ days covered: from the period's start (or the VM's
    /// first backup, if later) to the end of the report, at least one day.
    pub bytes_per_day: u64,
    /// The VM's disk capacity.
    pub capacity_bytes: u64,
    /// `bytes_per_day` ÷ capacity, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_per_day: Option<f64>,
}

/// `GET /api/v1/reports/change-rate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeRateReport {
    pub window: ReportWindow,
    pub method: String,
    pub days: Vec<ChangeDay>,
    /// Highest rate first.
    pub vms: Vec<ChangeRateRow>,
}

/// One day's throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThroughputDay {
    pub day: DateTime<Utc>,
    /// Completed backup, restore and replication jobs that finished that day.
    pub jobs: u64,
    pub bytes_read: u64,
    /// Their running time, summed.
    pub job_seconds: u64,
    /// `bytes_read` ÷ `job_seconds`.
    pub mean_bps: u64,
    /// The fastest job's own mean.
    pub peak_bps: u64,
}

/// `GET /api/v1/reports/throughput`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThroughputReport {
    pub window: ReportWindow,
    pub method: String,
    pub days: Vec<ThroughputDay>,
    pub mean_bps: u64,
    pub peak_bps: u64,
}

wire_enum! {
    /// What the storage forecast could say.
    pub enum ForecastOutcome {
        /// The repository grows: `fills_on` is when its filesystem is full.
        Fills = "fills",
        /// It shrinks or stays the same.
        NotGrowing = "not_growing",
        /// Fewer than [`FORECAST_MIN_DAYS`] days of its history in the period.
        NotEnoughHistory = "not_enough_history",
        /// The filesystem's free space could not be read.
        CapacityUnknown = "capacity_unknown",
    }
}

/// Fewest days of a repository's own history a forecast is made from.
pub const FORECAST_MIN_DAYS: u32 = 7;

/// A repository's stored bytes at the end of one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoragePoint {
    pub day: DateTime<Utc>,
    pub stored_bytes: u64,
}

/// One repository's growth and forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepositoryGrowth {
    pub id: String,
    pub name: String,
    pub points: Vec<StoragePoint>,
    /// Slope of the least-squares line, bytes per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth_bytes_per_day: Option<f64>,
    /// Days of its history the line was fitted over.
    pub history_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    pub outcome: ForecastOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_to_full: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fills_on: Option<DateTime<Utc>>,
}

/// `GET /api/v1/reports/storage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageReport {
    pub window: ReportWindow,
    /// The forecast's method, in words.
    pub method: String,
    pub repositories: Vec<RepositoryGrowth>,
}

/// A span without a good restore point inside the RPO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RpoBreach {
    /// When the newest good point became older than the RPO.
    pub start: DateTime<Utc>,
    /// When a new good point was taken; `None`: still in breach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    /// Seconds of it inside the period.
    pub seconds: u64,
}

/// One managed VM against its RPO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RpoRow {
    pub id: String,
    pub name: String,
    /// The scheduled backup flow that sets its RPO (the strictest one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<NamedRef>,
    /// `None`: no enabled, scheduled backup flow covers the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_good_point: Option<DateTime<Utc>>,
    /// Within its RPO now; `None` without an RPO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliant_now: Option<bool>,
    /// Oldest first, overlapping the period.
    pub breaches: Vec<RpoBreach>,
    pub breach_seconds: u64,
}

/// One day of RPO compliance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RpoDay {
    pub day: DateTime<Utc>,
    /// VMs with an RPO that day.
    pub vms: u64,
    /// Of them, VMs out of their RPO at some time that day.
    pub in_breach: u64,
}

/// `GET /api/v1/reports/rpo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RpoReport {
    pub window: ReportWindow,
    /// How each VM's RPO is set and what counts as a good point, in words.
    pub rule: String,
    /// VMs with breaches first (most time out of RPO first), then the rest by name.
    pub vms: Vec<RpoRow>,
    pub days: Vec<RpoDay>,
}

/// One cell of a report table: raw in CSV, readable on screen and paper.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Count(u64),
    Percent(Option<f64>),
    Bytes(u64),
    BytesPerSecond(u64),
    Seconds(Option<f64>),
    Time(Option<DateTime<Utc>>),
    Day(DateTime<Utc>),
}

impl Cell {
    /// The CSV value: plain numbers, RFC 3339 times, empty when unknown.
    pub fn raw(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Count(n) | Cell::Bytes(n) | Cell::BytesPerSecond(n) => n.to_string(),
            Cell::Percent(p) => p.map(|p| format!("{p:.2}")).unwrap_or_default(),
            Cell::Seconds(s) => s.map(|s| format!("{s:.1}")).unwrap_or_default(),
            Cell::Time(t) => t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default(),
            Cell::Day(d) => d.format("%Y-%m-%d").to_string(),
        }
    }

    /// The value for people.
    pub fn human(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Percent(p) => p.map(|p| format!("{p:.1} %")).unwrap_or_else(|| "—".into()),
            Cell::Bytes(n) => format_bytes(*n),
            Cell::BytesPerSecond(n) => format!("{}/s", format_bytes(*n)),
            Cell::Seconds(s) => s.map(|s| format_duration(s.round() as u64)).unwrap_or_else(|| "—".into()),
            Cell::Time(t) => t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_else(|| "—".into()),
            Cell::Day(d) => d.format("%Y-%m-%d").to_string(),
        }
    }

    /// Numbers align right.
    pub fn numeric(&self) -> bool {
        !matches!(self, Cell::Text(_) | Cell::Time(_) | Cell::Day(_))
    }
}

/// A report table: a title, column headings and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub title: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

/// What a chart's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartUnit {
    Count,
    Percent,
    Bytes,
    BytesPerSecond,
    Seconds,
}

impl ChartUnit {
    /// An axis label for `value`.
    pub fn label(self, value: f64) -> String {
        match self {
            // Counts are whole: a tick between two counts has no label.
            ChartUnit::Count if (value - value.round()).abs() > 1e-6 => String::new(),
            ChartUnit::Count => format!("{value:.0}"),
            ChartUnit::Percent => format!("{value:.0}%"),
            ChartUnit::Bytes => format_bytes(value.max(0.0) as u64),
            ChartUnit::BytesPerSecond => format!("{}/s", format_bytes(value.max(0.0) as u64)),
            ChartUnit::Seconds => format_duration(value.max(0.0) as u64),
        }
    }
}

/// One line of a chart: a value per day (`None`: nothing that day).
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    pub name: String,
    pub points: Vec<(DateTime<Utc>, Option<f64>)>,
}

/// A chart over the report's days.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub unit: ChartUnit,
    pub series: Vec<ChartSeries>,
}

/// What every report gives its three renderings.
pub trait Sheet {
    fn kind(&self) -> ReportKind;
    fn window(&self) -> &ReportWindow;
    /// How it is computed, in words.
    fn method(&self) -> &str;
    fn charts(&self) -> Vec<Chart>;
    fn tables(&self) -> Vec<Table>;
}

fn series<T>(name: &str, days: &[T], f: impl Fn(&T) -> (DateTime<Utc>, Option<f64>)) -> ChartSeries {
    ChartSeries { name: name.into(), points: days.iter().map(f).collect() }
}

impl Sheet for SuccessReport {
    fn kind(&self) -> ReportKind {
        ReportKind::Success
    }
    fn window(&self) -> &ReportWindow {
        &self.window
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn charts(&self) -> Vec<Chart> {
        vec![
            Chart {
                title: "Success rate per day".into(),
                unit: ChartUnit::Percent,
                series: vec![series("success rate", &self.days, |d| (d.day, d.success_percent))],
            },
            Chart {
                title: "Backups per day".into(),
                unit: ChartUnit::Count,
                series: vec![
                    series("completed", &self.days, |d| (d.day, Some(d.outcomes.completed as f64))),
                    series("failed", &self.days, |d| (d.day, Some(d.outcomes.failed as f64))),
                ],
            },
        ]
    }
    fn tables(&self) -> Vec<Table> {
        let what = match self.by {
            SuccessBy::Vm => "VM",
            SuccessBy::Flow => "Flow",
            SuccessBy::Group => "Group",
        };
        vec![
            Table {
                title: format!("Success rate per {}", what.to_lowercase()),
                columns: vec![what, "Success rate", "Completed", "Failed", "Cancelled", "Last failure", "Last error"],
                rows: self
                    .rows
                    .iter()
                    .map(|r| {
                        vec![
                            Cell::Text(r.name.clone()),
                            Cell::Percent(r.success_percent),
                            Cell::Count(r.outcomes.completed),
                            Cell::Count(r.outcomes.failed),
                            Cell::Count(r.outcomes.cancelled),
                            Cell::Time(r.last_failure),
                            Cell::Text(r.last_error.clone().unwrap_or_default()),
                        ]
                    })
                    .collect(),
            },
            Table {
                title: "Per day".into(),
                columns: vec!["Day", "Success rate", "Completed", "Failed", "Cancelled"],
                rows: self
                    .days
                    .iter()
                    .map(|d| {
                        vec![
                            Cell::Day(d.day),
                            Cell::Percent(d.success_percent),
                            Cell::Count(d.outcomes.completed),
                            Cell::Count(d.outcomes.failed),
                            Cell::Count(d.outcomes.cancelled),
                        ]
                    })
                    .collect(),
            },
        ]
    }
}

impl Sheet for BackupsReport {
    fn kind(&self) -> ReportKind {
        ReportKind::Backups
    }
    fn window(&self) -> &ReportWindow {
        &self.window
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn charts(&self) -> Vec<Chart> {
        vec![
            Chart {
                title: "Backup duration per day".into(),
                unit: ChartUnit::Seconds,
                series: vec![
                    series("mean", &self.days, |d| (d.day, d.mean_seconds)),
                    series("longest", &self.days, |d| (d.day, d.max_seconds.map(|s| s as f64))),
                ],
            },
            Chart {
                title: "Backup size per day".into(),
                unit: ChartUnit::Bytes,
                series: vec![
                    series("read", &self.days, |d| (d.day, Some(d.bytes_read as f64))),
                    series("written", &self.days, |d| (d.day, Some(d.bytes_written as f64))),
                ],
            },
        ]
    }
    fn tables(&self) -> Vec<Table> {
        vec![
            Table {
                title: "Per VM".into(),
                columns: vec!["VM", "Backups", "Full", "Incremental", "Mean duration", "Last duration", "Read", "Written"],
                rows: self
                    .vms
                    .iter()
                    .map(|v| {
                        vec![
                            Cell::Text(v.name.clone()),
                            Cell::Count(v.runs),
                            Cell::Count(v.full),
                            Cell::Count(v.incremental),
                            Cell::Seconds(v.mean_seconds),
                            Cell::Seconds(v.last_seconds.map(|s| s as f64)),
                            Cell::Bytes(v.bytes_read),
                            Cell::Bytes(v.bytes_written),
                        ]
                    })
                    .collect(),
            },
            Table {
                title: "Per day".into(),
                columns: vec!["Day", "Backups", "Mean duration", "Longest", "Read", "Written"],
                rows: self
                    .days
                    .iter()
                    .map(|d| {
                        vec![
                            Cell::Day(d.day),
                            Cell::Count(d.runs),
                            Cell::Seconds(d.mean_seconds),
                            Cell::Seconds(d.max_seconds.map(|s| s as f64)),
                            Cell::Bytes(d.bytes_read),
                            Cell::Bytes(d.bytes_written),
                        ]
                    })
                    .collect(),
            },
        ]
    }
}

impl Sheet for ChangeRateReport {
    fn kind(&self) -> ReportKind {
        ReportKind::ChangeRate
    }
    fn window(&self) -> &ReportWindow {
        &self.window
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn charts(&self) -> Vec<Chart> {
        vec![Chart {
            title: "Bytes changed per day, every VM".into(),
            unit: ChartUnit::Bytes,
            series: vec![series("changed", &self.days, |d| (d.day, Some(d.changed_bytes as f64)))],
        }]
    }
    fn tables(&self) -> Vec<Table> {
        vec![Table {
            title: "Per VM".into(),
            columns: vec!["VM", "Incrementals", "Changed", "Read", "Changed per day", "Capacity", "Per day of capacity"],
            rows: self
                .vms
                .iter()
                .map(|v| {
                    vec![
                        Cell::Text(v.name.clone()),
                        Cell::Count(v.incrementals),
                        Cell::Bytes(v.changed_bytes),
                        Cell::Bytes(v.bytes_read),
                        Cell::Bytes(v.bytes_per_day),
                        Cell::Bytes(v.capacity_bytes),
                        Cell::Percent(v.percent_per_day),
                    ]
                })
                .collect(),
        }]
    }
}

impl Sheet for ThroughputReport {
    fn kind(&self) -> ReportKind {
        ReportKind::Throughput
    }
    fn window(&self) -> &ReportWindow {
        &self.window
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn charts(&self) -> Vec<Chart> {
        vec![Chart {
            title: "Throughput per day".into(),
            unit: ChartUnit::BytesPerSecond,
            series: vec![
                series("mean", &self.days, |d| (d.day, (d.jobs > 0).then_some(d.mean_bps as f64))),
                series("fastest job", &self.days, |d| (d.day, (d.jobs > 0).then_some(d.peak_bps as f64))),
            ],
        }]
    }
    fn tables(&self) -> Vec<Table> {
        vec![Table {
            title: "Per day".into(),
            columns: vec!["Day", "Jobs", "Read", "Job time", "Mean", "Fastest job"],
            rows: self
                .days
                .iter()
                .map(|d| {
                    vec![
                        Cell::Day(d.day),
                        Cell::Count(d.jobs),
                        Cell::Bytes(d.bytes_read),
                        Cell::Seconds(Some(d.job_seconds as f64)),
                        Cell::BytesPerSecond(d.mean_bps),
                        Cell::BytesPerSecond(d.peak_bps),
                    ]
                })
                .collect(),
        }]
    }
}

impl ForecastOutcome {
    /// The forecast in words.
    pub fn describe(self) -> &'static str {
        match self {
            ForecastOutcome::Fills => "fills",
            ForecastOutcome::NotGrowing => "not growing",
            ForecastOutcome::NotEnoughHistory => "not enough history",
            ForecastOutcome::CapacityUnknown => "capacity unknown",
        }
    }
}

impl Sheet for StorageReport {
    fn kind(&self) -> ReportKind {
        ReportKind::Storage
    }
    fn window(&self) -> &ReportWindow {
        &self.window
    }
    fn method(&self) -> &str {
        &self.method
    }
    fn charts(&self) -> Vec<Chart> {
        vec![Chart {
            title: "Stored bytes per repository".into(),
            unit: ChartUnit::Bytes,
            series: self
                .repositories
                .iter()
                .map(|r| series(&r.name, &r.points, |p| (p.day, Some(p.stored_bytes as f64))))
                .collect(),
        }]
    }
    fn tables(&self) -> Vec<Table> {
        vec![Table {
            title: "Forecast per repository".into(),
            columns: vec!["Repository", "Stored now", "Growth per day", "History days", "Free", "Total", "Forecast", "Days to full", "Full on"],
            rows: self
                .repositories
                .iter()
                .map(|r| {
                    vec![
                        Cell::Text(r.name.clone()),
                        Cell::Bytes(r.points.last().map(|p| p.stored_bytes).unwrap_or(0)),
                        Cell::Text(match r.growth_bytes_per_day {
                            Some(g) if g < 0.0 => format!("-{}", format_bytes((-g) as u64)),
                            Some(g) => format_bytes(g as u64),
                            None => String::new(),
                        }),
                        Cell::Count(u64::from(r.history_days)),
                        Cell::Text(r.free_bytes.map(format_bytes).unwrap_or_default()),
                        Cell::Text(r.total_bytes.map(format_bytes).unwrap_or_default()),
                        Cell::Text(r.outcome.describe().into()),
                        Cell::Text(r.days_to_full.map(|d| format!("{d:.1}")).unwrap_or_default()),
                        Cell::Time(r.fills_on),
                    ]
                })
                .collect(),
        }]
    }
}

impl Sheet for RpoReport {
    fn kind(&self) -> ReportKind {
        ReportKind::Rpo
    }
    fn window(&self) -> &ReportWindow {
        &self.window
    }
    fn method(&self) -> &str {
        &self.rule
    }
    fn charts(&self) -> Vec<Chart> {
        vec![Chart {
            title: "VMs out of their RPO per day".into(),
            unit: ChartUnit::Count,
            series: vec![
                series("with an RPO", &self.days, |d| (d.day, Some(d.vms as f64))),
                series("out of RPO", &self.days, |d| (d.day, Some(d.in_breach as f64))),
            ],
        }]
    }
    fn tables(&self) -> Vec<Table> {
        let vms = Table {
            title: "Per VM".into(),
            columns: vec!["VM", "Flow", "RPO", "Last good point", "Now", "Breaches", "Time out of RPO"],
            rows: self
                .vms
                .iter()
                .map(|v| {
                    vec![
                        Cell::Text(v.name.clone()),
                        Cell::Text(v.flow.as_ref().map(|f| f.name.clone()).unwrap_or_default()),
                        Cell::Seconds(v.rpo_seconds.map(|s| s as f64)),
                        Cell::Time(v.last_good_point),
                        Cell::Text(match v.compliant_now {
                            Some(true) => "within RPO".into(),
                            Some(false) => "out of RPO".into(),
                            None => "no RPO".into(),
                        }),
                        Cell::Count(v.breaches.len() as u64),
                        Cell::Seconds(Some(v.breach_seconds as f64)),
                    ]
                })
                .collect(),
        };
        let breaches = Table {
            title: "Breaches".into(),
            columns: vec!["VM", "From", "Until", "In the period"],
            rows: self
                .vms
                .iter()
                .flat_map(|v| {
                    v.breaches.iter().map(|b| {
                        vec![Cell::Text(v.name.clone()), Cell::Time(Some(b.start)), Cell::Time(b.end), Cell::Seconds(Some(b.seconds as f64))]
                    })
                })
                .collect(),
        };
        vec![vms, breaches]
    }
}

/// Any report, for code that handles them alike (the cockpit's page).
#[derive(Debug, Clone, PartialEq)]
pub enum AnyReport {
    Success(SuccessReport),
    Backups(BackupsReport),
    ChangeRate(ChangeRateReport),
    Throughput(ThroughputReport),
    Storage(StorageReport),
    Rpo(RpoReport),
}

impl AnyReport {
    pub fn sheet(&self) -> &dyn Sheet {
        match self {
            AnyReport::Success(r) => r,
            AnyReport::Backups(r) => r,
            AnyReport::ChangeRate(r) => r,
            AnyReport::Throughput(r) => r,
            AnyReport::Storage(r) => r,
            AnyReport::Rpo(r) => r,
        }
    }
}

/// A table as CSV (RFC 4180: fields with commas, quotes or line breaks
/// quoted, quotes doubled; CRLF line ends), headed by its column names.
pub fn to_csv(table: &Table) -> String {
    fn field(s: &str) -> String {
        // A leading =, +, - or @ would run as a formula in a spreadsheet.
        let s = if s.starts_with(['=', '+', '@']) || (s.starts_with('-') && s.parse::<f64>().is_err()) { format!("'{s}") } else { s.to_owned() };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    }
    let mut out = String::new();
    out.push_str(&table.columns.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for row in &table.rows {
        out.push_str(&row.iter().map(|c| field(&c.raw())).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_success_rate() {
        assert!(check_days(30).is_ok());
        assert_eq!(check_days(31).unwrap_err(), "use one of 7, 30, 90, 365 days");
        assert_eq!(Outcomes { completed: 3, failed: 1, cancelled: 5 }.success_percent(), Some(75.0));
        assert_eq!(Outcomes { completed: 0, failed: 0, cancelled: 2 }.success_percent(), None);
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let t = Table {
            title: "t".into(),
            columns: vec!["Name", "Bytes"],
            rows: vec![vec![Cell::Text("a,\"b\"".into()), Cell::Bytes(5)], vec![Cell::Text("=cmd()".into()), Cell::Percent(None)]],
        };
        assert_eq!(to_csv(&t), "Name,Bytes\r\n\"a,\"\"b\"\"\",5\r\n'=cmd(),\r\n");
    }
}
