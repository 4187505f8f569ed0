//! Function calls: `timestamp(selector)`, functions over a range vector (a matrix selector
//! or a subquery, evaluated per series and step), and functions over instant values.

use std::collections::HashSet;
use std::sync::Arc;

use super::error::{exec_err, EvalResult};
use super::eval::{total_points, Evaluator, LabelCache};
use super::functions::instant::{absent_labels, InstantFn};
use super::functions::range::{self, RangeArgs};
use super::functions::Func;
use super::plan::Node;
use super::value::{
    drop_metric_name, has_duplicate_labels, EvalSeries, Matrix, Point, StepSample,
    DUPLICATE_LABELSET,
};

pub(crate) fn eval_call(ev: &mut Evaluator<'_>, func: Func, args: &[Node]) -> EvalResult<Matrix> {
    if func == Func::Timestamp {
        if let Some(Node::VectorSelector(sel)) = args.first().map(Node::unwrap_invariant) {
            return timestamp_of_selector(ev, sel);
        }
    }
    let matrix_arg = args.iter().position(|a| {
        matches!(
            a.unwrap_invariant(),
            Node::MatrixSelector { .. } | Node::Subquery(_)
        )
    });
    match matrix_arg {
        Some(index) => eval_range_call(ev, func, args, index),
        None => {
            let original = ev.current_samples;
            let refs: Vec<&Node> = args.iter().collect();
            let mats = ev.eval_args(&refs)?;
            let mut f = InstantFn::new(func, args)?;
            ev.step_loop_from(original, &mats, |inputs, ts| f.step(inputs, ts))
        }
    }
}

/// `timestamp()` of a plain selector reports the samples' own timestamps.
fn timestamp_of_selector(
    ev: &mut Evaluator<'_>,
    sel: &super::plan::Selector,
) -> EvalResult<Matrix> {
    let original = ev.current_samples;
    let data = ev.data;
    let series = &data[sel.id];
    let mut names = LabelCache::default();
    let mut per_step: Vec<Vec<StepSample>> = Vec::with_capacity(ev.num_steps().min(1 << 16));
    for ts in ev.steps() {
        ev.check_deadline()?;
        let found = ev.selector_samples_at(sel, ts)?;
        per_step.push(
            found
                .into_iter()
                .map(|(i, p)| StepSample {
                    labels: names.drop_name(&series[i].labels),
                    v: p.t as f64 / 1000.0,
                })
                .collect(),
        );
    }
    let mut outputs = per_step.into_iter();
    ev.current_samples = original;
    ev.step_loop_from(original, &[], |_, _| Ok(outputs.next().unwrap_or_default()))
}

fn eval_range_call(
    ev: &mut Evaluator<'_>,
    func: Func,
    args: &[Node],
    index: usize,
) -> EvalResult<Matrix> {
    let data = ev.data;
    let (owned, range_ms, offset) = match args[index].unwrap_invariant() {
        Node::MatrixSelector { selector, range_ms } => (
            None,
            *range_ms,
            ev.effective_offset(selector.offset_ms, selector.at_ms),
        ),
        Node::Subquery(sq) => (
            Some(ev.subquery(sq)?),
            sq.range_ms,
            ev.effective_offset(sq.offset_ms, sq.at_ms),
        ),
        _ => return exec_err("expected a range vector argument"),
    };
    let subquery_points = owned.as_ref().map_or(0, total_points);
    let series: &[EvalSeries] = match (&owned, args[index].unwrap_invariant()) {
        (Some(m), _) => m,
        (None, Node::MatrixSelector { selector, .. }) => &data[selector.id],
        _ => &[],
    };
    // The other arguments are scalars: one value per step.
    let mut scalar_args: Vec<Vec<f64>> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i == index {
            continue;
        }
        let m = ev.eval_matrix(a)?;
        let mut values = vec![f64::NAN; ev.num_steps()];
        if let Some(s) = m.first() {
            for p in &s.points {
                if let Ok(k) = usize::try_from(p.t.saturating_sub(ev.start) / ev.interval) {
                    if let Some(slot) = values.get_mut(k) {
                        *slot = p.v;
                    }
                }
            }
        }
        scalar_args.push(values);
    }

    let mut out: Matrix = Vec::new();
    let mut window = Vec::new();
    let mut held = 0usize;
    let mut scalars = vec![0.0; scalar_args.len()];
    for s in series {
        ev.check_deadline()?;
        let labels = if func == Func::LastOverTime {
            Arc::clone(&s.labels)
        } else {
            drop_metric_name(&s.labels)
        };
        let mut points = Vec::new();
        for (k, ts) in ev.steps().enumerate() {
            // A window per step can be long (a subquery's millions of points): the
            // deadline is checked within the series too, not only between series.
            ev.check_deadline_every(k)?;
            for (slot, values) in scalars.iter_mut().zip(&scalar_args) {
                *slot = values.get(k).copied().unwrap_or(f64::NAN);
            }
            let range_end = ts.saturating_sub(offset);
            let range_start = range_end.saturating_sub(range_ms);
            Evaluator::window(&s.points, range_start, range_end, &mut window);
            ev.current_samples = ev.current_samples - held + window.len();
            held = window.len();
            if ev.current_samples > ev.max_samples {
                return Err(super::error::EngineError::too_many_samples());
            }
            if window.is_empty() {
                continue;
            }
            let call = RangeArgs {
                points: &window,
                ts,
                range_start,
                range_end,
                range_ms,
                scalars: &scalars,
            };
            if let Some(v) = range::call(func, &call)? {
                points.push(Point { t: ts, v });
            }
        }
        if !points.is_empty() {
            ev.add_samples(points.len())?;
            out.push(EvalSeries { labels, points });
        }
    }
    ev.current_samples = ev.current_samples.saturating_sub(held + subquery_points);

    if func == Func::AbsentOverTime {
        return Ok(absent_over_time(ev, &out, args.get(index)));
    }
    if has_duplicate_labels(out.iter().map(|s| &*s.labels)) {
        return exec_err(DUPLICATE_LABELSET);
    }
    Ok(out)
}

/// `absent_over_time`: one series (labels from the selector's equality matchers) with 1 at
/// every step where no input series had a sample.
fn absent_over_time(ev: &Evaluator<'_>, present: &Matrix, arg: Option<&Node>) -> Matrix {
    let steps = ev.num_steps();
    if present.iter().any(|s| s.points.len() == steps) {
        return Vec::new();
    }
    let found: HashSet<i64> = present
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.t))
        .collect();
    if found.len() == steps {
        return Vec::new();
    }
    let points: Vec<Point> = ev
        .steps()
        .filter(|t| !found.contains(t))
        .map(|t| Point { t, v: 1.0 })
        .collect();
    vec![EvalSeries {
        labels: Arc::new(absent_labels(arg)),
        points,
    }]
}
