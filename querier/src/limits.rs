//! The tenant's query limits, enforced on one query's view of the data: a [`QueryLimiter`]
//! wraps the fan-out for the length of one API request and counts across all its selects.
//!
//! - `max_fetched_series_per_query`: unique label sets returned by the fan-out (after
//!   replicas and blocks are merged, so the count does not depend on the replication factor).
//! - `max_fetched_chunk_bytes_per_query`: Strata has no chunks on the read path; the
//!   equivalent is the bytes of samples fetched, 16 per sample (an 8-byte timestamp and an
//!   8-byte value), after the merge.
//! - `max_query_lookback`: every request's start is moved to now − lookback (nothing older is
//!   read; a range entirely older returns nothing), as Mimir's querier does.
//!
//! Both counting limits fail the query with Mimir's messages, as `execution` errors (422).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt};
use strata_shared::labels::Labels;
use strata_shared::limits::LimitsConfig;
use strata_shared::overrides::{flags, per_tenant_limit_message_with_strategy};
use strata_shared::query::{QueryError, SelectRequest, SeriesSource, SeriesStream};

/// Mimir's advice when a query selects too much.
const CARDINALITY_STRATEGY: &str = "Consider reducing the time range and/or number of series selected by the query. One way to reduce the number of selected series is to add more label matchers to the query";

/// Bytes one sample counts for in `max_fetched_chunk_bytes_per_query`.
pub const BYTES_PER_SAMPLE: usize = 16;

#[derive(Debug)]
struct Counters {
    series: Mutex<HashSet<u64>>,
    bytes: AtomicUsize,
}

/// One query's view of `source`, under the tenant's query limits.
#[derive(Debug, Clone)]
pub struct QueryLimiter {
    source: Arc<dyn SeriesSource>,
    limits: Arc<LimitsConfig>,
    now_ms: i64,
    counters: Arc<Counters>,
}

pub(crate) fn max_series_message(limit: usize) -> String {
    per_tenant_limit_message_with_strategy(
        &format!("the query exceeded the maximum number of series (limit: {limit} series)"),
        "err-strata-max-series-per-query",
        CARDINALITY_STRATEGY,
        flags::MAX_SERIES_PER_QUERY,
    )
}

pub(crate) fn max_bytes_message(limit: usize) -> String {
    per_tenant_limit_message_with_strategy(
        &format!("the query exceeded the aggregated chunks size limit (limit: {limit} bytes)"),
        "err-strata-max-chunks-bytes-per-query",
        CARDINALITY_STRATEGY,
        flags::MAX_CHUNK_BYTES_PER_QUERY,
    )
}

impl QueryLimiter {
    pub fn new(source: Arc<dyn SeriesSource>, limits: Arc<LimitsConfig>, now_ms: i64) -> Self {
        Self {
            source,
            limits,
            now_ms,
            counters: Arc::new(Counters {
                series: Mutex::new(HashSet::new()),
                bytes: AtomicUsize::new(0),
            }),
        }
    }

    /// The request with its start moved past the lookback limit; `None` when nothing of its
    /// range may be read.
    fn clamp(&self, request: &SelectRequest) -> Option<SelectRequest> {
        if self.limits.max_query_lookback.0.is_zero() {
            return Some(request.clone());
        }
        let min_start = self
            .now_ms
            .saturating_sub(self.limits.max_query_lookback.as_millis_i64());
        if request.end_ms < min_start {
            return None;
        }
        Some(SelectRequest {
            start_ms: request.start_ms.max(min_start),
            ..request.clone()
        })
    }

    /// Counts one series; an error once over a limit.
    fn count(
        counters: &Counters,
        limits: &LimitsConfig,
        labels: &Labels,
        samples: usize,
    ) -> Result<(), QueryError> {
        let max_series = limits.max_fetched_series_per_query;
        if max_series > 0 {
            let mut seen = counters.series.lock().unwrap_or_else(|e| e.into_inner());
            seen.insert(labels.stable_hash());
            if seen.len() > max_series {
                return Err(QueryError::LimitExceeded(max_series_message(max_series)));
            }
        }
        let max_bytes = limits.max_fetched_chunk_bytes_per_query;
        if max_bytes > 0 {
            let add = samples.saturating_mul(BYTES_PER_SAMPLE);
            let total = counters
                .bytes
                .fetch_add(add, Ordering::Relaxed)
                .saturating_add(add);
            if total > max_bytes {
                return Err(QueryError::LimitExceeded(max_bytes_message(max_bytes)));
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SeriesSource for QueryLimiter {
    async fn select(&self, request: &SelectRequest) -> Result<SeriesStream, QueryError> {
        let Some(request) = self.clamp(request) else {
            return Ok(Box::pin(stream::empty()));
        };
        let inner = self.source.select(&request).await?;
        if self.limits.max_fetched_series_per_query == 0
            && self.limits.max_fetched_chunk_bytes_per_query == 0
        {
            return Ok(inner);
        }
        let counters = self.counters.clone();
        let limits = self.limits.clone();
        let mut failed = false;
        let limited = inner.map(move |item| {
            let series = item?;
            if failed {
                return Err(QueryError::LimitExceeded("query limit exceeded".into()));
            }
            if let Err(e) = Self::count(&counters, &limits, &series.labels, series.timestamps.len())
            {
                failed = true;
                return Err(e);
            }
            Ok(series)
        });
        Ok(Box::pin(limited))
    }

    async fn series(&self, request: &SelectRequest) -> Result<Vec<Labels>, QueryError> {
        let Some(request) = self.clamp(request) else {
            return Ok(Vec::new());
        };
        let series = self.source.series(&request).await?;
        if self.limits.max_fetched_series_per_query > 0 {
            for labels in &series {
                Self::count(&self.counters, &self.limits, labels, 0)?;
            }
        }
        Ok(series)
    }

    async fn label_names(&self, request: &SelectRequest) -> Result<Vec<String>, QueryError> {
        match self.clamp(request) {
            Some(request) => self.source.label_names(&request).await,
            None => Ok(Vec::new()),
        }
    }

    async fn label_values(
        &self,
        name: &str,
        request: &SelectRequest,
    ) -> Result<Vec<String>, QueryError> {
        match self.clamp(request) {
            Some(request) => self.source.label_values(name, &request).await,
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::tests::Fixed;
    use strata_shared::block::SeriesSamples;

    fn data() -> Arc<dyn SeriesSource> {
        let s = |i: &str| SeriesSamples {
            labels: Labels::from_pairs([("__name__", "a"), ("i", i)]),
            timestamps: vec![10, 20, 30],
            values: vec![1.0, 2.0, 3.0],
        };
        Arc::new(Fixed(Ok(vec![s("1"), s("2"), s("3")])))
    }

    fn request(start_ms: i64, end_ms: i64) -> SelectRequest {
        SelectRequest {
            tenant: "t".into(),
            matchers: vec![],
            start_ms,
            end_ms,
            limit: 0,
        }
    }

    async fn run(l: &QueryLimiter, r: &SelectRequest) -> Result<Vec<SeriesSamples>, QueryError> {
        let stream = l.select(r).await?;
        stream.collect::<Vec<_>>().await.into_iter().collect()
    }

    fn limits(f: impl FnOnce(&mut LimitsConfig)) -> Arc<LimitsConfig> {
        let mut l = LimitsConfig::from_flag_defaults().unwrap();
        f(&mut l);
        Arc::new(l)
    }

    #[tokio::test]
    async fn series_limit_counts_unique_series_across_selects() {
        let l = QueryLimiter::new(data(), limits(|l| l.max_fetched_series_per_query = 3), 100);
        assert_eq!(run(&l, &request(0, 100)).await.unwrap().len(), 3);
        // The same three series again: still 3 unique.
        assert_eq!(run(&l, &request(0, 100)).await.unwrap().len(), 3);
        let l = QueryLimiter::new(data(), limits(|l| l.max_fetched_series_per_query = 2), 100);
        let err = run(&l, &request(0, 100)).await.unwrap_err();
        assert_eq!(err, QueryError::LimitExceeded(max_series_message(2)));
        assert!(err
            .to_string()
            .contains("(err-strata-max-series-per-query)"));
        assert!(err
            .to_string()
            .contains("-querier.max-fetched-series-per-query"));
        assert!(l.series(&request(0, 100)).await.is_err());
    }

    #[tokio::test]
    async fn bytes_limit_counts_16_bytes_per_sample() {
        // 3 series × 3 samples × 16 B = 144 B.
        let l = QueryLimiter::new(
            data(),
            limits(|l| l.max_fetched_chunk_bytes_per_query = 144),
            100,
        );
        assert!(run(&l, &request(0, 100)).await.is_ok());
        let l = QueryLimiter::new(
            data(),
            limits(|l| l.max_fetched_chunk_bytes_per_query = 143),
            100,
        );
        let err = run(&l, &request(0, 100)).await.unwrap_err();
        assert!(err.to_string().starts_with("the query exceeded the aggregated chunks size limit (limit: 143 bytes) (err-strata-max-chunks-bytes-per-query)"), "{err}");
    }

    #[tokio::test]
    async fn lookback_moves_the_start() {
        let l = QueryLimiter::new(
            data(),
            limits(|l| l.max_query_lookback = "15ms".parse().unwrap()),
            40,
        );
        // now 40, lookback 15 ms: from 25 on.
        let out = run(&l, &request(0, 100)).await.unwrap();
        assert_eq!(out[0].timestamps, vec![30]);
        // Entirely older: nothing, not even label names.
        assert!(run(&l, &request(0, 20)).await.unwrap().is_empty());
        assert!(l.label_names(&request(0, 20)).await.unwrap().is_empty());
        assert_eq!(
            l.label_names(&request(0, 30)).await.unwrap(),
            ["__name__", "i"]
        );
    }
}
