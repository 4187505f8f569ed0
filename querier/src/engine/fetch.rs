//! Fetching: one `select` per selector over the range the whole query needs from it,
//! duplicate label sets merged, series sorted by labels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use strata_shared::block::SeriesSamples;
use strata_shared::labels::Labels;
use strata_shared::query::{matches_all, SelectRequest, SeriesSource};

use super::error::EngineError;
use super::plan::SelectorUse;
use super::value::{EvalSeries, Point};

/// The fetched series of every selector, indexed by selector id.
pub(crate) type FetchedData = Vec<Vec<EvalSeries>>;

/// Reads every selector's series. Everything fetched is held in memory until evaluation
/// ends, so this fails when the merged series of all selectors hold more than `max_samples`
/// samples, or (while streaming, before merging) when sources send more than twice that,
/// duplicates from replicas and overlapping blocks included.
pub(crate) async fn fetch_all(
    source: &dyn SeriesSource,
    tenant: &str,
    selectors: &[SelectorUse],
    max_samples: usize,
) -> Result<FetchedData, EngineError> {
    let received = AtomicUsize::new(0);
    let fetches = selectors
        .iter()
        .map(|s| fetch_one(source, tenant, s, max_samples.saturating_mul(2), &received));
    let data = futures::future::try_join_all(fetches).await?;
    let held: usize = data.iter().flatten().map(|s| s.points.len()).sum();
    if held > max_samples {
        return Err(EngineError::too_many_samples());
    }
    Ok(data)
}

async fn fetch_one(
    source: &dyn SeriesSource,
    tenant: &str,
    selector: &SelectorUse,
    max_received: usize,
    received: &AtomicUsize,
) -> Result<Vec<EvalSeries>, EngineError> {
    let request = SelectRequest {
        tenant: tenant.to_string(),
        matchers: selector.matchers.clone(),
        start_ms: selector.start_ms,
        end_ms: selector.end_ms,
        limit: 0,
    };
    let mut stream = source.select(&request).await?;
    let mut pieces: Vec<SeriesSamples> = Vec::new();
    while let Some(item) = stream.next().await {
        let series = item?;
        if series.timestamps.is_empty() || !matches_all(&selector.matchers, &series.labels) {
            continue;
        }
        let total = received.fetch_add(series.timestamps.len(), Ordering::Relaxed)
            + series.timestamps.len();
        if total > max_received {
            return Err(EngineError::too_many_samples());
        }
        pieces.push(series);
    }
    Ok(merge_series(pieces))
}

/// Merges pieces with the same label set (union by timestamp, the first piece's value
/// winning on a tie) and sorts the series by labels.
pub(crate) fn merge_series(pieces: Vec<SeriesSamples>) -> Vec<EvalSeries> {
    let mut by_labels: HashMap<Labels, Vec<SeriesSamples>> = HashMap::new();
    for piece in pieces {
        by_labels
            .entry(piece.labels.clone())
            .or_default()
            .push(piece);
    }
    let mut out: Vec<EvalSeries> = by_labels
        .into_iter()
        .map(|(labels, pieces)| EvalSeries {
            labels: Arc::new(labels),
            points: merge_points(pieces),
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

fn to_points(piece: SeriesSamples) -> Vec<Point> {
    piece
        .timestamps
        .into_iter()
        .zip(piece.values)
        .map(|(t, v)| Point { t, v })
        .collect()
}

fn merge_points(mut pieces: Vec<SeriesSamples>) -> Vec<Point> {
    if pieces.len() == 1 {
        if let Some(piece) = pieces.pop() {
            return to_points(piece);
        }
    }
    let mut points: Vec<Point> = pieces.into_iter().flat_map(to_points).collect();
    // Stable: among equal timestamps the earliest piece comes first and is kept.
    points.sort_by_key(|p| p.t);
    points.dedup_by_key(|p| p.t);
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(name: &str, ts: &[i64], vs: &[f64]) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::from_pairs([("__name__", name)]),
            timestamps: ts.to_vec(),
            values: vs.to_vec(),
        }
    }

    #[test]
    fn duplicates_merge_into_one_series_per_label_set() {
        let merged = merge_series(vec![
            piece("b", &[1], &[1.0]),
            piece("a", &[10, 20, 30], &[1.0, 2.0, 3.0]),
            piece("a", &[20, 25, 40], &[9.0, 2.5, 4.0]),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].labels.metric_name(), "a");
        let pts: Vec<(i64, f64)> = merged[0].points.iter().map(|p| (p.t, p.v)).collect();
        assert_eq!(
            pts,
            vec![(10, 1.0), (20, 2.0), (25, 2.5), (30, 3.0), (40, 4.0)]
        );
    }
}
