//! Calendar arithmetic on whole days and seconds since 1970-01-01 UTC.
//!
//! Integer-only, so every platform formats the same instant identically.

/// 2026-01-01T00:00:00Z in seconds since the Unix epoch: every generated date lies before it.
pub(crate) const EPOCH_SECS: i64 = 1_767_225_600;

/// Seconds in one day.
pub(crate) const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar date of a day count since 1970-01-01: (year, month, day).
pub(crate) const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// `yyyy-MM-dd` of a day count.
pub(crate) fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `yyyy-MM-ddTHH:mm:ssZ` of a second count.
pub(crate) fn format_datetime(secs: i64) -> String {
    let days = secs.div_euclid(DAY);
    let rem = secs.rem_euclid(DAY);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        format_date(days),
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Seconds since the Unix epoch at midnight UTC of a date.
pub(crate) const fn secs_from_civil(year: i64, month: u32, day: u32) -> i64 {
    days_from_civil(year, month, day) * DAY
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};

    #[test]
    fn epoch_is_new_year_2026() {
        assert_eq!(secs_from_civil(2026, 1, 1), EPOCH_SECS);
        assert_eq!(format_datetime(EPOCH_SECS), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn agrees_with_chrono() {
        let unix = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        for days in (-40_000..30_000).step_by(7) {
            let date = unix + chrono::Duration::days(days);
            assert_eq!(format_date(days), date.format("%Y-%m-%d").to_string());
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        for secs in (0..EPOCH_SECS).step_by(7_777_777) {
            let dt = DateTime::from_timestamp(secs, 0).expect("in range");
            assert_eq!(
                format_datetime(secs),
                dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
        }
    }
}
