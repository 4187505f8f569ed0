//! A `SeriesSource` over series held in memory. Every series with more than one sample in the
//! requested range is returned as two overlapping pieces, later piece first, so each test
//! also checks that the engine merges duplicate label sets.

use futures::stream;
use strata_shared::block::SeriesSamples;
use strata_shared::labels::Labels;
use strata_shared::query::{matches_all, QueryError, SelectRequest, SeriesSource, SeriesStream};

#[derive(Debug, Default)]
pub(crate) struct MemorySource {
    series: Vec<SeriesSamples>,
    /// Fail every `select` with this error.
    fail_with: Option<QueryError>,
}

impl MemorySource {
    /// A source whose every `select` fails.
    pub(crate) fn failing(err: QueryError) -> Self {
        Self {
            series: Vec::new(),
            fail_with: Some(err),
        }
    }

    /// Adds samples to a series (creating it); samples are kept sorted by time, and a later
    /// sample replaces an earlier one at the same time.
    pub(crate) fn add(&mut self, labels: Labels, samples: &[(i64, f64)]) {
        let idx = match self.series.iter().position(|s| s.labels == labels) {
            Some(i) => i,
            None => {
                self.series.push(SeriesSamples {
                    labels,
                    timestamps: Vec::new(),
                    values: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        let s = &mut self.series[idx];
        let mut all: Vec<(i64, f64)> = s
            .timestamps
            .iter()
            .copied()
            .zip(s.values.iter().copied())
            .collect();
        all.extend_from_slice(samples);
        all.sort_by_key(|p| p.0);
        all.reverse();
        all.dedup_by_key(|p| p.0);
        all.reverse();
        s.timestamps = all.iter().map(|p| p.0).collect();
        s.values = all.iter().map(|p| p.1).collect();
    }

    pub(crate) fn clear(&mut self) {
        self.series.clear();
    }
}

fn piece(labels: &Labels, points: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: labels.clone(),
        timestamps: points.iter().map(|p| p.0).collect(),
        values: points.iter().map(|p| p.1).collect(),
    }
}

#[async_trait::async_trait]
impl SeriesSource for MemorySource {
    async fn select(&self, request: &SelectRequest) -> Result<SeriesStream, QueryError> {
        if let Some(err) = &self.fail_with {
            return Err(err.clone());
        }
        let mut out = Vec::new();
        for s in &self.series {
            if !matches_all(&request.matchers, &s.labels) {
                continue;
            }
            let points: Vec<(i64, f64)> = s
                .timestamps
                .iter()
                .copied()
                .zip(s.values.iter().copied())
                .filter(|(t, _)| *t >= request.start_ms && *t <= request.end_ms)
                .collect();
            if points.is_empty() {
                continue;
            }
            if points.len() == 1 {
                out.push(Ok(piece(&s.labels, &points)));
                continue;
            }
            let third = points.len().div_ceil(3);
            out.push(Ok(piece(&s.labels, &points[third..])));
            out.push(Ok(piece(&s.labels, &points[..points.len() - third])));
        }
        Ok(Box::pin(stream::iter(out)))
    }

    async fn series(&self, _request: &SelectRequest) -> Result<Vec<Labels>, QueryError> {
        Ok(self.series.iter().map(|s| s.labels.clone()).collect())
    }

    async fn label_names(&self, _request: &SelectRequest) -> Result<Vec<String>, QueryError> {
        Ok(Vec::new())
    }

    async fn label_values(
        &self,
        _name: &str,
        _request: &SelectRequest,
    ) -> Result<Vec<String>, QueryError> {
        Ok(Vec::new())
    }
}
