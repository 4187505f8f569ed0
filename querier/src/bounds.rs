//! The ranges every time and duration of a query must stay within, so that no arithmetic on
//! them can overflow `i64` milliseconds.
//!
//! Times are bounded by Prometheus' own API bounds (`minTime`/`maxTime` in `web/api/v1`,
//! what its clients send for "all time"); durations by what Go's `time.Duration` holds
//! (`math.MaxInt64` nanoseconds, about 292 years), the largest duration Prometheus parses.
//! With times within ±9.2e15 ms and each duration within 9.2e12 ms, a selector's window
//! (time − offset − range − lookback, summed over the nesting of subqueries that the depth
//! limit allows) stays far inside `i64`; the planner still adds them with checked arithmetic.

/// Prometheus' smallest API time (`minTime`), in ms: `-292273086-05-16T16:47:06Z`.
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974;
/// Prometheus' largest API time (`maxTime`), in ms: `292277025-08-18T07:12:54.999Z`.
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974;
/// The longest duration Prometheus represents (`math.MaxInt64` ns), in whole ms.
pub const MAX_DURATION_MS: i64 = i64::MAX / 1_000_000;

/// Whether `t` (ms) is a time Prometheus' API can name.
pub fn time_in_range(t: i64) -> bool {
    (MIN_TIME_MS..=MAX_TIME_MS).contains(&t)
}

/// The time bounds as an operator reads them, for error messages.
pub(crate) fn time_range_text() -> String {
    format!(
        "Unix seconds {} to {}",
        seconds_text(MIN_TIME_MS),
        seconds_text(MAX_TIME_MS)
    )
}

/// `ms` as seconds with the milliseconds written out (`-9223309901257.974`).
pub(crate) fn seconds_text(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// PromQL's duration units in ms, largest first (Prometheus' `model.Duration`).
pub(crate) const DURATION_UNITS: [(&str, i64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// `ms` as PromQL writes a duration (Prometheus' `model.Duration`): `1y`, `1h30m`, `500ms`.
pub(crate) fn promql_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::from(if ms < 0 { "-" } else { "" });
    let mut rest = ms.unsigned_abs();
    for (unit, size) in DURATION_UNITS {
        let size = size.unsigned_abs();
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// Unix seconds (as Prometheus reads a float time: whole seconds plus the fraction rounded
/// to ms) to ms, or `None` when not finite or outside the API's time range.
pub fn seconds_to_ms(seconds: f64) -> Option<i64> {
    if !seconds.is_finite() {
        return None;
    }
    let whole = seconds.trunc();
    // 9.3e12 s bounds the range check below with room: beyond it `as i64` would saturate.
    if whole.abs() > 9.3e12 {
        return None;
    }
    let millis = ((seconds - whole) * 1000.0).round() as i64;
    let ms = (whole as i64).checked_mul(1000)?.checked_add(millis)?;
    time_in_range(ms).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_convert_within_range_only() {
        assert_eq!(seconds_to_ms(1.5), Some(1500));
        assert_eq!(seconds_to_ms(-1.5), Some(-1500));
        // f64 holds these seconds only to about 2 ms, so the bounds themselves are named by
        // their RFC 3339 spelling (see `api::params`); whole seconds inside are fine.
        assert_eq!(
            seconds_to_ms(9_223_309_901_257.0),
            Some(9_223_309_901_257_000)
        );
        assert_eq!(
            seconds_to_ms(-9_223_309_901_257.0),
            Some(-9_223_309_901_257_000)
        );
        for bad in [
            1e300,
            -1e300,
            -1e18,
            9_223_372_036_854_775.807,
            9_223_372_036_854_776.0,
            9.3e12,
            f64::NAN,
            f64::INFINITY,
        ] {
            assert_eq!(seconds_to_ms(bad), None, "{bad}");
        }
        assert_eq!(seconds_text(MIN_TIME_MS), "-9223309901257.974");
        assert_eq!(MAX_DURATION_MS, 9_223_372_036_854);
        assert_eq!(promql_duration(31_536_000_000), "1y");
        assert_eq!(promql_duration(5_400_500), "1h30m500ms");
        assert_eq!(promql_duration(0), "0s");
    }
}
