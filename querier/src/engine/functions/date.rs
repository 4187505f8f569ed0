//! Calendar fields of a Unix time in UTC, for `hour()`, `day_of_week()`, ...

use super::Func;

/// The UTC calendar fields of one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    /// 1..=12
    pub(crate) month: i64,
    /// 1..=31
    pub(crate) day: i64,
    pub(crate) hour: i64,
    pub(crate) minute: i64,
    /// 0 = Sunday
    pub(crate) weekday: i64,
    /// 1..=366
    pub(crate) year_day: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil(unix_secs: i64) -> Civil {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: secs / 3_600,
        minute: secs % 3_600 / 60,
        weekday: (days + 4).rem_euclid(7),
        year_day: days - days_from_civil(year, 1, 1) + 1,
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// The date function's value for a Unix time in seconds.
pub(crate) fn date_value(func: Func, unix_secs: i64) -> f64 {
    let c = civil(unix_secs);
    let v = match func {
        Func::DaysInMonth => match c.month {
            2 if is_leap(c.year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        },
        Func::DayOfMonth => c.day,
        Func::DayOfWeek => c.weekday,
        Func::DayOfYear => c.year_day,
        Func::Hour => c.hour,
        Func::Minute => c.minute,
        Func::Month => c.month,
        _ => c.year,
    };
    v as f64
}

/// Go's `int64(f)` for the float seconds a date function receives (saturating here where
/// Go's result is platform-defined).
pub(crate) fn float_secs(v: f64) -> i64 {
    v as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_fields_match_known_dates() {
        // 2024-02-29T13:45:00Z, a Thursday.
        let c = civil(1_709_214_300);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute),
            (2024, 2, 29, 13, 45)
        );
        assert_eq!((c.weekday, c.year_day), (4, 60));
        assert_eq!(date_value(Func::DaysInMonth, 1_709_214_300), 29.0);
        // Before the epoch: 1969-12-31T23:59:59Z, a Wednesday.
        let c = civil(-1);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.weekday),
            (1969, 12, 31, 23, 59, 3)
        );
        assert_eq!(c.year_day, 365);
        assert_eq!(date_value(Func::Year, 0), 1970.0);
        assert_eq!(date_value(Func::DaysInMonth, 0), 31.0);
    }
}
