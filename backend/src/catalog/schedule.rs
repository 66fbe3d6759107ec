//! Flow schedules: five-field cron patterns (`minute hour day-of-month month
//! day-of-week`, or `@daily`-style nicknames), evaluated in UTC.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// Parses a schedule; the error is a sentence a person can act on.
pub fn parse(pattern: &str) -> Result<Cron, String> {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Err("Enter a cron pattern such as '0 2 * * *' (every day at 02:00 UTC), or leave the schedule out.".into());
    }
    if pattern.len() > 255 {
        return Err("A cron pattern has at most 255 characters.".into());
    }
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    let cron = parser.parse(pattern).map_err(|e| {
        format!(
            "'{pattern}' is not a valid cron pattern ({e}). Use five fields: minute hour day-of-month month \
             day-of-week, e.g. '0 2 * * *' for 02:00 UTC every day, or '@daily'."
        )
    })?;
    cron.find_next_occurrence(&Utc::now(), false)
        .map_err(|_| format!("The cron pattern '{pattern}' never fires (no matching date); check the day and month fields."))?;
    Ok(cron)
}

/// When the schedule fires next after `after`.
pub fn next_run(pattern: &str, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cron = parse(pattern).ok()?;
    cron.find_next_occurrence(&after, false).ok()
}

/// The schedule in words.
pub fn describe(pattern: &str) -> Option<String> {
    parse(pattern).ok().map(|c| c.describe())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn parses_five_fields_and_nicknames_and_explains_errors() {
        assert!(parse("0 2 * * *").is_ok());
        assert!(parse("@daily").is_ok());
        assert!(parse("*/15 * * * 1-5").is_ok());
        let err = parse("61 * * * *").unwrap_err();
        assert!(err.contains("'61 * * * *' is not a valid cron pattern"), "{err}");
        assert!(parse("0 0 2 * * *").is_err(), "seconds are not accepted");
        assert!(parse("every night").is_err());
        assert!(parse("   ").unwrap_err().contains("Enter a cron pattern"));
        assert!(parse("0 0 31 2 *").unwrap_err().contains("never fires"));
    }

    #[test]
    fn next_run_is_in_utc() {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 1, 30, 0).unwrap();
        assert_eq!(next_run("0 2 * * *", at), Some(Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap()));
        assert!(describe("0 2 * * *").is_some());
    }
}
