//! Wall-clock time for RTAS `get-time-of-day` (UTC, proleptic Gregorian calendar).

use firmware::rtas::TimeOfDay;
use std::time::{SystemTime, UNIX_EPOCH};

/// Converts seconds + nanoseconds since the Unix epoch to a calendar date and time.
pub fn time_of_day_from_unix(secs: u64, nanos: u32) -> TimeOfDay {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    TimeOfDay {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        nanosecond: nanos,
    }
}

/// The current time.
pub fn now() -> TimeOfDay {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    time_of_day_from_unix(d.as_secs(), d.subsec_nanos())
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), counting in 400-year eras that
/// start on March 1st so the leap day is the last day of an era-year.
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    const DAYS_PER_ERA: u64 = 146_097;
    // 1970-01-01 is day 719_468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / DAYS_PER_ERA;
    let doe = z % DAYS_PER_ERA; // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + u64::from(month <= 2)) as u32;
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let t = time_of_day_from_unix(0, 0);
        assert_eq!((t.year, t.month, t.day, t.hour), (1970, 1, 1, 0));
        // 2000-02-29 12:34:56 UTC = 951827696
        let t = time_of_day_from_unix(951_827_696, 7);
        assert_eq!(
            (
                t.year,
                t.month,
                t.day,
                t.hour,
                t.minute,
                t.second,
                t.nanosecond
            ),
            (2000, 2, 29, 12, 34, 56, 7)
        );
        // 2026-11-21 00:00:00 UTC = 1795219200
        let t = time_of_day_from_unix(1_795_219_200, 0);
        assert_eq!((t.year, t.month, t.day), (2026, 11, 21));
        // 2100-03-01 (2100 is not a leap year) = 4107542400
        let t = time_of_day_from_unix(4_107_542_400, 0);
        assert_eq!((t.year, t.month, t.day), (2100, 3, 1));
    }
}
