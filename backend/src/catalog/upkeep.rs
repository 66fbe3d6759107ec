//! A repository's scheduled maintenance: which verify and GC schedules are
//! in force (a NULL column is the default, an empty one is off), when they
//! fire next, and what the last runs found.

use chrono::{DateTime, Utc};
use shared_types::repositories::{LastGc, LastVerify, Upkeep, VerifyOutcome, DEFAULT_GC_SCHEDULE, DEFAULT_VERIFY_SCHEDULE};

use super::{schedule, to_u64};
use crate::db::entities::repositories;

/// The verify schedule in force, `None` when off.
pub fn verify_schedule(row: &repositories::Model) -> Option<String> {
    effective(row.verify_schedule.as_deref(), DEFAULT_VERIFY_SCHEDULE)
}

/// The GC schedule in force, `None` when off.
pub fn gc_schedule(row: &repositories::Model) -> Option<String> {
    effective(row.gc_schedule.as_deref(), DEFAULT_GC_SCHEDULE)
}

fn effective(stored: Option<&str>, default: &str) -> Option<String> {
    match stored {
        None => Some(default.to_owned()),
        Some(s) if s.trim().is_empty() => None,
        Some(s) => Some(s.to_owned()),
    }
}

/// A schedule field of a request as the column's new value: `None` leaves
/// the column as it is, `Some(None)` restores the default, `Some(Some(""))`
/// turns it off. A bad pattern is an error a person can act on.
pub fn schedule_value(field: Option<&str>) -> Result<Option<Option<String>>, String> {
    match field.map(str::trim) {
        None => Ok(None),
        Some("") => Ok(Some(Some(String::new()))),
        Some(d) if d.eq_ignore_ascii_case("default") => Ok(Some(None)),
        Some(p) => schedule::parse(p).map(|_| Some(Some(p.to_owned()))),
    }
}

/// Schedules, last results and next runs as of `now`.
pub fn describe(row: &repositories::Model, now: DateTime<Utc>) -> Upkeep {
    let verify_schedule = verify_schedule(row);
    let gc_schedule = gc_schedule(row);
    Upkeep {
        next_verify_at: verify_schedule.as_deref().and_then(|p| schedule::next_run(p, now)),
        next_gc_at: gc_schedule.as_deref().and_then(|p| schedule::next_run(p, now)),
        verify_schedule,
        gc_schedule,
        last_verify: row.last_verify_at.map(|at| LastVerify {
            at,
            outcome: row.last_verify_status.as_deref().and_then(VerifyOutcome::parse).unwrap_or(VerifyOutcome::Failed),
            damaged: row.last_verify_damaged.map(to_u64).unwrap_or(0),
        }),
        last_gc: row.last_gc_at.map(|at| LastGc { at, reclaimed_bytes: row.last_gc_reclaimed_bytes.map(to_u64).unwrap_or(0) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fields_keep_reset_disable_or_set() {
        assert_eq!(schedule_value(None), Ok(None));
        assert_eq!(schedule_value(Some(" ")), Ok(Some(Some(String::new()))));
        assert_eq!(schedule_value(Some("default")), Ok(Some(None)));
        assert_eq!(schedule_value(Some("0 1 * * 6")), Ok(Some(Some("0 1 * * 6".into()))));
        let e = schedule_value(Some("every tuesday")).unwrap_err();
        assert!(e.contains("every tuesday") && e.contains("five fields"), "{e}");
        assert_eq!(effective(None, "x").as_deref(), Some("x"));
        assert_eq!(effective(Some(""), "x"), None);
    }
}
