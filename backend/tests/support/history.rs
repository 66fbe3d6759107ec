//! A year of generated job history, for the reports' tests only (the
//! product records real jobs only). Deterministic: a small linear
//! congruential generator, so every run writes the same history relative to
//! `now`. Returns what it wrote, so a test computes the expected figures
//! itself from the rows rather than asking the code under test.

use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use sendense::db::entities::{backups, flows, jobs, repositories, vm_contexts};

/// Days of history written.
pub const DAYS: i64 = 372;
pub const GIB: i64 = 1 << 30;

/// One job as written.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub vm: Option<String>,
    pub flow: Option<String>,
    pub repository: Option<String>,
    pub backup_type: Option<&'static str>,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// Changed (incrementals) or planned bytes.
    pub total: i64,
    pub read: i64,
    pub written: i64,
    /// A verify found its restore point corrupt.
    pub corrupt: bool,
}

/// What was written and where.
pub struct History {
    pub now: DateTime<Utc>,
    pub rows: Vec<Row>,
    /// vm-0..vm-5 ids: 0-2 in group `grp` and the daily flow, 3 hourly
    /// (flow made 30 days ago), 4 weekly, 5 manual backups only.
    pub vms: Vec<String>,
    pub group: String,
    pub daily_flow: String,
    pub hourly_flow: String,
    pub weekly_flow: String,
    pub repository: String,
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// 0..n
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Sets `created_at` of a row of `E` (ids are strings).
async fn backdate<E: EntityTrait>(db: &DatabaseConnection, id_col: E::Column, created_col: E::Column, id: &str, at: DateTime<Utc>)
where
    E::Column: ColumnTrait,
{
    E::update_many().col_expr(created_col, Expr::value(at)).filter(id_col.eq(id)).exec(db).await.unwrap();
}

/// Writes the history: `vms` (6 managed VM ids, made already), the group
/// and flows (made through the API already) are backdated here.
pub async fn write(db: &DatabaseConnection, vms: Vec<String>, group: String, flows_: [String; 3], repository: String) -> History {
    let now = Utc::now();
    let year_ago = now - Duration::days(DAYS);
    let [daily_flow, hourly_flow, weekly_flow] = flows_;
    for vm in &vms {
        backdate::<vm_contexts::Entity>(db, vm_contexts::Column::Id, vm_contexts::Column::CreatedAt, vm, year_ago).await;
    }
    vm_contexts::Entity::update_many()
        .col_expr(vm_contexts::Column::CapacityBytes, Expr::value(100 * GIB))
        .exec(db)
        .await
        .unwrap();
    backdate::<repositories::Entity>(db, repositories::Column::Id, repositories::Column::CreatedAt, &repository, year_ago).await;
    backdate::<flows::Entity>(db, flows::Column::Id, flows::Column::CreatedAt, &daily_flow, year_ago).await;
    backdate::<flows::Entity>(db, flows::Column::Id, flows::Column::CreatedAt, &weekly_flow, year_ago).await;
    backdate::<flows::Entity>(db, flows::Column::Id, flows::Column::CreatedAt, &hourly_flow, now - Duration::days(30)).await;

    let mut rng = Lcg(42);
    let mut rows = Vec::new();
    let midnight = |d: i64| (now - Duration::days(d)).duration_trunc(Duration::days(1)).unwrap();
    let backup = |rng: &mut Lcg, rows: &mut Vec<Row>, vm: usize, flow: Option<&String>, start: DateTime<Utc>, full: bool| {
        let minutes = 10 + rng.below(60) as i64;
        let finished = start + Duration::minutes(minutes) + Duration::seconds(rng.below(60) as i64);
        if finished > now {
            return;
        }
        let roll = rng.below(100);
        let status = if roll < 8 { "failed" } else if roll < 10 { "cancelled" } else { "completed" };
        let total = if full { 20 * GIB } else { GIB / 2 + (rng.below(1536) as i64) * (1 << 20) };
        let read = total * 8 / 10;
        let written = if status == "completed" { read * 3 / 10 } else { read / 10 };
        rows.push(Row {
            id: format!("h-{}", rows.len()),
            kind: "backup",
            status,
            vm: Some(vms[vm].clone()),
            flow: flow.cloned(),
            repository: Some(repository.clone()),
            backup_type: Some(if full { "full" } else { "incremental" }),
            started: start,
            finished,
            total,
            read,
            written,
            corrupt: false,
        });
    };
    for d in (0..DAYS).rev() {
        let day = midnight(d);
        // vm-0..2: daily at 02:00 (a few minutes late), a full on the 1st.
        for vm in 0..3 {
            // vm-1 was off for five days, 40 days ago.
            if vm == 1 && (36..41).contains(&d) {
                continue;
            }
            let start = day + Duration::hours(2) + Duration::minutes(rng.below(5) as i64);
            backup(&mut rng, &mut rows, vm, Some(&daily_flow), start, day.format("%d").to_string() == "01");
        }
        // vm-4: Sundays at 03:00, always full.
        if day.format("%u").to_string() == "7" {
            backup(&mut rng, &mut rows, 4, Some(&weekly_flow), day + Duration::hours(3), true);
        }
        // vm-5: by hand every ten days.
        if d % 10 == 3 {
            backup(&mut rng, &mut rows, 5, None, day + Duration::hours(14), d % 30 == 3);
        }
        // vm-3: hourly over the last 30 days, but not for 6 hours 12 days ago.
        if d < 30 {
            for h in 0..24 {
                if d == 12 && (5..11).contains(&h) {
                    continue;
                }
                backup(&mut rng, &mut rows, 3, Some(&hourly_flow), day + Duration::hours(h) + Duration::minutes(1), d == 29 && h == 0);
            }
        }
        // The repository's GC on Saturdays, giving back a little.
        if day.format("%u").to_string() == "6" && day + Duration::hours(5) < now {
            let reclaimed = GIB + rng.below(1024) as i64 * (1 << 20);
            rows.push(Row {
                id: format!("h-{}", rows.len()),
                kind: "gc",
                status: "completed",
                vm: None,
                flow: None,
                repository: Some(repository.clone()),
                backup_type: None,
                started: day + Duration::hours(4),
                finished: day + Duration::hours(4) + Duration::minutes(20),
                total: 0,
                read: 50 * GIB,
                written: reclaimed,
                corrupt: false,
            });
        }
        // A restore now and then.
        if d % 17 == 5 {
            rows.push(Row {
                id: format!("h-{}", rows.len()),
                kind: "restore",
                status: "completed",
                vm: Some(vms[0].clone()),
                flow: None,
                repository: Some(repository.clone()),
                backup_type: None,
                started: day + Duration::hours(9),
                finished: day + Duration::hours(9) + Duration::minutes(40),
                total: 20 * GIB,
                read: 20 * GIB,
                written: 20 * GIB,
                corrupt: false,
            });
        }
    }
    // vm-2's restore point of 20 days ago was found corrupt.
    let target = midnight(20) + Duration::hours(2);
    if let Some(r) = rows.iter_mut().find(|r| r.vm.as_deref() == Some(&vms[2]) && r.status == "completed" && (r.started - target).num_minutes().abs() < 10) {
        r.corrupt = true;
    }

    let models: Vec<jobs::ActiveModel> = rows
        .iter()
        .map(|r| jobs::ActiveModel {
            id: Set(r.id.clone()),
            flow_id: Set(r.flow.clone()),
            vm_context_id: Set(r.vm.clone()),
            repository_id: Set(r.repository.clone()),
            kind: Set(r.kind.into()),
            backup_type: Set(r.backup_type.map(Into::into)),
            status: Set(r.status.into()),
            priority: Set(0),
            bytes_total: Set(r.total),
            bytes_read: Set(r.read),
            bytes_written: Set(r.written),
            error: Set((r.status == "failed").then(|| format!("{} could not be read", r.id))),
            requested_by: Set(None),
            created_at: Set(r.started),
            started_at: Set(Some(r.started)),
            finished_at: Set(Some(r.finished)),
            updated_at: Set(r.finished),
            backup_id: Set(None),
            target_platform_id: Set(None),
            options: Set(None),
            replication_id: Set(None),
            operation: Set(None),
        })
        .collect();
    for chunk in models.chunks(400) {
        jobs::Entity::insert_many(chunk.to_vec()).exec(db).await.unwrap();
    }
    for r in rows.iter().filter(|r| r.corrupt) {
        backups::ActiveModel {
            id: Set(format!("bk-{}", r.id)),
            vm_context_id: Set(r.vm.clone().unwrap()),
            job_id: Set(Some(r.id.clone())),
            repository_id: Set(repository.clone()),
            snapshot_name: Set("vm-2".into()),
            snapshot_id: Set(format!("snap-{}", r.id)),
            parent_snapshot_id: Set(None),
            backup_type: Set(r.backup_type.unwrap().into()),
            status: Set("corrupt".into()),
            logical_bytes: Set(100 * GIB),
            bytes_read: Set(r.read),
            bytes_written: Set(r.written),
            created_at: Set(r.finished),
            immutable_until: Set(None),
            verified_at: Set(Some(now)),
            verify_reason: Set(Some("chunk missing".into())),
        }
        .insert(db)
        .await
        .unwrap();
    }
    History { now, rows, vms, group, daily_flow, hourly_flow, weekly_flow, repository }
}
