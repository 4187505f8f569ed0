//! Functions over instant vectors and scalars, called once per step.

use std::sync::Arc;

use strata_shared::labels::{Labels, METRIC_NAME};
use strata_shared::query::{LabelMatcher, MatchOp};

use super::date::{date_value, float_secs};
use super::histogram::HistogramQuantile;
use super::labels::LabelRewrite;
use super::Func;
use crate::engine::error::{exec_err, EvalResult};
use crate::engine::eval::{LabelCache, StepInput};
use crate::engine::gosort::{go_sort, reverse_value_less, value_less};
use crate::engine::plan::Node;
use crate::engine::value::{LabelsBuilder, StepSample};

/// An instant function prepared for stepping.
#[derive(Debug)]
pub(crate) struct InstantFn {
    func: Func,
    names: LabelCache,
    rewrite: Option<LabelRewrite>,
    histogram: HistogramQuantile,
    absent_labels: Option<Arc<Labels>>,
}

fn string_arg(args: &[Node], i: usize) -> String {
    match args.get(i).map(Node::unwrap_invariant) {
        Some(Node::Str(s)) => s.clone(),
        _ => String::new(),
    }
}

impl InstantFn {
    /// Validates the string arguments (as Prometheus does on the first step).
    pub(crate) fn new(func: Func, args: &[Node]) -> EvalResult<Self> {
        let rewrite = match func {
            Func::LabelReplace => Some(LabelRewrite::replace(
                &string_arg(args, 1),
                &string_arg(args, 2),
                &string_arg(args, 3),
                &string_arg(args, 4),
            )?),
            Func::LabelJoin => {
                let srcs: Vec<String> = (3..args.len()).map(|i| string_arg(args, i)).collect();
                Some(LabelRewrite::join(
                    &string_arg(args, 1),
                    &string_arg(args, 2),
                    &srcs,
                )?)
            }
            _ => None,
        };
        let absent_labels = (func == Func::Absent).then(|| Arc::new(absent_labels(args.first())));
        Ok(Self {
            func,
            names: LabelCache::default(),
            rewrite,
            histogram: HistogramQuantile::default(),
            absent_labels,
        })
    }

    fn map_values(&mut self, input: &StepInput<'_>, f: impl Fn(f64) -> f64) -> Vec<StepSample> {
        input
            .samples
            .iter()
            .map(|&(i, v)| StepSample {
                labels: self.names.drop_name(input.labels(i)),
                v: f(v),
            })
            .collect()
    }

    pub(crate) fn step(&mut self, inp: &[StepInput<'_>], ts: i64) -> EvalResult<Vec<StepSample>> {
        let scalar_out = |v: f64| {
            vec![StepSample {
                labels: Arc::new(Labels::default()),
                v,
            }]
        };
        let arg = |i: usize| inp.get(i);
        let Some(first) = arg(0) else {
            return Ok(match self.func {
                Func::Time => scalar_out(ts as f64 / 1000.0),
                Func::Pi => scalar_out(std::f64::consts::PI),
                f => scalar_out(date_value(f, ts / 1000)),
            });
        };
        Ok(match self.func {
            Func::Abs => self.map_values(first, f64::abs),
            Func::Ceil => self.map_values(first, f64::ceil),
            Func::Floor => self.map_values(first, f64::floor),
            Func::Exp => self.map_values(first, f64::exp),
            Func::Sqrt => self.map_values(first, f64::sqrt),
            Func::Ln => self.map_values(first, f64::ln),
            Func::Log2 => self.map_values(first, go_log2),
            Func::Log10 => self.map_values(first, |v| go_log2(v) * std::f64::consts::LOG10_2),
            Func::Sin => self.map_values(first, f64::sin),
            Func::Cos => self.map_values(first, f64::cos),
            Func::Tan => self.map_values(first, f64::tan),
            Func::Asin => self.map_values(first, f64::asin),
            Func::Acos => self.map_values(first, f64::acos),
            Func::Atan => self.map_values(first, f64::atan),
            Func::Sinh => self.map_values(first, f64::sinh),
            Func::Cosh => self.map_values(first, f64::cosh),
            Func::Tanh => self.map_values(first, f64::tanh),
            Func::Asinh => self.map_values(first, f64::asinh),
            Func::Acosh => self.map_values(first, f64::acosh),
            Func::Atanh => self.map_values(first, f64::atanh),
            Func::Rad => self.map_values(first, |v| v * std::f64::consts::PI / 180.0),
            Func::Deg => self.map_values(first, |v| v * 180.0 / std::f64::consts::PI),
            Func::Sgn => self.map_values(first, |v| {
                if v < 0.0 {
                    -1.0
                } else if v > 0.0 {
                    1.0
                } else {
                    v
                }
            }),
            Func::Clamp => {
                let (min, max) = (scalar_of(arg(1)), scalar_of(arg(2)));
                if max < min {
                    return Ok(Vec::new());
                }
                self.map_values(first, |v| go_max(min, go_min(max, v)))
            }
            Func::ClampMax => {
                let max = scalar_of(arg(1));
                self.map_values(first, |v| go_min(max, v))
            }
            Func::ClampMin => {
                let min = scalar_of(arg(1));
                self.map_values(first, |v| go_max(min, v))
            }
            Func::Round => {
                let to_nearest = arg(1).map_or(1.0, StepInput::scalar);
                let inverse = 1.0 / to_nearest;
                self.map_values(first, |v| (v * inverse + 0.5).floor() / inverse)
            }
            Func::Scalar => {
                let v = if first.samples.len() == 1 {
                    first.samples[0].1
                } else {
                    f64::NAN
                };
                scalar_out(v)
            }
            Func::Vector => scalar_out(first.scalar()),
            Func::Timestamp => self.map_values(first, |_| ts as f64 / 1000.0),
            func if func.is_date() => self.map_values(first, |v| date_value(func, float_secs(v))),
            Func::Absent => {
                if !first.samples.is_empty() {
                    return Ok(Vec::new());
                }
                let labels = self
                    .absent_labels
                    .clone()
                    .unwrap_or_else(|| Arc::new(Labels::default()));
                vec![StepSample { labels, v: 1.0 }]
            }
            Func::Sort | Func::SortDesc => {
                let mut out = first.to_samples();
                if self.func == Func::Sort {
                    go_sort(&mut out, |a, b| reverse_value_less(b.v, a.v));
                } else {
                    go_sort(&mut out, |a, b| value_less(b.v, a.v));
                }
                out
            }
            Func::LabelReplace | Func::LabelJoin => {
                let Some(rewrite) = &self.rewrite else {
                    return Ok(first.to_samples());
                };
                first
                    .samples
                    .iter()
                    .map(|&(i, v)| StepSample {
                        labels: rewrite.apply(&mut self.names, first.labels(i)),
                        v,
                    })
                    .collect()
            }
            Func::HistogramQuantile => match arg(1) {
                Some(vector) => self.histogram.step(first.scalar(), vector),
                None => Vec::new(),
            },
            // Native-histogram functions: float samples are skipped.
            Func::HistogramCount | Func::HistogramSum | Func::HistogramFraction => Vec::new(),
            Func::Time | Func::Pi => scalar_out(f64::NAN),
            other => {
                return exec_err(format!(
                    "function {} needs a range vector argument",
                    other.name()
                ))
            }
        })
    }
}

fn scalar_of(input: Option<&StepInput<'_>>) -> f64 {
    input.map_or(f64::NAN, StepInput::scalar)
}

/// The labels `absent()` gives: the equality matchers' labels, except `__name__` and any
/// label matched more than once or by another operator.
pub(crate) fn absent_labels(arg: Option<&Node>) -> Labels {
    let matchers: &[LabelMatcher] = match arg.map(Node::unwrap_invariant) {
        Some(Node::VectorSelector(s)) => &s.matchers,
        Some(Node::MatrixSelector { selector, .. }) => &selector.matchers,
        _ => return Labels::default(),
    };
    let mut b = LabelsBuilder::new(&Labels::default());
    let mut has: Vec<&str> = Vec::new();
    for m in matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !has.contains(&m.name.as_str()) {
            b.set(&m.name, &m.value);
            has.push(&m.name);
        } else {
            b.delete(&[&m.name]);
        }
    }
    b.build()
}

/// Go's `math.Max`: +Inf wins over NaN, NaN over everything else, +0 over -0.
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`: -Inf wins over NaN, NaN over everything else, -0 over +0.
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y {
        x
    } else {
        y
    }
}

/// Go's `math.Frexp`: `x = frac * 2^exp` with `|frac|` in [0.5, 1).
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || x.is_nan() || x.is_infinite() {
        return (x, 0);
    }
    let (x, mut exp) = if x.abs() < f64::MIN_POSITIVE {
        (x * (1u64 << 52) as f64, -52)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, exp)
}

/// Go's `math.Log2` (exact for powers of two; `log10` is derived from it in Go).
pub(crate) fn go_log2(x: f64) -> f64 {
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return f64::from(exp - 1);
    }
    frac.ln() * std::f64::consts::LOG2_E + f64::from(exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_min_max_special_cases() {
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
        assert!(go_max(-0.0, 0.0).is_sign_positive());
        assert!(go_min(-0.0, 0.0).is_sign_negative());
        assert_eq!(go_min(3.0, 2.0), 2.0);
    }

    #[test]
    fn logs_follow_go() {
        assert_eq!(go_log2(8.0), 3.0);
        assert_eq!(go_log2(0.0), f64::NEG_INFINITY);
        assert!(go_log2(-1.0).is_nan());
        assert_eq!(go_log2(f64::INFINITY), f64::INFINITY);
        assert!((go_log2(10.0) - 10f64.log2()).abs() < 1e-15);
        assert!((go_log2(1e-310) - 1e-310f64.log2()).abs() < 1e-12);
    }
}
