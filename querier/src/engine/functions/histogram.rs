//! `histogram_quantile` over classic histograms: buckets are series with an `le` label.

use std::collections::HashMap;
use std::sync::Arc;

use strata_shared::labels::METRIC_NAME;

use crate::engine::eval::StepInput;
use crate::engine::gosort::go_sort;
use crate::engine::value::{LabelsBuilder, SharedLabels, StepSample};

/// The label that holds a bucket's upper bound.
pub(crate) const BUCKET_LABEL: &str = "le";

/// One cumulative bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bucket {
    pub(crate) upper_bound: f64,
    pub(crate) count: f64,
}

/// The φ-quantile estimated from cumulative buckets (Prometheus' `bucketQuantile`): linear
/// interpolation inside the bucket the rank falls into, with equal bounds merged and counts
/// made monotonic first. NaN without a `+Inf` bucket, fewer than two buckets or no
/// observations.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    go_sort(buckets, |a, b| a.upper_bound < b.upper_bound);
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    coalesce(buckets);
    ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // The first bucket (the +Inf one excluded) whose count reaches the rank.
    let b = buckets[..buckets.len() - 1].partition_point(|bk| bk.count < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].upper_bound;
    }
    if b == 0 && buckets[0].upper_bound <= 0.0 {
        return buckets[0].upper_bound;
    }
    let bucket_end = buckets[b].upper_bound;
    let mut count = buckets[b].count;
    let mut bucket_start = 0.0;
    if b > 0 {
        bucket_start = buckets[b - 1].upper_bound;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Merges buckets with the same upper bound (the input is sorted).
fn coalesce(buckets: &mut Vec<Bucket>) {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.upper_bound == b.upper_bound => last.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

/// Raises every count to at least the count before it.
fn ensure_monotonic(buckets: &mut [Bucket]) {
    let mut max = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        if b.count > max {
            max = b.count;
        } else if b.count < max {
            b.count = max;
        }
    }
}

/// Per input series: its group (labels without `le`) and bound, computed once.
#[derive(Debug, Default)]
pub(crate) struct HistogramQuantile {
    series: HashMap<usize, Option<(String, SharedLabels, f64)>>,
}

impl HistogramQuantile {
    pub(crate) fn step(&mut self, q: f64, vector: &StepInput<'_>) -> Vec<StepSample> {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut groups: Vec<(SharedLabels, Vec<Bucket>)> = Vec::new();
        for &(si, _) in &vector.samples {
            let labels = vector.labels(si);
            self.series
                .entry(Arc::as_ptr(labels) as usize)
                .or_insert_with(|| bucket_of(labels));
        }
        for &(si, v) in &vector.samples {
            let key = Arc::as_ptr(vector.labels(si)) as usize;
            let Some(Some((sig, out_labels, upper_bound))) = self.series.get(&key) else {
                continue;
            };
            let gi = *index.entry(sig.as_str()).or_insert_with(|| {
                groups.push((Arc::clone(out_labels), Vec::new()));
                groups.len() - 1
            });
            groups[gi].1.push(Bucket {
                upper_bound: *upper_bound,
                count: v,
            });
        }
        groups
            .into_iter()
            .map(|(labels, mut buckets)| StepSample {
                labels,
                v: bucket_quantile(q, &mut buckets),
            })
            .collect()
    }
}

/// The group signature, output labels and upper bound of a bucket series; `None` without a
/// parseable `le`.
fn bucket_of(labels: &SharedLabels) -> Option<(String, SharedLabels, f64)> {
    let upper_bound: f64 = labels.get(BUCKET_LABEL)?.parse().ok()?;
    let mut sig = String::new();
    for l in labels.iter().filter(|l| l.name != BUCKET_LABEL) {
        sig.push_str(&l.name);
        sig.push('\u{ff}');
        sig.push_str(&l.value);
        sig.push('\u{ff}');
    }
    let mut b = LabelsBuilder::new(labels);
    b.delete(&[METRIC_NAME, BUCKET_LABEL]);
    Some((sig, Arc::new(b.build()), upper_bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(v: &[(f64, f64)]) -> Vec<Bucket> {
        v.iter()
            .map(|&(upper_bound, count)| Bucket { upper_bound, count })
            .collect()
    }

    #[test]
    fn interpolates_inside_the_bucket() {
        let mut b = buckets(&[(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (f64::INFINITY, 40.0)]);
        // rank 20 falls in (0.1, 0.5]: 0.1 + 0.4 * (10 / 20).
        assert!((bucket_quantile(0.5, &mut b) - 0.3).abs() < 1e-12);
        // The lowest bucket starts at 0.
        let mut b = buckets(&[(1.0, 10.0), (f64::INFINITY, 10.0)]);
        assert_eq!(bucket_quantile(0.5, &mut b), 0.5);
    }

    #[test]
    fn rank_in_the_inf_bucket_gives_the_highest_finite_bound() {
        let mut b = buckets(&[(1.0, 5.0), (2.0, 6.0), (f64::INFINITY, 10.0)]);
        assert_eq!(bucket_quantile(0.9, &mut b), 2.0);
    }

    #[test]
    fn edge_cases() {
        let mut no_inf = buckets(&[(1.0, 5.0), (2.0, 6.0)]);
        assert!(bucket_quantile(0.5, &mut no_inf).is_nan());
        let mut only_inf = buckets(&[(f64::INFINITY, 5.0)]);
        assert!(bucket_quantile(0.5, &mut only_inf).is_nan());
        let mut empty = buckets(&[(1.0, 0.0), (f64::INFINITY, 0.0)]);
        assert!(bucket_quantile(0.5, &mut empty).is_nan());
        let mut b = buckets(&[(1.0, 5.0), (f64::INFINITY, 10.0)]);
        assert_eq!(bucket_quantile(-0.1, &mut b), f64::NEG_INFINITY);
        assert_eq!(bucket_quantile(1.1, &mut b), f64::INFINITY);
        assert!(bucket_quantile(f64::NAN, &mut b).is_nan());
        // A non-positive lowest bound is returned as is.
        let mut neg = buckets(&[(-1.0, 5.0), (f64::INFINITY, 10.0)]);
        assert_eq!(bucket_quantile(0.2, &mut neg), -1.0);
    }

    #[test]
    fn non_monotonic_counts_are_flattened_and_equal_bounds_merged() {
        // 0.5 has fewer than 0.1: raised to 20, so rank 15 lies in the first bucket.
        let mut b = buckets(&[(0.5, 15.0), (0.1, 20.0), (1.0, 30.0), (f64::INFINITY, 40.0)]);
        assert!((bucket_quantile(0.375, &mut b) - 0.075).abs() < 1e-12);
        let mut dup = buckets(&[(1.0, 5.0), (1.0, 5.0), (f64::INFINITY, 10.0)]);
        // Merged into one bucket of 10: rank 5 -> 0.5.
        assert_eq!(bucket_quantile(0.5, &mut dup), 0.5);
    }
}
