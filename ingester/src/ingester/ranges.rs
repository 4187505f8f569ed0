//! Block-range arithmetic: which range holds a timestamp, and how cut samples split into one
//! block per range. Timestamps come from requests (validation keeps them within ±2^53 ms,
//! but a WAL written before that rule may hold anything), so nothing here may overflow or
//! loop: ranges saturate at the ends of i64.

use std::collections::BTreeMap;

use strata_shared::block::SeriesSamples;

use super::head::CutSeries;

/// The start of the block range holding `t`; saturates instead of overflowing at the ends
/// of i64.
pub fn range_start(t: i64, range: i64) -> i64 {
    t.div_euclid(range.max(1)).saturating_mul(range.max(1))
}

/// The end (exclusive) of the block range holding `t`; saturates at `i64::MAX`.
pub fn range_end_after(t: i64, range: i64) -> i64 {
    t.div_euclid(range.max(1))
        .saturating_add(1)
        .saturating_mul(range.max(1))
}

/// Splits cut series (time-ordered samples each) into one set of series per block range,
/// keyed by the range's start. Every sample lands in exactly one range; a sample at
/// `i64::MAX`, which no range can hold, goes to the last one.
pub fn split_by_range<'a>(
    cut: impl IntoIterator<Item = &'a CutSeries>,
    range: i64,
) -> BTreeMap<i64, Vec<SeriesSamples>> {
    let mut by_range: BTreeMap<i64, Vec<SeriesSamples>> = BTreeMap::new();
    for series in cut {
        let mut start = 0;
        while start < series.timestamps.len() {
            let first = series.timestamps[start];
            let block_end = range_end_after(first, range);
            let end = series.timestamps[start..].partition_point(|t| *t < block_end) + start;
            // Always progress, even where the range end saturated.
            let end = end.max(start + 1);
            by_range
                .entry(range_start(first, range))
                .or_default()
                .push(SeriesSamples {
                    labels: series.labels.clone(),
                    timestamps: series.timestamps[start..end].to_vec(),
                    values: series.values[start..end].to_vec(),
                });
            start = end;
        }
    }
    by_range
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strata_shared::labels::Labels;

    fn ranges() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(7_200_000i64),
            1i64..100_000_000_000,
            Just(i64::MAX),
            Just(1)
        ]
    }

    proptest! {
        #[test]
        fn a_timestamp_lies_in_its_range_whatever_the_i64(t in any::<i64>(), range in ranges()) {
            let (start, end) = (range_start(t, range), range_end_after(t, range));
            prop_assert!(start <= t);
            // Exclusive end, unless it saturated at the top of i64.
            prop_assert!(t < end || end == i64::MAX);
            prop_assert!(start <= end);
        }

        #[test]
        fn every_cut_sample_lands_in_one_block_of_its_range(
            mut timestamps in proptest::collection::vec(any::<i64>(), 0..200),
            range in ranges(),
        ) {
            timestamps.sort_unstable();
            timestamps.dedup();
            let values: Vec<f64> = timestamps.iter().map(|t| *t as f64).collect();
            let series = CutSeries {
                labels: Labels::from_pairs([("__name__", "p")]),
                timestamps: timestamps.clone(),
                values,
            };
            let blocks = split_by_range([&series], range);
            let mut seen = Vec::new();
            for (start, parts) in &blocks {
                for part in parts {
                    for t in &part.timestamps {
                        prop_assert_eq!(range_start(*t, range), *start);
                        seen.push(*t);
                    }
                }
            }
            prop_assert_eq!(seen, timestamps);
        }
    }
}
