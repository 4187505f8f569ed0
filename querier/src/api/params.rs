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

/// Prometheus' smallest and largest API times (`minTime`/`maxTime` in web/api/v1), in ms:
/// the defaults of `start` and `end` on the metadata endpoints.
pub(crate) const MIN_TIME_MS: i64 = -9_223_309_901_257_974;
pub(crate) const MAX_TIME_MS: i64 = 9_223_309_901_257_974;

/// Parses a time parameter: Unix seconds with up to millisecond precision, or RFC 3339.
pub(crate) fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() {
            let whole = seconds.trunc();
            let millis = ((seconds - whole) * 1000.0).round();
            return Ok(whole as i64 * 1000 + millis as i64);
        }
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
        .ok_or_else(|| {
            ApiError::bad_data(format!(
                "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid timestamp"
            ))
        })
}

/// An optional time parameter with a default.
pub(crate) fn time_or(params: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match params.get(name) {
        Some(v) if !v.is_empty() => parse_time(name, v),
        _ => Ok(default),
    }
}

/// Parses a duration parameter: seconds (fractions allowed) or a Prometheus duration (`1h30m`).
pub(crate) fn parse_duration(name: &str, value: &str) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::bad_data(format!(
            "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid duration"
        ))
    };
    if let Ok(seconds) = value.parse::<f64>() {
        let millis = seconds * 1000.0;
        if !millis.is_finite() || millis.abs() >= i64::MAX as f64 {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"{name}\": cannot parse \"{value}\" to a valid duration. It overflows int64"
            )));
        }
        return Ok(millis.round() as i64);
    }
    prometheus_duration_ms(value).ok_or_else(invalid)
}

/// `[0-9]+(y|w|d|h|m|s|ms)` repeated, units in decreasing order, as Prometheus' model.ParseDuration.
pub(crate) fn prometheus_duration_ms(text: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
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
    Some(total)
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
