//! Binary operators: scalar/scalar, vector/scalar, vector/vector with label matching, and
//! the set operators.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use strata_shared::labels::{Labels, METRIC_NAME};

use super::error::{exec_err, EvalResult};
use super::eval::{Evaluator, LabelCache, StepInput};
use super::plan::{BinOp, BinaryNode, Cardinality, ValueKind, VectorMatching};
use super::value::{
    label_signature, labels_string, LabelsBuilder, Matrix, SharedLabels, StepSample,
};

pub(crate) fn eval_binary(ev: &mut Evaluator<'_>, b: &BinaryNode) -> EvalResult<Matrix> {
    let (lk, rk) = (b.lhs.kind(), b.rhs.kind());
    let original = ev.current_samples;
    let mats = ev.eval_args(&[&b.lhs, &b.rhs])?;
    let op = b.op;
    let return_bool = b.return_bool;
    let mut names = LabelCache::default();
    match (lk, rk) {
        (ValueKind::Scalar, ValueKind::Scalar) => ev.step_loop_from(original, &mats, |inp, _| {
            Ok(vec![StepSample {
                labels: Arc::new(Labels::default()),
                v: scalar_binop(op, inp[0].scalar(), inp[1].scalar()),
            }])
        }),
        (ValueKind::Vector, ValueKind::Scalar) => ev.step_loop_from(original, &mats, |inp, _| {
            Ok(vector_scalar(
                op,
                &inp[0],
                inp[1].scalar(),
                false,
                return_bool,
                &mut names,
            ))
        }),
        (ValueKind::Scalar, ValueKind::Vector) => ev.step_loop_from(original, &mats, |inp, _| {
            Ok(vector_scalar(
                op,
                &inp[1],
                inp[0].scalar(),
                true,
                return_bool,
                &mut names,
            ))
        }),
        _ => {
            let sigs: Vec<Vec<String>> = mats
                .iter()
                .map(|m| {
                    m.iter()
                        .flatten()
                        .map(|s| signature(&s.labels, &b.matching))
                        .collect()
                })
                .collect();
            let mut state = MatchState::default();
            ev.step_loop_from(original, &mats, |inp, _| {
                let (l, r) = (&inp[0], &inp[1]);
                let (ls, rs) = (&sigs[0], &sigs[1]);
                match op {
                    BinOp::And => Ok(vector_and(l, r, ls, rs)),
                    BinOp::Or => Ok(vector_or(l, r, ls, rs)),
                    BinOp::Unless => Ok(vector_unless(l, r, ls, rs)),
                    _ => state.vector_binop(b, l, r, ls, rs),
                }
            })
        }
    }
}

/// `l op r` for two scalars; comparisons give 1 or 0.
pub(crate) fn scalar_binop(op: BinOp, l: f64, r: f64) -> f64 {
    let (v, keep) = elem_binop(op, l, r);
    if op.is_comparison() {
        return if keep { 1.0 } else { 0.0 };
    }
    v
}

/// The value of `l op r` and, for comparisons, whether it holds (the value is then `l`).
fn elem_binop(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eql => (l, l == r),
        BinOp::Neq => (l, l != r),
        BinOp::Gtr => (l, l > r),
        BinOp::Lss => (l, l < r),
        BinOp::Gte => (l, l >= r),
        BinOp::Lte => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

fn vector_scalar(
    op: BinOp,
    vector: &StepInput<'_>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
    names: &mut LabelCache,
) -> Vec<StepSample> {
    let mut out = Vec::with_capacity(vector.samples.len());
    for &(i, v) in &vector.samples {
        let (lv, rv) = if swap { (scalar, v) } else { (v, scalar) };
        let (mut value, mut keep) = elem_binop(op, lv, rv);
        // A comparison keeps the vector element's value even when the scalar is on the left.
        if op.is_comparison() && swap {
            value = rv;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = vector.labels(i);
            let labels = if op.drops_metric_name() || return_bool {
                names.drop_name(labels)
            } else {
                Arc::clone(labels)
            };
            out.push(StepSample { labels, v: value });
        }
    }
    out
}

/// The part of a label set that vector matching compares.
fn signature(labels: &Labels, matching: &VectorMatching) -> String {
    label_signature(labels, &matching.labels, matching.on)
}

/// The labels of `labels` that matching looks at (Prometheus' `MatchLabels`).
fn match_labels(labels: &Labels, matching: &VectorMatching) -> Labels {
    let mut b = LabelsBuilder::new(labels);
    if matching.on {
        b.keep(&matching.labels);
    } else {
        b.delete(&matching.labels).delete(&[METRIC_NAME]);
    }
    b.build()
}

fn vector_and(
    l: &StepInput<'_>,
    r: &StepInput<'_>,
    ls: &[String],
    rs: &[String],
) -> Vec<StepSample> {
    if l.samples.is_empty() || r.samples.is_empty() {
        return Vec::new();
    }
    filter_by_match(l, r, ls, rs, true)
}

/// The left samples whose signature is (or, with `matched` false, is not) on the right.
fn filter_by_match(
    l: &StepInput<'_>,
    r: &StepInput<'_>,
    ls: &[String],
    rs: &[String],
    matched: bool,
) -> Vec<StepSample> {
    let right: HashSet<&str> = r.samples.iter().map(|&(i, _)| rs[i].as_str()).collect();
    l.samples
        .iter()
        .filter(|&&(i, _)| right.contains(ls[i].as_str()) == matched)
        .map(|&(i, v)| StepSample {
            labels: Arc::clone(l.labels(i)),
            v,
        })
        .collect()
}

fn vector_or(
    l: &StepInput<'_>,
    r: &StepInput<'_>,
    ls: &[String],
    rs: &[String],
) -> Vec<StepSample> {
    let mut out = l.to_samples();
    if l.samples.is_empty() || r.samples.is_empty() {
        out.extend(r.to_samples());
        return out;
    }
    let left: HashSet<&str> = l.samples.iter().map(|&(i, _)| ls[i].as_str()).collect();
    for &(i, v) in &r.samples {
        if !left.contains(rs[i].as_str()) {
            out.push(StepSample {
                labels: Arc::clone(r.labels(i)),
                v,
            });
        }
    }
    out
}

fn vector_unless(
    l: &StepInput<'_>,
    r: &StepInput<'_>,
    ls: &[String],
    rs: &[String],
) -> Vec<StepSample> {
    if l.samples.is_empty() || r.samples.is_empty() {
        return l.to_samples();
    }
    filter_by_match(l, r, ls, rs, false)
}

/// Caches for arithmetic and comparison between vectors across steps.
#[derive(Debug, Default)]
struct MatchState {
    result_labels: HashMap<(usize, usize), SharedLabels>,
    names: LabelCache,
}

impl MatchState {
    fn vector_binop(
        &mut self,
        b: &BinaryNode,
        lhs: &StepInput<'_>,
        rhs: &StepInput<'_>,
        lsigs: &[String],
        rsigs: &[String],
    ) -> EvalResult<Vec<StepSample>> {
        if lhs.samples.is_empty() || rhs.samples.is_empty() {
            return Ok(Vec::new());
        }
        let matching = &b.matching;
        let one_to_many = matching.card == Cardinality::OneToMany;
        // The "one" side is put on the right.
        let (lhs, rhs, lsigs, rsigs) = if one_to_many {
            (rhs, lhs, rsigs, lsigs)
        } else {
            (lhs, rhs, lsigs, rsigs)
        };
        let mut right: HashMap<&str, (usize, f64)> = HashMap::with_capacity(rhs.samples.len());
        for &(i, v) in &rhs.samples {
            let sig = rsigs[i].as_str();
            if let Some(&(dup, _)) = right.get(sig) {
                let side = if one_to_many { "left" } else { "right" };
                return exec_err(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the \
                     operation: [{}, {}];many-to-many matching not allowed: matching labels must \
                     be unique on one side",
                    labels_string(&match_labels(rhs.labels(i), matching)),
                    labels_string(rhs.labels(i)),
                    labels_string(rhs.labels(dup)),
                ));
            }
            right.insert(sig, (i, v));
        }
        let mut matched: HashMap<&str, HashSet<SharedLabels>> = HashMap::new();
        let mut out = Vec::new();
        for &(li, lv) in &lhs.samples {
            let sig = lsigs[li].as_str();
            let Some(&(ri, rv)) = right.get(sig) else {
                continue;
            };
            let (vl, vr) = if one_to_many { (rv, lv) } else { (lv, rv) };
            let (mut value, keep) = elem_binop(b.op, vl, vr);
            if b.return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let (l_labels, r_labels) = (lhs.labels(li), rhs.labels(ri));
            let key = (
                Arc::as_ptr(l_labels) as usize,
                Arc::as_ptr(r_labels) as usize,
            );
            let mut metric =
                Arc::clone(self.result_labels.entry(key).or_insert_with(|| {
                    Arc::new(result_labels(l_labels, r_labels, b.op, matching))
                }));
            if b.return_bool {
                metric = self.names.drop_name(&metric);
            }
            let seen = matched.entry(sig);
            if matching.card == Cardinality::OneToOne {
                if let std::collections::hash_map::Entry::Occupied(_) = seen {
                    return exec_err(
                        "multiple matches for labels: many-to-one matching must be explicit \
                         (group_left/group_right)",
                    );
                }
                seen.or_default();
            } else if !seen.or_default().insert(Arc::clone(&metric)) {
                return exec_err(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                );
            }
            out.push(StepSample {
                labels: metric,
                v: value,
            });
        }
        Ok(out)
    }
}

/// The labels of a vector operation's result (Prometheus' `resultMetric`).
fn result_labels(lhs: &Labels, rhs: &Labels, op: BinOp, matching: &VectorMatching) -> Labels {
    let mut b = LabelsBuilder::new(lhs);
    if op.drops_metric_name() {
        b.delete(&[METRIC_NAME]);
    }
    if matching.card == Cardinality::OneToOne {
        if matching.on {
            b.keep(&matching.labels);
        } else {
            b.delete(&matching.labels);
        }
    }
    for name in &matching.include {
        // Included labels come from the "one" side; a missing one is removed.
        b.set(name, rhs.get(name).unwrap_or(""));
    }
    b.build()
}
