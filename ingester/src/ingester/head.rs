//! The in-memory head of one tenant: every active series and its samples not yet cut into
//! a block.
//!
//! Appends follow Prometheus' rules per series: a sample older than the series' newest is
//! "out of order", the same timestamp with other value bits is "duplicate sample for
//! timestamp", the same timestamp and bits is accepted silently (a retried push), and a
//! sample below the head's lower bound is "out of bounds". One rule goes further than
//! Prometheus: an older sample that the head holds with the same bits is accepted silently
//! too, so a retry of a request this replica applied before its sender saw the answer (a
//! distributor killed mid-request) succeeds instead of failing as out of order.

use std::collections::HashMap;

use strata_shared::block::SeriesSamples;
use strata_shared::labels::{stable_hash_byte_pairs, Labels, METRIC_NAME};
use strata_shared::overrides::{flags, per_tenant_limit_message};
use strata_shared::postings::Postings;
use strata_shared::query::{matches_all, LabelMatcher};

use super::chunk::XorChunk;
use strata_shared::proto::ingester as ingester_pb;
use strata_shared::proto::prometheus::{self as pb};

/// How far behind the newest sample a sample may still be appended, as Prometheus' head
/// (half the block range).
pub const APPENDABLE_WINDOW_MS: i64 = 3_600_000;

/// Why a sample was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppendError {
    OutOfOrder,
    Duplicate,
    OutOfBounds,
    /// A new series over the tenant's series limit (`global`, and this ingester's share `local`).
    PerUserSeriesLimit {
        global: usize,
        local: usize,
    },
    /// A new series over the metric's series limit.
    PerMetricSeriesLimit {
        global: usize,
        local: usize,
    },
}

/// A tenant's series limits on this ingester; 0 is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SeriesLimits {
    /// `-ingester.max-global-series-per-user` and this ingester's share of it.
    pub global_per_user: usize,
    pub local_per_user: usize,
    /// `-ingester.max-global-series-per-metric` and this ingester's share of it.
    pub global_per_metric: usize,
    pub local_per_metric: usize,
}

impl SeriesLimits {
    pub const UNLIMITED: Self = Self {
        global_per_user: 0,
        local_per_user: 0,
        global_per_metric: 0,
        local_per_metric: 0,
    };
}

impl AppendError {
    /// The reason label of `strata_discarded_samples_total`, as Mimir names it.
    pub fn reason(self) -> &'static str {
        match self {
            Self::OutOfOrder => "sample-out-of-order",
            Self::Duplicate => "new-value-for-timestamp",
            Self::OutOfBounds => "sample-out-of-bounds",
            Self::PerUserSeriesLimit { .. } => "per_user_series_limit",
            Self::PerMetricSeriesLimit { .. } => "per_metric_series_limit",
        }
    }

    /// Message naming the series and the timestamp, Prometheus' meaning first.
    pub fn message(self, labels: &Labels, timestamp: i64, lower_bound: i64) -> String {
        let when = strata_shared::time::format_ms(timestamp);
        match self {
            Self::OutOfOrder => format!(
                "out of order sample: the sample has been rejected because another sample with a more recent timestamp has already been ingested and out-of-order samples are not allowed (err-strata-sample-out-of-order). The affected sample has timestamp {when} ({timestamp}) and is from series {labels}"),
            Self::Duplicate => format!(
                "duplicate sample for timestamp: the sample has been rejected because another sample with the same timestamp, but a different value, has already been ingested (err-strata-sample-duplicate-timestamp). The affected sample has timestamp {when} ({timestamp}) and is from series {labels}"),
            Self::OutOfBounds => format!(
                "out of bounds: the sample has been rejected because its timestamp is older than the head's lower bound {} ({lower_bound}) (err-strata-sample-timestamp-too-old). The affected sample has timestamp {when} ({timestamp}) and is from series {labels}",
                strata_shared::time::format_ms(lower_bound)),
            Self::PerUserSeriesLimit { global, local } => format!(
                "{} This is for series {labels} (this ingester's share of the limit: {local}, the global limit times the replication factor divided by the ingesters)",
                per_tenant_limit_message(&format!("per-user series limit of {global} exceeded"), "err-strata-max-series-per-user", &[flags::MAX_SERIES_PER_USER])),
            Self::PerMetricSeriesLimit { global, local } => format!(
                "{} This is for series {labels} (this ingester's share of the limit: {local}, the global limit times the replication factor divided by the ingesters)",
                per_tenant_limit_message(&format!("per-metric series limit of {global} exceeded"), "err-strata-max-series-per-metric", &[flags::MAX_SERIES_PER_METRIC])),
        }
    }
}

/// One series in the head.
#[derive(Debug)]
pub struct HeadSeries {
    pub labels: Labels,
    /// Samples not yet cut, compressed.
    chunk: XorChunk,
    /// Oldest sample in `chunk` (meaningless when it is empty).
    first_timestamp: i64,
    /// Newest timestamp and value ever appended, kept after a cut for the ordering checks.
    last_timestamp: i64,
    last_value_bits: u64,
}

/// Outcome of appending one series' samples.
#[derive(Debug, Default)]
pub struct SeriesAppend {
    /// Every sample of the request the head now holds, in request order: the new ones and
    /// the ones it already had with the same value bits (a retry). All of them go to the WAL,
    /// so an acknowledged retry is durable whatever became of its first attempt.
    pub stored: Vec<ingester_pb::Sample>,
    /// How many of `stored` are new.
    pub added: usize,
    /// First refusal, its sample timestamp, and how many samples were refused.
    pub rejected: Option<(AppendError, i64, usize)>,
}

/// The head of one tenant.
#[derive(Debug)]
pub struct TenantHead {
    by_hash: HashMap<u64, Vec<usize>>,
    /// Series per metric name, for the per-metric series limit.
    by_metric: HashMap<String, usize>,
    /// Slot ids by label, so a select or metadata call visits only candidate series.
    postings: Postings,
    series: Vec<Option<HeadSeries>>,
    free: Vec<usize>,
    active: usize,
    samples: usize,
    /// Everything below this has been cut into blocks.
    pub cut_boundary: i64,
    /// Newest sample timestamp ever appended (i64::MIN when none).
    pub max_time: i64,
    /// At most the oldest sample in the head (exact after a cut): a cheap "is a range closed?".
    min_time_hint: i64,
}

/// Samples cut out of the head for one block range.
#[derive(Debug)]
pub struct CutSeries {
    pub labels: Labels,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

/// An empty head: no bound yet, no newest sample (a derived default of 0s would be a head
/// whose newest sample is at 1970 and which refuses everything before 1969-12-31T23:00).
impl Default for TenantHead {
    fn default() -> Self {
        Self {
            by_hash: HashMap::new(),
            by_metric: HashMap::new(),
            postings: Postings::default(),
            series: Vec::new(),
            free: Vec::new(),
            active: 0,
            samples: 0,
            cut_boundary: i64::MIN,
            max_time: i64::MIN,
            min_time_hint: i64::MAX,
        }
    }
}

impl TenantHead {
    pub fn new() -> Self {
        Self::default()
    }

    /// Oldest timestamp accepted now.
    pub fn lower_bound(&self) -> i64 {
        self.cut_boundary
            .max(self.max_time.saturating_sub(APPENDABLE_WINDOW_MS))
    }

    pub fn active_series(&self) -> usize {
        self.active
    }

    pub fn sample_count(&self) -> usize {
        self.samples
    }

    /// The series with these labels, if the head has it. `labels` must be sorted and unique,
    /// as the distributor leaves them.
    fn find(&self, labels: &[pb::LabelBytes], hash: u64) -> Option<usize> {
        let pairs = || labels.iter().map(|l| (&l.name[..], &l.value[..]));
        self.by_hash
            .get(&hash)?
            .iter()
            .copied()
            .find(|&id| matches!(&self.series[id], Some(s) if s.labels.eq_pairs(pairs())))
    }

    /// Whether a new series with these labels would break a series limit (Mimir's
    /// `series < limit` rule: the limit-th series is the last one accepted).
    fn check_new_series(
        &self,
        labels: &[pb::LabelBytes],
        limits: &SeriesLimits,
    ) -> Option<AppendError> {
        if limits.local_per_user > 0 && self.active >= limits.local_per_user {
            return Some(AppendError::PerUserSeriesLimit {
                global: limits.global_per_user,
                local: limits.local_per_user,
            });
        }
        if limits.local_per_metric > 0 {
            let name = labels
                .iter()
                .find(|l| &l.name[..] == METRIC_NAME.as_bytes())
                .map(|l| String::from_utf8_lossy(&l.value))
                .unwrap_or_default();
            let count = self.by_metric.get(name.as_ref()).copied().unwrap_or(0);
            if count >= limits.local_per_metric {
                return Some(AppendError::PerMetricSeriesLimit {
                    global: limits.global_per_metric,
                    local: limits.local_per_metric,
                });
            }
        }
        None
    }

    fn create(&mut self, labels: &[pb::LabelBytes], hash: u64) -> usize {
        let series = HeadSeries {
            labels: from_proto_labels(labels),
            chunk: XorChunk::new(),
            first_timestamp: 0,
            last_timestamp: i64::MIN,
            last_value_bits: 0,
        };
        *self
            .by_metric
            .entry(series.labels.metric_name().to_string())
            .or_default() += 1;
        let id = match self.free.pop() {
            Some(id) => {
                self.series[id] = Some(series);
                id
            }
            None => {
                self.series.push(Some(series));
                self.series.len() - 1
            }
        };
        self.by_hash.entry(hash).or_default().push(id);
        if let (Ok(slot), Some(series)) = (u32::try_from(id), &self.series[id]) {
            self.postings.add(slot, &series.labels);
        }
        self.active += 1;
        id
    }

    /// Appends samples (in the order given) to the series with these labels, without series
    /// limits, against the head's lower bound now (tests).
    pub fn append(
        &mut self,
        labels: &[pb::LabelBytes],
        samples: &[ingester_pb::Sample],
    ) -> SeriesAppend {
        let lower = self.lower_bound();
        self.append_limited(labels, samples, &SeriesLimits::UNLIMITED, lower)
    }

    /// Appends a WAL record's samples: they were accepted once, so no bound and no limit
    /// applies (a checkpoint replays series by series, and the first series' newest sample
    /// must not push the others' older samples out of bounds); only the per-series order and
    /// duplicate rules, which make replaying a record twice harmless.
    pub fn append_replayed(
        &mut self,
        labels: &[pb::LabelBytes],
        samples: &[ingester_pb::Sample],
    ) -> SeriesAppend {
        self.append_limited(labels, samples, &SeriesLimits::UNLIMITED, i64::MIN)
    }

    /// Appends samples (in the order given) to the series with these labels. `lower` is the
    /// head's [`Self::lower_bound`] when the request arrived: every series of one request is
    /// judged against the same bound, as Prometheus appends a request as one transaction. A
    /// series the head does not have yet is refused whole when it would break `limits`;
    /// series already in the head are never refused by them.
    pub fn append_limited(
        &mut self,
        labels: &[pb::LabelBytes],
        samples: &[ingester_pb::Sample],
        limits: &SeriesLimits,
        lower: i64,
    ) -> SeriesAppend {
        let mut out = SeriesAppend::default();
        // Samples all below the bound create no series.
        if samples.iter().all(|s| s.timestamp < lower) {
            if let Some(first) = samples.first() {
                out.rejected = Some((AppendError::OutOfBounds, first.timestamp, samples.len()));
            }
            return out;
        }
        let hash = stable_hash_byte_pairs(labels.iter().map(|l| (&l.name[..], &l.value[..])));
        let id = match self.find(labels, hash) {
            Some(id) => id,
            None => {
                if let Some(error) = self.check_new_series(labels, limits) {
                    if let Some(first) = samples.first() {
                        out.rejected = Some((error, first.timestamp, samples.len()));
                    }
                    return out;
                }
                self.create(labels, hash)
            }
        };
        let mut max_time = self.max_time;
        let Some(series) = self.series[id].as_mut() else {
            return out;
        };
        // The series' samples in memory, decoded only when a sample older than the newest
        // arrives: then it may be a retry of a request this head already applied.
        let mut held: Option<Vec<(i64, u64)>> = None;
        for sample in samples {
            let bits = sample.value_bits;
            let error = if sample.timestamp < lower {
                Some(AppendError::OutOfBounds)
            } else if series.last_timestamp != i64::MIN && sample.timestamp < series.last_timestamp
            {
                let held = held.get_or_insert_with(|| {
                    series.chunk.iter().map(|(t, v)| (t, v.to_bits())).collect()
                });
                // The chunk is in time order.
                match held.binary_search_by_key(&sample.timestamp, |(t, _)| *t) {
                    Ok(at) if held[at].1 == bits => {
                        out.stored.push(*sample);
                        continue;
                    }
                    Ok(_) => Some(AppendError::Duplicate),
                    Err(_) => Some(AppendError::OutOfOrder),
                }
            } else if sample.timestamp == series.last_timestamp {
                if bits == series.last_value_bits {
                    out.stored.push(*sample);
                    continue;
                }
                Some(AppendError::Duplicate)
            } else {
                None
            };
            match error {
                Some(e) => match &mut out.rejected {
                    Some((_, _, count)) => *count += 1,
                    None => out.rejected = Some((e, sample.timestamp, 1)),
                },
                None => {
                    if series.chunk.is_empty() {
                        series.first_timestamp = sample.timestamp;
                    }
                    series.chunk.append(sample.timestamp, f64::from_bits(bits));
                    series.last_timestamp = sample.timestamp;
                    series.last_value_bits = bits;
                    max_time = max_time.max(sample.timestamp);
                    self.min_time_hint = self.min_time_hint.min(sample.timestamp);
                    out.stored.push(*sample);
                    out.added += 1;
                }
            }
        }
        self.samples += out.added;
        self.max_time = max_time;
        out
    }

    /// Removes and returns every sample older than `before`, grouped per series. Series left
    /// with no samples whose newest sample is older than `before` are dropped from the head.
    pub fn cut_before(&mut self, before: i64) -> Vec<CutSeries> {
        let (out, _) = self.cut_slots(before, 0, usize::MAX);
        self.finish_cut();
        out
    }

    /// [`Self::cut_before`] over at most `max` series slots from `from`, so a caller can
    /// release the tenant's lock between batches; returns the next slot, or `None` when the
    /// pass is complete. Call [`Self::finish_cut`] after the last batch.
    pub fn cut_slots(
        &mut self,
        before: i64,
        from: usize,
        max: usize,
    ) -> (Vec<CutSeries>, Option<usize>) {
        let mut out = Vec::new();
        let end = from.saturating_add(max).min(self.series.len());
        for id in from..end {
            let Some(series) = self.series[id].as_mut() else {
                continue;
            };
            if !series.chunk.is_empty() && series.first_timestamp < before {
                let (mut timestamps, mut values) = (Vec::new(), Vec::new());
                let mut rest = XorChunk::new();
                let mut rest_first = 0;
                for (t, v) in series.chunk.iter() {
                    if t < before {
                        timestamps.push(t);
                        values.push(v);
                    } else {
                        if rest.is_empty() {
                            rest_first = t;
                        }
                        rest.append(t, v);
                    }
                }
                rest.shrink_to_fit();
                series.chunk = rest;
                series.first_timestamp = rest_first;
                self.samples -= timestamps.len();
                out.push(CutSeries {
                    labels: series.labels.clone(),
                    timestamps,
                    values,
                });
            }
            if series.chunk.is_empty() && series.last_timestamp < before {
                let hash = series.labels.stable_hash();
                if let Some(count) = self.by_metric.get_mut(series.labels.metric_name()) {
                    *count -= 1;
                    if *count == 0 {
                        self.by_metric.remove(series.labels.metric_name());
                    }
                }
                if let Ok(slot) = u32::try_from(id) {
                    self.postings.remove(slot, &series.labels);
                }
                self.series[id] = None;
                self.free.push(id);
                self.active -= 1;
                if let Some(ids) = self.by_hash.get_mut(&hash) {
                    ids.retain(|x| *x != id);
                    if ids.is_empty() {
                        self.by_hash.remove(&hash);
                    }
                }
            }
        }
        let next = (end < self.series.len()).then_some(end);
        (out, next)
    }

    /// Ends a cut made of [`Self::cut_slots`] batches.
    pub fn finish_cut(&mut self) {
        self.min_time_hint = self.min_time().unwrap_or(i64::MAX);
    }

    /// Whether the oldest range in the head is closed: the newest sample is at least `grace`
    /// past its end.
    pub fn oldest_range_closed(&self, range: i64, grace: i64) -> bool {
        if self.min_time_hint == i64::MAX || range <= 0 {
            return false;
        }
        let oldest_end = super::ranges::range_end_after(self.min_time_hint, range);
        self.max_time.saturating_sub(grace) >= oldest_end
    }

    /// Oldest sample timestamp in the head, if any.
    pub fn min_time(&self) -> Option<i64> {
        self.series
            .iter()
            .flatten()
            .filter(|s| !s.chunk.is_empty())
            .map(|s| s.first_timestamp)
            .min()
    }

    /// The head's samples, for a WAL checkpoint.
    pub fn snapshot(&self) -> Vec<ingester_pb::Series> {
        self.series
            .iter()
            .flatten()
            .map(|s| {
                let samples = s
                    .chunk
                    .iter()
                    .map(|(timestamp, value)| ingester_pb::Sample {
                        timestamp,
                        value_bits: value.to_bits(),
                    })
                    .collect();
                ingester_pb::Series {
                    labels: to_proto_labels(&s.labels),
                    samples,
                }
            })
            .filter(|s| !s.samples.is_empty())
            .collect()
    }

    /// The samples in `[start, end]` of every series passing `matchers`.
    pub fn select(&self, matchers: &[LabelMatcher], start: i64, end: i64) -> Vec<SeriesSamples> {
        self.matching(matchers, start, end)
            .filter_map(|s| {
                let (mut timestamps, mut values) = (Vec::new(), Vec::new());
                for (t, v) in s.chunk.iter() {
                    if t > end {
                        break;
                    }
                    if t >= start {
                        timestamps.push(t);
                        values.push(v);
                    }
                }
                (!timestamps.is_empty()).then(|| SeriesSamples {
                    labels: s.labels.clone(),
                    timestamps,
                    values,
                })
            })
            .collect()
    }

    /// The label sets of series passing `matchers` with samples overlapping `[start, end]`.
    pub fn matching_labels<'a>(
        &'a self,
        matchers: &'a [LabelMatcher],
        start: i64,
        end: i64,
    ) -> Vec<&'a Labels> {
        self.matching(matchers, start, end)
            .map(|s| &s.labels)
            .collect()
    }

    /// Label names of the series [`Self::matching_labels`] would return, sorted, from the
    /// postings index (about one check per label value).
    pub fn label_names(&self, matchers: &[LabelMatcher], start: i64, end: i64) -> Vec<String> {
        let candidates = self.postings.candidates(matchers);
        self.postings.label_names(
            candidates.as_ref(),
            self.selected(matchers, start, end),
            |slot| self.labels_of(slot),
        )
    }

    /// Values of label `name` on the series [`Self::matching_labels`] would return, sorted.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[LabelMatcher],
        start: i64,
        end: i64,
    ) -> Vec<String> {
        let candidates = self.postings.candidates(matchers);
        self.postings.label_values(
            name,
            candidates.as_ref(),
            self.selected(matchers, start, end),
            |slot| self.labels_of(slot),
        )
    }

    fn labels_of(&self, slot: u32) -> Option<&Labels> {
        Some(&self.series.get(slot as usize)?.as_ref()?.labels)
    }

    /// Whether slot `slot` holds a series with samples, passing `matchers`, whose sample span
    /// overlaps `[start, end]`.
    fn selected<'a>(
        &'a self,
        matchers: &'a [LabelMatcher],
        start: i64,
        end: i64,
    ) -> impl Fn(u32) -> bool + 'a {
        move |slot| {
            self.series
                .get(slot as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| Self::overlaps(s, matchers, start, end))
        }
    }

    fn overlaps(s: &HeadSeries, matchers: &[LabelMatcher], start: i64, end: i64) -> bool {
        !s.chunk.is_empty()
            && s.first_timestamp <= end
            && s.last_timestamp >= start
            && matches_all(matchers, &s.labels)
    }

    /// Series with samples passing `matchers` whose sample span overlaps `[start, end]`, in
    /// slot order: the candidates of the postings index (every slot when no matcher
    /// narrows), each checked against the matchers.
    fn matching<'a>(
        &'a self,
        matchers: &'a [LabelMatcher],
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = &'a HeadSeries> + 'a {
        let slots: Box<dyn Iterator<Item = usize> + 'a> = match self.postings.candidates(matchers) {
            Some(candidates) => Box::new(candidates.into_iter().map(|slot| slot as usize)),
            None => Box::new(0..self.series.len()),
        };
        slots
            .filter_map(|slot| self.series.get(slot)?.as_ref())
            .filter(move |s| Self::overlaps(s, matchers, start, end))
    }

    /// Approximate heap bytes of the head, for the bytes-per-series figure.
    pub fn heap_bytes(&self) -> usize {
        let series: usize = self
            .series
            .iter()
            .flatten()
            .map(|s| {
                std::mem::size_of::<HeadSeries>() + s.labels.heap_bytes() + s.chunk.heap_bytes()
            })
            .sum();
        series
            + self.series.capacity() * std::mem::size_of::<Option<HeadSeries>>()
            + self.by_hash.capacity() * (8 + 24 + 8)
            + self.postings.heap_bytes()
    }
}

/// Label set to protobuf labels.
pub fn to_proto_labels(labels: &Labels) -> Vec<pb::LabelBytes> {
    labels
        .iter()
        .map(|l| pb::LabelBytes {
            name: bytes::Bytes::copy_from_slice(l.name.as_bytes()),
            value: bytes::Bytes::copy_from_slice(l.value.as_bytes()),
        })
        .collect()
}

/// Protobuf labels (validated by the distributor: sorted, unique, UTF-8, no empty values) to
/// a label set. Invalid UTF-8 from another caller is replaced, never a panic.
pub fn from_proto_labels(labels: &[pb::LabelBytes]) -> Labels {
    Labels::from_pairs(labels.iter().filter(|l| !l.value.is_empty()).map(|l| {
        (
            String::from_utf8_lossy(&l.name).into_owned(),
            String::from_utf8_lossy(&l.value).into_owned(),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64, v: f64) -> ingester_pb::Sample {
        ingester_pb::Sample {
            timestamp: t,
            value_bits: v.to_bits(),
        }
    }

    #[test]
    fn prometheus_append_rules() {
        let mut head = TenantHead::new();
        let l = to_proto_labels(&Labels::from_pairs([("__name__", "up")]));
        let r = head.append(&l, &[s(1000, 1.0), s(2000, 2.0)]);
        assert_eq!(r.added, 2);
        // Same timestamp, same value: silently accepted, not stored twice.
        let r = head.append(&l, &[s(2000, 2.0)]);
        assert!(r.rejected.is_none());
        assert_eq!((r.added, r.stored.len()), (0, 1));
        assert_eq!(head.sample_count(), 2);
        // Same timestamp, other value.
        let r = head.append(&l, &[s(2000, 3.0)]);
        assert_eq!(r.rejected.map(|r| r.0), Some(AppendError::Duplicate));
        // Older.
        let r = head.append(&l, &[s(1500, 3.0)]);
        assert_eq!(r.rejected.map(|r| r.0), Some(AppendError::OutOfOrder));
        // NaN staleness marker bits compare as bits.
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        assert_eq!(head.append(&l, &[s(3000, stale)]).added, 1);
        assert_eq!(head.append(&l, &[s(3000, stale)]).stored.len(), 1);
        // Out of bounds: more than the appendable window behind the newest sample.
        head.append(&l, &[s(10_000_000, 1.0)]);
        let other = to_proto_labels(&Labels::from_pairs([("__name__", "other")]));
        let r = head.append(&other, &[s(1000, 1.0)]);
        assert_eq!(r.rejected.map(|r| r.0), Some(AppendError::OutOfBounds));
        assert_eq!(head.active_series(), 1);
    }

    #[test]
    fn a_retry_of_an_applied_request_is_accepted_and_logged_again() {
        let mut head = TenantHead::new();
        let l = to_proto_labels(&Labels::from_pairs([("__name__", "up")]));
        let first = [s(1000, 1.0), s(2000, 2.0), s(3000, 3.0)];
        assert_eq!(head.append(&l, &first).added, 3);
        // The same request again (its sender never saw the answer), then more after it.
        let retry = [s(1000, 1.0), s(2000, 2.0), s(3000, 3.0), s(4000, 4.0)];
        let r = head.append(&l, &retry);
        assert!(r.rejected.is_none(), "{:?}", r.rejected);
        assert_eq!(r.added, 1);
        // Every sample of the retry goes to the WAL, not only the new one.
        assert_eq!(r.stored, retry.to_vec());
        assert_eq!(head.sample_count(), 4);
        // An older timestamp with other bits is still a conflict, a missing one out of order.
        let r = head.append(&l, &[s(2000, 2.5)]);
        assert_eq!(r.rejected.map(|r| r.0), Some(AppendError::Duplicate));
        let r = head.append(&l, &[s(2500, 2.5)]);
        assert_eq!(r.rejected.map(|r| r.0), Some(AppendError::OutOfOrder));
    }

    #[test]
    fn one_request_is_judged_against_the_bound_it_arrived_at() {
        let mut head = TenantHead::new();
        let a = to_proto_labels(&Labels::from_pairs([("__name__", "a")]));
        let b = to_proto_labels(&Labels::from_pairs([("__name__", "b")]));
        head.append(&a, &[s(0, 1.0)]);
        let lower = head.lower_bound();
        // Series a moves the head 3h ahead; b's older samples in the same request still count.
        let hour = 3_600_000;
        let r = head.append_limited(&a, &[s(3 * hour, 1.0)], &SeriesLimits::UNLIMITED, lower);
        assert_eq!(r.added, 1);
        let r = head.append_limited(&b, &[s(hour, 1.0)], &SeriesLimits::UNLIMITED, lower);
        assert!(r.rejected.is_none(), "{:?}", r.rejected);
        // The next request sees the moved bound.
        let r = head.append(&b, &[s(hour + 1, 1.0)]);
        assert_eq!(r.rejected.map(|r| r.0), Some(AppendError::OutOfBounds));
    }

    #[test]
    fn a_replayed_checkpoint_keeps_samples_older_than_the_appendable_window() {
        // A checkpoint lists series one after the other: the first one's newest sample must
        // not push the second one's older samples out of bounds.
        let hour = 3_600_000;
        let mut head = TenantHead::new();
        let a = to_proto_labels(&Labels::from_pairs([("__name__", "a")]));
        let b = to_proto_labels(&Labels::from_pairs([("__name__", "b")]));
        assert_eq!(
            head.append_replayed(&a, &[s(0, 1.0), s(3 * hour, 1.0)])
                .added,
            2
        );
        let r = head.append_replayed(&b, &[s(0, 1.0), s(hour, 2.0)]);
        assert!(r.rejected.is_none(), "{:?}", r.rejected);
        assert_eq!(head.sample_count(), 4);
    }

    #[test]
    fn series_limits_refuse_only_new_series() {
        let mut head = TenantHead::new();
        let limits = SeriesLimits {
            global_per_user: 3,
            local_per_user: 3,
            global_per_metric: 2,
            local_per_metric: 2,
        };
        let l = |name: &str, i: &str| {
            to_proto_labels(&Labels::from_pairs([("__name__", name), ("i", i)]))
        };
        assert!(head
            .append_limited(&l("a", "1"), &[s(1, 1.0)], &limits, i64::MIN)
            .rejected
            .is_none());
        assert!(head
            .append_limited(&l("a", "2"), &[s(1, 1.0)], &limits, i64::MIN)
            .rejected
            .is_none());
        // A third series of metric a: over the per-metric limit, both samples refused.
        let r = head.append_limited(&l("a", "3"), &[s(1, 1.0), s(2, 1.0)], &limits, i64::MIN);
        let (error, _, count) = r.rejected.unwrap();
        assert_eq!(error.reason(), "per_metric_series_limit");
        assert_eq!(count, 2);
        assert!(error
            .message(&Labels::from_pairs([("__name__", "a")]), 1, 0)
            .contains("per-metric series limit of 2 exceeded (err-strata-max-series-per-metric)"));
        assert!(head
            .append_limited(&l("b", "1"), &[s(1, 1.0)], &limits, i64::MIN)
            .rejected
            .is_none());
        // Three series: the tenant is full.
        let r = head.append_limited(&l("c", "1"), &[s(1, 1.0)], &limits, i64::MIN);
        assert_eq!(r.rejected.unwrap().0.reason(), "per_user_series_limit");
        assert_eq!(head.active_series(), 3);
        // Existing series keep flowing.
        let r = head.append_limited(&l("a", "1"), &[s(2, 2.0)], &limits, i64::MIN);
        assert!(r.rejected.is_none());
        assert_eq!(r.added, 1);
        // Once a series is cut away, there is room again.
        head.cut_before(2);
        assert_eq!(head.active_series(), 1);
        assert!(head
            .append_limited(&l("c", "1"), &[s(3, 1.0)], &limits, i64::MIN)
            .rejected
            .is_none());
        assert!(head
            .append_limited(&l("a", "9"), &[s(3, 1.0)], &limits, i64::MIN)
            .rejected
            .is_none());
    }

    #[test]
    fn cut_moves_samples_out_and_drops_idle_series() {
        let mut head = TenantHead::new();
        let a = to_proto_labels(&Labels::from_pairs([("__name__", "a")]));
        let b = to_proto_labels(&Labels::from_pairs([("__name__", "b")]));
        head.append(&a, &[s(1, 1.0), s(5, 5.0)]);
        head.append(&b, &[s(2, 1.0)]);
        let cut = head.cut_before(4);
        assert_eq!(cut.len(), 2);
        assert_eq!(head.active_series(), 1);
        assert_eq!(head.sample_count(), 1);
        assert_eq!(head.min_time(), Some(5));
        assert_eq!(head.snapshot().len(), 1);
    }

    /// With series created, cut away (freeing slots) and created again in reused slots, the
    /// postings-backed selection finds exactly what a scan of every series finds.
    #[test]
    fn selection_through_postings_equals_a_full_scan() {
        use strata_shared::query::MatchOp;

        let mut head = TenantHead::new();
        let labels_of = |k: usize| {
            let (metric, job, i) = (format!("m{}", k % 5), format!("j{}", k % 3), k.to_string());
            let mut pairs = vec![("__name__", metric), ("i", i), ("job", job)];
            if k.is_multiple_of(4) {
                pairs.push(("zone", "a".to_string()));
            }
            to_proto_labels(&Labels::from_pairs(pairs))
        };
        // 200 series; those with k % 3 == 0 stop at t=10, the others go on to t=100.
        for k in 0..200 {
            let last = if k % 3 == 0 { 10 } else { 100 };
            head.append(&labels_of(k), &[s(5, 1.0), s(last, 2.0)]);
        }
        head.cut_before(50);
        // Slots freed by the cut are reused by new series.
        for k in 200..260 {
            head.append(&labels_of(k), &[s(60, 1.0)]);
        }
        let m = |name: &str, op: MatchOp, value: &str| {
            LabelMatcher::new(op, name, value).expect("matcher")
        };
        let cases = vec![
            vec![m("__name__", MatchOp::Equal, "m1")],
            vec![
                m("__name__", MatchOp::Regex, "m[13]"),
                m("job", MatchOp::NotEqual, "j1"),
            ],
            vec![m("zone", MatchOp::Equal, "a")],
            vec![m("zone", MatchOp::NotEqual, "a")],
            vec![m("i", MatchOp::Regex, "2[0-9]{2}")],
            vec![m("job", MatchOp::Equal, "j0")],
            vec![m("__name__", MatchOp::Equal, "nope")],
            vec![],
        ];
        for matchers in cases {
            let mut via_index: Vec<String> = head
                .matching_labels(&matchers, 0, 1_000)
                .into_iter()
                .map(|l| l.to_string())
                .collect();
            let mut scanned: Vec<String> = head
                .series
                .iter()
                .flatten()
                .filter(|s| !s.chunk.is_empty() && matches_all(&matchers, &s.labels))
                .map(|s| s.labels.to_string())
                .collect();
            via_index.sort();
            scanned.sort();
            assert_eq!(via_index, scanned, "{matchers:?}");
            // Names and values from the postings equal those of the scanned label sets, also
            // for a time range that leaves out the 60 series created after the cut.
            for (start, end) in [(0, 1_000), (70, 1_000)] {
                let sets: Vec<&Labels> = head
                    .series
                    .iter()
                    .flatten()
                    .filter(|s| TenantHead::overlaps(s, &matchers, start, end))
                    .map(|s| &s.labels)
                    .collect();
                let names: std::collections::BTreeSet<String> = sets
                    .iter()
                    .flat_map(|l| l.iter().map(|l| l.name.clone()))
                    .collect();
                assert_eq!(
                    head.label_names(&matchers, start, end),
                    names.into_iter().collect::<Vec<_>>(),
                    "{matchers:?} {start}"
                );
                for name in ["job", "zone", "__name__", "nope"] {
                    let values: std::collections::BTreeSet<String> = sets
                        .iter()
                        .filter_map(|l| l.get(name).map(str::to_string))
                        .collect();
                    assert_eq!(
                        head.label_values(name, &matchers, start, end),
                        values.into_iter().collect::<Vec<_>>(),
                        "{name} {matchers:?} {start}"
                    );
                }
            }
        }
        // Every j0 series of the first 200 stopped early and left the head at the cut; 20 of
        // the 60 new ones are j0, in reused slots.
        assert_eq!(
            head.matching_labels(&[m("job", MatchOp::Equal, "j0")], 0, 1_000)
                .len(),
            20
        );
    }
}
