//! Request parameters as Prometheus reads them: from the URL and, for POST, from a
//! form-encoded body; times as RFC 3339 or Unix seconds; durations as `5m` or seconds.

use super::response::ApiError;

/// Every `name=value` pair of a request, repeats kept (`match[]` is repeated).
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Pairs from the URL query and, when it is a form, the body.
    pub(crate) fn parse(query: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Self {
        let mut pairs: Vec<(String, String)> = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let is_form =
            content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if is_form && !body.is_empty() {
            pairs.extend(url::form_urlencoded::parse(body).into_owned());
        }
        Self(pairs)
    }

    /// The first value of `name` (Prometheus' `FormValue`).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

use crate::bounds::{seconds_to_ms, time_in_range, time_range_text, MAX_DURATION_MS};
pub(crate) use crate::bounds::{MAX_TIME_MS, MIN_TIME_MS};

/// Parses a time: Unix seconds with up to millisecond precision, or RFC 3339. The error is
/// Prometheus' `parseTime` message, plus why when the number is outside the times its API
/// can name (Prometheus 2.42 wraps those around silently; Strata refuses them).
pub(crate) fn parse_time_value(value: &str) -> Result<i64, String> {
    let invalid = || format!("cannot parse {value:?} to a valid timestamp");
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(invalid());
        }
        return seconds_to_ms(seconds).ok_or_else(|| {
            format!(
                "{}: it is outside the times Prometheus' API can name ({})",
                invalid(),
                time_range_text()
            )
        });
    }
    // The bounds Prometheus' clients send for "all time".
    match value {
        "-292273086-05-16T16:47:06Z" => return Ok(MIN_TIME_MS),
        "292277025-08-18T07:12:54.999999999Z" => return Ok(MAX_TIME_MS),
        _ => {}
    }
    humantime::parse_rfc3339_weak(value)
        .ok()
        .and_then(|t| {
            let since = t.duration_since(std::time::UNIX_EPOCH);
            match since {
                Ok(d) => i64::try_from(d.as_millis()).ok(),
                Err(e) => i64::try_from(e.duration().as_millis()).ok().map(|m| -m),
            }
        })
        .filter(|ms| time_in_range(*ms))
        .ok_or_else(invalid)
}

/// A required time parameter, as `query_range` reads `start` and `end` (Prometheus'
/// `parseTime`: `invalid parameter "start": cannot parse ...`).
pub(crate) fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    parse_time_value(value)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
}

/// An optional time parameter with a default, as Prometheus' `parseTimeParam` reads `time`
/// and the metadata endpoints' `start`/`end` (its message names the parameter twice).
pub(crate) fn time_or(params: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match params.get(name) {
        Some(v) if !v.is_empty() => parse_time_value(v).map_err(|e| {
            ApiError::bad_data(format!(
                "invalid parameter \"{name}\": Invalid time value for '{name}': {e}"
            ))
        }),
        _ => Ok(default),
    }
}

/// Parses a duration parameter: seconds (fractions allowed) or a Prometheus duration
/// (`1h30m`), in ms. As Prometheus, a number of seconds whose nanoseconds overflow `int64`
/// is refused ("It overflows int64"), and so is a duration over 292 years.
pub(crate) fn parse_duration(name: &str, value: &str) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::bad_data(format!(
            "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid duration"
        ))
    };
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_nan() {
            return Err(invalid());
        }
        let nanos = seconds * 1e9;
        if nanos >= i64::MAX as f64 || nanos <= i64::MIN as f64 {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid duration. It overflows int64"
            )));
        }
        // In range: |nanos| < 9.3e18, so the milliseconds fit with room to spare.
        return Ok((seconds * 1000.0).round() as i64);
    }
    prometheus_duration_ms(value).ok_or_else(invalid)
}

/// `[0-9]+(y|w|d|h|m|s|ms)` repeated, units in decreasing order, as Prometheus' model.ParseDuration.
pub(crate) fn prometheus_duration_ms(text: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = crate::bounds::DURATION_UNITS;
    if text.is_empty() {
        return None;
    }
    if text == "0" {
        return Some(0);
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut last_unit = None;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return None;
        }
        let number: i64 = text[digits_start..i].parse().ok()?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &text[unit_start..i];
        let position = UNITS.iter().position(|(u, _)| *u == unit)?;
        if last_unit.is_some_and(|last| position <= last) {
            return None;
        }
        last_unit = Some(position);
        total = total.checked_add(number.checked_mul(UNITS[position].1)?)?;
    }
    // Prometheus' model.ParseDuration: "duration out of range" past what time.Duration holds.
    (total <= MAX_DURATION_MS).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_parse_like_prometheus() {
        assert_eq!(parse_time("t", "1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("t", "1700000000.123").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            parse_time("t", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("t", "2023-11-14T22:13:20.5Z").unwrap(),
            1_700_000_000_500
        );
        assert!(parse_time("t", "yesterday").is_err());
        assert_eq!(parse_duration("step", "15").unwrap(), 15_000);
        assert_eq!(parse_duration("step", "0.5").unwrap(), 500);
        assert_eq!(parse_duration("step", "1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration("step", "1h").unwrap(), 3_600_000);
        assert!(parse_duration("step", "30s1m").is_err());
        assert!(parse_duration("step", "abc").is_err());
    }

    #[test]
    fn extreme_times_and_durations_are_refused_with_prometheus_wording() {
        for t in [
            "1e300",
            "-1e300",
            "-1e18",
            "9223372036854775.807",
            "9223372036854776",
            "-9.2e15",
        ] {
            let e = parse_time("start", t).unwrap_err();
            assert_eq!(e.error_type, "bad_data");
            assert!(
                e.message.starts_with(&format!(
                    "invalid parameter \"start\": cannot parse \"{t}\" to a valid timestamp: it is outside"
                )),
                "{}",
                e.message
            );
        }
        let p = Params::parse(Some("time=NaN"), None, b"");
        let e = time_or(&p, "time", 0).unwrap_err();
        assert_eq!(
            e.message,
            "invalid parameter \"time\": Invalid time value for 'time': cannot parse \"NaN\" to a valid timestamp"
        );
        let e = parse_duration("step", "1e15").unwrap_err();
        assert!(e.message.ends_with("It overflows int64"), "{}", e.message);
        assert!(parse_duration("step", "9.2e9").is_ok());
        assert!(parse_duration("step", "300y").is_err());
        assert_eq!(
            parse_duration("step", "292y").unwrap(),
            292 * 365 * 86_400_000
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Any float, integer or string as a time: a time within the API's range, or an error.
        #[test]
        fn any_time_is_in_range_or_an_error(
            f in proptest::num::f64::ANY,
            i in proptest::prelude::any::<i64>(),
            s in "\\PC{0,40}",
        ) {
            for text in [f.to_string(), format!("{f:e}"), i.to_string(), s.clone()] {
                if let Ok(ms) = parse_time_value(&text) {
                    proptest::prop_assert!(time_in_range(ms), "{text} -> {ms}");
                }
            }
        }

        /// Any float, integer or string as a duration: at most 292 years either way, or an error.
        #[test]
        fn any_duration_is_bounded_or_an_error(
            f in proptest::num::f64::ANY,
            i in proptest::prelude::any::<u64>(),
            unit in proptest::sample::select(vec!["ms", "s", "m", "h", "d", "w", "y"]),
            s in "\\PC{0,40}",
        ) {
            for text in [f.to_string(), format!("{f:e}"), format!("{i}{unit}"), s.clone()] {
                if let Ok(ms) = parse_duration("step", &text) {
                    proptest::prop_assert!(ms.unsigned_abs() <= MAX_DURATION_MS as u64 + 1, "{text} -> {ms}");
                }
            }
        }
    }

    #[test]
    fn form_body_and_url_are_both_read() {
        let p = Params::parse(
            Some("match[]=up&start=1"),
            Some("application/x-www-form-urlencoded"),
            b"match[]=%7Bjob%3D%22a%22%7D",
        );
        assert_eq!(p.all("match[]"), vec!["up", "{job=\"a\"}"]);
        assert_eq!(p.get("start"), Some("1"));
    }
}
