//! Series validation, as Prometheus and Mimir do it, before anything is replicated.
//!
//! A series that breaks a rule is rejected alone: the caller writes the request's other
//! series and answers 400 with the first error of each kind. Every message names the series,
//! the rule, a stable error id and the flag that governs it.

use strata_shared::labels::{stable_hash_byte_pairs, METRIC_NAME};
use strata_shared::limits::LimitsConfig;
use strata_shared::proto::prometheus::{LabelBytes, Sample, TimeSeriesBytes};
use strata_shared::time::format_ms;

/// A rejected series or sample: the discard reason (metric label) and the message for the sender.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    /// Reason label of `strata_discarded_samples_total`.
    pub reason: &'static str,
    pub message: String,
    /// Samples this error discarded.
    pub samples: usize,
}

/// A series that passed validation: sorted labels without empty values, samples in range.
#[derive(Debug)]
pub struct ValidSeries {
    /// Sorted, unique, valid UTF-8, empty values dropped: slices of the request buffer.
    pub labels: Vec<LabelBytes>,
    /// [`strata_shared::labels::Labels::stable_hash`] of `labels`.
    pub labels_hash: u64,
    pub samples: Vec<Sample>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Text of a series for error messages, from the raw (possibly invalid) labels.
fn describe(labels: &[(&str, &str)]) -> String {
    let name = labels
        .iter()
        .find(|(n, _)| *n == METRIC_NAME)
        .map(|(_, v)| *v)
        .unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(n, _)| *n != METRIC_NAME)
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    let text = format!("{name}{{{}}}", rest.join(", "));
    if text.len() > 256 {
        let cut = (0..=256)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}...", &text[..cut])
    } else {
        text
    }
}

fn reject(reason: &'static str, samples: usize, message: String) -> ValidationError {
    ValidationError {
        reason,
        message,
        samples,
    }
}

/// The largest distance from the epoch a sample timestamp may have, in ms (2^53: about
/// 285,000 years either way). Every such time is exact in the query API's float seconds, and
/// block ranges, query steps and lookbacks around it cannot overflow an i64, whatever the
/// grace-period flags say.
pub const MAX_TIMESTAMP_MS: i64 = 1 << 53;

/// Validates one series. `now_ms` is the distributor's clock, for the grace periods.
/// Returns the valid series (possibly with some samples removed) and the errors met.
pub fn validate_series(
    series: TimeSeriesBytes,
    limits: &LimitsConfig,
    now_ms: i64,
) -> (Option<ValidSeries>, Vec<ValidationError>) {
    let n = series.samples.len();
    let mut errors = Vec::new();

    // Labels arrive as bytes; they must be UTF-8 (Prometheus requires it of values, and names
    // are ASCII by the name rule below).
    let mut raw: Vec<(&str, &str)> = Vec::with_capacity(series.labels.len());
    for label in &series.labels {
        let name = std::str::from_utf8(&label.name);
        let value = std::str::from_utf8(&label.value);
        match (name, value) {
            (Ok(name), Ok(value)) => raw.push((name, value)),
            _ => {
                let lossy: Vec<(String, String)> = series
                    .labels
                    .iter()
                    .map(|l| {
                        (
                            String::from_utf8_lossy(&l.name).into_owned(),
                            String::from_utf8_lossy(&l.value).into_owned(),
                        )
                    })
                    .collect();
                let view: Vec<(&str, &str)> = lossy
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                return (None, vec![reject("label_value_invalid_utf8", n, format!(
                    "received a series with a label name or value that is not valid UTF-8 (err-strata-label-invalid-utf8); label: {:?}; series: {}",
                    String::from_utf8_lossy(&label.name), describe(&view)))]);
            }
        }
    }
    let raw = raw.as_slice();

    let name = raw.iter().find(|(n, _)| *n == METRIC_NAME).map(|(_, v)| *v);
    match name {
        None | Some("") => {
            return (None, vec![reject("missing_metric_name", n, format!(
                "received a series without a metric name: {} (err-strata-missing-metric-name)", describe(raw)))]);
        }
        Some(name) if !is_metric_name(name) => {
            return (None, vec![reject("metric_name_invalid", n, format!(
                "received a series with an invalid metric name {name:?}: metric names must match [a-zA-Z_:][a-zA-Z0-9_:]* (err-strata-metric-name-invalid); series: {}", describe(raw)))]);
        }
        Some(_) => {}
    }

    let non_empty = raw.iter().filter(|(_, v)| !v.is_empty()).count();
    if non_empty > limits.max_label_names_per_series {
        return (None, vec![reject("max_label_names_per_series", n, format!(
            "received a series whose number of labels ({}) exceeds the limit of {} (err-strata-max-label-names-per-series); to adjust it, configure -validation.max-label-names-per-series; series: {}",
            non_empty, limits.max_label_names_per_series, describe(raw)))]);
    }
    let mut previous: Option<&str> = None;
    for &(name, value) in raw {
        if let Some(prev) = previous {
            if prev == name {
                return (None, vec![reject("duplicate_label_names", n, format!(
                    "received a series with duplicate label name {:?} (err-strata-duplicate-label-names); series: {}", name, describe(raw)))]);
            }
            if prev > name {
                return (None, vec![reject("labels_not_sorted", n, format!(
                    "received a series where the label names are not sorted: {:?} comes after {prev:?} (err-strata-labels-not-sorted); series: {}", name, describe(raw)))]);
            }
        }
        previous = Some(name);
        if name != METRIC_NAME && !is_label_name(name) {
            return (None, vec![reject("label_invalid", n, format!(
                "received a series with an invalid label name {:?}: label names must match [a-zA-Z_][a-zA-Z0-9_]* (err-strata-label-invalid); series: {}", name, describe(raw)))]);
        }
        if name.len() > limits.max_label_name_length {
            return (None, vec![reject("label_name_too_long", n, format!(
                "received a series whose label name length ({}) exceeds the limit of {} (err-strata-label-name-too-long); to adjust it, configure -validation.max-length-label-name; label: {:?}; series: {}",
                name.len(), limits.max_label_name_length, name, describe(raw)))]);
        }
        if value.len() > limits.max_label_value_length {
            return (None, vec![reject("label_value_too_long", n, format!(
                "received a series whose label value length ({}) exceeds the limit of {} (err-strata-label-value-too-long); to adjust it, configure -validation.max-length-label-value; label: {:?}; series: {}",
                value.len(), limits.max_label_value_length, name, describe(raw)))]);
        }
    }

    let max_ts = now_ms.saturating_add(limits.creation_grace_period.as_millis_i64());
    let min_ts = if limits.past_grace_period.0.is_zero() {
        i64::MIN
    } else {
        now_ms.saturating_sub(limits.past_grace_period.as_millis_i64())
    };
    let mut samples = series.samples;
    let before = samples.len();
    let mut first_unrepresentable = None;
    let mut first_future = None;
    let mut first_past = None;
    samples.retain(|s| {
        if !(-MAX_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&s.timestamp) {
            first_unrepresentable.get_or_insert(s.timestamp);
            false
        } else if s.timestamp > max_ts {
            first_future.get_or_insert(s.timestamp);
            false
        } else if s.timestamp < min_ts {
            first_past.get_or_insert(s.timestamp);
            false
        } else {
            true
        }
    });
    let dropped = before - samples.len();
    if let Some(ts) = first_unrepresentable {
        errors.push(reject("sample_timestamp_out_of_range", dropped, format!(
            "received a sample whose timestamp {ts} ms is outside the range Strata stores, ±{MAX_TIMESTAMP_MS} ms around 1970 (err-strata-sample-timestamp-out-of-range); no flag changes this; series: {}",
            describe(raw))));
    } else if let Some(ts) = first_future {
        errors.push(reject("too_far_in_future", dropped, format!(
            "received a sample whose timestamp is too far in the future, timestamp: {ts} ({}) (err-strata-too-far-in-future); the limit is now + {}; to adjust it, configure -validation.create-grace-period; series: {}",
            format_ms(ts), limits.creation_grace_period, describe(raw))));
    } else if let Some(ts) = first_past {
        errors.push(reject("too_far_in_past", dropped, format!(
            "received a sample whose timestamp is too far in the past, timestamp: {ts} ({}) (err-strata-too-far-in-past); the limit is now - {}; to adjust it, configure -validation.past-grace-period; series: {}",
            format_ms(ts), limits.past_grace_period, describe(raw))));
    }
    if samples.is_empty() {
        return (None, errors);
    }
    let mut labels = series.labels;
    labels.retain(|l| !l.value.is_empty());
    let labels_hash = stable_hash_byte_pairs(labels.iter().map(|l| (&l.name[..], &l.value[..])));
    (
        Some(ValidSeries {
            labels,
            labels_hash,
            samples,
        }),
        errors,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_label_names_per_series: 4,
            max_label_name_length: 10,
            max_label_value_length: 10,
            creation_grace_period: "10m".parse().unwrap(),
            past_grace_period: "0".parse().unwrap(),
            ..LimitsConfig::from_flag_defaults().unwrap()
        }
    }

    fn series(labels: &[(&str, &str)], ts: &[i64]) -> TimeSeriesBytes {
        TimeSeriesBytes {
            labels: labels
                .iter()
                .map(|(n, v)| LabelBytes {
                    name: n.to_string().into(),
                    value: v.to_string().into(),
                })
                .collect(),
            samples: ts
                .iter()
                .map(|t| Sample {
                    value: 1.0,
                    timestamp: *t,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// (labels, expected reason or None for valid)
    #[test]
    fn rules_table() {
        let now = 1_700_000_000_000;
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case] = &[
            (&[("__name__", "up"), ("job", "a")], None),
            (&[("job", "a")], Some("missing_metric_name")),
            (&[("__name__", "")], Some("missing_metric_name")),
            (&[("__name__", "1up")], Some("metric_name_invalid")),
            (
                &[("__name__", "up"), ("bad-name", "x")],
                Some("label_invalid"),
            ),
            (
                &[("__name__", "up"), ("job", "a"), ("job", "b")],
                Some("duplicate_label_names"),
            ),
            (
                &[("job", "a"), ("__name__", "up")],
                Some("labels_not_sorted"),
            ),
            (
                &[("__name__", "up"), ("averyveryverylongname", "x")],
                Some("label_name_too_long"),
            ),
            (
                &[("__name__", "up"), ("a", "12345678901")],
                Some("label_value_too_long"),
            ),
            (
                &[
                    ("__name__", "up"),
                    ("a", "1"),
                    ("b", "1"),
                    ("c", "1"),
                    ("d", "1"),
                ],
                Some("max_label_names_per_series"),
            ),
            (
                &[("__name__", "up"), ("a", "1"), ("b", ""), ("c", "1")],
                None,
            ),
        ];
        for (labels, want) in cases {
            let (valid, errors) = validate_series(series(labels, &[now]), &limits(), now);
            match want {
                None => {
                    assert!(errors.is_empty(), "{labels:?}: {errors:?}");
                    assert!(valid.is_some());
                }
                Some(reason) => {
                    assert!(valid.is_none(), "{labels:?}");
                    assert_eq!(
                        errors[0].reason, *reason,
                        "{labels:?}: {}",
                        errors[0].message
                    );
                    assert!(errors[0].message.contains("err-strata-"));
                }
            }
        }
    }

    #[test]
    fn timestamps_blocks_cannot_hold_are_refused_whatever_the_grace_periods() {
        let mut open = limits();
        // Grace periods as wide as they go: the range rule still holds.
        open.creation_grace_period = "3000000000h".parse().unwrap();
        for t in [
            i64::MIN,
            i64::MIN + 1,
            -MAX_TIMESTAMP_MS - 1,
            MAX_TIMESTAMP_MS + 1,
            i64::MAX,
        ] {
            let (valid, errors) = validate_series(series(&[("__name__", "up")], &[t]), &open, 0);
            assert!(valid.is_none(), "{t} accepted");
            assert_eq!(errors[0].reason, "sample_timestamp_out_of_range", "{t}");
            assert!(errors[0]
                .message
                .contains("err-strata-sample-timestamp-out-of-range"));
        }
        for t in [-MAX_TIMESTAMP_MS, 0, MAX_TIMESTAMP_MS] {
            let (valid, errors) = validate_series(series(&[("__name__", "up")], &[t]), &open, 0);
            assert!(valid.is_some() && errors.is_empty(), "{t}: {errors:?}");
        }
    }

    #[test]
    fn empty_values_are_dropped_and_future_samples_rejected() {
        let now = 1_700_000_000_000;
        let s = series(
            &[("__name__", "up"), ("empty", ""), ("job", "a")],
            &[now, now + 3_600_000],
        );
        let (valid, errors) = validate_series(s, &limits(), now);
        let valid = valid.unwrap();
        assert_eq!(valid.labels.len(), 2);
        assert_eq!(valid.samples.len(), 1);
        assert_eq!(errors[0].reason, "too_far_in_future");
        assert!(
            errors[0]
                .message
                .contains("-validation.create-grace-period"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn invalid_utf8_rejects_only_that_series() {
        let now = 1_700_000_000_000;
        let mut s = series(&[("__name__", "up"), ("job", "x")], &[now]);
        s.labels[1].value = bytes::Bytes::from_static(&[0xff, 0xfe]);
        let (valid, errors) = validate_series(s, &limits(), now);
        assert!(valid.is_none());
        assert_eq!(errors[0].reason, "label_value_invalid_utf8");
        assert!(errors[0].message.contains("err-strata-label-invalid-utf8"));
    }
}
