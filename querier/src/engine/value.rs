//! Query results (public) and the values the evaluator passes between nodes (internal).

use std::collections::HashMap;
use std::sync::Arc;

use strata_shared::labels::{Label, Labels, METRIC_NAME};

/// The result of a query, as Prometheus' API types it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// One series of a range vector, points in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// The bit pattern Prometheus writes as a staleness marker.
pub(crate) const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether a value is a staleness marker (not any NaN: only the marker's bit pattern).
pub(crate) fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Labels shared between the many points and samples that carry them.
pub(crate) type SharedLabels = Arc<Labels>;

/// One timestamped value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Point {
    pub(crate) t: i64,
    pub(crate) v: f64,
}

/// A series as the evaluator holds it: fetched from storage or computed at each step.
#[derive(Clone, Debug)]
pub(crate) struct EvalSeries {
    pub(crate) labels: SharedLabels,
    pub(crate) points: Vec<Point>,
}

/// Every node evaluates to series with one point per step (scalars: one series without
/// labels), except string literals.
pub(crate) type Matrix = Vec<EvalSeries>;

/// One element of the vector a node produces at one step.
#[derive(Clone, Debug)]
pub(crate) struct StepSample {
    pub(crate) labels: SharedLabels,
    pub(crate) v: f64,
}

/// What evaluating a node gives.
#[derive(Debug)]
pub(crate) enum EvalValue {
    Matrix(Matrix),
    String(String),
}

/// The labels without `__name__` (shared when there is nothing to drop).
pub(crate) fn drop_metric_name(labels: &SharedLabels) -> SharedLabels {
    if labels.get(METRIC_NAME).is_none() {
        return Arc::clone(labels);
    }
    Arc::new(Labels::from_sorted(
        labels
            .iter()
            .filter(|l| l.name != METRIC_NAME)
            .cloned()
            .collect(),
    ))
}

/// A label set edited by name: set (or delete, for an empty value) and keep/delete lists.
#[derive(Debug)]
pub(crate) struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    pub(crate) fn new(labels: &Labels) -> Self {
        Self {
            labels: labels.as_slice().to_vec(),
        }
    }

    /// Sets `name` to `value`; an empty value deletes the label, as in Prometheus.
    pub(crate) fn set(&mut self, name: &str, value: &str) -> &mut Self {
        match self.labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Ok(i) => self.labels[i].value = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.labels.insert(i, Label::new(name, value)),
        }
        self
    }

    pub(crate) fn delete(&mut self, names: &[impl AsRef<str>]) -> &mut Self {
        self.labels
            .retain(|l| !names.iter().any(|n| n.as_ref() == l.name));
        self
    }

    pub(crate) fn keep(&mut self, names: &[impl AsRef<str>]) -> &mut Self {
        self.labels
            .retain(|l| names.iter().any(|n| n.as_ref() == l.name));
        self
    }

    pub(crate) fn build(self) -> Labels {
        Labels::from_sorted(self.labels)
    }
}

/// A key of the labels named in `names` (`by`, `on`), or of all labels except those and
/// `__name__` (`without`, `ignoring`), for grouping and matching.
pub(crate) fn label_signature(labels: &Labels, names: &[String], only_named: bool) -> String {
    let mut sig = String::new();
    for l in labels.iter() {
        let named = names.contains(&l.name);
        let include = if only_named {
            named
        } else {
            !named && l.name != METRIC_NAME
        };
        if include {
            sig.push_str(&l.name);
            sig.push('\u{ff}');
            sig.push_str(&l.value);
            sig.push('\u{ff}');
        }
    }
    sig
}

/// Whether two elements of a step's output carry the same label set, which Prometheus
/// rejects ("vector cannot contain metrics with the same labelset").
pub(crate) fn has_duplicate_labels<'a>(labels: impl Iterator<Item = &'a Labels>) -> bool {
    let mut seen: HashMap<&Labels, ()> = HashMap::new();
    labels.into_iter().any(|l| seen.insert(l, ()).is_some())
}

/// Text of the error Prometheus raises for duplicate label sets in one step's output.
pub(crate) const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

/// A label set as Prometheus' `labels.Labels.String()` writes it: `{__name__="m", a="b"}`.
pub(crate) fn labels_string(labels: &Labels) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Converts a Go-style float to the text `strconv.FormatFloat(v, 'f', -1, 64)` gives.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_one_bit_pattern() {
        assert!(is_stale_marker(f64::from_bits(STALE_NAN_BITS)));
        assert!(!is_stale_marker(f64::NAN));
        assert!(!is_stale_marker(1.0));
    }

    #[test]
    fn builder_sets_deletes_and_keeps() {
        let base = Labels::from_pairs([("__name__", "m"), ("a", "1"), ("c", "3")]);
        let mut b = LabelsBuilder::new(&base);
        b.set("b", "2").set("a", "").delete(&["__name__"]);
        assert_eq!(b.build(), Labels::from_pairs([("b", "2"), ("c", "3")]));
        let mut b = LabelsBuilder::new(&base);
        b.keep(&["c", "zz"]);
        assert_eq!(b.build(), Labels::from_pairs([("c", "3")]));
    }

    #[test]
    fn floats_format_like_go() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.5), "0.5");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(-0.0), "-0");
    }
}
