//! Block format study: encodes one deterministic node_exporter-like workload with several
//! candidate Parquet layouts, checks that each reads back bit-exactly, and prints bytes per
//! sample per layout, per file and per column. `docs/block-format.md` records the figures and
//! the layout chosen; the chosen one is what `strata_shared::block::encode_block` writes and is
//! measured here through that API.
//!
//! ```text
//! cargo run -p strata-bench --bin block_study -- --hosts 8 --hours 2
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, Int8Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Int8Type, Schema};
use bytes::Bytes;
use clap::Parser;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnPath;
use strata_shared::block::{
    self, choose_scale, group_timestamps, scaled_value, unscaled_value, BlockDescriptor,
    EncodeOptions, SeriesSamples,
};
use strata_shared::labels::{Labels, METRIC_NAME};

#[derive(Debug, Parser)]
#[command(about = "Measure candidate block layouts on a synthetic node_exporter-like workload")]
struct Args {
    /// Scraped hosts; each has a node_exporter target and an application target.
    #[arg(long, default_value_t = 8)]
    hosts: usize,
    /// Hours of data in the block (ingesters cut 2 h blocks).
    #[arg(long, default_value_t = 2)]
    hours: i64,
    /// Scrape interval in seconds.
    #[arg(long, default_value_t = 15)]
    interval_seconds: i64,
    /// Scrape jitter: each scrape's timestamp is off by up to this many ms (0: regular).
    #[arg(long, default_value_t = 4)]
    jitter_ms: i64,
    /// Only measure the shipped layout and the two baselines.
    #[arg(long)]
    quick: bool,
    /// Print every column's compressed bytes for each layout.
    #[arg(long)]
    columns: bool,
    /// zstd levels to encode the shipped layout at, for the size/time trade-off.
    #[arg(long, value_delimiter = ',', default_value = "1,3,6,9,12,15,19")]
    levels: Vec<i32>,
    /// Write the shipped block's files (meta.json included) into this directory.
    #[arg(long)]
    write_dir: Option<std::path::PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let series = workload::generate(&workload::Config {
        hosts: args.hosts,
        scrapes: (args.hours * 3600 / args.interval_seconds) as usize,
        interval_ms: args.interval_seconds * 1000,
        jitter_ms: args.jitter_ms,
    });
    let samples: usize = series.iter().map(|s| s.values.len()).sum();
    println!(
        "workload: {} hosts x {} h, {} s scrapes, jitter ±{} ms: {} series, {} samples ({:.1?})",
        args.hosts,
        args.hours,
        args.interval_seconds,
        args.jitter_ms,
        series.len(),
        samples,
        started.elapsed()
    );
    workload::describe(&series);

    let mut expected = series.clone();
    expected.sort_by(|a, b| series_order(&a.labels, &b.labels));

    let mut results = Vec::new();
    let only = std::env::var("STUDY_ONLY").ok();
    for layout in layouts::candidates(args.quick)
        .into_iter()
        .filter(|l| only.as_deref().is_none_or(|o| l.name.contains(o)))
    {
        let started = Instant::now();
        let files = layouts::encode(&layout, &series)?;
        let encoded_in = started.elapsed();
        let decoded = layouts::decode(&layout, &files)?;
        verify(&layout.name, &expected, &decoded)?;
        results.push(Measured::new(&layout.name, &files, samples, encoded_in)?);
    }

    // The shipped format, through the public API.
    let started = Instant::now();
    let encoded = block::encode_block(&descriptor(), series.clone())?;
    let encoded_in = started.elapsed();
    let files: HashMap<String, Bytes> = encoded.files.iter().cloned().collect();
    let decoded = block::decode_block(&files)?;
    verify("shipped", &expected, &decoded)?;
    let mut shipped_files = encoded.files.clone();
    shipped_files.push((
        block::META_FILE.to_string(),
        Bytes::from(encoded.meta.to_json_bytes()?),
    ));
    results.push(Measured::new(
        "shipped: block::encode_block",
        &shipped_files,
        samples,
        encoded_in,
    )?);

    println!();
    println!(
        "{:<58} {:>9} {:>12}  {}",
        "layout", "B/sample", "bytes", "per file (B/sample)"
    );
    for result in &results {
        println!(
            "{:<58} {:>9.4} {:>12}  {}  [{:.1?}]",
            result.name,
            result.total as f64 / samples as f64,
            result.total,
            result
                .files
                .iter()
                .map(|(name, bytes)| format!("{name} {:.4}", *bytes as f64 / samples as f64))
                .collect::<Vec<_>>()
                .join(", "),
            result.encoded_in,
        );
        if args.columns {
            for (file, column, bytes) in &result.columns {
                println!(
                    "      {file:<20} {column:<28} {:>10} B {:>8.4} B/sample",
                    bytes,
                    *bytes as f64 / samples as f64
                );
            }
        }
    }
    if !args.columns {
        if let Some(shipped) = results.last() {
            println!("\ncolumns of the shipped layout:");
            for (file, column, bytes) in &shipped.columns {
                println!(
                    "      {file:<20} {column:<28} {:>10} B {:>8.4} B/sample",
                    bytes,
                    *bytes as f64 / samples as f64
                );
            }
        }
    }

    println!("\nshipped layout by zstd level (encode time is a debug build's: compare, do not quote):");
    println!("{:>6} {:>9} {:>12} {:>10}", "level", "B/sample", "bytes", "encode");
    for &level in &args.levels {
        let options = EncodeOptions { zstd_level: level, ..EncodeOptions::default() };
        let mut best = std::time::Duration::MAX;
        let mut bytes = 0;
        for _ in 0..2 {
            let started = Instant::now();
            let encoded = block::encode_block_with(&descriptor(), series.clone(), &options)?;
            best = best.min(started.elapsed());
            bytes = encoded.total_bytes()?;
        }
        println!("{level:>6} {:>9.4} {bytes:>12} {best:>10.1?}", bytes as f64 / samples as f64);
    }

    let files: HashMap<String, Bytes> = shipped_files.into_iter().collect();
    println!("\n{}", block::inspect_report(&encoded.meta, &files)?);
    if let Some(dir) = &args.write_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, bytes) in &files {
            let path = dir.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        println!("wrote the shipped block to {}", dir.display());
    }
    Ok(())
}

/// The order the shipped writer sorts series in: metric name, then the whole label set.
fn series_order(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    a.metric_name().cmp(b.metric_name()).then_with(|| a.cmp(b))
}

fn descriptor() -> BlockDescriptor {
    BlockDescriptor {
        ulid: ulid::Ulid::from_parts(workload::START_MS as u64, 42),
        tenant: "study".to_string(),
        min_time: workload::START_MS - workload::MAX_JITTER_MS,
        max_time: i64::MAX,
        source_ingester: "ingester-0".to_string(),
    }
}

/// Fails unless `decoded` holds exactly `expected` (same order, same bits).
fn verify(layout: &str, expected: &[SeriesSamples], decoded: &[SeriesSamples]) -> Result<()> {
    ensure!(
        expected.len() == decoded.len(),
        "{layout}: {} series written, {} read back",
        expected.len(),
        decoded.len()
    );
    for (want, got) in expected.iter().zip(decoded) {
        if !want.same_bits(got) {
            let first_difference = want
                .values
                .iter()
                .zip(&got.values)
                .zip(want.timestamps.iter().zip(&got.timestamps))
                .position(|((a, b), (t, u))| a.to_bits() != b.to_bits() || t != u);
            bail!(
                "{layout}: series {} does not read back bit-exactly (first difference at sample {:?}; {} vs {} samples)",
                want.labels,
                first_difference,
                want.values.len(),
                got.values.len()
            );
        }
    }
    Ok(())
}

/// One layout's sizes.
#[derive(Debug)]
struct Measured {
    name: String,
    total: u64,
    files: Vec<(String, u64)>,
    /// (file, column, compressed bytes over all row groups)
    columns: Vec<(String, String, i64)>,
    encoded_in: std::time::Duration,
}

impl Measured {
    fn new(
        name: &str,
        files: &[(String, Bytes)],
        _samples: usize,
        encoded_in: std::time::Duration,
    ) -> Result<Self> {
        let mut columns = Vec::new();
        for (file, bytes) in files.iter().filter(|(n, _)| n.ends_with(".parquet")) {
            let reader = SerializedFileReader::new(bytes.clone())
                .with_context(|| format!("{name}: {file}"))?;
            let metadata = reader.metadata();
            let schema = metadata.file_metadata().schema_descr();
            for c in 0..schema.num_columns() {
                let compressed: i64 = metadata
                    .row_groups()
                    .iter()
                    .map(|rg| rg.column(c).compressed_size())
                    .sum();
                columns.push((file.clone(), schema.column(c).path().string(), compressed));
            }
        }
        Ok(Self {
            name: name.to_string(),
            total: files.iter().map(|(_, b)| b.len() as u64).sum(),
            files: files
                .iter()
                .map(|(n, b)| (n.clone(), b.len() as u64))
                .collect(),
            columns,
            encoded_in,
        })
    }
}

/// The synthetic workload.
mod workload {
    use super::*;

    /// 2023-11-14T22:00:00Z, a 2 h boundary.
    pub(super) const START_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 7_200_000;
    pub(super) const MAX_JITTER_MS: i64 = 1_000;
    /// Go's `math.NaN()`, what a summary with no observations exposes.
    const GO_NAN: u64 = 0x7ff8_0000_0000_0001;
    /// Prometheus' staleness marker.
    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    #[derive(Debug)]
    pub(super) struct Config {
        pub(super) hosts: usize,
        pub(super) scrapes: usize,
        pub(super) interval_ms: i64,
        pub(super) jitter_ms: i64,
    }

    /// splitmix64: small, deterministic, good enough for synthetic data.
    #[derive(Debug)]
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Uniform in [low, high].
        fn between(&mut self, low: i64, high: i64) -> i64 {
            low + (self.next() % ((high - low + 1) as u64)) as i64
        }
        fn chance(&mut self, p: f64) -> bool {
            self.unit() < p
        }
    }

    /// How a series' values evolve. Decimal kinds hold an integer `m` and expose `m / 10^scale`,
    /// the double Prometheus gets when it parses the exposition text.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        /// Monotonic; each scrape adds a uniform integer in [low, high] (0 with probability idle).
        Counter {
            low: i64,
            high: i64,
            idle: f64,
            scale: u8,
        },
        /// Random walk of steps in [-step, step] times `unit`, kept in [min, max].
        Gauge {
            start: i64,
            step: i64,
            unit: i64,
            min: i64,
            max: i64,
            scale: u8,
        },
        Constant(f64),
        /// 0/1 that rarely flips.
        Flag {
            on: bool,
        },
        /// Full-precision floats around `magnitude` (durations, ratios).
        Noisy {
            magnitude: f64,
        },
        /// A float accumulator (histogram `_sum`, GC seconds).
        NoisyCounter {
            mean: f64,
        },
        /// Wall clock in seconds with nanoseconds, like `node_time_seconds`.
        Clock,
    }

    #[derive(Debug)]
    struct SeriesSpec {
        labels: Vec<(String, String)>,
        kind: Kind,
    }

    fn spec(name: &str, labels: &[(&str, String)], kind: Kind) -> SeriesSpec {
        let mut all = vec![(METRIC_NAME.to_string(), name.to_string())];
        all.extend(labels.iter().map(|(n, v)| (n.to_string(), v.clone())));
        SeriesSpec { labels: all, kind }
    }

    fn counter(low: i64, high: i64) -> Kind {
        Kind::Counter {
            low,
            high,
            idle: 0.0,
            scale: 0,
        }
    }

    fn bytes_gauge(rng: &mut Rng, max_pages: i64, unit: i64) -> Kind {
        let start = rng.between(max_pages / 10, max_pages / 2);
        Kind::Gauge {
            start,
            step: rng.between(0, 64),
            unit,
            min: 0,
            max: max_pages,
            scale: 0,
        }
    }

    fn node_exporter(rng: &mut Rng) -> Vec<SeriesSpec> {
        let mut out = Vec::new();
        let modes = [
            ("idle", 1200, 1500),
            ("iowait", 0, 30),
            ("irq", 0, 5),
            ("nice", 0, 2),
            ("softirq", 0, 20),
            ("steal", 0, 0),
            ("system", 20, 100),
            ("user", 50, 250),
        ];
        for cpu in 0..8 {
            for (mode, low, high) in modes {
                out.push(spec(
                    "node_cpu_seconds_total",
                    &[("cpu", cpu.to_string()), ("mode", mode.to_string())],
                    Kind::Counter {
                        low,
                        high,
                        idle: 0.0,
                        scale: 2,
                    },
                ));
            }
        }
        let memory = [
            "MemTotal",
            "MemFree",
            "MemAvailable",
            "Buffers",
            "Cached",
            "SwapCached",
            "Active",
            "Inactive",
            "Active_anon",
            "Inactive_anon",
            "Active_file",
            "Inactive_file",
            "Unevictable",
            "Mlocked",
            "SwapTotal",
            "SwapFree",
            "Dirty",
            "Writeback",
            "AnonPages",
            "Mapped",
            "Shmem",
            "KReclaimable",
            "Slab",
            "SReclaimable",
            "SUnreclaim",
            "KernelStack",
            "PageTables",
            "NFS_Unstable",
            "Bounce",
            "WritebackTmp",
            "CommitLimit",
            "Committed_AS",
            "VmallocTotal",
            "VmallocUsed",
            "VmallocChunk",
            "Percpu",
            "HardwareCorrupted",
            "AnonHugePages",
            "ShmemHugePages",
            "ShmemPmdMapped",
            "FileHugePages",
            "HugePages_Total",
            "HugePages_Free",
            "Hugepagesize",
            "DirectMap4k",
            "DirectMap2M",
            "DirectMap1G",
        ];
        for (i, name) in memory.iter().enumerate() {
            let kind = match i % 5 {
                0 => Kind::Constant((rng.between(1, 64) << 30) as f64),
                1 => Kind::Constant(0.0),
                _ => bytes_gauge(rng, 4_000_000, 1024),
            };
            out.push(spec(&format!("node_memory_{name}_bytes"), &[], kind));
        }
        let mounts = [
            ("/dev/nvme0n1p2", "ext4", "/"),
            ("/dev/nvme0n1p1", "vfat", "/boot/efi"),
            ("/dev/nvme1n1", "xfs", "/var/lib/data"),
            ("tmpfs", "tmpfs", "/run"),
            ("tmpfs", "tmpfs", "/tmp"),
        ];
        for (device, fstype, mountpoint) in mounts {
            let labels = [
                ("device", device.to_string()),
                ("fstype", fstype.to_string()),
                ("mountpoint", mountpoint.to_string()),
            ];
            let size_blocks = rng.between(1 << 18, 1 << 26);
            out.push(spec(
                "node_filesystem_size_bytes",
                &labels,
                Kind::Constant((size_blocks * 4096) as f64),
            ));
            for name in ["node_filesystem_avail_bytes", "node_filesystem_free_bytes"] {
                out.push(spec(name, &labels, bytes_gauge(rng, size_blocks, 4096)));
            }
            out.push(spec(
                "node_filesystem_files",
                &labels,
                Kind::Constant(rng.between(1 << 16, 1 << 24) as f64),
            ));
            out.push(spec(
                "node_filesystem_files_free",
                &labels,
                bytes_gauge(rng, 1 << 22, 1),
            ));
            out.push(spec(
                "node_filesystem_readonly",
                &labels,
                Kind::Constant(0.0),
            ));
            out.push(spec(
                "node_filesystem_device_error",
                &labels,
                Kind::Constant(0.0),
            ));
        }
        for device in ["eth0", "eth1", "lo", "docker0"] {
            let labels = [("device", device.to_string())];
            for direction in ["receive", "transmit"] {
                out.push(spec(
                    &format!("node_network_{direction}_bytes_total"),
                    &labels,
                    counter(10_000, 5_000_000),
                ));
                out.push(spec(
                    &format!("node_network_{direction}_packets_total"),
                    &labels,
                    counter(10, 4_000),
                ));
                for name in ["errs", "drop", "fifo", "compressed", "multicast", "frame"] {
                    let kind = Kind::Counter {
                        low: 1,
                        high: 3,
                        idle: 0.995,
                        scale: 0,
                    };
                    out.push(spec(
                        &format!("node_network_{direction}_{name}_total"),
                        &labels,
                        kind,
                    ));
                }
            }
            for (name, value) in [
                ("up", 1.0),
                ("mtu_bytes", 1500.0),
                ("speed_bytes", 1.25e9),
                ("carrier", 1.0),
            ] {
                out.push(spec(
                    &format!("node_network_{name}"),
                    &labels,
                    Kind::Constant(value),
                ));
            }
        }
        for device in ["nvme0n1", "nvme1n1", "sda"] {
            let labels = [("device", device.to_string())];
            for (name, low, high) in [
                ("reads_completed", 0, 400),
                ("reads_merged", 0, 20),
                ("writes_completed", 10, 900),
                ("writes_merged", 0, 300),
                ("read_bytes", 0, 8_000_000),
                ("written_bytes", 40_000, 20_000_000),
                ("discards_completed", 0, 2),
                ("flush_requests", 0, 40),
            ] {
                out.push(spec(
                    &format!("node_disk_{name}_total"),
                    &labels,
                    counter(low, high),
                ));
            }
            for (name, high) in [
                ("read_time", 400),
                ("write_time", 3_000),
                ("io_time", 2_000),
                ("io_time_weighted", 5_000),
                ("discard_time", 3),
            ] {
                let kind = Kind::Counter {
                    low: 0,
                    high,
                    idle: 0.1,
                    scale: 3,
                };
                out.push(spec(
                    &format!("node_disk_{name}_seconds_total"),
                    &labels,
                    kind,
                ));
            }
        }
        for name in ["node_load1", "node_load5", "node_load15"] {
            let kind = Kind::Gauge {
                start: 150,
                step: 20,
                unit: 1,
                min: 0,
                max: 1600,
                scale: 2,
            };
            out.push(spec(name, &[], kind));
        }
        out.push(spec(
            "node_context_switches_total",
            &[],
            counter(50_000, 200_000),
        ));
        out.push(spec("node_intr_total", &[], counter(30_000, 150_000)));
        out.push(spec("node_forks_total", &[], counter(10, 400)));
        out.push(spec(
            "node_procs_running",
            &[],
            Kind::Gauge {
                start: 3,
                step: 2,
                unit: 1,
                min: 1,
                max: 32,
                scale: 0,
            },
        ));
        out.push(spec(
            "node_procs_blocked",
            &[],
            Kind::Gauge {
                start: 0,
                step: 1,
                unit: 1,
                min: 0,
                max: 4,
                scale: 0,
            },
        ));
        out.push(spec(
            "node_boot_time_seconds",
            &[],
            Kind::Constant(1_699_123_456.0),
        ));
        out.push(spec("node_time_seconds", &[], Kind::Clock));
        out.push(spec(
            "node_entropy_available_bits",
            &[],
            Kind::Constant(256.0),
        ));
        out.push(spec(
            "node_filefd_allocated",
            &[],
            Kind::Gauge {
                start: 9000,
                step: 30,
                unit: 1,
                min: 1000,
                max: 100_000,
                scale: 0,
            },
        ));
        out.push(spec(
            "node_filefd_maximum",
            &[],
            Kind::Constant(9_223_372_036_854_775_807.0),
        ));
        for chip in ["platform_coretemp_0", "platform_coretemp_1"] {
            for sensor in ["temp1", "temp2", "temp3"] {
                let kind = Kind::Gauge {
                    start: 450,
                    step: 10,
                    unit: 5,
                    min: 300,
                    max: 900,
                    scale: 1,
                };
                out.push(spec(
                    "node_hwmon_temp_celsius",
                    &[("chip", chip.to_string()), ("sensor", sensor.to_string())],
                    kind,
                ));
            }
        }
        for name in [
            "Tcp_ActiveOpens",
            "Tcp_PassiveOpens",
            "Tcp_CurrEstab",
            "Tcp_InSegs",
            "Tcp_OutSegs",
            "Tcp_RetransSegs",
            "Tcp_InErrs",
            "Tcp_OutRsts",
            "Udp_InDatagrams",
            "Udp_OutDatagrams",
            "Udp_InErrors",
            "Udp_NoPorts",
            "Udp_RcvbufErrors",
            "Udp_SndbufErrors",
            "Icmp_InMsgs",
            "Icmp_OutMsgs",
            "Icmp_InErrors",
            "Ip_Forwarding",
            "Ip6_InOctets",
            "Ip6_OutOctets",
            "IpExt_InOctets",
            "IpExt_OutOctets",
            "TcpExt_ListenDrops",
            "TcpExt_ListenOverflows",
            "TcpExt_SyncookiesFailed",
            "TcpExt_SyncookiesRecv",
            "TcpExt_SyncookiesSent",
            "TcpExt_TCPSynRetrans",
            "TcpExt_TCPTimeouts",
            "TcpExt_TCPOFOQueue",
        ] {
            let kind = match name {
                "Tcp_CurrEstab" => Kind::Gauge {
                    start: 120,
                    step: 5,
                    unit: 1,
                    min: 0,
                    max: 10_000,
                    scale: 0,
                },
                "Ip_Forwarding" => Kind::Constant(1.0),
                n if n.contains("Octets") => counter(100_000, 9_000_000),
                n if n.contains("Err")
                    || n.contains("Drops")
                    || n.contains("Overflows")
                    || n.contains("Syncookies") =>
                {
                    Kind::Counter {
                        low: 1,
                        high: 5,
                        idle: 0.99,
                        scale: 0,
                    }
                }
                _ => counter(0, 3_000),
            };
            out.push(spec(&format!("node_netstat_{name}"), &[], kind));
        }
        for (name, low, high) in [
            ("pgpgin", 0, 20_000),
            ("pgpgout", 100, 50_000),
            ("pswpin", 0, 0),
            ("pswpout", 0, 0),
            ("pgfault", 10_000, 900_000),
            ("pgmajfault", 0, 30),
            ("oom_kill", 0, 0),
        ] {
            out.push(spec(
                &format!("node_vmstat_{name}"),
                &[],
                counter(low, high),
            ));
        }
        out.push(spec(
            "node_timex_offset_seconds",
            &[],
            Kind::Noisy { magnitude: 1e-5 },
        ));
        out.push(spec(
            "node_timex_frequency_adjustment_ratio",
            &[],
            Kind::Noisy { magnitude: 1.0 },
        ));
        out.push(spec(
            "node_timex_estimated_error_seconds",
            &[],
            Kind::Gauge {
                start: 400,
                step: 30,
                unit: 1,
                min: 0,
                max: 100_000,
                scale: 6,
            },
        ));
        out.push(spec(
            "node_timex_maxerror_seconds",
            &[],
            Kind::Gauge {
                start: 50_000,
                step: 500,
                unit: 1,
                min: 0,
                max: 16_000_000,
                scale: 6,
            },
        ));
        out.push(spec("node_timex_sync_status", &[], Kind::Constant(1.0)));
        for collector in [
            "arp",
            "bcache",
            "bonding",
            "btrfs",
            "conntrack",
            "cpu",
            "cpufreq",
            "diskstats",
            "dmi",
            "edac",
            "entropy",
            "fibrechannel",
            "filefd",
            "filesystem",
            "hwmon",
            "infiniband",
            "loadavg",
            "meminfo",
            "netclass",
            "netdev",
        ] {
            let labels = [("collector", collector.to_string())];
            out.push(spec(
                "node_scrape_collector_duration_seconds",
                &labels,
                Kind::Noisy { magnitude: 2e-3 },
            ));
            out.push(spec(
                "node_scrape_collector_success",
                &labels,
                Kind::Constant(1.0),
            ));
        }
        out
    }

    fn application(rng: &mut Rng, host: usize) -> Vec<SeriesSpec> {
        let mut out = Vec::new();
        for quantile in ["0", "0.25", "0.5", "0.75", "1"] {
            out.push(spec(
                "go_gc_duration_seconds",
                &[("quantile", quantile.to_string())],
                Kind::Noisy { magnitude: 5e-4 },
            ));
        }
        out.push(spec(
            "go_gc_duration_seconds_sum",
            &[],
            Kind::NoisyCounter { mean: 2e-3 },
        ));
        out.push(spec(
            "go_gc_duration_seconds_count",
            &[],
            Kind::Counter {
                low: 0,
                high: 3,
                idle: 0.3,
                scale: 0,
            },
        ));
        out.push(spec(
            "go_goroutines",
            &[],
            Kind::Gauge {
                start: 80,
                step: 6,
                unit: 1,
                min: 10,
                max: 5000,
                scale: 0,
            },
        ));
        out.push(spec(
            "go_threads",
            &[],
            Kind::Gauge {
                start: 14,
                step: 1,
                unit: 1,
                min: 4,
                max: 64,
                scale: 0,
            },
        ));
        out.push(spec(
            "go_info",
            &[("version", "go1.21.4".to_string())],
            Kind::Constant(1.0),
        ));
        for name in [
            "alloc_bytes",
            "buck_hash_sys_bytes",
            "gc_sys_bytes",
            "heap_alloc_bytes",
            "heap_idle_bytes",
            "heap_inuse_bytes",
            "heap_objects",
            "heap_released_bytes",
            "heap_sys_bytes",
            "mcache_inuse_bytes",
            "mcache_sys_bytes",
            "mspan_inuse_bytes",
            "mspan_sys_bytes",
            "next_gc_bytes",
            "other_sys_bytes",
            "stack_inuse_bytes",
            "stack_sys_bytes",
            "sys_bytes",
        ] {
            out.push(spec(
                &format!("go_memstats_{name}"),
                &[],
                bytes_gauge(rng, 1 << 24, 8),
            ));
        }
        for (name, low, high) in [
            ("alloc_bytes_total", 100_000, 90_000_000),
            ("frees_total", 1_000, 900_000),
            ("mallocs_total", 1_000, 900_000),
            ("lookups_total", 0, 0),
        ] {
            out.push(spec(
                &format!("go_memstats_{name}"),
                &[],
                counter(low, high),
            ));
        }
        out.push(spec("go_memstats_last_gc_time_seconds", &[], Kind::Clock));
        out.push(spec(
            "go_memstats_gc_cpu_fraction",
            &[],
            Kind::Noisy { magnitude: 1e-4 },
        ));
        out.push(spec(
            "process_cpu_seconds_total",
            &[],
            Kind::Counter {
                low: 1,
                high: 90,
                idle: 0.0,
                scale: 2,
            },
        ));
        out.push(spec("process_max_fds", &[], Kind::Constant(1_048_576.0)));
        out.push(spec(
            "process_open_fds",
            &[],
            Kind::Gauge {
                start: 40,
                step: 3,
                unit: 1,
                min: 8,
                max: 5000,
                scale: 0,
            },
        ));
        out.push(spec(
            "process_resident_memory_bytes",
            &[],
            bytes_gauge(rng, 1 << 20, 4096),
        ));
        out.push(spec(
            "process_virtual_memory_bytes",
            &[],
            bytes_gauge(rng, 1 << 22, 4096),
        ));
        out.push(spec(
            "process_virtual_memory_max_bytes",
            &[],
            Kind::Constant(1.8446744073709552e19),
        ));
        out.push(spec(
            "process_start_time_seconds",
            &[],
            Kind::Constant((1_699_999_000_00 + host as i64) as f64 / 100.0),
        ));
        let handlers = [
            "/api/v1/query",
            "/api/v1/push",
            "/metrics",
            "/-/healthy",
            "/api/v1/series",
            "/ui",
        ];
        for handler in handlers {
            for (code, low, high, idle) in [
                ("200", 10, 900, 0.0),
                ("404", 1, 3, 0.9),
                ("500", 1, 2, 0.98),
            ] {
                let labels = [
                    ("handler", handler.to_string()),
                    ("code", code.to_string()),
                    ("method", "GET".to_string()),
                ];
                out.push(spec(
                    "http_requests_total",
                    &labels,
                    Kind::Counter {
                        low,
                        high,
                        idle,
                        scale: 0,
                    },
                ));
            }
        }
        let buckets = [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ];
        for handler in &handlers[..4] {
            let mut high = 5;
            for le in buckets {
                high += 60;
                let labels = [("handler", handler.to_string()), ("le", le.to_string())];
                out.push(spec(
                    "http_request_duration_seconds_bucket",
                    &labels,
                    counter(high / 2, high),
                ));
            }
            let labels = [("handler", handler.to_string())];
            out.push(spec(
                "http_request_duration_seconds_sum",
                &labels,
                Kind::NoisyCounter { mean: 30.0 },
            ));
            out.push(spec(
                "http_request_duration_seconds_count",
                &labels,
                counter(high / 2, high),
            ));
        }
        let sizes = [
            "100", "1000", "10000", "100000", "1e+06", "1e+07", "1e+08", "+Inf",
        ];
        for handler in &handlers[..4] {
            let mut high = 3;
            for le in sizes {
                high += 80;
                let labels = [("handler", handler.to_string()), ("le", le.to_string())];
                out.push(spec(
                    "http_response_size_bytes_bucket",
                    &labels,
                    counter(high / 2, high),
                ));
            }
            let labels = [("handler", handler.to_string())];
            out.push(spec(
                "http_response_size_bytes_sum",
                &labels,
                counter(10_000, 5_000_000),
            ));
            out.push(spec(
                "http_response_size_bytes_count",
                &labels,
                counter(high / 2, high),
            ));
        }
        out.push(spec(
            "app_queue_length",
            &[],
            Kind::Gauge {
                start: 10,
                step: 4,
                unit: 1,
                min: 0,
                max: 1000,
                scale: 0,
            },
        ));
        out.push(spec(
            "app_cache_hit_ratio",
            &[],
            Kind::Noisy { magnitude: 0.6 },
        ));
        for pod in 0..6 {
            out.extend(pod_series(&format!("web-{host}-{pod}"), host));
        }
        out
    }

    fn pod_series(pod: &str, host: usize) -> Vec<SeriesSpec> {
        let namespace = ("namespace", "shop".to_string());
        let pod_label = ("pod", pod.to_string());
        let mut out = Vec::new();
        for phase in ["Pending", "Running", "Succeeded", "Failed", "Unknown"] {
            let labels = [
                namespace.clone(),
                pod_label.clone(),
                ("phase", phase.to_string()),
            ];
            out.push(spec(
                "kube_pod_status_phase",
                &labels,
                Kind::Flag {
                    on: phase == "Running",
                },
            ));
        }
        out.push(spec(
            "kube_pod_container_status_restarts_total",
            &[
                namespace.clone(),
                pod_label.clone(),
                ("container", "web".to_string()),
            ],
            Kind::Counter {
                low: 1,
                high: 1,
                idle: 0.999,
                scale: 0,
            },
        ));
        let info = [
            namespace,
            pod_label,
            ("node", format!("host-{host:02}")),
            (
                "pod_ip",
                format!("10.{host}.{}.{}", pod.len(), host * 7 % 250),
            ),
            ("uid", format!("8c1f{host:04}-{pod}")),
            ("created_by_kind", "ReplicaSet".to_string()),
        ];
        out.push(spec("kube_pod_info", &info, Kind::Constant(1.0)));
        out
    }

    /// When a series exists within the block.
    #[derive(Clone, Copy, Debug)]
    enum Life {
        Always,
        /// Ends with a staleness marker at this scrape (the pod went away).
        StaleAt(usize),
        /// Appears at this scrape.
        From(usize),
    }

    /// Generates the workload, in no particular order (the writer sorts).
    pub(super) fn generate(config: &Config) -> Vec<SeriesSamples> {
        let mut out = Vec::new();
        let mut rng = Rng(0x5eed);
        for host in 0..config.hosts {
            let mut targets = vec![
                (
                    "node",
                    format!("host-{host:02}:9100"),
                    node_exporter(&mut rng),
                    Vec::new(),
                ),
                (
                    "app",
                    format!("host-{host:02}:8080"),
                    application(&mut rng, host),
                    Vec::new(),
                ),
            ];
            // A pod replaced mid-block on host 1: its series go stale, the new pod's appear.
            let half = config.scrapes / 2;
            if host == 1 {
                let lives = &mut targets[1].3;
                for s in pod_series("web-1-old", host) {
                    lives.push((s, Life::StaleAt(half)));
                }
                for s in pod_series("web-1-new", host) {
                    lives.push((s, Life::From(half + 1)));
                }
            }
            for (target_index, (job, instance, specs, extra)) in targets.into_iter().enumerate() {
                let phase = rng.between(0, config.interval_ms - 1);
                // Host 3's application target misses one scrape.
                let missed = (host == 3 && target_index == 1).then_some(config.scrapes / 3);
                let timestamps: Vec<Option<i64>> = (0..config.scrapes)
                    .map(|i| {
                        let jitter = rng.between(-config.jitter_ms, config.jitter_ms);
                        (Some(i) != missed)
                            .then_some(START_MS + phase + i as i64 * config.interval_ms + jitter)
                    })
                    .collect();
                let all = specs.into_iter().map(|s| (s, Life::Always)).chain(extra);
                for (spec, life) in all {
                    let mut labels = spec.labels.clone();
                    labels.push(("job".to_string(), job.to_string()));
                    labels.push(("instance".to_string(), instance.clone()));
                    let mut series = SeriesSamples {
                        labels: Labels::from_pairs(labels),
                        ..SeriesSamples::default()
                    };
                    let mut state = State::new(spec.kind, &mut rng);
                    // A process restart on host 5 resets its counters.
                    let reset = (host == 5 && job == "app").then_some(config.scrapes / 3);
                    for (i, timestamp) in timestamps.iter().enumerate() {
                        if Some(i) == reset {
                            state = State::new(spec.kind, &mut rng);
                        }
                        let value = state.next(spec.kind, &mut rng, timestamp.unwrap_or(0));
                        let Some(timestamp) = *timestamp else {
                            continue;
                        };
                        match life {
                            Life::StaleAt(at) if i > at => break,
                            Life::StaleAt(at) if i == at => {
                                series.timestamps.push(timestamp);
                                series.values.push(f64::from_bits(STALE_NAN));
                                continue;
                            }
                            Life::From(from) if i < from => continue,
                            _ => {}
                        }
                        // Host 2's GC summary has seen no GC during the first 40 scrapes.
                        let value = if host == 2
                            && i < 40
                            && spec.labels[0].1 == "go_gc_duration_seconds"
                        {
                            f64::from_bits(GO_NAN)
                        } else {
                            value
                        };
                        series.timestamps.push(timestamp);
                        series.values.push(value);
                    }
                    out.push(series);
                }
            }
        }
        out
    }

    /// A series' running state.
    #[derive(Debug)]
    struct State {
        integer: i64,
        float: f64,
        on: bool,
    }

    impl State {
        fn new(kind: Kind, rng: &mut Rng) -> Self {
            let integer = match kind {
                Kind::Counter { high, .. } => rng.between(0, 1_000_000) * (high + 1),
                Kind::Gauge { start, unit, .. } => start * unit,
                _ => 0,
            };
            let on = matches!(kind, Kind::Flag { on: true });
            Self {
                integer,
                float: rng.unit() * 1000.0,
                on,
            }
        }

        fn next(&mut self, kind: Kind, rng: &mut Rng, timestamp: i64) -> f64 {
            match kind {
                Kind::Counter {
                    low,
                    high,
                    idle,
                    scale,
                } => {
                    if !rng.chance(idle) {
                        self.integer += rng.between(low, high);
                    }
                    decimal(self.integer, scale)
                }
                Kind::Gauge {
                    step,
                    unit,
                    min,
                    max,
                    scale,
                    ..
                } => {
                    self.integer = (self.integer + rng.between(-step, step) * unit)
                        .clamp(min * unit, max * unit);
                    decimal(self.integer, scale)
                }
                Kind::Constant(value) => value,
                Kind::Flag { .. } => {
                    if rng.chance(0.002) {
                        self.on = !self.on;
                    }
                    if self.on {
                        1.0
                    } else {
                        0.0
                    }
                }
                Kind::Noisy { magnitude } => magnitude * (0.2 + rng.unit()),
                Kind::NoisyCounter { mean } => {
                    self.float += mean * 2.0 * rng.unit();
                    self.float
                }
                Kind::Clock => (timestamp * 1_000_000 + rng.between(0, 999_999)) as f64 / 1e9,
            }
        }
    }

    /// `integer / 10^scale`: the double parsing the decimal text gives.
    fn decimal(integer: i64, scale: u8) -> f64 {
        integer as f64 / 10f64.powi(i32::from(scale))
    }

    /// Prints what kind of values the workload holds.
    pub(super) fn describe(series: &[SeriesSamples]) {
        let mut decimal_series = 0;
        let mut float_samples = 0usize;
        let mut scales = [0usize; 16];
        for s in series {
            if let Some(scale) = choose_scale(&s.values) {
                if std::env::var_os("STUDY_DEBUG").is_some() && scale >= 9 {
                    let exact = s
                        .values
                        .iter()
                        .filter(|&&v| scaled_value(v, scale).is_some())
                        .count();
                    println!(
                        "  scale {scale}: {} exact {exact}/{}",
                        s.labels,
                        s.values.len()
                    );
                }
                decimal_series += 1;
                scales[usize::from(scale)] += 1;
                float_samples += s
                    .values
                    .iter()
                    .filter(|&&v| scaled_value(v, scale).is_none())
                    .count();
            } else {
                if std::env::var_os("STUDY_DEBUG").is_some() {
                    let exact0 = s
                        .values
                        .iter()
                        .filter(|&&v| scaled_value(v, 0).is_some())
                        .count();
                    println!(
                        "  float: {} exact at 0: {exact0}/{} {:?}",
                        s.labels,
                        s.values.len(),
                        &s.values[..3]
                    );
                }
                float_samples += s.values.len();
            }
        }
        let samples: usize = series.iter().map(|s| s.values.len()).sum();
        let scales: Vec<String> = scales
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        println!(
            "values: {decimal_series} of {} series decimal-exact (series per scale {}); {:.1} % of samples stored as floats",
            series.len(),
            scales.join(" "),
            100.0 * float_samples as f64 / samples as f64
        );
    }
}

/// Candidate layouts, written with the same Parquet settings as the shipped writer so that
/// only the layout differs.
mod layouts {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Time {
        /// A `timestamp` column on every sample row.
        PerRow,
        /// `scrape` on sample rows, timestamps once per group in `timestamps.parquet`.
        Grouped { share_subsets: bool },
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Values {
        /// One float64 `value` column.
        Float(Encoding),
        /// `value_int` (value × 10^scale) and `value_float`; the integers as given, absolute or
        /// as the difference to the series' previous integer.
        Split {
            per_series_delta: bool,
            ints: Encoding,
        },
    }

    #[derive(Clone, Debug)]
    pub(super) struct Layout {
        pub(super) name: String,
        time: Time,
        values: Values,
        page_rows: usize,
        zstd_level: i32,
    }

    fn layout(name: &str, time: Time, values: Values) -> Layout {
        let defaults = EncodeOptions::default();
        Layout {
            name: name.to_string(),
            time,
            values,
            page_rows: defaults.data_page_rows,
            zstd_level: defaults.zstd_level,
        }
    }

    pub(super) fn candidates(quick: bool) -> Vec<Layout> {
        use Encoding::*;
        let grouped = Time::Grouped {
            share_subsets: true,
        };
        let exact_groups = Time::Grouped {
            share_subsets: false,
        };
        let abs = Values::Split {
            per_series_delta: false,
            ints: DELTA_BINARY_PACKED,
        };
        let delta_bss = Values::Split {
            per_series_delta: true,
            ints: BYTE_STREAM_SPLIT,
        };
        let mut all = vec![
            layout(
                "A  row per sample: timestamp, value f64 (BSS)",
                Time::PerRow,
                Values::Float(BYTE_STREAM_SPLIT),
            ),
            layout(
                "B  d1: split value, timestamps per exact group",
                exact_groups,
                abs,
            ),
        ];
        if quick {
            return all;
        }
        all.extend([
            layout(
                "A  row per sample: timestamp, value f64 (PLAIN)",
                Time::PerRow,
                Values::Float(PLAIN),
            ),
            layout("A+ row per sample, split value", Time::PerRow, abs),
            layout("B+ d1, subsets share groups", grouped, abs),
            layout("B+ d1, subsets, value_int delta (BSS)", grouped, delta_bss),
            layout(
                "B+ d1, subsets, value_int delta (DELTA_BINARY_PACKED)",
                grouped,
                Values::Split {
                    per_series_delta: true,
                    ints: DELTA_BINARY_PACKED,
                },
            ),
            layout(
                "B+ d1, subsets, value_int (BSS)",
                grouped,
                Values::Split {
                    per_series_delta: false,
                    ints: BYTE_STREAM_SPLIT,
                },
            ),
        ]);
        for page_rows in [20_000, 1 << 20] {
            let mut l = layout(
                &format!("B+ delta (BSS), pages of {page_rows} rows"),
                grouped,
                delta_bss,
            );
            l.page_rows = page_rows;
            all.push(l);
        }
        for zstd_level in [1, 6, 9, 12, 15, 19] {
            let mut l = layout(
                &format!("B+ delta (BSS), zstd level {zstd_level}"),
                grouped,
                delta_bss,
            );
            l.zstd_level = zstd_level;
            all.push(l);
        }
        all
    }

    fn properties(
        layout: &Layout,
        encodings: &[(&str, Encoding)],
        dictionary: &[&str],
    ) -> Result<WriterProperties> {
        let mut builder = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(layout.zstd_level)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(1 << 20))
            .set_data_page_row_count_limit(layout.page_rows)
            .set_data_page_size_limit(EncodeOptions::default().data_page_bytes)
            .set_dictionary_enabled(false);
        for (column, encoding) in encodings {
            builder = builder.set_column_encoding(ColumnPath::from(*column), *encoding);
        }
        for column in dictionary {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), true);
        }
        Ok(builder.build())
    }

    fn write(
        layout: &Layout,
        columns: Vec<(&str, ArrayRef)>,
        encodings: &[(&str, Encoding)],
        dictionary: &[&str],
    ) -> Result<Bytes> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(name, array)| {
                    Field::new(*name, array.data_type().clone(), array.null_count() > 0)
                })
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            schema.clone(),
            columns.into_iter().map(|(_, a)| a).collect(),
        )?;
        let options = ArrowWriterOptions::new()
            .with_properties(properties(layout, encodings, dictionary)?)
            .with_skip_arrow_metadata(true);
        let mut writer = ArrowWriter::try_new_with_options(Vec::new(), schema, options)?;
        writer.write(&batch)?;
        Ok(Bytes::from(writer.into_inner()?))
    }

    pub(super) fn encode(layout: &Layout, input: &[SeriesSamples]) -> Result<Vec<(String, Bytes)>> {
        let mut series: Vec<&SeriesSamples> = input.iter().collect();
        series.sort_by(|a, b| series_order(&a.labels, &b.labels));
        let mut label_names: Vec<&str> = series
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.as_str()))
            .collect();
        label_names.sort_by_key(|name| (*name != METRIC_NAME, *name));
        label_names.dedup();

        // Series table.
        let mut series_columns: Vec<(&str, ArrayRef)> = vec![(
            "series_id",
            Arc::new(Int32Array::from_iter_values(0..series.len() as i32)),
        )];
        for name in &label_names {
            let values: StringArray = series.iter().map(|s| s.labels.get(name)).collect();
            series_columns.push((name, Arc::new(values)));
        }
        let split = matches!(layout.values, Values::Split { .. });
        let scales: Vec<Option<u8>> = series
            .iter()
            .map(|s| if split { choose_scale(&s.values) } else { None })
            .collect();
        if split {
            let scale: Int8Array = scales.iter().map(|s| s.map(|k| k as i8)).collect();
            series_columns.push(("scale", Arc::new(scale)));
        }
        let mut files = Vec::new();
        let samples: usize = series.iter().map(|s| s.values.len()).sum();

        // Samples: series_id, time, values.
        let mut series_id = Vec::with_capacity(samples);
        let mut time: Vec<i64> = Vec::with_capacity(samples);
        let mut scrape: Vec<i32> = Vec::with_capacity(samples);
        if let Time::Grouped { share_subsets } = layout.time {
            let refs: Vec<&[i64]> = series.iter().map(|s| s.timestamps.as_slice()).collect();
            let groups = group_timestamps(&refs, share_subsets);
            series_columns.push((
                "ts_group",
                Arc::new(Int32Array::from_iter_values(
                    groups.series_group.iter().map(|&g| g as i32),
                )),
            ));
            for (s, &g) in series.iter().zip(&groups.series_group) {
                let group = &groups.groups[g as usize];
                let mut position = 0usize;
                for t in &s.timestamps {
                    while group[position] < *t {
                        position += 1;
                    }
                    scrape.push(position as i32);
                }
            }
            let mut ts_group = Vec::new();
            let mut ts_scrape = Vec::new();
            let mut ts = Vec::new();
            for (g, group) in groups.groups.iter().enumerate() {
                for (i, t) in group.iter().enumerate() {
                    ts_group.push(g as i32);
                    ts_scrape.push(i as i32);
                    ts.push(*t);
                }
            }
            let columns: Vec<(&str, ArrayRef)> = vec![
                ("ts_group", Arc::new(Int32Array::from(ts_group))),
                ("scrape", Arc::new(Int32Array::from(ts_scrape))),
                ("timestamp", Arc::new(Int64Array::from(ts))),
            ];
            let encodings = [
                ("ts_group", Encoding::DELTA_BINARY_PACKED),
                ("scrape", Encoding::DELTA_BINARY_PACKED),
                ("timestamp", Encoding::DELTA_BINARY_PACKED),
            ];
            files.push((
                "timestamps.parquet".to_string(),
                write(layout, columns, &encodings, &[])?,
            ));
        }
        let mut value_float: Vec<Option<f64>> = Vec::with_capacity(samples);
        let mut value_int: Vec<Option<i64>> = Vec::with_capacity(samples);
        for (id, s) in series.iter().enumerate() {
            series_id.extend(std::iter::repeat_n(id as i32, s.values.len()));
            if layout.time == Time::PerRow {
                time.extend(&s.timestamps);
            }
            let mut previous = 0i64;
            for &v in &s.values {
                match (layout.values, scales[id].and_then(|k| scaled_value(v, k))) {
                    (
                        Values::Split {
                            per_series_delta, ..
                        },
                        Some(m),
                    ) => {
                        value_int.push(Some(if per_series_delta { m - previous } else { m }));
                        previous = m;
                        value_float.push(None);
                    }
                    _ => {
                        if split {
                            value_int.push(None);
                        }
                        value_float.push(Some(v));
                    }
                }
            }
        }
        files.push((
            "series.parquet".to_string(),
            write(
                layout,
                series_columns,
                &[("series_id", Encoding::DELTA_BINARY_PACKED)],
                &label_names,
            )?,
        ));
        let mut columns: Vec<(&str, ArrayRef)> =
            vec![("series_id", Arc::new(Int32Array::from(series_id)))];
        let mut encodings = vec![("series_id", Encoding::DELTA_BINARY_PACKED)];
        match layout.time {
            Time::PerRow => {
                columns.push(("timestamp", Arc::new(Int64Array::from(time))));
                encodings.push(("timestamp", Encoding::DELTA_BINARY_PACKED));
            }
            Time::Grouped { .. } => {
                columns.push(("scrape", Arc::new(Int32Array::from(scrape))));
                encodings.push(("scrape", Encoding::DELTA_BINARY_PACKED));
            }
        }
        match layout.values {
            Values::Float(encoding) => {
                columns.push(("value", Arc::new(Float64Array::from(value_float))));
                encodings.push(("value", encoding));
            }
            Values::Split { ints, .. } => {
                columns.push(("value_int", Arc::new(Int64Array::from(value_int))));
                columns.push(("value_float", Arc::new(Float64Array::from(value_float))));
                encodings.push(("value_int", ints));
                encodings.push(("value_float", Encoding::BYTE_STREAM_SPLIT));
            }
        }
        files.push((
            "samples.parquet".to_string(),
            write(layout, columns, &encodings, &[])?,
        ));
        Ok(files)
    }

    fn read(files: &[(String, Bytes)], name: &str) -> Result<Vec<RecordBatch>> {
        let bytes = files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .with_context(|| format!("no {name}"))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
            .with_batch_size(1 << 16)
            .build()?;
        Ok(reader.collect::<Result<Vec<_>, _>>()?)
    }

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
        batch
            .column_by_name(name)
            .with_context(|| format!("no column {name}"))
    }

    pub(super) fn decode(layout: &Layout, files: &[(String, Bytes)]) -> Result<Vec<SeriesSamples>> {
        let mut series: Vec<SeriesSamples> = Vec::new();
        let mut scales: Vec<Option<u8>> = Vec::new();
        let mut groups_of: Vec<usize> = Vec::new();
        for batch in read(files, "series.parquet")? {
            let schema = batch.schema();
            let label_columns: Vec<(&str, &StringArray)> = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .filter(|(f, _)| !["series_id", "scale", "ts_group"].contains(&f.name().as_str()))
                .map(|(f, c)| {
                    Ok((
                        f.name().as_str(),
                        c.as_string_opt::<i32>().context("label column")?,
                    ))
                })
                .collect::<Result<_>>()?;
            for row in 0..batch.num_rows() {
                let labels = label_columns
                    .iter()
                    .filter(|(_, c)| c.is_valid(row))
                    .map(|(n, c)| (n.to_string(), c.value(row).to_string()));
                series.push(SeriesSamples {
                    labels: Labels::from_pairs(labels),
                    ..SeriesSamples::default()
                });
            }
            if let Ok(scale) = column(&batch, "scale") {
                let scale = scale.as_primitive::<Int8Type>();
                scales.extend(
                    (0..batch.num_rows()).map(|r| scale.is_valid(r).then(|| scale.value(r) as u8)),
                );
            }
            if let Ok(group) = column(&batch, "ts_group") {
                groups_of.extend(
                    group
                        .as_primitive::<Int32Type>()
                        .values()
                        .iter()
                        .map(|&g| g as usize),
                );
            }
        }
        let mut groups: Vec<Vec<i64>> = Vec::new();
        if layout.time != Time::PerRow {
            for batch in read(files, "timestamps.parquet")? {
                let g = column(&batch, "ts_group")?.as_primitive::<Int32Type>();
                let t = column(&batch, "timestamp")?.as_primitive::<Int64Type>();
                for (g, t) in g.values().iter().zip(t.values()) {
                    let g = *g as usize;
                    if groups.len() <= g {
                        groups.resize(g + 1, Vec::new());
                    }
                    groups[g].push(*t);
                }
            }
        }
        let mut previous: Vec<i64> = vec![0; series.len()];
        for batch in read(files, "samples.parquet")? {
            let ids = column(&batch, "series_id")?.as_primitive::<Int32Type>();
            for row in 0..batch.num_rows() {
                let id = ids.value(row) as usize;
                let timestamp = match layout.time {
                    Time::PerRow => column(&batch, "timestamp")?
                        .as_primitive::<Int64Type>()
                        .value(row),
                    Time::Grouped { .. } => {
                        let scrape = column(&batch, "scrape")?
                            .as_primitive::<Int32Type>()
                            .value(row);
                        groups[groups_of[id]][scrape as usize]
                    }
                };
                let value = match layout.values {
                    Values::Float(_) => column(&batch, "value")?
                        .as_primitive::<Float64Type>()
                        .value(row),
                    Values::Split {
                        per_series_delta, ..
                    } => {
                        let ints = column(&batch, "value_int")?.as_primitive::<Int64Type>();
                        if ints.is_valid(row) {
                            let m = if per_series_delta {
                                previous[id] + ints.value(row)
                            } else {
                                ints.value(row)
                            };
                            previous[id] = m;
                            let scale = scales[id].context("integer value without a scale")?;
                            unscaled_value(m, scale).context("scale out of range")?
                        } else {
                            column(&batch, "value_float")?
                                .as_primitive::<Float64Type>()
                                .value(row)
                        }
                    }
                };
                series[id].timestamps.push(timestamp);
                series[id].values.push(value);
            }
        }
        let _ = DataType::Int32;
        Ok(series)
    }
}
