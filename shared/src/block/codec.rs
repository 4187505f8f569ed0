//! The two transforms that make the format small, kept apart from Parquet so that they can be
//! tested and measured on their own.
//!
//! - **Decimal scaling.** Most Prometheus values are decimals written with few digits
//!   (counters, byte gauges, `12.34`). Such a value `v` equals `m / 10^k` for a small integer
//!   `m`, and since IEEE division is correctly rounded, `m as f64 / 10^k` gives back exactly the
//!   double that parsing the decimal gave. Storing `m` as an integer costs a fraction of the
//!   float's bits. Exactness is checked per sample at write time, bit for bit, so nothing
//!   depends on the reasoning above being right for every input.
//! - **Timestamp groups.** Every series of one scrape target carries the same timestamps
//!   (jitter included), so they are stored once per group of series.

use std::collections::HashMap;

/// The largest decimal scale tried: `10^15` is exact in a double, and larger scales only help
/// values so small that their integer would not fit the 53 exact bits anyway.
pub const MAX_SCALE: u8 = 15;

/// `10^k` for every scale, as exact doubles (a table, not `powi`, so that no rounding of
/// intermediate products can creep in).
const POW10: [f64; MAX_SCALE as usize + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// 2^53: integers up to this magnitude convert to `f64` exactly, which the reader and the
/// plain-SQL recipe (`CAST(... AS DOUBLE)`) rely on.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// Rough costs used only to choose a scale, in tenths of a bit: a sample that is not exact at
/// the scale (a float, plus the switch between value columns), and what each decimal digit
/// adds to every integer (log2(10) ≈ 3.3 bits).
const EXCEPTION_COST: u64 = 1000;
const SCALE_STEP_COST: u64 = 33;
/// A series that is exact at its scale for fewer than this share of its samples (in percent)
/// is stored as floats: alternating between the value columns costs more than it saves.
const MIN_EXACT_PERCENT: u64 = 90;
/// Integers whose differences average more bits than this are noise that happens to be exact
/// at a large scale (any double in [4.5, 9) is exact at scale 15); they compress no better
/// than floats, whose sign and exponent bytes are nearly free.
const MAX_MEAN_DELTA_BITS: u64 = 40;

/// The integer `m` with `m / 10^scale == value` bit for bit, if there is one that converts to
/// a double exactly. `None` for NaN, infinities, `-0.0` and values with more digits.
pub fn scaled_value(value: f64, scale: u8) -> Option<i64> {
    let power = *POW10.get(usize::from(scale))?;
    let rounded = (value * power).round();
    if rounded.is_nan() || rounded.abs() > MAX_EXACT_INT {
        return None;
    }
    let integer = rounded as i64;
    let back = unscaled_value(integer, scale)?;
    (back.to_bits() == value.to_bits()).then_some(integer)
}

/// `integer / 10^scale`, the inverse of [`scaled_value`]; `None` when the scale is out of
/// range (a corrupt block).
pub fn unscaled_value(integer: i64, scale: u8) -> Option<f64> {
    let power = POW10.get(usize::from(scale))?;
    Some(integer as f64 / power)
}

/// The scale a series' values are stored at, or `None` to store them all as floats.
///
/// Picks the scale that minimises a rough size estimate (each extra decimal digit costs every
/// integer about 3.3 bits, each sample not exact at the scale costs a float), so a decimal
/// series with a few odd samples (a staleness marker, `NaN`) keeps its scale and those go to
/// the float column. Series that are mostly not exact, or whose integers look like noise,
/// stay floats.
pub fn choose_scale(values: &[f64]) -> Option<u8> {
    // first_exact[k]: samples whose smallest exact scale is k. Exactness at k implies
    // exactness at k + 1 (same quotient, ten times the integer) while the integer fits.
    let mut first_exact = [0u64; MAX_SCALE as usize + 1];
    for &value in values {
        if let Some(k) = (0..=MAX_SCALE).find(|&k| scaled_value(value, k).is_some()) {
            first_exact[usize::from(k)] += 1;
        }
    }
    let total = values.len() as u64;
    let mut best: Option<(u8, u64)> = None;
    let mut best_cost = u64::MAX;
    let mut exact = 0u64;
    for k in 0..=MAX_SCALE {
        exact += first_exact[usize::from(k)];
        let cost = (total - exact) * EXCEPTION_COST + exact * SCALE_STEP_COST * u64::from(k);
        if exact > 0 && cost < best_cost {
            best = Some((k, exact));
            best_cost = cost;
        }
    }
    let (scale, exact) = best?;
    if exact * 100 < total * MIN_EXACT_PERCENT
        || mean_delta_bits(values, scale) > MAX_MEAN_DELTA_BITS
    {
        return None;
    }
    Some(scale)
}

/// Average bits of the differences between consecutive integers of `values` at `scale`.
fn mean_delta_bits(values: &[f64], scale: u8) -> u64 {
    let mut previous: Option<i64> = None;
    let (mut bits, mut count) = (0u64, 0u64);
    for integer in values.iter().filter_map(|&v| scaled_value(v, scale)) {
        if let Some(p) = previous {
            bits += u64::from(64 - (integer - p).unsigned_abs().leading_zeros());
            count += 1;
        }
        previous = Some(integer);
    }
    bits / count.max(1)
}

/// Series grouped by shared timestamps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimestampGroups {
    /// Each group's timestamps, strictly increasing; groups are numbered in order of first
    /// use by the series.
    pub groups: Vec<Vec<i64>>,
    /// The group of each input series.
    pub series_group: Vec<u32>,
}

/// Assigns each series (given by its strictly increasing timestamps) to a timestamp group.
///
/// Series with identical timestamps always share a group. With `share_subsets`, a series
/// whose timestamps are all in a larger group joins it too: a series that went stale or
/// appeared mid-block, or missed a scrape, then costs no timestamps of its own (its samples'
/// `scrape` positions skip instead).
pub fn group_timestamps(series: &[&[i64]], share_subsets: bool) -> TimestampGroups {
    // Distinct timestamp vectors, in order of first appearance.
    let mut distinct_index: HashMap<&[i64], usize> = HashMap::new();
    let mut distinct: Vec<&[i64]> = Vec::new();
    let series_distinct: Vec<usize> = series
        .iter()
        .map(|&timestamps| {
            *distinct_index.entry(timestamps).or_insert_with(|| {
                distinct.push(timestamps);
                distinct.len() - 1
            })
        })
        .collect();

    // Longest first, so that a group exists before its subsets look for it.
    let mut order: Vec<usize> = (0..distinct.len()).collect();
    order.sort_by_key(|&d| std::cmp::Reverse(distinct[d].len()));

    let mut groups: Vec<&[i64]> = Vec::new();
    let mut distinct_group = vec![0usize; distinct.len()];
    // The first (so longest) group holding each timestamp: where a subset looks for a group
    // to join. One candidate per timestamp keeps this linear; a subset that misses its best
    // group only costs its own timestamps.
    let mut group_at: HashMap<i64, usize> = HashMap::new();
    for d in order {
        let timestamps = distinct[d];
        let joined = match (share_subsets, timestamps.first(), timestamps.last()) {
            (true, Some(first), Some(last)) => [first, last]
                .into_iter()
                .filter_map(|t| group_at.get(t).copied())
                .find(|&g| is_subset(timestamps, groups[g])),
            _ => None,
        };
        distinct_group[d] = match joined {
            Some(g) => g,
            None => {
                let g = groups.len();
                groups.push(timestamps);
                if share_subsets {
                    for &t in timestamps {
                        group_at.entry(t).or_insert(g);
                    }
                }
                g
            }
        };
    }

    // Renumber groups in order of first use, so that ids follow the series order.
    let mut renumbered: Vec<Option<u32>> = vec![None; groups.len()];
    let mut result = TimestampGroups::default();
    for &d in &series_distinct {
        let g = distinct_group[d];
        let id = match renumbered[g] {
            Some(id) => id,
            None => {
                let id = result.groups.len() as u32;
                result.groups.push(groups[g].to_vec());
                renumbered[g] = Some(id);
                id
            }
        };
        result.series_group.push(id);
    }
    result
}

/// Whether every element of `small` is in `large` (both strictly increasing).
fn is_subset(small: &[i64], large: &[i64]) -> bool {
    if small.len() > large.len() {
        return false;
    }
    let mut rest = large;
    for t in small {
        match rest.binary_search(t) {
            Ok(i) => rest = &rest[i + 1..],
            Err(_) => return false,
        }
    }
    true
}

/// The position of each of `timestamps` in `group`, appended to `out`; `false` if one is
/// missing (both strictly increasing).
pub(crate) fn scrape_positions(group: &[i64], timestamps: &[i64], out: &mut Vec<i32>) -> bool {
    let mut position = 0usize;
    for t in timestamps {
        while position < group.len() && group[position] < *t {
            position += 1;
        }
        if group.get(position) != Some(t) {
            return false;
        }
        out.push(position as i32);
        position += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_values_round_trip_bit_exactly_or_not_at_all() {
        let cases: [(f64, u8, Option<i64>); 10] = [
            (12.34, 2, Some(1234)),
            (12.34, 1, None),
            (12.34, 3, Some(12340)),
            (0.1, 1, Some(1)),
            (-0.0, 0, None),
            (0.0, 0, Some(0)),
            (f64::NAN, 0, None),
            (f64::INFINITY, 0, None),
            (1e300, 0, None),
            (9_007_199_254_740_993.0, 0, Some(9_007_199_254_740_992)),
        ];
        for (value, scale, expected) in cases {
            assert_eq!(
                scaled_value(value, scale),
                expected,
                "{value} at scale {scale}"
            );
            if let Some(m) = expected {
                assert_eq!(
                    unscaled_value(m, scale).map(f64::to_bits),
                    Some(value.to_bits())
                );
            }
        }
        assert_eq!(scaled_value(1.0, MAX_SCALE + 1), None);
    }

    #[test]
    fn choose_scale_prefers_the_cheapest_exact_scale() {
        assert_eq!(choose_scale(&[1.0, 2.0, 3.0]), Some(0));
        assert_eq!(choose_scale(&[1.5, 2.25, 3.0]), Some(2));
        // One staleness marker does not turn a decimal series into floats.
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let mut values: Vec<f64> = (0..20).map(|i| f64::from(i) + 0.5).collect();
        values.push(stale);
        assert_eq!(choose_scale(&values), Some(1));
        // Mostly not exact: floats.
        assert_eq!(choose_scale(&[1.5, stale, stale]), None);
        // Noise exact at scale 15 only because every double in [4.5, 9) is.
        let noise: Vec<f64> = (0..50)
            .map(|i| 5.0 + f64::from(i * 7919 % 997) / 997.0 * 3.3)
            .collect();
        assert!(noise.iter().all(|&v| scaled_value(v, MAX_SCALE).is_some()));
        assert_eq!(choose_scale(&noise), None);
        assert_eq!(
            choose_scale(&[0.123_456_789_012_345_67, 0.987_654_321_098_765_4]),
            None
        );
        assert_eq!(choose_scale(&[]), None);
    }

    #[test]
    fn subsets_join_the_group_that_contains_them() {
        let full = [10, 20, 30, 40];
        let stale_early = [10, 20];
        let other_target = [11, 21, 31, 41];
        let gap = [10, 30, 40];
        let series: [&[i64]; 5] = [&stale_early, &full, &other_target, &gap, &full];
        let grouped = group_timestamps(&series, true);
        assert_eq!(grouped.groups, vec![full.to_vec(), other_target.to_vec()]);
        assert_eq!(grouped.series_group, vec![0, 0, 1, 0, 0]);

        let exact = group_timestamps(&series, false);
        assert_eq!(exact.groups.len(), 4);
        assert_eq!(exact.series_group, vec![0, 1, 2, 3, 1]);
        assert_eq!(exact.groups[0], stale_early.to_vec());
    }

    #[test]
    fn scrape_positions_skip_missing_scrapes() {
        let mut out = Vec::new();
        assert!(scrape_positions(&[10, 20, 30, 40], &[20, 40], &mut out));
        assert_eq!(out, vec![1, 3]);
        assert!(!scrape_positions(&[10, 20], &[15], &mut out));
    }
}
