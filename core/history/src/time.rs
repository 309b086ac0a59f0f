//! Clock and calendar helpers (UTC only: the store never needs time zones; shells localise).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::Millis;

/// Milliseconds in a UTC day; `daily.day` is `time_ms.div_euclid(DAY_MS)`.
pub const DAY_MS: Millis = 86_400_000;

/// Current wall-clock time in milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// Day number (days since 1970-01-01 UTC) of a time.
pub fn day_of(time_ms: Millis) -> i64 {
    time_ms.div_euclid(DAY_MS)
}

/// `(year, month, day)` of a day number (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` of a day number.
pub fn date_string(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Compact UTC timestamp for file names: `20261129T111400Z`.
pub fn file_stamp(time_ms: Millis) -> String {
    let days = day_of(time_ms);
    let secs = time_ms.rem_euclid(DAY_MS) / 1000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_matches_known_dates() {
        assert_eq!(date_string(0), "1970-01-01");
        // 2026-11-29 is day 20,786.
        assert_eq!(date_string(20_786), "2026-11-29");
        assert_eq!(date_string(day_of(951_782_400_000)), "2000-02-29");
        assert_eq!(file_stamp(1_795_951_000_000), "20261129T111640Z");
    }
}
