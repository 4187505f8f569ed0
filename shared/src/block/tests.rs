//! Round trips through the whole format, and the errors a caller or a damaged block meets.

use std::collections::HashMap;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

use super::*;
use crate::labels::Labels;

const STALE: u64 = 0x7ff0_0000_0000_0002;
const HOUR: i64 = 3_600_000;
const START: i64 = 1_700_000_000_000 - 1_700_000_000_000 % (2 * HOUR);

fn descriptor() -> BlockDescriptor {
    BlockDescriptor {
        ulid: ulid::Ulid::from_parts(START as u64, 7),
        tenant: "team-a".to_string(),
        min_time: START,
        max_time: START + 2 * HOUR,
        source_ingester: "ingester-1".to_string(),
    }
}

fn series(labels: &[(&str, &str)], timestamps: Vec<i64>, values: Vec<f64>) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs(labels.iter().copied()),
        timestamps,
        values,
    }
}

/// Timestamps of `count` scrapes every 15 s from `offset` ms into the block.
fn scrapes(offset: i64, count: usize) -> Vec<i64> {
    (0..count as i64)
        .map(|i| START + offset + i * 15_000)
        .collect()
}

fn files_of(block: &EncodedBlock) -> HashMap<String, Bytes> {
    block.files.iter().cloned().collect()
}

/// Encodes with `options`, decodes, and checks the result equals `input` in block order.
fn assert_round_trip_with(input: Vec<SeriesSamples>, options: &EncodeOptions) -> EncodedBlock {
    let mut expected = input.clone();
    for s in &mut expected {
        let kept = s.labels.iter().filter(|l| !l.value.is_empty()).cloned();
        s.labels = Labels::from_sorted(kept.collect());
    }
    expected.sort_by(|a, b| {
        (a.labels.metric_name(), &a.labels).cmp(&(b.labels.metric_name(), &b.labels))
    });
    let block = encode_block_with(&descriptor(), input, options).expect("encodes");
    let decoded = decode_block(&files_of(&block)).expect("decodes");
    assert_eq!(decoded.len(), expected.len());
    for (want, got) in expected.iter().zip(&decoded) {
        assert!(
            want.same_bits(got),
            "{}: wrote {:?} at {:?}, read {} {:?} at {:?}",
            want.labels,
            want.values,
            want.timestamps,
            got.labels,
            got.values,
            got.timestamps
        );
    }
    block
}

fn assert_round_trip(input: Vec<SeriesSamples>) -> EncodedBlock {
    assert_round_trip_with(input, &EncodeOptions::default())
}

#[test]
fn special_values_round_trip_bit_exactly() {
    let specials = [
        f64::from_bits(STALE),
        f64::from_bits(0x7ff8_0000_0000_0001), // Go's math.NaN()
        f64::from_bits(0xfff8_0000_0000_0000), // negative quiet NaN
        f64::from_bits(0x7ff4_0000_0000_0000), // signalling NaN
        f64::from_bits(0x7fff_ffff_ffff_ffff), // NaN with every payload bit
        -0.0,
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::from_bits(1), // smallest subnormal
        1e300,
        -1e-300,
        9_007_199_254_740_993.0,
        1.8446744073709552e19,
        0.1,
        12.34,
        -7.5,
        1e-15,
        123_456_789.123_456_79,
    ];
    let count = specials.len();
    let mut input = vec![series(
        &[("__name__", "mixed")],
        scrapes(0, count),
        specials.to_vec(),
    )];
    // Each special value also alone, and inside an otherwise decimal series.
    for (i, &value) in specials.iter().enumerate() {
        let index = i.to_string();
        input.push(series(
            &[("__name__", "alone"), ("i", &index)],
            scrapes(0, 1),
            vec![value],
        ));
        let mut values: Vec<f64> = (0..count).map(|n| n as f64 / 4.0).collect();
        values[i] = value;
        input.push(series(
            &[("__name__", "decimal"), ("i", &index)],
            scrapes(0, count),
            values,
        ));
    }
    assert_round_trip(input);
}

#[test]
fn staleness_marker_in_a_decimal_series_goes_to_value_float_alone() {
    let mut values: Vec<f64> = (0..100).map(|n| n as f64 * 0.25).collect();
    values.push(f64::from_bits(STALE));
    let block = assert_round_trip(vec![series(&[("__name__", "up")], scrapes(0, 101), values)]);
    let report = inspect_report(&block.meta, &files_of(&block)).expect("report");
    assert!(report.contains("value_int_delta: 100 samples"), "{report}");
    assert!(report.contains("value_float: 1 samples"), "{report}");
}

#[test]
fn series_with_differing_timestamps_round_trip() {
    let full = scrapes(7, 240);
    let mut missed = full.clone();
    missed.remove(100);
    let input = vec![
        series(
            &[("__name__", "a"), ("job", "x")],
            full.clone(),
            vec![1.0; 240],
        ),
        // Went stale at scrape 120: a prefix ending in a staleness marker.
        series(
            &[("__name__", "b"), ("job", "x")],
            full[..121].to_vec(),
            (0..121)
                .map(|i| {
                    if i == 120 {
                        f64::from_bits(STALE)
                    } else {
                        i as f64
                    }
                })
                .collect(),
        ),
        // Appeared mid-block.
        series(
            &[("__name__", "c"), ("job", "x")],
            full[130..].to_vec(),
            vec![2.5; 110],
        ),
        // Missed one scrape.
        series(&[("__name__", "d"), ("job", "x")], missed, vec![3.0; 239]),
        // Another target, other timestamps, and one with its own irregular ones.
        series(
            &[("__name__", "a"), ("job", "y")],
            scrapes(9_001, 240),
            vec![4.0; 240],
        ),
        series(
            &[("__name__", "e")],
            vec![START + 1, START + 2, START + 7_000_000],
            vec![5.0; 3],
        ),
    ];
    let block = assert_round_trip(input.clone());
    let groups = files_of(&block);
    let report = inspect_report(&block.meta, &groups).expect("report");
    // The stale, late and gappy series share group 0 with the full one: 240 + 240 + 3 rows.
    assert!(report.contains("483 timestamp groups' rows"), "{report}");

    let separate = EncodeOptions {
        share_subset_groups: false,
        ..EncodeOptions::default()
    };
    assert_round_trip_with(input, &separate);
}

#[test]
fn many_series_across_row_groups_and_pages() {
    // A small deterministic generator; the values cover decimals, integers and floats.
    let mut state = 0x1234_5678_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut input = Vec::new();
    for i in 0..3_000 {
        let target = (i % 7).to_string();
        let id = i.to_string();
        let n = 1 + (next() % 60) as usize;
        let values: Vec<f64> = (0..n)
            .map(|_| match i % 3 {
                0 => (next() % 100_000) as f64 / 100.0,
                1 => (next() % 1_000) as f64,
                _ => f64::from_bits(next() >> 2),
            })
            .collect();
        input.push(series(
            &[
                ("__name__", &format!("metric_{}", i % 40)),
                ("target", &target),
                ("id", &id),
            ],
            scrapes(i % 7 * 100, n),
            values,
        ));
    }
    let small = EncodeOptions {
        row_group_rows: 10_000,
        data_page_rows: 1_000,
        ..EncodeOptions::default()
    };
    let block = assert_round_trip_with(input, &small);
    let samples = &files_of(&block)[SAMPLES_FILE];
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(samples)
        .expect("footer");
    assert!(metadata.num_row_groups() > 3);
}

#[test]
fn samples_are_written_one_row_group_at_a_time() {
    // 7 series of 700 samples: every row group boundary of 1000 rows falls inside a series,
    // so integer differences and scrape positions carry on across row groups. Series 2 and 5
    // are floats, the others decimals with a staleness marker every 20 samples.
    let mut input = Vec::new();
    for i in 0..7usize {
        let id = i.to_string();
        let values: Vec<f64> = (0..700usize)
            .map(|n| match (i + n) % 20 {
                0 => f64::from_bits(STALE),
                _ if i % 3 == 2 => (n as f64 + 2.0).sqrt(),
                _ => (n * (i + 1)) as f64 / 4.0,
            })
            .collect();
        // Odd series miss every third scrape, so they get timestamp groups of their own.
        let timestamps: Vec<i64> = (0..1_050i64)
            .filter(|n| i % 2 == 0 || n % 3 != 2)
            .map(|n| START + n * 5_000)
            .take(700)
            .collect();
        input.push(series(&[("__name__", "m"), ("i", &id)], timestamps, values));
    }
    let options = EncodeOptions {
        row_group_rows: 1_000,
        data_page_rows: 300,
        ..EncodeOptions::default()
    };
    let block = assert_round_trip_with(input, &options);
    assert_eq!(block.meta.stats.num_samples, 4_900);
    let samples = &files_of(&block)[SAMPLES_FILE];
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Required)
        .parse_and_finish(samples)
        .expect("footer");
    let rows: Vec<i64> = metadata
        .row_groups()
        .iter()
        .map(|rg| rg.num_rows())
        .collect();
    assert_eq!(rows, vec![1_000, 1_000, 1_000, 1_000, 900]);
    for (r, row_group) in metadata.row_groups().iter().enumerate() {
        assert_eq!(
            row_group.sorting_columns().map(Vec::len),
            Some(2),
            "row group {r}"
        );
        for (c, column) in row_group.columns().iter().enumerate() {
            let statistics = column.statistics().expect("statistics");
            // Both value columns hold values in every row group.
            assert!(
                statistics
                    .null_count_opt()
                    .is_some_and(|nulls| nulls < 1_000),
                "row group {r} column {c}"
            );
            // parquet 59 drops a column's index when one page has no min/max (a page of NaNs
            // only), which the float column of this data has; nothing prunes on that column.
            assert!(
                column.column_path().string() == "value_float"
                    || super::inspect::RowGroupPageIndex::new(&metadata, r)
                        .column_index(c)
                        .is_some(),
                "row group {r} column {c}: {:?}",
                metadata.column_index().map(|ci| &ci[r][c])
            );
        }
    }
    let key_values = metadata.file_metadata().key_value_metadata().expect("kv");
    assert!(key_values.iter().any(|kv| kv.key == "strata.format"));
}

#[test]
fn empty_label_values_are_dropped_and_odd_label_names_survive() {
    let input = vec![
        series(
            &[("__name__", "m"), ("empty", ""), ("job", "a")],
            scrapes(0, 2),
            vec![1.0, 2.0],
        ),
        series(
            &[
                ("__name__", "m"),
                ("series_id", "7"),
                ("scale", "x"),
                ("~t", "y"),
                ("Z", "z"),
                ("dotted.name", "UTF-8 \u{e9}\"quoted\""),
                ("\u{fc}nicode", "v"),
            ],
            scrapes(0, 2),
            vec![1.0, 2.0],
        ),
        series(&[("no_name", "1")], scrapes(0, 1), vec![1.0]),
    ];
    let block = assert_round_trip(input);
    let files = files_of(&block);
    let report = inspect_report(&block.meta, &files).expect("report");
    assert!(
        !report.contains("empty"),
        "a label with only empty values has no column"
    );
    assert!(
        report.contains("~series_id") && report.contains("~~t"),
        "{report}"
    );
    // Label columns are dictionary-encoded whatever their names.
    assert!(
        report
            .lines()
            .any(|l| l.trim_start().starts_with("dotted.name") && l.contains("RLE_DICTIONARY")),
        "{report}"
    );
}

#[test]
fn series_are_sorted_by_metric_name_then_labels() {
    let input = vec![
        series(&[("__name__", "b"), ("A", "1")], scrapes(0, 1), vec![1.0]),
        series(&[("__name__", "a"), ("z", "1")], scrapes(0, 1), vec![1.0]),
        series(&[("__name__", "a"), ("y", "2")], scrapes(0, 1), vec![1.0]),
    ];
    let block = encode_block(&descriptor(), input).expect("encodes");
    let names: Vec<String> = decode_block(&files_of(&block))
        .expect("decodes")
        .iter()
        .map(|s| s.labels.to_string())
        .collect();
    assert_eq!(names, [r#"a{y="2"}"#, r#"a{z="1"}"#, r#"b{A="1"}"#]);
}

#[test]
fn meta_json_round_trips_in_prometheus_shape() {
    let block = encode_block(
        &descriptor(),
        vec![series(&[("__name__", "up")], scrapes(0, 3), vec![1.0; 3])],
    )
    .expect("encodes");
    let json = block.meta.to_json_bytes().expect("serializes");
    assert_eq!(
        BlockMeta::from_json_bytes(&json).expect("parses"),
        block.meta
    );
    let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
    assert_eq!(value["ulid"], descriptor().ulid.to_string());
    assert_eq!(value["minTime"], START);
    assert_eq!(value["maxTime"], START + 2 * HOUR);
    assert_eq!(value["stats"]["numSeries"], 1);
    assert_eq!(value["stats"]["numSamples"], 3);
    assert_eq!(value["compaction"]["level"], 1);
    assert_eq!(
        value["compaction"]["sources"][0],
        descriptor().ulid.to_string()
    );
    assert_eq!(value["version"], 1);
    assert_eq!(value["strata"]["tenant"], "team-a");
    assert_eq!(value["strata"]["sourceIngester"], "ingester-1");
    assert_eq!(value["strata"]["resolution"], 0);
    assert_eq!(value["strata"]["format"], FORMAT);
    assert_eq!(value["strata"]["formatVersion"], FORMAT_VERSION);
    let listed: Vec<(String, u64)> = block
        .meta
        .strata
        .files
        .iter()
        .map(|f| (f.name.clone(), f.size_bytes))
        .collect();
    let actual: Vec<(String, u64)> = block
        .files
        .iter()
        .map(|(n, b)| (n.clone(), b.len() as u64))
        .collect();
    assert_eq!(listed, actual);
    assert_eq!(block.meta.ulid().expect("ulid"), descriptor().ulid);
    // Fields a later version adds do not break this reader.
    let mut extended = value.clone();
    extended["strata"]["later"] = serde_json::json!(true);
    let extended = serde_json::to_vec(&extended).expect("json");
    assert_eq!(
        BlockMeta::from_json_bytes(&extended).expect("parses"),
        block.meta
    );
}

#[test]
fn files_use_zstd_statistics_page_index_and_the_chosen_encodings() {
    let input = vec![series(
        &[("__name__", "m")],
        scrapes(0, 5),
        vec![1.5, 2.5, 0.123_456_789_012_345_67, 4.0, 5.0],
    )];
    let block = encode_block(&descriptor(), input).expect("encodes");
    for (name, bytes) in &block.files {
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(bytes)
            .expect("footer");
        let page_index = super::inspect::RowGroupPageIndex::new(&metadata, 0);
        for (c, column) in metadata.row_group(0).columns().iter().enumerate() {
            let path = column.column_path().string();
            assert!(
                matches!(column.compression(), Compression::ZSTD(_)),
                "{name} {path}"
            );
            assert!(column.statistics().is_some(), "{name} {path} statistics");
            assert!(
                page_index.column_index(c).is_some(),
                "{name} {path} column index"
            );
            assert!(
                page_index.offset_index(c).is_some(),
                "{name} {path} offset index"
            );
            let encodings: Vec<Encoding> = column.encodings().collect();
            let expected = match path.as_str() {
                "value_float" | "value_int_delta" => Encoding::BYTE_STREAM_SPLIT,
                "__name__" => Encoding::RLE_DICTIONARY,
                _ => Encoding::DELTA_BINARY_PACKED,
            };
            assert!(
                encodings.contains(&expected),
                "{name} {path}: {encodings:?}"
            );
        }
    }
}

#[test]
fn zero_series_is_an_error() {
    assert!(matches!(
        encode_block(&descriptor(), Vec::new()),
        Err(BlockError::NoSeries)
    ));
}

#[test]
fn invalid_series_are_refused_with_the_series_named() {
    let m = |timestamps: Vec<i64>, values: Vec<f64>| {
        vec![series(
            &[("__name__", "m"), ("job", "j")],
            timestamps,
            values,
        )]
    };
    let named = r#"series m{job="j"}: "#;
    let cases: Vec<(Vec<SeriesSamples>, String)> = vec![
        (
            m(vec![START, START], vec![1.0, 2.0]),
            format!("{named}timestamps not strictly increasing"),
        ),
        (
            m(vec![START], vec![1.0, 2.0]),
            format!("{named}1 timestamps but 2 values"),
        ),
        (m(vec![], vec![]), format!("{named}no samples")),
        (
            m(vec![START - 1], vec![1.0]),
            format!(
                "{named}samples from {} to {} fall outside",
                START - 1,
                START - 1
            ),
        ),
        (
            m(vec![START + 2 * HOUR], vec![1.0]),
            format!("{named}samples from"),
        ),
        (
            vec![series(&[("job", "")], vec![START], vec![1.0])],
            "series {}: no labels with a value".to_string(),
        ),
        (
            vec![
                series(&[("__name__", "m"), ("a", "")], vec![START], vec![1.0]),
                series(&[("__name__", "m")], vec![START + 1], vec![1.0]),
            ],
            "series m{} appears twice".to_string(),
        ),
    ];
    for (input, expected) in cases {
        let error = encode_block(&descriptor(), input)
            .expect_err(&expected)
            .to_string();
        assert!(
            error.starts_with(&expected),
            "{error:?} should start with {expected:?}"
        );
    }
}

#[test]
fn damaged_blocks_fail_with_the_file_named() {
    let block = encode_block(
        &descriptor(),
        vec![series(&[("__name__", "up")], scrapes(0, 3), vec![1.0; 3])],
    )
    .expect("encodes");
    let files = files_of(&block);

    let mut missing = files.clone();
    missing.remove(TIMESTAMPS_FILE);
    let error = decode_block(&missing)
        .expect_err("missing file")
        .to_string();
    assert!(error.contains(TIMESTAMPS_FILE), "{error}");

    let mut truncated = files.clone();
    truncated.insert(SAMPLES_FILE.to_string(), files[SAMPLES_FILE].slice(..40));
    let error = decode_block(&truncated).expect_err("truncated").to_string();
    assert!(error.contains(SAMPLES_FILE), "{error}");

    // The timestamps file where the series file belongs: a Parquet file of this format, but
    // not the right one.
    let mut swapped = files.clone();
    swapped.insert(SERIES_FILE.to_string(), files[TIMESTAMPS_FILE].clone());
    let error = decode_block(&swapped).expect_err("swapped").to_string();
    assert!(error.contains(SERIES_FILE), "{error}");

    let report = inspect_report(&block.meta, &truncated).expect("report");
    assert!(report.contains("cannot read the footer"), "{report}");
    assert!(report.contains("WARNING: meta.json says"), "{report}");
}

#[test]
fn inspect_reports_schema_row_groups_and_bytes_per_sample() {
    let block = encode_block(
        &descriptor(),
        vec![series(
            &[("__name__", "up"), ("job", "node")],
            scrapes(0, 480),
            vec![1.0; 480],
        )],
    )
    .expect("encodes");
    let mut files = files_of(&block);
    let meta_json = Bytes::from(block.meta.to_json_bytes().expect("meta"));
    files.insert(META_FILE.to_string(), meta_json.clone());
    let report = inspect_report(&block.meta, &files).expect("report");
    let total = block.total_bytes().expect("total");
    assert_eq!(
        total,
        files.values().map(|b| b.len() as u64).sum::<u64>(),
        "total_bytes counts meta.json"
    );
    for expected in [
        "block ",
        "team-a",
        "1 series, 480 samples",
        &format!(
            "{total} bytes in all = {:.4} bytes/sample",
            total as f64 / 480.0
        ),
        "OPTIONAL BYTE_ARRAY job (STRING)",
        "REQUIRED INT32 scrape",
        "OPTIONAL DOUBLE value_float",
        "row group 0: 480 rows",
        "column+offset",
        "strata.format = strata-parquet-v1",
        "value_int_delta: 480 samples (100.00 %)",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in\n{report}"
        );
    }
}

/// A file in memory that counts the bytes parquet asks of it.
#[derive(Clone)]
struct CountingReader {
    bytes: Bytes,
    read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingReader {
    fn new(bytes: &Bytes) -> Self {
        Self {
            bytes: bytes.clone(),
            read: Default::default(),
        }
    }
    fn read(&self) -> usize {
        self.read.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl parquet::file::reader::Length for CountingReader {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

impl parquet::file::reader::ChunkReader for CountingReader {
    type T = bytes::buf::Reader<Bytes>;
    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let rest = self.bytes.slice(start as usize..);
        self.read
            .fetch_add(rest.len(), std::sync::atomic::Ordering::SeqCst);
        Ok(bytes::Buf::reader(rest))
    }
    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.read
            .fetch_add(length, std::sync::atomic::Ordering::SeqCst);
        Ok(self.bytes.slice(start as usize..start as usize + length))
    }
}

#[test]
fn decode_block_where_reads_only_the_pages_of_the_wanted_series() {
    // 40 series of 300 samples in row groups of 2,000 rows and pages of 250: series 13
    // (rows 3,900..4,200) starts inside a page of row group 1 and ends in row group 2, so
    // its running integer sum must carry over; series 39 is the last.
    let mut input = Vec::new();
    for i in 0..40usize {
        let id = format!("{i:02}");
        let values: Vec<f64> = (0..300usize)
            .map(|n| {
                if i % 5 == 0 {
                    (n as f64).sqrt()
                } else {
                    (n * i) as f64 / 8.0
                }
            })
            .collect();
        input.push(series(
            &[("__name__", "m"), ("i", &id)],
            scrapes(i as i64, 300),
            values,
        ));
    }
    let options = EncodeOptions {
        row_group_rows: 2_000,
        data_page_rows: 250,
        ..EncodeOptions::default()
    };
    let block = assert_round_trip_with(input, &options);
    let files = files_of(&block);
    let all = decode_block(&files).expect("decodes");
    let reader = |name: &str| CountingReader::new(&files[name]);

    for wanted in [
        vec!["13"],
        vec!["00", "13", "39"],
        vec!["07", "08", "09", "10"],
    ] {
        let (series_file, timestamps, samples) = (
            reader(SERIES_FILE),
            reader(TIMESTAMPS_FILE),
            reader(SAMPLES_FILE),
        );
        let got = decode_block_where(
            series_file,
            timestamps,
            samples.clone(),
            |_, labels, _, _| labels.get("i").is_some_and(|i| wanted.contains(&i)),
        )
        .expect("decodes");
        let want: Vec<&SeriesSamples> = all
            .iter()
            .filter(|s| s.labels.get("i").is_some_and(|i| wanted.contains(&i)))
            .collect();
        assert_eq!(got.len(), want.len(), "{wanted:?}");
        for (w, g) in want.iter().zip(&got) {
            assert!(w.same_bits(g), "{}", w.labels);
        }
        let size = files[SAMPLES_FILE].len();
        assert!(
            samples.read() < size / 2,
            "{wanted:?}: read {} of {size} bytes of {SAMPLES_FILE}",
            samples.read()
        );
    }

    // Nothing wanted: the data files are not even opened (garbage stands in for them).
    let garbage = Bytes::from_static(b"not parquet at all");
    let none = decode_block_where(
        files[SERIES_FILE].clone(),
        garbage.clone(),
        garbage,
        |_, _, _, _| false,
    )
    .expect("decodes");
    assert!(none.is_empty());

    // By time: the filter sees each series' first and last timestamps.
    let late = decode_block_where(
        files[SERIES_FILE].clone(),
        files[TIMESTAMPS_FILE].clone(),
        files[SAMPLES_FILE].clone(),
        |_, _, first, _| first >= START + 35,
    )
    .expect("decodes");
    let ids: Vec<&str> = late.iter().filter_map(|s| s.labels.get("i")).collect();
    assert_eq!(ids, vec!["35", "36", "37", "38", "39"]);
}
