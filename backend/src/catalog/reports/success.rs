//! Backup success rate per VM, flow or protection group, and per day.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, QuerySelect};
use shared_types::jobs::{JobKind, JobStatus};
use shared_types::reports::{DayOutcomes, Outcomes, SuccessBy, SuccessReport, SuccessRow};

use super::{finished_jobs, name_of, vm_names, Days};
use crate::db::entities::{flows, protection_groups, vm_contexts};

pub const METHOD: &str = "Backup jobs that finished in the period, by the day they finished. Success rate = completed ÷ \
    (completed + failed); cancelled runs were stopped by someone and count on neither side. Per flow: the flow that \
    ran the backup (manual backups outside any flow are one row); per group: the VM's protection group now.";

fn count(o: &mut Outcomes, status: Option<JobStatus>) {
    match status {
        Some(JobStatus::Completed) => o.completed += 1,
        Some(JobStatus::Failed) => o.failed += 1,
        Some(JobStatus::Cancelled) => o.cancelled += 1,
        _ => {}
    }
}

pub async fn report(db: &DatabaseConnection, days: u32, by: SuccessBy, now: DateTime<Utc>) -> Result<SuccessReport, DbErr> {
    let d = Days::new(days, now);
    let jobs = finished_jobs(db, &[JobKind::Backup], d.start).await?;
    let names: HashMap<String, String> = match by {
        SuccessBy::Vm => vm_names(db).await?,
        SuccessBy::Flow => flows::Entity::find()
            .select_only()
            .column(flows::Column::Id)
            .column(flows::Column::Name)
            .into_tuple::<(String, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect(),
        SuccessBy::Group => protection_groups::Entity::find()
            .select_only()
            .column(protection_groups::Column::Id)
            .column(protection_groups::Column::Name)
            .into_tuple::<(String, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect(),
    };
    let vm_group: HashMap<String, Option<String>> = if by == SuccessBy::Group {
        vm_contexts::Entity::find()
            .select_only()
            .column(vm_contexts::Column::Id)
            .column(vm_contexts::Column::GroupId)
            .into_tuple::<(String, Option<String>)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };

    let mut days: Vec<Outcomes> = vec![Outcomes::default(); d.n];
    let mut total = Outcomes::default();
    // Row key ("" for none) → (outcomes, last failure and its error).
    type LastFailure = Option<(DateTime<Utc>, Option<String>)>;
    let mut rows: HashMap<String, (Outcomes, LastFailure)> = HashMap::new();
    for job in &jobs {
        let Some(finished) = job.finished_at else { continue };
        let Some(i) = d.index(finished) else { continue };
        let status = JobStatus::parse(&job.status);
        count(&mut days[i], status);
        count(&mut total, status);
        let key = match by {
            SuccessBy::Vm => job.vm_context_id.clone(),
            SuccessBy::Flow => job.flow_id.clone(),
            SuccessBy::Group => job.vm_context_id.as_ref().and_then(|v| vm_group.get(v).cloned().flatten()),
        }
        .unwrap_or_default();
        let row = rows.entry(key).or_default();
        count(&mut row.0, status);
        if status == Some(JobStatus::Failed) && row.1.as_ref().is_none_or(|(at, _)| *at < finished) {
            row.1 = Some((finished, job.error.clone()));
        }
    }
    let mut rows: Vec<SuccessRow> = rows
        .into_iter()
        .map(|(id, (outcomes, failure))| {
            let name = if id.is_empty() {
                match by {
                    SuccessBy::Vm => "no VM".to_owned(),
                    SuccessBy::Flow => "manual backups (no flow)".to_owned(),
                    SuccessBy::Group => "VMs in no group".to_owned(),
                }
            } else {
                name_of(&names, &id)
            };
            let (last_failure, last_error) = failure.map(|(at, e)| (Some(at), e)).unwrap_or((None, None));
            SuccessRow { id, name, success_percent: outcomes.success_percent(), outcomes, last_failure, last_error }
        })
        .collect();
    // Lowest rate first (the ones to look at), rows without a rate last.
    rows.sort_by(|a, b| {
        let rate = |r: &SuccessRow| r.success_percent.unwrap_or(f64::INFINITY);
        rate(a).total_cmp(&rate(b)).then_with(|| a.name.cmp(&b.name))
    });
    Ok(SuccessReport {
        window: d.window(),
        by,
        method: METHOD.into(),
        success_percent: total.success_percent(),
        total,
        rows,
        days: days
            .into_iter()
            .enumerate()
            .map(|(i, outcomes)| DayOutcomes { day: d.day(i), success_percent: outcomes.success_percent(), outcomes })
            .collect(),
    })
}
