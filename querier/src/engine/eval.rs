//! The evaluator: every node is evaluated over all steps of its evaluator's range at once
//! (Prometheus' `rangeEval` model); an instant query is a range with one step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use strata_shared::labels::Labels;

use super::error::{exec_err, EngineError, EvalResult};
use super::fetch::FetchedData;
use super::plan::{Node, Selector, SubqueryNode};
use super::value::{
    drop_metric_name, has_duplicate_labels, is_stale_marker, EvalSeries, EvalValue, Matrix, Point,
    SharedLabels, StepSample, DUPLICATE_LABELSET,
};

/// The step of a subquery that gives none: Prometheus' default global evaluation interval.
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// Evaluates nodes over `start..=end` every `interval` milliseconds.
#[derive(Debug)]
pub(crate) struct Evaluator<'a> {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) interval: i64,
    pub(crate) lookback: i64,
    pub(crate) data: &'a FetchedData,
    /// Points held right now (Prometheus' `currentSamples`).
    pub(crate) current_samples: usize,
    pub(crate) max_samples: usize,
    pub(crate) deadline: Instant,
    /// Set when the caller gave up on the query.
    pub(crate) canceled: &'a AtomicBool,
}

/// One argument's values at one step: which series (index into `series`) and its value.
#[derive(Debug)]
pub(crate) struct StepInput<'m> {
    pub(crate) series: &'m [EvalSeries],
    pub(crate) samples: Vec<(usize, f64)>,
}

impl StepInput<'_> {
    pub(crate) fn labels(&self, index: usize) -> &SharedLabels {
        &self.series[index].labels
    }

    /// The single value of a scalar argument at this step.
    pub(crate) fn scalar(&self) -> f64 {
        self.samples.first().map(|s| s.1).unwrap_or(f64::NAN)
    }

    pub(crate) fn to_samples(&self) -> Vec<StepSample> {
        self.samples
            .iter()
            .map(|&(i, v)| StepSample {
                labels: Arc::clone(self.labels(i)),
                v,
            })
            .collect()
    }
}

/// Caches labels derived from input labels within one node's evaluation, keyed by the
/// identity of the shared input labels (alive as long as the input matrices are).
#[derive(Debug, Default)]
pub(crate) struct LabelCache {
    map: HashMap<usize, SharedLabels>,
}

impl LabelCache {
    pub(crate) fn get_or(
        &mut self,
        labels: &SharedLabels,
        derive: impl FnOnce(&SharedLabels) -> SharedLabels,
    ) -> SharedLabels {
        let key = Arc::as_ptr(labels) as usize;
        Arc::clone(self.map.entry(key).or_insert_with(|| derive(labels)))
    }

    pub(crate) fn drop_name(&mut self, labels: &SharedLabels) -> SharedLabels {
        self.get_or(labels, drop_metric_name)
    }
}

/// Collects step outputs into series, in order of first appearance.
#[derive(Debug, Default)]
struct SeriesCollector {
    index: HashMap<SharedLabels, usize>,
    series: Matrix,
}

impl SeriesCollector {
    fn push(&mut self, labels: SharedLabels, point: Point) {
        match self.index.get(&labels) {
            Some(&i) => self.series[i].points.push(point),
            None => {
                self.index.insert(Arc::clone(&labels), self.series.len());
                self.series.push(EvalSeries {
                    labels,
                    points: vec![point],
                });
            }
        }
    }
}

/// How many steps `start..=end` has every `interval` ms (0 when `end < start`), without
/// overflow whatever the inputs.
pub(crate) fn step_count(start: i64, end: i64, interval: i64) -> u128 {
    if end < start {
        return 0;
    }
    let span = (i128::from(end) - i128::from(start)) as u128;
    span / u128::from(interval.max(1).unsigned_abs()) + 1
}

pub(crate) fn total_points(m: &Matrix) -> usize {
    m.iter().map(|s| s.points.len()).sum()
}

impl<'a> Evaluator<'a> {
    /// An evaluator over another range that shares data, limits and deadline.
    pub(crate) fn child(&self, start: i64, end: i64, interval: i64) -> Evaluator<'a> {
        Evaluator {
            start,
            end,
            interval,
            lookback: self.lookback,
            data: self.data,
            current_samples: self.current_samples,
            max_samples: self.max_samples,
            deadline: self.deadline,
            canceled: self.canceled,
        }
    }

    pub(crate) fn check_deadline(&self) -> EvalResult<()> {
        if self.canceled.load(Ordering::Relaxed) {
            return Err(EngineError::canceled());
        }
        if Instant::now() >= self.deadline {
            return Err(EngineError::timed_out());
        }
        Ok(())
    }

    /// [`Self::check_deadline`] every 1024th `k`: inside loops over the steps of one
    /// series, which a subquery can make millions long, at a cost that does not show.
    pub(crate) fn check_deadline_every(&self, k: usize) -> EvalResult<()> {
        if k % 1024 == 1023 {
            self.check_deadline()?;
        }
        Ok(())
    }

    pub(crate) fn num_steps(&self) -> usize {
        usize::try_from(step_count(self.start, self.end, self.interval)).unwrap_or(usize::MAX)
    }

    /// The step timestamps. Computed one by one (never collected: a subquery may have
    /// millions), stopping rather than wrapping at the end of `i64`.
    pub(crate) fn steps(&self) -> impl Iterator<Item = i64> {
        let (start, end, interval) = (self.start, self.end, self.interval.max(1));
        (0i64..)
            .map_while(move |i| i.checked_mul(interval)?.checked_add(start))
            .take_while(move |&t| t <= end)
    }

    /// Fails when this evaluator's range has more steps than the query may hold samples:
    /// checked before a subquery is evaluated, so a nested one fails at once instead of
    /// iterating for minutes over (possibly empty) steps.
    pub(crate) fn check_step_count(&self, what: &str) -> EvalResult<()> {
        let steps = step_count(self.start, self.end, self.interval);
        if steps > self.max_samples as u128 {
            return Err(EngineError::too_many_steps(what, steps, self.max_samples));
        }
        Ok(())
    }

    /// The offset a selector or subquery is evaluated with: with `@`, Prometheus turns the
    /// timestamp into an offset relative to the evaluator's start. Planned times are
    /// bounded (see `crate::bounds`), so saturation never changes a real answer; it only
    /// keeps arithmetic on absurd values from wrapping.
    pub(crate) fn effective_offset(&self, offset_ms: i64, at_ms: Option<i64>) -> i64 {
        match at_ms {
            Some(at) => offset_ms.saturating_add(self.start.saturating_sub(at)),
            None => offset_ms,
        }
    }

    pub(crate) fn add_samples(&mut self, n: usize) -> EvalResult<()> {
        self.current_samples += n;
        if self.current_samples > self.max_samples {
            return Err(EngineError::too_many_samples());
        }
        Ok(())
    }

    pub(crate) fn eval(&mut self, node: &Node) -> EvalResult<EvalValue> {
        self.check_deadline()?;
        let matrix = match node {
            Node::Str(s) => return Ok(EvalValue::String(s.clone())),
            Node::StepInvariant(inner) if matches!(**inner, Node::Str(_)) => {
                return self.eval(inner)
            }
            Node::Number(v) => {
                let v = *v;
                self.step_loop(Vec::new(), |_, _| {
                    Ok(vec![StepSample {
                        labels: Arc::new(Labels::default()),
                        v,
                    }])
                })?
            }
            Node::VectorSelector(sel) => self.vector_selector(sel)?,
            Node::MatrixSelector { selector, range_ms } => {
                if self.start != self.end {
                    return exec_err("cannot do range evaluation of matrix selector");
                }
                self.matrix_selector(selector, *range_ms)?
            }
            Node::Subquery(sq) => self.subquery(sq)?,
            Node::Neg(inner) => {
                let mut m = self.eval_matrix(inner)?;
                for s in &mut m {
                    s.labels = drop_metric_name(&s.labels);
                    for p in &mut s.points {
                        p.v = -p.v;
                    }
                }
                if has_duplicate_labels(m.iter().map(|s| &*s.labels)) {
                    return exec_err(DUPLICATE_LABELSET);
                }
                m
            }
            Node::Binary(b) => super::binary::eval_binary(self, b)?,
            Node::Aggregate(a) => super::aggregations::eval_aggregate(self, a)?,
            Node::Call { func, args } => super::calls::eval_call(self, *func, args)?,
            Node::StepInvariant(inner) => self.step_invariant(inner)?,
        };
        Ok(EvalValue::Matrix(matrix))
    }

    pub(crate) fn eval_matrix(&mut self, node: &Node) -> EvalResult<Matrix> {
        match self.eval(node)? {
            EvalValue::Matrix(m) => Ok(m),
            EvalValue::String(_) => exec_err("unexpected string where a vector was expected"),
        }
    }

    /// Evaluates the arguments of a step-wise operation (strings give `None`), returning
    /// them with the sample count to restore when the operation is done.
    pub(crate) fn eval_args(&mut self, args: &[&Node]) -> EvalResult<Vec<Option<Matrix>>> {
        args.iter()
            .map(|a| match self.eval(a)? {
                EvalValue::Matrix(m) => Ok(Some(m)),
                EvalValue::String(_) => Ok(None),
            })
            .collect()
    }

    /// Feeds `f` the arguments' vectors at every step and gathers its outputs into series
    /// (Prometheus' `rangeEval` after the arguments are evaluated). `original` is the sample
    /// count before the arguments were evaluated.
    pub(crate) fn step_loop<F>(&mut self, matrices: Vec<Option<Matrix>>, f: F) -> EvalResult<Matrix>
    where
        F: FnMut(&[StepInput<'_>], i64) -> EvalResult<Vec<StepSample>>,
    {
        let original = self
            .current_samples
            .saturating_sub(matrices.iter().flatten().map(total_points).sum());
        self.step_loop_from(original, &matrices, f)
    }

    pub(crate) fn step_loop_from<F>(
        &mut self,
        original: usize,
        matrices: &[Option<Matrix>],
        mut f: F,
    ) -> EvalResult<Matrix>
    where
        F: FnMut(&[StepInput<'_>], i64) -> EvalResult<Vec<StepSample>>,
    {
        const EMPTY: &[EvalSeries] = &[];
        let mut cursors: Vec<Vec<usize>> = matrices
            .iter()
            .map(|m| vec![0; m.as_ref().map_or(0, Vec::len)])
            .collect();
        let mut held = self.current_samples;
        let mut out = SeriesCollector::default();
        for ts in self.steps() {
            self.check_deadline()?;
            self.current_samples = held;
            let mut inputs = Vec::with_capacity(matrices.len());
            for (m, cursor) in matrices.iter().zip(cursors.iter_mut()) {
                let series = m.as_deref().unwrap_or(EMPTY);
                let mut samples = Vec::new();
                for (si, s) in series.iter().enumerate() {
                    if let Some(p) = s.points.get(cursor[si]) {
                        if p.t == ts {
                            if self.current_samples >= self.max_samples {
                                return Err(EngineError::too_many_samples());
                            }
                            samples.push((si, p.v));
                            cursor[si] += 1;
                            self.current_samples += 1;
                        }
                    }
                }
                inputs.push(StepInput { series, samples });
            }
            let result = f(&inputs, ts)?;
            if has_duplicate_labels(result.iter().map(|s| &*s.labels)) {
                return exec_err(DUPLICATE_LABELSET);
            }
            self.add_samples(result.len())?;
            held += result.len();
            if self.start == self.end {
                let m: Matrix = result
                    .into_iter()
                    .map(|s| EvalSeries {
                        labels: s.labels,
                        points: vec![Point { t: ts, v: s.v }],
                    })
                    .collect();
                self.current_samples = original + m.len();
                return Ok(m);
            }
            for s in result {
                out.push(s.labels, Point { t: ts, v: s.v });
            }
        }
        self.current_samples = original + total_points(&out.series);
        Ok(out.series)
    }

    /// The value of a series at `ref_time`: its latest sample no older than the lookback
    /// delta, unless that sample is a staleness marker.
    fn sample_at(&self, points: &[Point], ref_time: i64) -> Option<Point> {
        let idx = points.partition_point(|p| p.t <= ref_time);
        let p = *points.get(idx.checked_sub(1)?)?;
        if p.t < ref_time.saturating_sub(self.lookback) || is_stale_marker(p.v) {
            return None;
        }
        Some(p)
    }

    fn vector_selector(&mut self, sel: &Selector) -> EvalResult<Matrix> {
        let data = self.data;
        let offset = self.effective_offset(sel.offset_ms, sel.at_ms);
        let mut out = Vec::new();
        for s in &data[sel.id] {
            self.check_deadline()?;
            let mut points = Vec::new();
            for (k, ts) in self.steps().enumerate() {
                self.check_deadline_every(k)?;
                if let Some(p) = self.sample_at(&s.points, ts.saturating_sub(offset)) {
                    if self.current_samples >= self.max_samples {
                        return Err(EngineError::too_many_samples());
                    }
                    self.current_samples += 1;
                    points.push(Point { t: ts, v: p.v });
                }
            }
            if !points.is_empty() {
                out.push(EvalSeries {
                    labels: Arc::clone(&s.labels),
                    points,
                });
            }
        }
        Ok(out)
    }

    /// `timestamp(selector)`: the selected samples with their own timestamps, at one step.
    /// With `@`, Prometheus 2.42 evaluates at the `@` time and ignores the offset.
    pub(crate) fn selector_samples_at(
        &mut self,
        sel: &Selector,
        ts: i64,
    ) -> EvalResult<Vec<(usize, Point)>> {
        let ref_time = match sel.at_ms {
            Some(at) => at,
            None => ts.saturating_sub(sel.offset_ms),
        };
        let mut out = Vec::new();
        for (i, s) in self.data[sel.id].iter().enumerate() {
            if let Some(p) = self.sample_at(&s.points, ref_time) {
                self.add_samples(1)?;
                out.push((i, p));
            }
        }
        Ok(out)
    }

    /// The non-stale points of `points` in `[mint, maxt]`, into `buf`.
    pub(crate) fn window(points: &[Point], mint: i64, maxt: i64, buf: &mut Vec<Point>) {
        buf.clear();
        let from = points.partition_point(|p| p.t < mint);
        let to = points.partition_point(|p| p.t <= maxt);
        if from < to {
            buf.extend(points[from..to].iter().filter(|p| !is_stale_marker(p.v)));
        }
    }

    fn matrix_selector(&mut self, sel: &Selector, range_ms: i64) -> EvalResult<Matrix> {
        let data = self.data;
        let maxt = self
            .start
            .saturating_sub(self.effective_offset(sel.offset_ms, sel.at_ms));
        let mint = maxt.saturating_sub(range_ms);
        let mut out = Vec::new();
        for s in &data[sel.id] {
            self.check_deadline()?;
            let mut points = Vec::new();
            Self::window(&s.points, mint, maxt, &mut points);
            if points.is_empty() {
                continue;
            }
            if self.current_samples + points.len() > self.max_samples {
                return Err(EngineError::too_many_samples());
            }
            self.current_samples += points.len();
            out.push(EvalSeries {
                labels: Arc::clone(&s.labels),
                points,
            });
        }
        Ok(out)
    }

    /// Evaluates a subquery's inner expression at its own steps, aligned to multiples of
    /// the step, covering every window the outer evaluation needs.
    pub(crate) fn subquery(&mut self, sq: &SubqueryNode) -> EvalResult<Matrix> {
        let offset = self.effective_offset(sq.offset_ms, sq.at_ms);
        let interval = if sq.step_ms != 0 {
            sq.step_ms
        } else {
            DEFAULT_SUBQUERY_STEP_MS
        };
        let lowest = self
            .start
            .saturating_sub(offset)
            .saturating_sub(sq.range_ms);
        let mut start = interval.saturating_mul(lowest / interval);
        if start < lowest {
            start = start.saturating_add(interval);
        }
        let mut child = self.child(start, self.end.saturating_sub(offset), interval);
        child.check_step_count(&format!(
            "the inner expression of a subquery [{}:{}]",
            crate::bounds::promql_duration(sq.range_ms),
            crate::bounds::promql_duration(interval)
        ))?;
        let result = child.eval_matrix(&sq.expr)?;
        self.current_samples = child.current_samples;
        Ok(result)
    }

    fn step_invariant(&mut self, inner: &Node) -> EvalResult<Matrix> {
        if matches!(inner, Node::Number(_) | Node::Str(_)) {
            return self.eval_matrix(inner);
        }
        let mut child = self.child(self.start, self.start, self.interval);
        let mut m = child.eval_matrix(inner)?;
        self.current_samples = child.current_samples;
        if matches!(inner, Node::MatrixSelector { .. } | Node::Subquery(_)) {
            return Ok(m);
        }
        for s in &mut m {
            let Some(first) = s.points.first().copied() else {
                continue;
            };
            for (k, ts) in self.steps().skip(1).enumerate() {
                self.check_deadline_every(k)?;
                s.points.push(Point { t: ts, v: first.v });
                self.add_samples(1)?;
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_canceled_query_stops_with_a_canceled_error() {
        let data: FetchedData = Vec::new();
        let canceled = AtomicBool::new(true);
        let mut ev = Evaluator {
            start: 0,
            end: 0,
            interval: 1,
            lookback: 300_000,
            data: &data,
            current_samples: 0,
            max_samples: 100,
            deadline: Instant::now() + Duration::from_secs(60),
            canceled: &canceled,
        };
        let err = ev.eval(&Node::Number(1.0)).unwrap_err();
        assert_eq!(err.error_type(), "canceled");
        canceled.store(false, Ordering::Relaxed);
        assert!(ev.eval(&Node::Number(1.0)).is_ok());
    }
}
