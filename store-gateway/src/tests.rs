//! Blocks written by `encode_block` into an in-memory bucket, read back through the gateway
//! and compared with `decode_block`, bit for bit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use strata_shared::block::{
    decode_block, encode_block_with, BlockDescriptor, EncodeOptions, SeriesSamples, META_FILE,
    SAMPLES_FILE, SERIES_FILE,
};
use strata_shared::labels::Labels;
use strata_shared::query::{
    matches_all, LabelMatcher, MatchOp, QueryError, SelectRequest, SeriesSource,
};

use super::*;

const STALE: u64 = 0x7ff0_0000_0000_0002;
const HOUR: i64 = 3_600_000;
const START: i64 = 1_700_000_000_000 - 1_700_000_000_000 % (2 * HOUR);
const TENANT: &str = "team-a";

/// A bucket that records every read path.
struct Bucket {
    inner: Arc<InMemory>,
    reads: Arc<Mutex<Vec<String>>>,
}

impl Bucket {
    fn new() -> Self {
        Self {
            inner: Arc::new(InMemory::new()),
            reads: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        let reads = self.reads.clone();
        Arc::new(ObservedStore::new(
            self.inner.clone(),
            Arc::new(move |path: &Path, _| reads.lock().unwrap().push(path.to_string())),
        ))
    }

    fn reads(&self) -> Vec<String> {
        self.reads.lock().unwrap().clone()
    }

    fn clear_reads(&self) {
        self.reads.lock().unwrap().clear();
    }

    async fn put(&self, path: &str, bytes: Bytes) {
        self.inner
            .put(&Path::from(path), PutPayload::from(bytes))
            .await
            .unwrap();
    }

    /// Writes a whole block (meta.json last) and returns its files for `decode_block`.
    async fn write_block(
        &self,
        tenant: &str,
        ulid: ulid::Ulid,
        min_time: i64,
        hours: i64,
        series: Vec<SeriesSamples>,
        options: &EncodeOptions,
    ) -> HashMap<String, Bytes> {
        let desc = BlockDescriptor {
            ulid,
            tenant: tenant.to_string(),
            min_time,
            max_time: min_time + hours * HOUR,
            source_ingester: format!("ingester-{}", ulid.random() % 3),
        };
        let block = encode_block_with(&desc, series, options).unwrap();
        for (name, bytes) in &block.files {
            self.put(&format!("{tenant}/{ulid}/{name}"), bytes.clone())
                .await;
        }
        self.put(
            &format!("{tenant}/{ulid}/{META_FILE}"),
            Bytes::from(block.meta.to_json_bytes().unwrap()),
        )
        .await;
        block.files.into_iter().collect()
    }
}

impl Bucket {
    /// A 2 h block of the workload at `start` for `hosts` hosts, with ulid `ulid_at(start, n)`.
    async fn write_2h(&self, start: i64, n: u128, hosts: usize) -> HashMap<String, Bytes> {
        self.write_block(
            TENANT,
            ulid_at(start, n),
            start,
            2,
            workload(start, 2, hosts),
            &fast(),
        )
        .await
    }
}

fn fast() -> EncodeOptions {
    EncodeOptions {
        zstd_level: 1,
        ..EncodeOptions::default()
    }
}

fn gateway(bucket: &Bucket, config: StoreGatewayConfig) -> StoreGateway {
    StoreGateway::new(config, bucket.store()).unwrap()
}

/// A workload with the values that must survive bit for bit: decimals at several scales,
/// counters, noise, NaN payloads, staleness markers, -0.0 and infinities, a series that
/// starts late and one that misses scrapes, two scrape targets with their own jitter.
fn workload(min_time: i64, hours: i64, hosts: usize) -> Vec<SeriesSamples> {
    let scrapes = (hours * 240) as usize;
    let mut out = Vec::new();
    for host in 0..hosts {
        let instance = format!("host-{host}:9100");
        let ts: Vec<i64> = (0..scrapes as i64)
            .map(|i| min_time + 1_000 + host as i64 * 37 + i * 15_000 + (i * 7 + host as i64) % 5)
            .collect();
        let mut push = |labels: Vec<(&str, String)>, timestamps: Vec<i64>, values: Vec<f64>| {
            out.push(SeriesSamples {
                labels: Labels::from_pairs(labels),
                timestamps,
                values,
            });
        };
        for cpu in 0..4 {
            for mode in ["idle", "user", "system"] {
                let values = (0..scrapes)
                    .map(|i| ((i * (cpu + 3) * 1_517 + host) as f64) / 100.0)
                    .collect();
                push(
                    vec![
                        ("__name__", "node_cpu_seconds_total".into()),
                        ("job", "node".into()),
                        ("instance", instance.clone()),
                        ("cpu", cpu.to_string()),
                        ("mode", mode.into()),
                    ],
                    ts.clone(),
                    values,
                );
            }
        }
        let mut noisy: Vec<f64> = (0..scrapes)
            .map(|i| (i as f64 * 0.7 + host as f64).sin() * 1e3 / 7.0)
            .collect();
        noisy[3] = f64::from_bits(0x7ff8_0000_dead_beef);
        noisy[4] = -0.0;
        noisy[5] = f64::INFINITY;
        noisy[6] = f64::NEG_INFINITY;
        noisy[7] = f64::from_bits(0xfff8_0000_0000_0001);
        push(
            vec![
                ("__name__", "node_temp_celsius".into()),
                ("job", "node".into()),
                ("instance", instance.clone()),
            ],
            ts.clone(),
            noisy,
        );
        // A gauge that goes stale halfway (decimal with one staleness marker).
        let half = scrapes / 2;
        let mut stale_values: Vec<f64> = (0..half).map(|i| 1.5 + i as f64 * 0.25).collect();
        stale_values.push(f64::from_bits(STALE));
        push(
            vec![
                ("__name__", "kube_pod_info".into()),
                ("job", "app".into()),
                ("instance", instance.clone()),
                ("pod", format!("pod-{host}-a")),
            ],
            ts[..=half].to_vec(),
            stale_values,
        );
        // Starts late and misses every 7th scrape.
        let late: Vec<i64> = ts[half..]
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 7 != 3)
            .map(|(_, &t)| t)
            .collect();
        let late_values = (0..late.len()).map(|i| i as f64 * 1024.0).collect();
        push(
            vec![
                ("__name__", "kube_pod_info".into()),
                ("job", "app".into()),
                ("instance", instance.clone()),
                ("pod", format!("pod-{host}-b")),
                ("series_id", "escaped".into()),
            ],
            late,
            late_values,
        );
        // Its own target, other jitter.
        let app_ts: Vec<i64> = ts.iter().map(|t| t + 3_333).collect();
        push(
            vec![
                ("__name__", "http_requests_total".into()),
                ("job", "app".into()),
                ("instance", format!("host-{host}:8080")),
                ("handler", "/api".into()),
            ],
            app_ts,
            (0..scrapes).map(|i| (i * i) as f64).collect(),
        );
    }
    out
}

fn request(matchers: Vec<LabelMatcher>, start_ms: i64, end_ms: i64) -> SelectRequest {
    SelectRequest {
        tenant: TENANT.to_string(),
        matchers,
        start_ms,
        end_ms,
        limit: 0,
    }
}

fn m(op: MatchOp, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher::new(op, name, value).unwrap()
}

/// What a select must return for one block: `decode_block`, filtered.
fn expected(files: &HashMap<String, Bytes>, request: &SelectRequest) -> Vec<SeriesSamples> {
    decode_block(files)
        .unwrap()
        .into_iter()
        .filter(|s| matches_all(&request.matchers, &s.labels))
        .filter_map(|mut s| {
            let keep: Vec<usize> = (0..s.timestamps.len())
                .filter(|&i| {
                    s.timestamps[i] >= request.start_ms && s.timestamps[i] <= request.end_ms
                })
                .collect();
            s.timestamps = keep.iter().map(|&i| s.timestamps[i]).collect();
            s.values = keep.iter().map(|&i| s.values[i]).collect();
            (!s.timestamps.is_empty()).then_some(s)
        })
        .collect()
}

async fn select_all(
    gateway: &StoreGateway,
    request: &SelectRequest,
) -> Result<Vec<SeriesSamples>, QueryError> {
    let mut got: Vec<SeriesSamples> = gateway.select(request).await?.try_collect().await?;
    got.sort_by(|a, b| (&a.labels, a.timestamps.first()).cmp(&(&b.labels, b.timestamps.first())));
    Ok(got)
}

fn assert_same(mut want: Vec<SeriesSamples>, got: &[SeriesSamples], what: &str) {
    want.sort_by(|a, b| (&a.labels, a.timestamps.first()).cmp(&(&b.labels, b.timestamps.first())));
    assert_eq!(
        want.iter()
            .map(|s| s.labels.to_string())
            .collect::<Vec<_>>(),
        got.iter().map(|s| s.labels.to_string()).collect::<Vec<_>>(),
        "{what}: series differ"
    );
    for (w, g) in want.iter().zip(got) {
        assert!(
            w.same_bits(g),
            "{what}: {} differs: want {} samples {:?}.., got {} {:?}..",
            w.labels,
            w.values.len(),
            &w.values[..w.values.len().min(8)],
            g.values.len(),
            &g.values[..g.values.len().min(8)]
        );
    }
}

fn ulid_at(time: i64, n: u128) -> ulid::Ulid {
    ulid::Ulid::from_parts(time as u64, n)
}

#[tokio::test]
async fn select_returns_what_decode_block_gives_bit_exactly() {
    let bucket = Bucket::new();
    let files = bucket.write_2h(START, 1, 3).await;
    let gw = gateway(&bucket, StoreGatewayConfig::default());
    let all_time = (START - HOUR, START + 3 * HOUR);
    let cases: Vec<(Vec<LabelMatcher>, (i64, i64))> = vec![
        (vec![m(MatchOp::Regex, "__name__", ".+")], all_time),
        (
            vec![m(MatchOp::Equal, "__name__", "node_cpu_seconds_total")],
            all_time,
        ),
        (
            vec![
                m(MatchOp::Equal, "__name__", "node_cpu_seconds_total"),
                m(MatchOp::Equal, "mode", "idle"),
                m(MatchOp::NotEqual, "instance", "host-1:9100"),
            ],
            (START + 20 * 60_000, START + 50 * 60_000),
        ),
        (
            vec![m(
                MatchOp::Regex,
                "__name__",
                "node_temp_celsius|kube_pod_info",
            )],
            all_time,
        ),
        (
            vec![
                m(MatchOp::Regex, "job", "no.*"),
                m(MatchOp::NotRegex, "cpu", "[12]"),
            ],
            (START + HOUR, START + HOUR + 15_000 * 10),
        ),
        // The label escaped as `~series_id` in series.parquet.
        (vec![m(MatchOp::Equal, "series_id", "escaped")], all_time),
        // Absent label matches "": series without `pod`.
        (
            vec![
                m(MatchOp::Equal, "job", "app"),
                m(MatchOp::Equal, "pod", ""),
            ],
            all_time,
        ),
        (vec![m(MatchOp::NotEqual, "pod", "")], all_time),
        (vec![m(MatchOp::Equal, "nosuchlabel", "x")], all_time),
        (vec![m(MatchOp::Regex, "__name__", "nope.*")], all_time),
        // The stale series' last sample is the marker; a range just around it.
        (
            vec![m(MatchOp::Equal, "pod", "pod-0-a")],
            (START + 59 * 60_000, START + 61 * 60_000),
        ),
        // Nothing in range.
        (
            vec![m(MatchOp::Regex, "__name__", ".+")],
            (START - 10, START),
        ),
    ];
    for (matchers, (start, end)) in cases {
        let request = request(matchers, start, end);
        let got = select_all(&gw, &request).await.unwrap();
        assert_same(expected(&files, &request), &got, &format!("{request:?}"));
    }
    // The workload's odd values really are there.
    let block_range = |name: &str, value: &str| {
        request(
            vec![m(MatchOp::Equal, name, value)],
            START,
            START + 2 * HOUR,
        )
    };
    let temps = select_all(&gw, &block_range("__name__", "node_temp_celsius"))
        .await
        .unwrap();
    assert_eq!(temps[0].values[3].to_bits(), 0x7ff8_0000_dead_beef);
    assert_eq!(temps[0].values[4].to_bits(), (-0.0f64).to_bits());
    let stale = select_all(&gw, &block_range("pod", "pod-0-a"))
        .await
        .unwrap();
    assert_eq!(stale[0].values.last().map(|v| v.to_bits()), Some(STALE));
}

#[tokio::test]
async fn blocks_outside_the_range_are_not_opened_and_replicas_all_return() {
    let bucket = Bucket::new();
    let mut files = Vec::new();
    for (i, start) in [START, START + 2 * HOUR, START + 4 * HOUR]
        .into_iter()
        .enumerate()
    {
        files.push((
            ulid_at(start, i as u128),
            bucket.write_2h(start, i as u128, 2).await,
        ));
    }
    // A replica of the middle range: same series, another ulid.
    let replica = ulid_at(START + 2 * HOUR, 99);
    let replica_files = bucket
        .write_block(
            TENANT,
            replica,
            START + 2 * HOUR,
            2,
            workload(START + 2 * HOUR, 2, 2),
            &fast(),
        )
        .await;
    let gw = gateway(&bucket, StoreGatewayConfig::default());
    let registry = prometheus::Registry::new();
    gw.register_metrics(&registry).unwrap();

    let req = request(
        vec![m(MatchOp::Equal, "__name__", "http_requests_total")],
        START + 2 * HOUR + 10 * 60_000,
        START + 3 * HOUR,
    );
    let got = select_all(&gw, &req).await.unwrap();
    let mut want = expected(&files[1].1, &req);
    want.extend(expected(&replica_files, &req));
    assert_eq!(want.len(), 4, "2 hosts × 2 replicas");
    assert_same(want, &got, "middle range with its replica");

    let reads = bucket.reads();
    for (ulid, _) in [&files[0], &files[2]] {
        let opened: Vec<&String> = reads
            .iter()
            .filter(|r| r.contains(&ulid.to_string()) && !r.ends_with(META_FILE))
            .collect();
        assert!(
            opened.is_empty(),
            "block {ulid} outside the range was read: {opened:?}"
        );
    }
    for ulid in [files[1].0, replica] {
        assert!(
            reads
                .iter()
                .any(|r| r.ends_with(&format!("{ulid}/{SAMPLES_FILE}"))),
            "block {ulid} in range was not scanned: {reads:?}"
        );
    }
    assert_eq!(
        gw.shared
            .metrics
            .blocks_scanned
            .with_label_values(&[TENANT])
            .get(),
        2
    );
    assert_eq!(
        gw.shared
            .metrics
            .series_returned
            .with_label_values(&[TENANT])
            .get(),
        4
    );
    assert_eq!(
        gw.shared
            .metrics
            .blocks_loaded
            .with_label_values(&[TENANT])
            .get(),
        4
    );
    assert!(
        gw.shared
            .metrics
            .bytes_fetched
            .with_label_values(&[TENANT, SAMPLES_FILE])
            .get()
            > 0
    );
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains("strata_store_gateway_blocks_sync_duration_seconds"),
        "{text}"
    );

    // A query spanning everything gets every block once each, series once per block.
    let req = request(
        vec![m(MatchOp::Equal, "instance", "host-1:8080")],
        START,
        START + 6 * HOUR,
    );
    let got = select_all(&gw, &req).await.unwrap();
    assert_eq!(got.len(), 4);
    // Footers and series tables come from the caches on a second query.
    bucket.clear_reads();
    let again = select_all(&gw, &req).await.unwrap();
    assert_same(got, &again, "second query");
    let reads = bucket.reads();
    assert!(
        !reads
            .iter()
            .any(|r| r.ends_with(SERIES_FILE) || r.ends_with(META_FILE)),
        "series tables and metas are cached: {reads:?}"
    );
}

#[tokio::test]
async fn metadata_calls_come_from_series_tables() {
    let bucket = Bucket::new();
    let a = bucket.write_2h(START, 1, 2).await;
    let b = bucket.write_2h(START + 2 * HOUR, 2, 3).await;
    let gw = gateway(&bucket, StoreGatewayConfig::default());
    let decoded: Vec<SeriesSamples> = [&a, &b]
        .iter()
        .flat_map(|f| decode_block(f).unwrap())
        .collect();
    let cases = vec![
        (vec![], START, START + 4 * HOUR),
        (
            vec![m(MatchOp::Equal, "job", "app")],
            START,
            START + 4 * HOUR,
        ),
        (
            vec![m(MatchOp::Regex, "instance", "host-2.*")],
            START,
            START + 4 * HOUR,
        ),
        // Only the first block's range, and only series whose own samples overlap: the
        // late-starting series begin after minute 60.
        (
            vec![m(MatchOp::Equal, "__name__", "kube_pod_info")],
            START,
            START + 30 * 60_000,
        ),
    ];
    for (matchers, start, end) in cases {
        let req = request(matchers, start, end);
        let matching: Vec<&SeriesSamples> = decoded
            .iter()
            .filter(|s| matches_all(&req.matchers, &s.labels))
            .filter(|s| {
                s.timestamps.first().is_some_and(|&t| t <= end)
                    && s.timestamps.last().is_some_and(|&t| t >= start)
            })
            .collect();
        let mut want_series: Vec<Labels> = matching.iter().map(|s| s.labels.clone()).collect();
        want_series.sort();
        want_series.dedup();
        assert_eq!(gw.series(&req).await.unwrap(), want_series, "{req:?}");
        let mut names: Vec<String> = matching
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(gw.label_names(&req).await.unwrap(), names, "{req:?}");
        for label in ["instance", "pod", "nosuch", "series_id"] {
            let mut values: Vec<String> = matching
                .iter()
                .filter_map(|s| s.labels.get(label).map(str::to_string))
                .collect();
            values.sort();
            values.dedup();
            assert_eq!(
                gw.label_values(label, &req).await.unwrap(),
                values,
                "{label} {req:?}"
            );
        }
    }
    assert!(
        !bucket.reads().iter().any(|r| r.ends_with(SAMPLES_FILE)),
        "metadata calls read samples"
    );
    let limited = request(vec![], START, START + 4 * HOUR);
    let limited = SelectRequest {
        limit: 2,
        ..limited
    };
    assert_eq!(gw.label_names(&limited).await.unwrap().len(), 2);
}

#[tokio::test]
async fn memory_bound_fails_the_stream() {
    let bucket = Bucket::new();
    // One series of a day at 1 s: 86,400 samples, 1.4 MB decoded, held whole until complete.
    let big = SeriesSamples {
        labels: Labels::from_pairs([("__name__", "big"), ("job", "x")]),
        timestamps: (0..86_400).map(|i| START + i * 1_000).collect(),
        values: (0..86_400).map(|i| i as f64).collect(),
    };
    let small = SeriesSamples {
        labels: Labels::from_pairs([("__name__", "small"), ("job", "x")]),
        timestamps: (0..480).map(|i| START + i * 15_000).collect(),
        values: (0..480).map(|i| i as f64 / 10.0).collect(),
    };
    bucket
        .write_block(
            TENANT,
            ulid_at(START, 1),
            START,
            24,
            vec![big, small],
            &fast(),
        )
        .await;
    let config = StoreGatewayConfig {
        max_query_memory_bytes: 1_000_000,
        ..StoreGatewayConfig::default()
    };
    let gw = gateway(&bucket, config);
    let req = request(
        vec![m(MatchOp::Equal, "__name__", "big")],
        START,
        START + 24 * HOUR,
    );
    let err = select_all(&gw, &req).await.unwrap_err();
    match err {
        QueryError::LimitExceeded(message) => assert!(
            message.contains("-blocks-storage.bucket-store.max-query-memory-bytes=1000000"),
            "{message}"
        ),
        other => panic!("want LimitExceeded, got {other:?}"),
    }
    // A small series fits, and so does the big one over a shorter range.
    let req = request(vec![m(MatchOp::Equal, "job", "x")], START, START + HOUR);
    let got = select_all(&gw, &req).await.unwrap();
    assert_eq!(
        got.iter().map(|s| s.values.len()).collect::<Vec<_>>(),
        vec![3_601, 241]
    );
}

#[tokio::test]
async fn discovery_ignores_unfinished_and_deleted_blocks() {
    let bucket = Bucket::new();
    let good = ulid_at(START, 1);
    let good_files = bucket
        .write_block(TENANT, good, START, 2, workload(START, 2, 1), &fast())
        .await;
    // Data files but no meta.json yet.
    let uploading = ulid_at(START, 2);
    let uploading_files = bucket
        .write_block(TENANT, uploading, START, 2, workload(START, 2, 1), &fast())
        .await;
    let uploading_meta = Path::from(format!("{TENANT}/{uploading}/{META_FILE}"));
    let meta_bytes = bucket
        .inner
        .get(&uploading_meta)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    bucket.inner.delete(&uploading_meta).await.unwrap();
    // Marked for deletion.
    let deleted = ulid_at(START, 3);
    bucket
        .write_block(TENANT, deleted, START, 2, workload(START, 2, 1), &fast())
        .await;
    bucket
        .put(
            &format!("{TENANT}/{deleted}/{DELETION_MARK_FILE}"),
            Bytes::from_static(b"{}"),
        )
        .await;
    // meta.json but a data file missing.
    let torn = ulid_at(START, 4);
    bucket
        .write_block(TENANT, torn, START, 2, workload(START, 2, 1), &fast())
        .await;
    bucket
        .inner
        .delete(&Path::from(format!("{TENANT}/{torn}/{SAMPLES_FILE}")))
        .await
        .unwrap();
    // Not a ulid.
    bucket
        .put(
            &format!("{TENANT}/debug/{META_FILE}"),
            Bytes::from_static(b"{"),
        )
        .await;

    let gw = gateway(&bucket, StoreGatewayConfig::default());
    let req = request(
        vec![m(MatchOp::Regex, "__name__", ".+")],
        START,
        START + 2 * HOUR,
    );
    // A fresh gateway syncs the tenant on its first query.
    let got = select_all(&gw, &req).await.unwrap();
    assert_same(expected(&good_files, &req), &got, "only the whole block");

    // The upload finishes: the next sync finds it; the deletion-marked block stays out.
    bucket
        .put(&format!("{TENANT}/{uploading}/{META_FILE}"), meta_bytes)
        .await;
    let cached = select_all(&gw, &req).await.unwrap();
    assert_eq!(cached.len(), got.len(), "no sync between queries");
    gw.sync_now().await;
    let got = select_all(&gw, &req).await.unwrap();
    let mut want = expected(&good_files, &req);
    want.extend(expected(&uploading_files, &req));
    assert_same(want, &got, "after the upload finished");
    assert_eq!(
        gw.shared
            .metrics
            .blocks_loaded
            .with_label_values(&[TENANT])
            .get(),
        2
    );

    // A tenant with no blocks answers empty.
    let other = SelectRequest {
        tenant: "nobody".to_string(),
        ..req.clone()
    };
    assert!(select_all(&gw, &other).await.unwrap().is_empty());
}

#[tokio::test]
async fn samples_scan_prunes_row_groups_and_pages() {
    let bucket = Bucket::new();
    let options = EncodeOptions {
        zstd_level: 1,
        row_group_rows: 16 * 1024,
        data_page_rows: 1024,
        ..EncodeOptions::default()
    };
    let files = bucket
        .write_block(
            TENANT,
            ulid_at(START, 1),
            START,
            2,
            workload(START, 2, 8),
            &options,
        )
        .await;
    let samples_size = files[SAMPLES_FILE].len() as u64;
    let gw = gateway(&bucket, StoreGatewayConfig::default());
    let req = request(
        vec![
            m(MatchOp::Equal, "__name__", "http_requests_total"),
            m(MatchOp::Equal, "instance", "host-5:8080"),
        ],
        START,
        START + 2 * HOUR,
    );
    let fetched = || {
        gw.shared
            .metrics
            .bytes_fetched
            .with_label_values(&[TENANT, SAMPLES_FILE])
            .get()
    };
    let got = select_all(&gw, &req).await.unwrap();
    assert_same(expected(&files, &req), &got, "one series");
    let first = fetched();
    let totals = gw.scan_totals();
    // Again, with the footer and page index in DataFusion's metadata cache.
    let again = select_all(&gw, &req).await.unwrap();
    assert_same(got, &again, "second query");
    let second = fetched() - first;
    eprintln!(
        "samples.parquet {samples_size} bytes; fetched {first} (footer included), then \
         {second}; {totals:?}"
    );
    assert!(totals.row_groups_pruned > 0, "{totals:?}");
    assert!(totals.pages_pruned > 0, "{totals:?}");
    assert!(
        second * 4 < samples_size,
        "fetched {second} of {samples_size}"
    );
}

#[tokio::test]
async fn dropping_the_stream_stops_the_scan() {
    let bucket = Bucket::new();
    for i in 0..6 {
        let start = START + i * 2 * HOUR;
        bucket.write_2h(start, 1, 4).await;
    }
    let config = StoreGatewayConfig {
        max_concurrent: 1,
        ..StoreGatewayConfig::default()
    };
    let gw = gateway(&bucket, config);
    let req = request(
        vec![m(MatchOp::Regex, "__name__", ".+")],
        START,
        START + 12 * HOUR,
    );
    let mut stream = gw.select(&req).await.unwrap();
    let first = futures::StreamExt::next(&mut stream).await;
    assert!(matches!(first, Some(Ok(_))));
    drop(stream);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let scanned = gw
        .shared
        .metrics
        .blocks_scanned
        .with_label_values(&[TENANT])
        .get();
    // The channel holds 64 series (a block has 64): the producer blocks within two blocks.
    assert!(
        scanned <= 3,
        "{scanned} blocks scanned after the consumer left"
    );
}

/// Measurements for the design notes (`cargo test -p strata-store-gateway -- --ignored
/// --nocapture measure`): series-table matching against DataFusion over `series.parquet`,
/// and a select's cost on a study-sized block.
#[tokio::test]
#[ignore]
async fn measure() {
    use std::time::Instant;
    let hosts: usize = std::env::var("HOSTS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(256);
    let bucket = Bucket::new();
    let ulid = ulid_at(START, 1);
    let t = Instant::now();
    let files = bucket
        .write_block(
            TENANT,
            ulid,
            START,
            2,
            workload(START, 2, hosts),
            &EncodeOptions::default(),
        )
        .await;
    let sizes: Vec<(String, usize)> = files.iter().map(|(n, b)| (n.clone(), b.len())).collect();
    eprintln!(
        "block of {hosts} hosts encoded in {:?}: {sizes:?}",
        t.elapsed()
    );

    let t = Instant::now();
    let table = SeriesTable::decode(files[SERIES_FILE].clone()).unwrap();
    eprintln!(
        "series table: {} series decoded in {:?}, {} heap bytes",
        table.len(),
        t.elapsed(),
        table.heap_bytes()
    );
    let matchers = vec![
        m(MatchOp::Equal, "__name__", "node_cpu_seconds_total"),
        m(MatchOp::Equal, "mode", "idle"),
        m(MatchOp::Regex, "instance", "host-1.*"),
    ];
    let t = Instant::now();
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = table.select(&matchers, START, START + 2 * HOUR);
    }
    eprintln!(
        "cached table: {} rows matched in {:?} per query",
        rows.len(),
        t.elapsed() / 100
    );

    let ctx = datafusion::prelude::SessionContext::new();
    let url = url::Url::parse("memory://b").unwrap();
    ctx.register_object_store(&url, bucket.inner.clone());
    ctx.register_parquet(
        "series",
        format!("memory://b/{TENANT}/{ulid}/{SERIES_FILE}"),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    use datafusion::prelude::{col, lit};
    let t = Instant::now();
    let mut count = 0;
    for _ in 0..10 {
        let batches = ctx
            .table("series")
            .await
            .unwrap()
            .filter(
                col("__name__")
                    .eq(lit("node_cpu_seconds_total"))
                    .and(col("mode").eq(lit("idle")))
                    .and(col("instance").like(lit("host-1%"))),
            )
            .unwrap()
            .select_columns(&["series_id"])
            .unwrap()
            .collect()
            .await
            .unwrap();
        count = batches.iter().map(|b| b.num_rows()).sum::<usize>();
    }
    eprintln!(
        "DataFusion over series.parquet: {count} rows in {:?} per query",
        t.elapsed() / 10
    );

    let gw = gateway(&bucket, StoreGatewayConfig::default());
    for (what, matchers) in [
        (
            "one series",
            vec![
                m(MatchOp::Equal, "__name__", "http_requests_total"),
                m(MatchOp::Equal, "instance", "host-7:8080"),
            ],
        ),
        (
            "one metric",
            vec![m(MatchOp::Equal, "__name__", "node_cpu_seconds_total")],
        ),
        ("everything", vec![m(MatchOp::Regex, "__name__", ".+")]),
    ] {
        for round in ["cold", "warm"] {
            let before = gw
                .shared
                .metrics
                .bytes_fetched
                .with_label_values(&[TENANT, SAMPLES_FILE])
                .get();
            let stats_before = gw.scan_totals();
            let req = request(matchers.clone(), START, START + 2 * HOUR);
            let t = Instant::now();
            let got = select_all(&gw, &req).await.unwrap();
            let elapsed = t.elapsed();
            let samples: usize = got.iter().map(|s| s.values.len()).sum();
            let fetched = gw
                .shared
                .metrics
                .bytes_fetched
                .with_label_values(&[TENANT, SAMPLES_FILE])
                .get()
                - before;
            let stats = gw.scan_totals();
            eprintln!(
                "select {what} ({round}): {} series, {samples} samples in {elapsed:?}; \
                 samples.parquet bytes fetched {fetched} of {}; row groups pruned {} of {}, \
                 pages pruned {} of {}",
                got.len(),
                files[SAMPLES_FILE].len(),
                stats.row_groups_pruned - stats_before.row_groups_pruned,
                stats.row_groups_pruned + stats.row_groups_matched
                    - stats_before.row_groups_pruned
                    - stats_before.row_groups_matched,
                stats.pages_pruned - stats_before.pages_pruned,
                stats.pages_pruned + stats.pages_matched
                    - stats_before.pages_pruned
                    - stats_before.pages_matched,
            );
        }
    }
}
