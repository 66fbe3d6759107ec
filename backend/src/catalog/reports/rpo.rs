//! RPO compliance: which managed VMs had no good restore point inside their
//! recovery point objective, and when.
//!
//! Backup flows carry no RPO setting; it follows from the schedule (the
//! rule in [`RULE`], the same idea as a replication flow's RPO, which is its
//! interval): the longest time between two consecutive runs of the flow's
//! cron pattern, plus a tenth of it for queueing and the run itself.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use shared_types::backups::BackupStatus;
use shared_types::flow::FlowKind;
use shared_types::jobs::{JobKind, JobStatus};
use shared_types::reports::{RpoBreach, RpoDay, RpoReport, RpoRow};
use shared_types::NamedRef;

use super::{finished_jobs, Days};
use crate::catalog::{flows as flow_logic, schedule};
use crate::db::entities::{backups, flows, jobs, vm_contexts};

pub const RULE: &str = "A VM's RPO comes from the enabled, scheduled backup flows that cover it now (the strictest one): \
    the longest time between two consecutive runs of the flow's schedule (over its next 8 days, at least 3 runs), \
    plus a tenth of that for queueing and the run itself. The current schedule applies to the whole period. A good \
    restore point is a completed backup of the VM, in any repository, that verify has not found corrupt; it counts \
    from when the backup started (when its data was read). A VM is out of its RPO from the moment its newest good \
    point is older than the RPO (without one: the RPO after the flow was created or the VM added, whichever is \
    later) until its next good point.";

/// The RPO `pattern` gives (see [`RULE`]), in seconds, looking from `from`.
pub fn schedule_rpo(pattern: &str, from: DateTime<Utc>) -> Option<u64> {
    let cron = schedule::parse(pattern).ok()?;
    let look_until = from + Duration::days(8);
    let give_up = from + Duration::days(400);
    let mut previous: Option<DateTime<Utc>> = None;
    let mut longest: i64 = 0;
    for (n, at) in cron.iter_after(from).enumerate() {
        if let Some(p) = previous {
            longest = longest.max((at - p).num_seconds());
        }
        previous = Some(at);
        if (at > look_until && n >= 2) || at > give_up || n > 20_000 {
            break;
        }
    }
    let longest = u64::try_from(longest).ok().filter(|s| *s > 0)?;
    Some(longest + longest / 10)
}

/// The spans without a good point inside `rpo`: `points` are the good
/// points' times (ascending), `since` when the RPO began to apply.
pub fn breaches(points: &[DateTime<Utc>], since: DateTime<Utc>, rpo: Duration, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut out = Vec::new();
    let mut deadline = since + rpo;
    for &p in points {
        if p > deadline {
            out.push((deadline, Some(p)));
        }
        deadline = deadline.max(p + rpo);
    }
    if now > deadline {
        out.push((deadline, None));
    }
    out
}

pub async fn report(db: &DatabaseConnection, days: u32, now: DateTime<Utc>) -> Result<RpoReport, DbErr> {
    let d = Days::new(days, now);
    let vms = vm_contexts::Entity::find().order_by_asc(vm_contexts::Column::Name).all(db).await?;
    // Each VM's strictest scheduled flow: (rpo seconds, flow, flow created).
    let mut rpo_of: HashMap<String, (u64, NamedRef, DateTime<Utc>)> = HashMap::new();
    let flows = flows::Entity::find()
        .filter(flows::Column::Kind.eq(FlowKind::Backup.as_str()))
        .filter(flows::Column::Enabled.eq(true))
        .filter(flows::Column::Schedule.is_not_null())
        .all(db)
        .await?;
    for flow in &flows {
        let Some(rpo) = flow.schedule.as_deref().and_then(|s| schedule_rpo(s, now)) else { continue };
        for vm in flow_logic::vm_ids(db, flow).await? {
            if rpo_of.get(&vm).is_none_or(|(r, _, _)| rpo < *r) {
                rpo_of.insert(vm, (rpo, NamedRef { id: flow.id.clone(), name: flow.name.clone() }, flow.created_at));
            }
        }
    }
    let corrupt: HashSet<String> = backups::Entity::find()
        .select_only()
        .column(backups::Column::JobId)
        .filter(backups::Column::Status.eq(BackupStatus::Corrupt.as_str()))
        .filter(backups::Column::JobId.is_not_null())
        .into_tuple::<Option<String>>()
        .all(db)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let point_of = |j: &jobs::Model| -> Option<DateTime<Utc>> {
        (j.status == JobStatus::Completed.as_str() && !corrupt.contains(&j.id)).then_some(j.started_at.or(j.finished_at)).flatten()
    };
    let mut points: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    for j in finished_jobs(db, &[JobKind::Backup], d.start).await? {
        if let (Some(vm), Some(at)) = (j.vm_context_id.clone(), point_of(&j)) {
            points.entry(vm).or_default().push(at);
        }
    }

    let mut rows = Vec::with_capacity(vms.len());
    let mut day_vms = vec![0u64; d.n];
    let mut day_breach = vec![0u64; d.n];
    for vm in &vms {
        let Some((rpo, flow, flow_created)) = rpo_of.get(&vm.id).cloned() else {
            rows.push(RpoRow {
                id: vm.id.clone(),
                name: vm.name.clone(),
                flow: None,
                rpo_seconds: None,
                last_good_point: None,
                compliant_now: None,
                breaches: Vec::new(),
                breach_seconds: 0,
            });
            continue;
        };
        // The newest good point from before the period.
        let earlier = jobs::Entity::find()
            .filter(jobs::Column::VmContextId.eq(vm.id.clone()))
            .filter(jobs::Column::Kind.eq(JobKind::Backup.as_str()))
            .filter(jobs::Column::Status.eq(JobStatus::Completed.as_str()))
            .filter(jobs::Column::FinishedAt.lt(d.start))
            .order_by_desc(jobs::Column::FinishedAt)
            .limit(8)
            .all(db)
            .await?;
        let mut mine: Vec<DateTime<Utc>> = earlier.iter().find_map(point_of).into_iter().collect();
        mine.extend(points.remove(&vm.id).unwrap_or_default());
        mine.retain(|p| *p <= now);
        mine.sort();
        let since = flow_created.max(vm.created_at);
        let spans = breaches(&mine, since, Duration::seconds(rpo as i64), now);
        let in_period: Vec<RpoBreach> = spans
            .iter()
            .filter(|(_, end)| end.unwrap_or(now) > d.start)
            .map(|&(start, end)| RpoBreach {
                start,
                end,
                seconds: u64::try_from((end.unwrap_or(now) - start.max(d.start)).num_seconds()).unwrap_or(0),
            })
            .collect();
        for i in 0..d.n {
            let (from, to) = (d.day(i), d.day(i) + Duration::days(1));
            if since >= to {
                continue;
            }
            day_vms[i] += 1;
            if in_period.iter().any(|b| b.start < to && b.end.unwrap_or(now) > from) {
                day_breach[i] += 1;
            }
        }
        rows.push(RpoRow {
            id: vm.id.clone(),
            name: vm.name.clone(),
            flow: Some(flow),
            rpo_seconds: Some(rpo),
            last_good_point: mine.last().copied(),
            compliant_now: Some(!spans.last().is_some_and(|(_, end)| end.is_none())),
            breach_seconds: in_period.iter().map(|b| b.seconds).sum(),
            breaches: in_period,
        });
    }
    // Most time out of RPO first, then the rest by name; VMs without an RPO last.
    rows.sort_by(|a, b| {
        a.rpo_seconds.is_none().cmp(&b.rpo_seconds.is_none()).then(b.breach_seconds.cmp(&a.breach_seconds)).then_with(|| a.name.cmp(&b.name))
    });
    Ok(RpoReport {
        window: d.window(),
        rule: RULE.into(),
        vms: rows,
        days: (0..d.n).map(|i| RpoDay { day: d.day(i), vms: day_vms[i], in_breach: day_breach[i] }).collect(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn rpo_is_the_longest_gap_of_the_schedule_plus_a_tenth() {
        let from = Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0).unwrap();
        assert_eq!(schedule_rpo("0 2 * * *", from), Some(86_400 + 8_640));
        assert_eq!(schedule_rpo("0 * * * *", from), Some(3_600 + 360));
        // Weekdays only: the weekend gap (Friday 02:00 to Monday 02:00).
        assert_eq!(schedule_rpo("0 2 * * 1-5", from), Some(3 * 86_400 + 3 * 8_640));
        assert_eq!(schedule_rpo("not cron", from), None);
    }

    #[test]
    fn breaches_run_from_the_deadline_to_the_next_point() {
        let t = |h: i64| Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + Duration::hours(h);
        let rpo = Duration::hours(10);
        // Points at 5 and 30: in breach from 15 to 30, and from 40 on.
        assert_eq!(breaches(&[t(5), t(30)], t(0), rpo, t(48)), vec![(t(15), Some(t(30))), (t(40), None)]);
        // No point at all: from since + RPO.
        assert_eq!(breaches(&[], t(0), rpo, t(48)), vec![(t(10), None)]);
        assert!(breaches(&[t(9), t(18), t(27)], t(0), rpo, t(30)).is_empty());
    }
}
