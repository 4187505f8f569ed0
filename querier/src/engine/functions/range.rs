//! Functions over a range vector, called once per series and step with the window's points
//! (stale markers removed, never empty).

use super::Func;
use crate::engine::aggregations::{avg_keeps_infinite_mean, quantile};
use crate::engine::error::{exec_err, EvalResult};
use crate::engine::value::Point;

/// One call: the window and the scalar arguments at this step.
#[derive(Debug)]
pub(crate) struct RangeArgs<'x> {
    pub(crate) points: &'x [Point],
    /// The evaluation time.
    pub(crate) ts: i64,
    /// The window's bounds, inclusive (`ts - offset - range`, `ts - offset`).
    pub(crate) range_start: i64,
    pub(crate) range_end: i64,
    pub(crate) range_ms: i64,
    /// The values of the other (scalar) arguments, in argument order.
    pub(crate) scalars: &'x [f64],
}

impl RangeArgs<'_> {
    fn scalar(&self, i: usize) -> f64 {
        self.scalars.get(i).copied().unwrap_or(f64::NAN)
    }
}

/// The function's value for one window, or `None` when it yields no sample.
pub(crate) fn call(func: Func, a: &RangeArgs<'_>) -> EvalResult<Option<f64>> {
    let p = a.points;
    Ok(match func {
        Func::Rate => extrapolated_rate(a, true, true),
        Func::Increase => extrapolated_rate(a, true, false),
        Func::Delta => extrapolated_rate(a, false, false),
        Func::Irate => instant_value(p, true),
        Func::Idelta => instant_value(p, false),
        Func::AvgOverTime => Some(avg_over_time(p)),
        Func::CountOverTime => Some(p.len() as f64),
        Func::SumOverTime => Some(sum_over_time(p)),
        Func::MinOverTime => Some(fold_keep_nan_replaced(p, |cur, v| v < cur)),
        Func::MaxOverTime => Some(fold_keep_nan_replaced(p, |cur, v| v > cur)),
        Func::LastOverTime => p.last().map(|pt| pt.v),
        Func::PresentOverTime | Func::AbsentOverTime => Some(1.0),
        Func::StddevOverTime => Some(variance_over_time(p).sqrt()),
        Func::StdvarOverTime => Some(variance_over_time(p)),
        Func::QuantileOverTime => {
            let mut values: Vec<f64> = p.iter().map(|pt| pt.v).collect();
            Some(quantile(a.scalar(0), &mut values))
        }
        Func::Changes => Some(changes(p)),
        Func::Resets => Some(resets(p)),
        Func::Deriv => {
            if p.len() < 2 {
                None
            } else {
                Some(linear_regression(p, p[0].t).0)
            }
        }
        Func::PredictLinear => {
            if p.len() < 2 {
                None
            } else {
                let (slope, intercept) = linear_regression(p, a.ts);
                Some(slope * a.scalar(0) + intercept)
            }
        }
        Func::HoltWinters => holt_winters(p, a.scalar(0), a.scalar(1))?,
        other => {
            return exec_err(format!(
                "function {} does not take a range vector",
                other.name()
            ))
        }
    })
}

/// `rate`, `increase` and `delta`: the change over the window (with counter resets
/// compensated for counters), extrapolated towards the window's bounds.
pub(crate) fn extrapolated_rate(a: &RangeArgs<'_>, is_counter: bool, is_rate: bool) -> Option<f64> {
    let p = a.points;
    if p.len() < 2 {
        return None;
    }
    let (first, last) = (p[0], p[p.len() - 1]);
    let mut result = last.v - first.v;
    if is_counter {
        let mut prev = first.v;
        for cur in &p[1..] {
            if cur.v < prev {
                result += prev;
            }
            prev = cur.v;
        }
    }
    let mut duration_to_start = (first.t - a.range_start) as f64 / 1000.0;
    let duration_to_end = (a.range_end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (p.len() - 1) as f64;
    if is_counter && result > 0.0 && first.v >= 0.0 {
        // A counter cannot go below zero: do not extrapolate past where it would be zero.
        let duration_to_zero = sampled_interval * (first.v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_between_samples * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold {
        duration_to_start
    } else {
        average_between_samples / 2.0
    };
    extrapolate_to += if duration_to_end < threshold {
        duration_to_end
    } else {
        average_between_samples / 2.0
    };
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= a.range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` / `idelta`: from the last two samples.
fn instant_value(p: &[Point], is_rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev, last) = (p[p.len() - 2], p[p.len() - 1]);
    let mut result = if is_rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Kahan-Neumaier summation step, as Prometheus' `kahanSumInc`.
pub(crate) fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

fn avg_over_time(p: &[Point]) -> f64 {
    let (mut mean, mut c, mut count) = (0.0_f64, 0.0_f64, 0.0_f64);
    for pt in p {
        count += 1.0;
        if avg_keeps_infinite_mean(mean, pt.v) {
            continue;
        }
        (mean, c) = kahan_sum_inc(pt.v / count - mean / count, mean, c);
    }
    if mean.is_infinite() {
        mean
    } else {
        mean + c
    }
}

fn sum_over_time(p: &[Point]) -> f64 {
    let (mut sum, mut c) = (0.0_f64, 0.0_f64);
    for pt in p {
        (sum, c) = kahan_sum_inc(pt.v, sum, c);
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + c
    }
}

/// min/max over time: a NaN current value is always replaced.
fn fold_keep_nan_replaced(p: &[Point], better: impl Fn(f64, f64) -> bool) -> f64 {
    let mut cur = p[0].v;
    for pt in p {
        if better(cur, pt.v) || cur.is_nan() {
            cur = pt.v;
        }
    }
    cur
}

fn variance_over_time(p: &[Point]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for pt in p {
        count += 1.0;
        let delta = pt.v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (pt.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

fn changes(p: &[Point]) -> f64 {
    let mut n = 0;
    let mut prev = p[0].v;
    for pt in &p[1..] {
        if pt.v != prev && !(pt.v.is_nan() && prev.is_nan()) {
            n += 1;
        }
        prev = pt.v;
    }
    f64::from(n)
}

fn resets(p: &[Point]) -> f64 {
    let mut n = 0;
    let mut prev = p[0].v;
    for pt in &p[1..] {
        if pt.v < prev {
            n += 1;
        }
        prev = pt.v;
    }
    f64::from(n)
}

/// Least-squares fit; returns the slope (per second) and the value at `intercept_time`.
pub(crate) fn linear_regression(p: &[Point], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].v;
    let mut const_y = true;
    for (i, pt) in p.iter().enumerate() {
        if const_y && i > 0 && pt.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (pt.t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_sum_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_sum_inc(pt.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_sum_inc(x * pt.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_sum_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// Double exponential smoothing with smoothing factor `sf` and trend factor `tf`.
fn holt_winters(p: &[Point], sf: f64, tf: f64) -> EvalResult<Option<f64>> {
    if sf <= 0.0 || sf >= 1.0 {
        return exec_err(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        ));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return exec_err(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        ));
    }
    if p.len() < 2 {
        return Ok(None);
    }
    let (mut s0, mut s1) = (0.0, p[0].v);
    let mut b = p[1].v - p[0].v;
    for (i, pt) in p.iter().enumerate().skip(1) {
        let x = sf * pt.v;
        // The trend at the previous point.
        b = if i == 1 {
            b
        } else {
            tf * (s1 - s0) + (1.0 - tf) * b
        };
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(i64, f64)]) -> Vec<Point> {
        v.iter().map(|&(t, v)| Point { t, v }).collect()
    }

    fn rate_of(points: &[Point], start: i64, end: i64, counter: bool, rate: bool) -> Option<f64> {
        extrapolated_rate(
            &RangeArgs {
                points,
                ts: end,
                range_start: start,
                range_end: end,
                range_ms: end - start,
                scalars: &[],
            },
            counter,
            rate,
        )
    }

    #[test]
    fn rate_extrapolates_to_window_edges_when_samples_are_close() {
        // Samples every 60s from 30s to 270s in a [0, 300s] window: 30s to each edge is
        // below 1.1 * 60s, so the 4-minute change is extrapolated to 5 minutes.
        let p = pts(&[
            (30_000, 10.0),
            (90_000, 20.0),
            (150_000, 30.0),
            (210_000, 40.0),
            (270_000, 50.0),
        ]);
        let inc = rate_of(&p, 0, 300_000, true, false).unwrap();
        assert!((inc - 50.0).abs() < 1e-9, "{inc}");
        let rate = rate_of(&p, 0, 300_000, true, true).unwrap();
        assert!((rate - 50.0 / 300.0).abs() < 1e-12);
    }

    #[test]
    fn rate_extrapolates_half_an_interval_at_far_edges() {
        // First sample 120s after the window start (> 1.1 * 60s): only 30s are added there.
        let p = pts(&[
            (120_000, 0.0),
            (180_000, 60.0),
            (240_000, 120.0),
            (300_000, 180.0),
        ]);
        let delta = rate_of(&p, 0, 300_000, false, false).unwrap();
        assert!((delta - 180.0 * 210.0 / 180.0).abs() < 1e-9, "{delta}");
    }

    #[test]
    fn counter_extrapolation_stops_at_zero() {
        // Counter from 5 to 25 over 60s; extrapolating 59s back would go below zero, so it
        // stops at the zero point 15s before the first sample.
        let p = pts(&[(59_000, 5.0), (119_000, 25.0)]);
        let inc = rate_of(&p, 0, 120_000, true, false).unwrap();
        // interval 60s + 15s to zero + 1s to end = 76s; factor 76/60.
        assert!((inc - 20.0 * 76.0 / 60.0).abs() < 1e-9, "{inc}");
        // delta (not a counter) extrapolates the full 59s.
        let delta = rate_of(&p, 0, 120_000, false, false).unwrap();
        assert!((delta - 20.0 * 120.0 / 60.0).abs() < 1e-9, "{delta}");
    }

    #[test]
    fn counter_resets_add_the_value_before_the_reset() {
        let p = pts(&[(0, 10.0), (60_000, 20.0), (120_000, 5.0), (180_000, 15.0)]);
        // 20 before the reset, then 15 more: 25 + (5 - 10 + 20) => last-first+prev = 5 + 20.
        let inc = rate_of(&p, 0, 180_000, true, false).unwrap();
        assert!((inc - 25.0).abs() < 1e-9, "{inc}");
        assert_eq!(resets(&p), 1.0);
    }

    #[test]
    fn fewer_than_two_samples_give_nothing() {
        let p = pts(&[(0, 1.0)]);
        assert_eq!(rate_of(&p, -60_000, 0, true, true), None);
        assert_eq!(instant_value(&p, true), None);
    }

    #[test]
    fn irate_handles_resets() {
        let p = pts(&[(0, 10.0), (10_000, 20.0), (20_000, 4.0)]);
        assert_eq!(instant_value(&p, true), Some(0.4));
        assert_eq!(instant_value(&p, false), Some(-16.0));
    }

    #[test]
    fn regression_of_a_line_is_exact() {
        let p = pts(&[(0, 1.0), (10_000, 2.0), (20_000, 3.0)]);
        let (slope, intercept) = linear_regression(&p, 20_000);
        assert!((slope - 0.1).abs() < 1e-12);
        assert!((intercept - 3.0).abs() < 1e-12);
    }
}
