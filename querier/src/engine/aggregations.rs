//! Aggregation operators (`sum`, `avg`, `topk`, `count_values`, ...), with `by`/`without`.

use std::collections::HashMap;
use std::sync::Arc;

use strata_shared::labels::{Labels, METRIC_NAME};

use super::error::{exec_err, EvalResult};
use super::eval::{Evaluator, StepInput};
use super::gosort::{go_sort, heap_pop, heap_push, reverse_value_less, value_less};
use super::plan::{AggOp, AggregateNode, Node};
use super::value::{
    format_float, label_signature, LabelsBuilder, Matrix, SharedLabels, StepSample,
};

pub(crate) fn eval_aggregate(ev: &mut Evaluator<'_>, a: &AggregateNode) -> EvalResult<Matrix> {
    let original = ev.current_samples;
    let string_param = match a.param.as_ref().map(Node::unwrap_invariant) {
        Some(Node::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let mut args: Vec<&Node> = Vec::new();
    if string_param.is_none() {
        if let Some(p) = &a.param {
            args.push(p);
        }
    }
    args.push(&a.expr);
    let mats = ev.eval_args(&args)?;
    let has_param = a.param.is_some() && string_param.is_none();
    let keys: Vec<String> = mats
        .last()
        .and_then(Option::as_ref)
        .map(|m| {
            m.iter()
                .map(|s| grouping_key(&s.labels, &a.grouping, a.without))
                .collect()
        })
        .unwrap_or_default();
    let mut group_labels: HashMap<String, SharedLabels> = HashMap::new();
    ev.step_loop_from(original, &mats, |inp, _| {
        let (param, vector) = if has_param {
            (inp[0].scalar(), &inp[1])
        } else {
            (f64::NAN, &inp[0])
        };
        let mut agg = Aggregation {
            node: a,
            keys: &keys,
            group_labels: &mut group_labels,
        };
        agg.run(param, string_param.as_deref(), vector)
    })
}

/// The part of the labels that decides the group.
fn grouping_key(labels: &Labels, grouping: &[String], without: bool) -> String {
    label_signature(labels, grouping, !without)
}

fn group_labels_of(labels: &Labels, grouping: &[String], without: bool) -> Labels {
    if without {
        let mut b = LabelsBuilder::new(labels);
        b.delete(grouping).delete(&[METRIC_NAME]);
        b.build()
    } else if grouping.is_empty() {
        Labels::default()
    } else {
        let mut b = LabelsBuilder::new(labels);
        b.keep(grouping);
        b.build()
    }
}

/// Whether a label name is valid in Prometheus 2.42 (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Debug)]
struct Group {
    labels: SharedLabels,
    value: f64,
    mean: f64,
    count: usize,
    heap: Vec<(SharedLabels, f64)>,
}

struct Aggregation<'x> {
    node: &'x AggregateNode,
    keys: &'x [String],
    group_labels: &'x mut HashMap<String, SharedLabels>,
}

impl Aggregation<'_> {
    fn run(
        &mut self,
        param: f64,
        value_label: Option<&str>,
        vector: &StepInput<'_>,
    ) -> EvalResult<Vec<StepSample>> {
        let op = self.node.op;
        let without = self.node.without;
        let mut k: usize = 0;
        if matches!(op, AggOp::Topk | AggOp::Bottomk) {
            // float64(MaxInt64) rounds up to 2^63, which Go still accepts.
            if !(-9.223_372_036_854_776e18..=9.223_372_036_854_776e18).contains(&param) {
                return exec_err(format!(
                    "Scalar value {} overflows int64",
                    format_float(param)
                ));
            }
            let kk = param as i64;
            if kk < 1 {
                return Ok(Vec::new());
            }
            k = usize::try_from(kk).unwrap_or(usize::MAX);
        }
        let mut grouping: Vec<String> = self.node.grouping.clone();
        let mut count_values_label = None;
        if op == AggOp::CountValues {
            let label = value_label.unwrap_or("");
            if !is_valid_label_name(label) {
                return exec_err(format!("invalid label name {label:?}"));
            }
            if !without {
                grouping.push(label.to_string());
                grouping.sort();
            }
            count_values_label = Some(label);
        }

        let mut index: HashMap<String, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        for &(si, v) in &vector.samples {
            let input_labels = vector.labels(si);
            let (metric, key) = match count_values_label {
                Some(label) => {
                    let mut b = LabelsBuilder::new(input_labels);
                    b.set(label, &format_float(v));
                    let metric = Arc::new(b.build());
                    let key = grouping_key(&metric, &grouping, without);
                    (metric, key)
                }
                None => (Arc::clone(input_labels), self.keys[si].clone()),
            };
            let Some(&gi) = index.get(&key) else {
                let labels = match count_values_label {
                    Some(_) => Arc::new(group_labels_of(&metric, &grouping, without)),
                    None => {
                        Arc::clone(self.group_labels.entry(key.clone()).or_insert_with(|| {
                            Arc::new(group_labels_of(&metric, &grouping, without))
                        }))
                    }
                };
                let mut group = Group {
                    labels,
                    value: v,
                    mean: v,
                    count: 1,
                    heap: Vec::new(),
                };
                match op {
                    AggOp::Stddev | AggOp::Stdvar => group.value = 0.0,
                    AggOp::Topk | AggOp::Bottomk | AggOp::Quantile => {
                        group.heap.push((Arc::clone(&metric), v));
                    }
                    AggOp::Group => group.value = 1.0,
                    _ => {}
                }
                index.insert(key, groups.len());
                groups.push(group);
                continue;
            };
            let group = &mut groups[gi];
            match op {
                AggOp::Sum => group.value += v,
                AggOp::Avg => {
                    group.count += 1;
                    if !avg_keeps_infinite_mean(group.mean, v) {
                        let n = group.count as f64;
                        group.mean += v / n - group.mean / n;
                    }
                }
                AggOp::Group => {}
                AggOp::Max => {
                    if group.value < v || group.value.is_nan() {
                        group.value = v;
                    }
                }
                AggOp::Min => {
                    if group.value > v || group.value.is_nan() {
                        group.value = v;
                    }
                }
                AggOp::Count | AggOp::CountValues => group.count += 1,
                AggOp::Stddev | AggOp::Stdvar => {
                    group.count += 1;
                    let delta = v - group.mean;
                    group.mean += delta / group.count as f64;
                    group.value += delta * (v - group.mean);
                }
                AggOp::Topk => {
                    let less =
                        |a: &(SharedLabels, f64), b: &(SharedLabels, f64)| value_less(a.1, b.1);
                    push_bounded(&mut group.heap, (metric, v), k, &less, |top| {
                        top < v || top.is_nan()
                    });
                }
                AggOp::Bottomk => {
                    let less = |a: &(SharedLabels, f64), b: &(SharedLabels, f64)| {
                        reverse_value_less(a.1, b.1)
                    };
                    push_bounded(&mut group.heap, (metric, v), k, &less, |top| {
                        top > v || top.is_nan()
                    });
                }
                AggOp::Quantile => group.heap.push((metric, v)),
            }
        }

        let mut out = Vec::with_capacity(groups.len());
        for mut group in groups {
            let value = match op {
                AggOp::Avg => group.mean,
                AggOp::Count | AggOp::CountValues => group.count as f64,
                AggOp::Stdvar => group.value / group.count as f64,
                AggOp::Stddev => (group.value / group.count as f64).sqrt(),
                AggOp::Topk | AggOp::Bottomk => {
                    if group.heap.len() > 1 {
                        if op == AggOp::Topk {
                            go_sort(&mut group.heap, |a, b| value_less(b.1, a.1));
                        } else {
                            go_sort(&mut group.heap, |a, b| reverse_value_less(b.1, a.1));
                        }
                    }
                    out.extend(
                        group
                            .heap
                            .into_iter()
                            .map(|(labels, v)| StepSample { labels, v }),
                    );
                    continue;
                }
                AggOp::Quantile => {
                    let mut values: Vec<f64> = group.heap.iter().map(|s| s.1).collect();
                    quantile(param, &mut values)
                }
                _ => group.value,
            };
            out.push(StepSample {
                labels: group.labels,
                v: value,
            });
        }
        Ok(out)
    }
}

/// Whether `avg` leaves an infinite running mean as it is when adding `v` (Prometheus avoids
/// `Inf - Inf` that way).
pub(crate) fn avg_keeps_infinite_mean(mean: f64, v: f64) -> bool {
    if !mean.is_infinite() {
        return false;
    }
    if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
        return true;
    }
    !v.is_infinite() && !v.is_nan()
}

/// The `topk`/`bottomk` heap update: push while below `k`, else replace the top when
/// `replaces(top value)`.
fn push_bounded<T>(
    heap: &mut Vec<(T, f64)>,
    item: (T, f64),
    k: usize,
    less: &impl Fn(&(T, f64), &(T, f64)) -> bool,
    replaces: impl Fn(f64) -> bool,
) {
    let top = heap.first().map_or(f64::NAN, |t| t.1);
    if heap.len() < k || replaces(top) {
        if heap.len() == k {
            if k == 1 {
                heap[0] = item;
                return;
            }
            heap_pop(heap, less);
        }
        heap_push(heap, item, less);
    }
}

/// The φ-quantile of the values (Prometheus' `quantile`): NaN for no values or q=NaN, ±Inf
/// outside [0, 1], otherwise linear interpolation between the closest ranks.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    go_sort(values, |a, b| value_less(*a, *b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_between_ranks() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        assert_eq!(quantile(0.0, &mut v), 1.0);
        assert_eq!(quantile(1.0, &mut v), 4.0);
        assert_eq!(quantile(1.5, &mut v), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn label_names_follow_prometheus_2_42() {
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name(""));
    }
}
