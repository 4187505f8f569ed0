//! Fan-out and merge: one [`SeriesSource`] over every ingester and the store-gateways.
//!
//! A request is split by time as Mimir does: the ingesters answer for the part newer than
//! `-querier.query-ingesters-within`, the store-gateways for the part older than
//! `-querier.query-store-after`, and the two ranges overlap. Every ingester is asked (each
//! series lives on several of them); up to `replication factor − quorum` of them may fail, since
//! a write acknowledged by a quorum is then still on one that answered. Series with the same
//! label set from any source (replicas, several blocks of one range, ingester and store) are
//! merged into one, each timestamp once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use strata_shared::block::SeriesSamples;
use strata_shared::labels::Labels;
use strata_shared::query::{QueryError, SelectRequest, SeriesSource, SeriesStream};
use tracing::Instrument;

/// The clock the time split is computed against (milliseconds since the epoch).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Every data source of the cluster, seen as one.
#[derive(Clone)]
pub struct Fanout {
    ingesters: Vec<Arc<dyn SeriesSource>>,
    max_unavailable_ingesters: usize,
    store_gateways: Vec<Arc<dyn SeriesSource>>,
    ingesters_within_ms: i64,
    store_after_ms: i64,
    /// Samples fetched by one select, replicas' copies included, before it fails.
    max_fetched_samples: usize,
    clock: Clock,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("ingesters", &self.ingesters.len())
            .field("max_unavailable_ingesters", &self.max_unavailable_ingesters)
            .field("store_gateways", &self.store_gateways.len())
            .field("ingesters_within_ms", &self.ingesters_within_ms)
            .field("store_after_ms", &self.store_after_ms)
            .finish()
    }
}

/// What part of a request each kind of source answers, as `[start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    ingesters: Option<(i64, i64)>,
    store: Option<(i64, i64)>,
}

impl Fanout {
    /// `max_unavailable_ingesters` is replication factor − quorum; `ingesters_within_ms` and
    /// `store_after_ms` of 0 mean "always ask".
    pub fn new(
        ingesters: Vec<Arc<dyn SeriesSource>>,
        max_unavailable_ingesters: usize,
        store_gateways: Vec<Arc<dyn SeriesSource>>,
        ingesters_within_ms: i64,
        store_after_ms: i64,
        max_fetched_samples: usize,
        clock: Clock,
    ) -> Self {
        Self {
            ingesters,
            max_unavailable_ingesters,
            store_gateways,
            ingesters_within_ms,
            store_after_ms,
            max_fetched_samples,
            clock,
        }
    }

    fn plan(&self, start: i64, end: i64) -> Plan {
        let now = (self.clock)();
        let ingesters = if self.ingesters.is_empty() {
            None
        } else if self.ingesters_within_ms <= 0 {
            Some((start, end))
        } else {
            let from = start.max(now.saturating_sub(self.ingesters_within_ms));
            (from <= end).then_some((from, end))
        };
        let store = if self.store_gateways.is_empty() {
            None
        } else if self.store_after_ms <= 0 {
            Some((start, end))
        } else {
            let to = end.min(now.saturating_sub(self.store_after_ms));
            (start <= to).then_some((start, to))
        };
        Plan { ingesters, store }
    }

    /// Runs `call` on every ingester (tolerating the allowed failures) and on the first
    /// store-gateway that answers, each with its part of the range.
    async fn gather<T, F, Fut>(
        &self,
        request: &SelectRequest,
        call: F,
    ) -> Result<Vec<T>, QueryError>
    where
        F: Fn(Arc<dyn SeriesSource>, SelectRequest) -> Fut,
        Fut: std::future::Future<Output = Result<T, QueryError>>,
    {
        let plan = self.plan(request.start_ms, request.end_ms);
        let mut out = Vec::new();
        if let Some((start_ms, end_ms)) = plan.ingesters {
            let part = SelectRequest {
                start_ms,
                end_ms,
                ..request.clone()
            };
            let results = futures::future::join_all(
                self.ingesters
                    .iter()
                    .map(|source| call(source.clone(), part.clone())),
            )
            .await;
            let mut failures = Vec::new();
            for result in results {
                match result {
                    Ok(value) => out.push(value),
                    // A wrong request or a limit fails the same way everywhere: say so now.
                    Err(e @ (QueryError::BadRequest(_) | QueryError::LimitExceeded(_))) => {
                        return Err(e)
                    }
                    Err(e) => failures.push(e),
                }
            }
            if failures.len() > self.max_unavailable_ingesters {
                let first = failures.remove(0);
                return Err(QueryError::Unavailable(format!(
                    "{} of {} ingesters failed to answer for tenant {} and at most {} may (replication factor minus quorum); first error: {first}",
                    failures.len() + 1,
                    self.ingesters.len(),
                    request.tenant,
                    self.max_unavailable_ingesters
                )));
            }
            for e in failures {
                tracing::warn!(error = %e, "an ingester failed to answer; the other replicas cover it");
            }
        }
        if let Some((start_ms, end_ms)) = plan.store {
            let part = SelectRequest {
                start_ms,
                end_ms,
                ..request.clone()
            };
            let mut last_error = None;
            for source in &self.store_gateways {
                match call(source.clone(), part.clone()).await {
                    Ok(value) => {
                        out.push(value);
                        last_error = None;
                        break;
                    }
                    Err(e @ (QueryError::BadRequest(_) | QueryError::LimitExceeded(_))) => {
                        return Err(e)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a store-gateway failed to answer; trying the next");
                        last_error = Some(e);
                    }
                }
            }
            if let Some(e) = last_error {
                return Err(QueryError::Unavailable(format!(
                    "no store-gateway could answer for tenant {}: {e}",
                    request.tenant
                )));
            }
        }
        Ok(out)
    }
}

/// Merges parts of one series: the union of their samples, each timestamp once (the first
/// part that has it wins; replicas hold the same sample).
fn merge_parts(labels: Labels, mut parts: Vec<SeriesSamples>) -> SeriesSamples {
    if parts.len() == 1 {
        if let Some(only) = parts.pop() {
            return only;
        }
    }
    let mut samples: Vec<(i64, f64)> = parts
        .iter()
        .flat_map(|p| p.timestamps.iter().copied().zip(p.values.iter().copied()))
        .collect();
    // Stable: among equal timestamps the earlier part's sample stays first.
    samples.sort_by_key(|(t, _)| *t);
    samples.dedup_by_key(|(t, _)| *t);
    let (timestamps, values) = samples.into_iter().unzip();
    SeriesSamples {
        labels,
        timestamps,
        values,
    }
}

#[async_trait::async_trait]
impl SeriesSource for Fanout {
    async fn select(&self, request: &SelectRequest) -> Result<SeriesStream, QueryError> {
        let span = tracing::info_span!("fanout_select", tenant = %request.tenant);
        async {
            let streams = self
                .gather(request, |source, part| async move {
                    source.select(&part).await
                })
                .await?;
            let sources = streams.len();
            let mut merged = stream::select_all(streams);
            let mut by_labels: HashMap<Labels, Vec<SeriesSamples>> = HashMap::new();
            let mut fetched = 0usize;
            while let Some(series) = merged.next().await {
                let series = series?;
                fetched += series.timestamps.len();
                if self.max_fetched_samples > 0 && fetched > self.max_fetched_samples {
                    return Err(QueryError::LimitExceeded(format!(
                        "query processing would load too many samples into memory in query execution: more than {} samples fetched for tenant {} (replicas' copies included; limit -querier.max-samples times the replication factor)",
                        self.max_fetched_samples, request.tenant
                    )));
                }
                by_labels
                    .entry(series.labels.clone())
                    .or_default()
                    .push(series);
            }
            let mut out: Vec<SeriesSamples> = by_labels
                .into_iter()
                .map(|(labels, parts)| merge_parts(labels, parts))
                .collect();
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            tracing::debug!(sources, series = out.len(), fetched, "merged");
            let stream: SeriesStream = Box::pin(stream::iter(out.into_iter().map(Ok)));
            Ok(stream)
        }
        .instrument(span)
        .await
    }

    async fn series(&self, request: &SelectRequest) -> Result<Vec<Labels>, QueryError> {
        let parts = self
            .gather(
                request,
                |source, part| async move { source.series(&part).await },
            )
            .await?;
        let set: BTreeSet<Labels> = parts.into_iter().flatten().collect();
        Ok(set.into_iter().collect())
    }

    async fn label_names(&self, request: &SelectRequest) -> Result<Vec<String>, QueryError> {
        let parts = self
            .gather(request, |source, part| async move {
                source.label_names(&part).await
            })
            .await?;
        let set: BTreeSet<String> = parts.into_iter().flatten().collect();
        Ok(set.into_iter().collect())
    }

    async fn label_values(
        &self,
        name: &str,
        request: &SelectRequest,
    ) -> Result<Vec<String>, QueryError> {
        let parts = self
            .gather(request, |source, part| async move {
                source.label_values(name, &part).await
            })
            .await?;
        let set: BTreeSet<String> = parts.into_iter().flatten().collect();
        Ok(set.into_iter().collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strata_shared::query::LabelMatcher;

    /// A source holding fixed series, or failing.
    #[derive(Debug)]
    pub(crate) struct Fixed(pub(crate) Result<Vec<SeriesSamples>, QueryError>);

    #[async_trait::async_trait]
    impl SeriesSource for Fixed {
        async fn select(&self, request: &SelectRequest) -> Result<SeriesStream, QueryError> {
            let series = self.0.clone()?;
            let (start, end) = (request.start_ms, request.end_ms);
            let out: Vec<_> = series
                .into_iter()
                .map(|s| {
                    let (timestamps, values) = s
                        .timestamps
                        .iter()
                        .zip(&s.values)
                        .filter(|(t, _)| **t >= start && **t <= end)
                        .map(|(t, v)| (*t, *v))
                        .unzip();
                    Ok(SeriesSamples {
                        labels: s.labels,
                        timestamps,
                        values,
                    })
                })
                .collect();
            Ok(Box::pin(stream::iter(out)))
        }
        async fn series(&self, _: &SelectRequest) -> Result<Vec<Labels>, QueryError> {
            Ok(self.0.clone()?.into_iter().map(|s| s.labels).collect())
        }
        async fn label_names(&self, _: &SelectRequest) -> Result<Vec<String>, QueryError> {
            let names: BTreeSet<String> = self
                .0
                .clone()?
                .iter()
                .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
                .collect();
            Ok(names.into_iter().collect())
        }
        async fn label_values(
            &self,
            _: &str,
            _: &SelectRequest,
        ) -> Result<Vec<String>, QueryError> {
            Ok(Vec::new())
        }
    }

    fn series(name: &str, samples: &[(i64, f64)]) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::from_pairs([("__name__", name)]),
            timestamps: samples.iter().map(|s| s.0).collect(),
            values: samples.iter().map(|s| s.1).collect(),
        }
    }

    fn request(start_ms: i64, end_ms: i64) -> SelectRequest {
        SelectRequest {
            tenant: "t".into(),
            matchers: vec![LabelMatcher::equal("__name__", "a")],
            start_ms,
            end_ms,
            limit: 0,
        }
    }

    fn fanout(
        ingesters: Vec<Fixed>,
        stores: Vec<Fixed>,
        within: i64,
        after: i64,
        now: i64,
    ) -> Fanout {
        Fanout::new(
            ingesters.into_iter().map(|s| Arc::new(s) as _).collect(),
            1,
            stores.into_iter().map(|s| Arc::new(s) as _).collect(),
            within,
            after,
            0,
            Arc::new(move || now),
        )
    }

    async fn collect(f: &Fanout, r: &SelectRequest) -> Result<Vec<SeriesSamples>, QueryError> {
        let stream = f.select(r).await?;
        stream.collect::<Vec<_>>().await.into_iter().collect()
    }

    #[tokio::test]
    async fn replicas_and_store_merge_to_one_sample_per_timestamp() {
        let a = |s: &[(i64, f64)]| series("a", s);
        let f = fanout(
            vec![
                Fixed(Ok(vec![a(&[(30, 3.0), (40, 4.0)])])),
                Fixed(Ok(vec![a(&[(30, 3.0), (40, 4.0)])])),
                Fixed(Err(QueryError::Unavailable("down".into()))),
            ],
            vec![Fixed(Ok(vec![
                a(&[(10, 1.0), (20, 2.0)]),
                a(&[(10, 1.0), (30, 3.0)]),
            ]))],
            0,
            0,
            100,
        );
        let out = collect(&f, &request(0, 100)).await.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].timestamps, vec![10, 20, 30, 40]);
        assert_eq!(out[0].values, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[tokio::test]
    async fn too_many_failed_ingesters_is_unavailable() {
        let down = || Fixed(Err(QueryError::Unavailable("down".into())));
        let f = fanout(vec![down(), down(), Fixed(Ok(vec![]))], vec![], 0, 0, 0);
        let err = collect(&f, &request(0, 10)).await.unwrap_err();
        assert!(
            matches!(err, QueryError::Unavailable(ref m) if m.contains("2 of 3 ingesters")),
            "{err:?}"
        );
    }

    #[test]
    fn time_split_follows_the_two_flags() {
        let f = fanout(
            vec![Fixed(Ok(vec![]))],
            vec![Fixed(Ok(vec![]))],
            13,
            12,
            100,
        );
        // now=100: ingesters answer for [87, end], the store for [start, 88].
        assert_eq!(
            f.plan(0, 100),
            Plan {
                ingesters: Some((87, 100)),
                store: Some((0, 88))
            }
        );
        assert_eq!(
            f.plan(95, 100),
            Plan {
                ingesters: Some((95, 100)),
                store: None
            }
        );
        assert_eq!(
            f.plan(0, 50),
            Plan {
                ingesters: None,
                store: Some((0, 50))
            }
        );
    }
}
