//! Calendar fields of a Unix time in UTC, for `hour()`, `day_of_week()`, ...

use strata_shared::time::{civil_from_days, days_from_civil};

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

pub(crate) fn civil(unix_secs: i64) -> Civil {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month: i64::from(month),
        day: i64::from(day),
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
