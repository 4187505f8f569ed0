//! Block format study: encodes one deterministic node_exporter-like workload with several
//! candidate Parquet layouts, checks that each reads back bit-exactly, and prints bytes per
//! sample per layout, per file and per column. `docs/block-format.md` records the figures and
//! the layout chosen. The chosen layout is measured through the API that ships it,
//! `strata_shared::block::encode_block`, so the figures cannot drift from the code.
//!
//! ```text
//! cargo run -p strata-bench --bin block_study                 # 8 hosts, a 2 h block
//! cargo run -p strata-bench --bin block_study -- --hours 8 --jitter-ms 0
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use clap::Parser;
use parquet::file::metadata::ParquetMetaDataReader;
use strata_shared::block::{self, BlockDescriptor, EncodeOptions, SeriesSamples};
use strata_shared::labels::Labels;

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
    /// Only the two layouts the issue names (A and B) besides the shipped one.
    #[arg(long)]
    quick: bool,
    /// Only candidate layouts whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// Print every column's compressed bytes for every layout, not only the shipped one.
    #[arg(long)]
    columns: bool,
    /// zstd level of the candidate layouts.
    #[arg(long, default_value_t = EncodeOptions::default().zstd_level)]
    zstd_level: i32,
    /// zstd levels to encode the shipped layout at, for the size/time trade-off.
    #[arg(long, value_delimiter = ',', default_value = "1,3,9,12,15,16,19")]
    levels: Vec<i32>,
    /// Write the shipped block's files (meta.json included) into this directory.
    #[arg(long)]
    write_dir: Option<PathBuf>,
    /// Write every sample as `series_id TAB labels TAB timestamp TAB value bits (hex)`, in
    /// block order, to check what other readers (DuckDB, DataFusion) make of the block.
    #[arg(long)]
    expected_tsv: Option<PathBuf>,
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
        "workload: {} hosts x {} h, {} s scrapes, jitter ±{} ms: {} series, {samples} samples ({:.1?})",
        args.hosts,
        args.hours,
        args.interval_seconds,
        args.jitter_ms,
        series.len(),
        started.elapsed()
    );
    workload::describe(&series);

    // What every layout must read back: the input in block order.
    let mut expected = series.clone();
    expected.sort_by(|a, b| series_order(&a.labels, &b.labels));

    let mut results = Vec::new();
    let candidates = layouts::candidates(args.quick, args.zstd_level);
    for layout in candidates
        .iter()
        .filter(|l| args.only.as_deref().is_none_or(|o| l.name.contains(o)))
    {
        let started = Instant::now();
        let files = layouts::encode(layout, &series)?;
        let encoded_in = started.elapsed();
        verify(&layout.name, &expected, &layouts::decode(layout, &files)?)?;
        results.push(Measured::new(&layout.name, &files, encoded_in)?);
    }

    let descriptor = descriptor(args.hours);
    let started = Instant::now();
    let encoded = block::encode_block(&descriptor, series.clone())?;
    let encoded_in = started.elapsed();
    let mut files: HashMap<String, Bytes> = encoded.files.iter().cloned().collect();
    verify("shipped", &expected, &block::decode_block(&files)?)?;
    let meta_json = Bytes::from(encoded.meta.to_json_bytes()?);
    files.insert(block::META_FILE.to_string(), meta_json.clone());
    let mut shipped_files = encoded.files.clone();
    shipped_files.push((block::META_FILE.to_string(), meta_json));
    results.push(Measured::new(
        "shipped: block::encode_block",
        &shipped_files,
        encoded_in,
    )?);

    print_results(&results, samples, args.columns);
    print_levels(&args.levels, &descriptor, &series, samples)?;
    println!("\n{}", block::inspect_report(&encoded.meta, &files)?);
    if let Some(dir) = &args.write_dir {
        write_block(dir, &files)?;
    }
    if let Some(path) = &args.expected_tsv {
        write_expected(path, &expected)?;
    }
    Ok(())
}

/// The order the shipped writer sorts series in: metric name, then the whole label set.
fn series_order(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    a.metric_name().cmp(b.metric_name()).then_with(|| a.cmp(b))
}

fn descriptor(hours: i64) -> BlockDescriptor {
    BlockDescriptor {
        ulid: ulid::Ulid::from_parts(workload::START_MS as u64, 42),
        tenant: "study".to_string(),
        min_time: workload::START_MS,
        max_time: workload::START_MS + hours * 3_600_000,
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
                "{layout}: {} (read back as {}) differs at sample {first_difference:?}",
                want.labels,
                got.labels
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
    encoded_in: Duration,
}

impl Measured {
    fn new(name: &str, files: &[(String, Bytes)], encoded_in: Duration) -> Result<Self> {
        let mut columns = Vec::new();
        for (file, bytes) in files.iter().filter(|(n, _)| n.ends_with(".parquet")) {
            let metadata = ParquetMetaDataReader::new()
                .parse_and_finish(bytes)
                .with_context(|| format!("{name}: {file}"))?;
            let schema = metadata.file_metadata().schema_descr();
            for c in 0..schema.num_columns() {
                let compressed = metadata
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

fn print_results(results: &[Measured], samples: usize, all_columns: bool) {
    let per_sample = |bytes: f64| bytes / samples as f64;
    println!(
        "\n{:<50} {:>9} {:>12}  per file, B/sample",
        "layout", "B/sample", "bytes"
    );
    for (i, result) in results.iter().enumerate() {
        let files: Vec<String> = result
            .files
            .iter()
            .map(|(name, bytes)| format!("{name} {:.4}", per_sample(*bytes as f64)))
            .collect();
        println!(
            "{:<50} {:>9.4} {:>12}  {}  [{:.1?}]",
            result.name,
            per_sample(result.total as f64),
            result.total,
            files.join(", "),
            result.encoded_in,
        );
        if all_columns || i + 1 == results.len() {
            for (file, column, bytes) in &result.columns {
                println!(
                    "      {file:<20} {column:<28} {bytes:>10} B {:>8.4} B/sample",
                    per_sample(*bytes as f64)
                );
            }
        }
    }
}

/// The shipped layout at each zstd level: bytes, and the best of three encode times.
fn print_levels(
    levels: &[i32],
    descriptor: &BlockDescriptor,
    series: &[SeriesSamples],
    samples: usize,
) -> Result<()> {
    println!("\nshipped layout by zstd level (encode times from a debug build: compare only)");
    println!(
        "{:>6} {:>9} {:>12} {:>10}",
        "level", "B/sample", "bytes", "encode"
    );
    for &zstd_level in levels {
        let options = EncodeOptions {
            zstd_level,
            ..EncodeOptions::default()
        };
        let mut best = Duration::MAX;
        let mut bytes = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let encoded = block::encode_block_with(descriptor, series.to_vec(), &options)?;
            best = best.min(started.elapsed());
            bytes = encoded.total_bytes()?;
        }
        let per_sample = bytes as f64 / samples as f64;
        println!("{zstd_level:>6} {per_sample:>9.4} {bytes:>12} {best:>10.1?}");
    }
    Ok(())
}

fn write_block(dir: &PathBuf, files: &HashMap<String, Bytes>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("wrote the shipped block to {}", dir.display());
    Ok(())
}

fn write_expected(path: &PathBuf, expected: &[SeriesSamples]) -> Result<()> {
    use std::io::Write as _;
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (id, s) in expected.iter().enumerate() {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|l| format!("{}={}", l.name, l.value))
            .collect();
        let labels = labels.join("\u{1f}");
        for (t, v) in s.timestamps.iter().zip(&s.values) {
            writeln!(out, "{id}\t{labels}\t{t}\t{:016x}", v.to_bits())?;
        }
    }
    out.flush()?;
    println!("wrote the expected samples to {}", path.display());
    Ok(())
}

/// The synthetic workload: per host, a node_exporter target and an application target
/// (Go runtime, HTTP histograms, a few kube-state-metrics-like pod series), each target with
/// its own scrape phase and ±jitter shared by all its series. Plus what real blocks hold: a
/// pod replaced mid-block (staleness markers, series that start late), a missed scrape, a
/// counter reset, a summary that is NaN until its first observation, and edge values.
mod workload {
    use strata_shared::block::{choose_scale, scaled_value, SeriesSamples, MAX_SCALE};
    use strata_shared::labels::{Labels, METRIC_NAME};

    /// 2023-11-14T22:00:00Z, a 2 h boundary.
    pub(super) const START_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 7_200_000;
    /// Go's `math.NaN()`, what a summary with no observations exposes.
    const GO_NAN: u64 = 0x7ff8_0000_0000_0001;
    /// Prometheus' staleness marker.
    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
    /// What `Kind::Edge` cycles through: signed zeros, infinities, extremes, a NaN payload.
    const EDGE_VALUES: [f64; 10] = [
        -0.0,
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        -1.5,
        1e21,
        f64::from_bits(0xfff8_0000_0000_0000),
    ];

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

    /// How a series' values evolve. Decimal kinds hold an integer `m` and expose
    /// `m / 10^scale`, the double Prometheus gets when it parses the exposition text.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        /// Monotonic; each scrape adds a uniform integer in [low, high], except with
        /// probability `idle`.
        Counter {
            low: i64,
            high: i64,
            idle: f64,
            scale: u8,
        },
        /// Random walk of steps in [-step, step] × unit, kept in [min, max] × unit.
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
        /// Cycles through [`EDGE_VALUES`].
        Edge,
    }

    fn counter(low: i64, high: i64) -> Kind {
        Kind::Counter {
            low,
            high,
            idle: 0.0,
            scale: 0,
        }
    }

    fn rare_counter(idle: f64) -> Kind {
        Kind::Counter {
            low: 1,
            high: 3,
            idle,
            scale: 0,
        }
    }

    fn decimal_counter(low: i64, high: i64, idle: f64, scale: u8) -> Kind {
        Kind::Counter {
            low,
            high,
            idle,
            scale,
        }
    }

    fn gauge(start: i64, step: i64, (min, max): (i64, i64), scale: u8) -> Kind {
        Kind::Gauge {
            start,
            step,
            unit: 1,
            min,
            max,
            scale,
        }
    }

    /// A byte gauge moving in multiples of `unit` (pages, blocks).
    fn bytes_gauge(rng: &mut Rng, max_units: i64, unit: i64) -> Kind {
        Kind::Gauge {
            start: rng.between(max_units / 10, max_units / 2),
            step: rng.between(0, 64),
            unit,
            min: 0,
            max: max_units,
            scale: 0,
        }
    }

    #[derive(Debug)]
    struct SeriesSpec {
        labels: Vec<(String, String)>,
        kind: Kind,
    }

    fn spec(name: &str, labels: &[(&str, &str)], kind: Kind) -> SeriesSpec {
        let mut all = vec![(METRIC_NAME.to_string(), name.to_string())];
        all.extend(labels.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        SeriesSpec { labels: all, kind }
    }

    const CPU_MODES: [(&str, i64, i64); 8] = [
        ("idle", 1200, 1500),
        ("iowait", 0, 30),
        ("irq", 0, 5),
        ("nice", 0, 2),
        ("softirq", 0, 20),
        ("steal", 0, 0),
        ("system", 20, 100),
        ("user", 50, 250),
    ];
    const MEMINFO: [&str; 47] = [
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
    const MOUNTS: [(&str, &str, &str); 5] = [
        ("/dev/nvme0n1p2", "ext4", "/"),
        ("/dev/nvme0n1p1", "vfat", "/boot/efi"),
        ("/dev/nvme1n1", "xfs", "/var/lib/data"),
        ("tmpfs", "tmpfs", "/run"),
        ("tmpfs", "tmpfs", "/tmp"),
    ];
    const DISK_COUNTERS: [(&str, i64, i64); 8] = [
        ("reads_completed", 0, 400),
        ("reads_merged", 0, 20),
        ("writes_completed", 10, 900),
        ("writes_merged", 0, 300),
        ("read_bytes", 0, 8_000_000),
        ("written_bytes", 40_000, 20_000_000),
        ("discards_completed", 0, 2),
        ("flush_requests", 0, 40),
    ];
    const DISK_SECONDS: [(&str, i64); 5] = [
        ("read_time", 400),
        ("write_time", 3_000),
        ("io_time", 2_000),
        ("io_time_weighted", 5_000),
        ("discard_time", 3),
    ];
    const NETSTAT: [&str; 30] = [
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
    ];
    const VMSTAT: [(&str, i64, i64); 7] = [
        ("pgpgin", 0, 20_000),
        ("pgpgout", 100, 50_000),
        ("pswpin", 0, 0),
        ("pswpout", 0, 0),
        ("pgfault", 10_000, 900_000),
        ("pgmajfault", 0, 30),
        ("oom_kill", 0, 0),
    ];
    const COLLECTORS: [&str; 20] = [
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
    ];

    fn node_exporter(rng: &mut Rng) -> Vec<SeriesSpec> {
        let mut out = Vec::new();
        for cpu in ["0", "1", "2", "3", "4", "5", "6", "7"] {
            for (mode, low, high) in CPU_MODES {
                let labels = [("cpu", cpu), ("mode", mode)];
                let kind = decimal_counter(low, high, 0.0, 2);
                out.push(spec("node_cpu_seconds_total", &labels, kind));
            }
        }
        for (i, name) in MEMINFO.iter().enumerate() {
            let kind = match i % 5 {
                0 => Kind::Constant((rng.between(1, 64) << 30) as f64),
                1 => Kind::Constant(0.0),
                _ => bytes_gauge(rng, 4_000_000, 1024),
            };
            out.push(spec(&format!("node_memory_{name}_bytes"), &[], kind));
        }
        for (device, fstype, mountpoint) in MOUNTS {
            let labels = [
                ("device", device),
                ("fstype", fstype),
                ("mountpoint", mountpoint),
            ];
            let blocks = rng.between(1 << 18, 1 << 26);
            let size = Kind::Constant((blocks * 4096) as f64);
            let files = Kind::Constant(rng.between(1 << 16, 1 << 24) as f64);
            out.push(spec("node_filesystem_size_bytes", &labels, size));
            out.push(spec(
                "node_filesystem_avail_bytes",
                &labels,
                bytes_gauge(rng, blocks, 4096),
            ));
            out.push(spec(
                "node_filesystem_free_bytes",
                &labels,
                bytes_gauge(rng, blocks, 4096),
            ));
            out.push(spec("node_filesystem_files", &labels, files));
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
            let labels = [("device", device)];
            for direction in ["receive", "transmit"] {
                let prefix = format!("node_network_{direction}");
                out.push(spec(
                    &format!("{prefix}_bytes_total"),
                    &labels,
                    counter(10_000, 5_000_000),
                ));
                out.push(spec(
                    &format!("{prefix}_packets_total"),
                    &labels,
                    counter(10, 4_000),
                ));
                for name in ["errs", "drop", "fifo", "compressed", "multicast", "frame"] {
                    out.push(spec(
                        &format!("{prefix}_{name}_total"),
                        &labels,
                        rare_counter(0.995),
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
            let labels = [("device", device)];
            for (name, low, high) in DISK_COUNTERS {
                out.push(spec(
                    &format!("node_disk_{name}_total"),
                    &labels,
                    counter(low, high),
                ));
            }
            for (name, high) in DISK_SECONDS {
                let kind = decimal_counter(0, high, 0.1, 3);
                out.push(spec(
                    &format!("node_disk_{name}_seconds_total"),
                    &labels,
                    kind,
                ));
            }
        }
        for name in ["node_load1", "node_load5", "node_load15"] {
            out.push(spec(name, &[], gauge(150, 20, (0, 1600), 2)));
        }
        out.push(spec(
            "node_context_switches_total",
            &[],
            counter(50_000, 200_000),
        ));
        out.push(spec("node_intr_total", &[], counter(30_000, 150_000)));
        out.push(spec("node_forks_total", &[], counter(10, 400)));
        out.push(spec("node_procs_running", &[], gauge(3, 2, (1, 32), 0)));
        out.push(spec("node_procs_blocked", &[], gauge(0, 1, (0, 4), 0)));
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
            gauge(9000, 30, (1000, 100_000), 0),
        ));
        out.push(spec(
            "node_filefd_maximum",
            &[],
            Kind::Constant(9.223_372_036_854_776e18),
        ));
        for chip in ["platform_coretemp_0", "platform_coretemp_1"] {
            for sensor in ["temp1", "temp2", "temp3"] {
                let kind = Kind::Gauge {
                    start: 90,
                    step: 2,
                    unit: 5,
                    min: 60,
                    max: 180,
                    scale: 1,
                };
                let labels = [("chip", chip), ("sensor", sensor)];
                out.push(spec("node_hwmon_temp_celsius", &labels, kind));
            }
        }
        for name in NETSTAT {
            let kind = match name {
                "Tcp_CurrEstab" => gauge(120, 5, (0, 10_000), 0),
                "Ip_Forwarding" => Kind::Constant(1.0),
                n if n.contains("Octets") => counter(100_000, 9_000_000),
                n if ["Err", "Drops", "Overflows", "Syncookies"]
                    .iter()
                    .any(|e| n.contains(e)) =>
                {
                    rare_counter(0.99)
                }
                _ => counter(0, 3_000),
            };
            out.push(spec(&format!("node_netstat_{name}"), &[], kind));
        }
        for (name, low, high) in VMSTAT {
            out.push(spec(
                &format!("node_vmstat_{name}"),
                &[],
                counter(low, high),
            ));
        }
        let timex = "node_timex";
        out.push(spec(
            &format!("{timex}_offset_seconds"),
            &[],
            Kind::Noisy { magnitude: 1e-5 },
        ));
        let ratio = Kind::Noisy { magnitude: 1.0 };
        out.push(spec(
            &format!("{timex}_frequency_adjustment_ratio"),
            &[],
            ratio,
        ));
        let error = gauge(400, 30, (0, 100_000), 6);
        out.push(spec(
            &format!("{timex}_estimated_error_seconds"),
            &[],
            error,
        ));
        let max_error = gauge(50_000, 500, (0, 16_000_000), 6);
        out.push(spec(&format!("{timex}_maxerror_seconds"), &[], max_error));
        out.push(spec(
            &format!("{timex}_sync_status"),
            &[],
            Kind::Constant(1.0),
        ));
        for collector in COLLECTORS {
            let labels = [("collector", collector)];
            let duration = Kind::Noisy { magnitude: 2e-3 };
            out.push(spec(
                "node_scrape_collector_duration_seconds",
                &labels,
                duration,
            ));
            out.push(spec(
                "node_scrape_collector_success",
                &labels,
                Kind::Constant(1.0),
            ));
        }
        out
    }

    const GO_MEMSTATS_GAUGES: [&str; 18] = [
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
    ];
    const GO_MEMSTATS_COUNTERS: [(&str, i64, i64); 4] = [
        ("alloc_bytes_total", 100_000, 90_000_000),
        ("frees_total", 1_000, 900_000),
        ("mallocs_total", 1_000, 900_000),
        ("lookups_total", 0, 0),
    ];
    const HANDLERS: [&str; 6] = [
        "/api/v1/query",
        "/api/v1/push",
        "/metrics",
        "/-/healthy",
        "/api/v1/series",
        "/ui",
    ];
    const DURATION_BUCKETS: [&str; 12] = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    const SIZE_BUCKETS: [&str; 8] = [
        "100", "1000", "10000", "100000", "1e+06", "1e+07", "1e+08", "+Inf",
    ];

    fn application(rng: &mut Rng, host: usize) -> Vec<SeriesSpec> {
        let mut out = Vec::new();
        for quantile in ["0", "0.25", "0.5", "0.75", "1"] {
            let kind = Kind::Noisy { magnitude: 5e-4 };
            out.push(spec(
                "go_gc_duration_seconds",
                &[("quantile", quantile)],
                kind,
            ));
        }
        let gc_sum = Kind::NoisyCounter { mean: 2e-3 };
        out.push(spec("go_gc_duration_seconds_sum", &[], gc_sum));
        out.push(spec(
            "go_gc_duration_seconds_count",
            &[],
            decimal_counter(0, 3, 0.3, 0),
        ));
        out.push(spec("go_goroutines", &[], gauge(80, 6, (10, 5000), 0)));
        out.push(spec("go_threads", &[], gauge(14, 1, (4, 64), 0)));
        out.push(spec(
            "go_info",
            &[("version", "go1.21.4")],
            Kind::Constant(1.0),
        ));
        for name in GO_MEMSTATS_GAUGES {
            out.push(spec(
                &format!("go_memstats_{name}"),
                &[],
                bytes_gauge(rng, 1 << 24, 8),
            ));
        }
        for (name, low, high) in GO_MEMSTATS_COUNTERS {
            out.push(spec(
                &format!("go_memstats_{name}"),
                &[],
                counter(low, high),
            ));
        }
        out.push(spec("go_memstats_last_gc_time_seconds", &[], Kind::Clock));
        let fraction = Kind::Noisy { magnitude: 1e-4 };
        out.push(spec("go_memstats_gc_cpu_fraction", &[], fraction));
        out.push(spec(
            "process_cpu_seconds_total",
            &[],
            decimal_counter(1, 90, 0.0, 2),
        ));
        out.push(spec("process_max_fds", &[], Kind::Constant(1_048_576.0)));
        out.push(spec("process_open_fds", &[], gauge(40, 3, (8, 5000), 0)));
        let resident = bytes_gauge(rng, 1 << 20, 4096);
        out.push(spec("process_resident_memory_bytes", &[], resident));
        let virtual_memory = bytes_gauge(rng, 1 << 22, 4096);
        out.push(spec("process_virtual_memory_bytes", &[], virtual_memory));
        let max_virtual = Kind::Constant(1.844_674_407_370_955_2e19);
        out.push(spec("process_virtual_memory_max_bytes", &[], max_virtual));
        let start = Kind::Constant((169_999_900_000 + host as i64) as f64 / 100.0);
        out.push(spec("process_start_time_seconds", &[], start));
        for handler in HANDLERS {
            for (code, low, high, idle) in [
                ("200", 10, 900, 0.0),
                ("404", 1, 3, 0.9),
                ("500", 1, 2, 0.98),
            ] {
                let labels = [("handler", handler), ("code", code), ("method", "GET")];
                let kind = decimal_counter(low, high, idle, 0);
                out.push(spec("http_requests_total", &labels, kind));
            }
        }
        let histograms = [
            (
                "http_request_duration_seconds",
                &DURATION_BUCKETS[..],
                60,
                true,
            ),
            ("http_response_size_bytes", &SIZE_BUCKETS[..], 80, false),
        ];
        for (name, buckets, step, float_sum) in histograms {
            for handler in &HANDLERS[..4] {
                let mut high = 5;
                for le in buckets {
                    high += step;
                    let labels = [("handler", *handler), ("le", *le)];
                    out.push(spec(
                        &format!("{name}_bucket"),
                        &labels,
                        counter(high / 2, high),
                    ));
                }
                let labels = [("handler", *handler)];
                let sum = match float_sum {
                    true => Kind::NoisyCounter { mean: 30.0 },
                    false => counter(10_000, 5_000_000),
                };
                out.push(spec(&format!("{name}_sum"), &labels, sum));
                out.push(spec(
                    &format!("{name}_count"),
                    &labels,
                    counter(high / 2, high),
                ));
            }
        }
        out.push(spec("app_queue_length", &[], gauge(10, 4, (0, 1000), 0)));
        let hit_ratio = Kind::Noisy { magnitude: 0.6 };
        out.push(spec("app_cache_hit_ratio", &[], hit_ratio));
        for pod in 0..6 {
            out.extend(pod_series(&format!("web-{host}-{pod}"), host));
        }
        if host == 0 {
            out.push(spec("study_edge_values", &[], Kind::Edge));
        }
        out
    }

    fn pod_series(pod: &str, host: usize) -> Vec<SeriesSpec> {
        let mut out = Vec::new();
        for phase in ["Pending", "Running", "Succeeded", "Failed", "Unknown"] {
            let labels = [("namespace", "shop"), ("pod", pod), ("phase", phase)];
            let kind = Kind::Flag {
                on: phase == "Running",
            };
            out.push(spec("kube_pod_status_phase", &labels, kind));
        }
        let labels = [("namespace", "shop"), ("pod", pod), ("container", "web")];
        let restarts = rare_counter(0.999);
        out.push(spec(
            "kube_pod_container_status_restarts_total",
            &labels,
            restarts,
        ));
        let node = format!("host-{host:02}");
        let ip = format!("10.{host}.{}.{}", pod.len(), host * 7 % 250);
        let uid = format!("8c1f{host:04}-{pod}");
        let labels = [
            ("namespace", "shop"),
            ("pod", pod),
            ("node", node.as_str()),
            ("pod_ip", ip.as_str()),
            ("uid", uid.as_str()),
            ("created_by_kind", "ReplicaSet"),
        ];
        out.push(spec("kube_pod_info", &labels, Kind::Constant(1.0)));
        out
    }

    /// When a series exists within the block.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Life {
        Always,
        /// Ends with a staleness marker at this scrape (its pod went away).
        StaleAt(usize),
        /// Appears at this scrape.
        From(usize),
    }

    /// A scrape target: its labels, series, and when its scrapes happened (`None`: missed).
    #[derive(Debug)]
    struct Target {
        job: &'static str,
        instance: String,
        series: Vec<(SeriesSpec, Life)>,
        timestamps: Vec<Option<i64>>,
        /// Counters restart from scratch at this scrape (the process restarted).
        reset_at: Option<usize>,
    }

    /// Generates the workload, in no particular order (the writer sorts).
    pub(super) fn generate(config: &Config) -> Vec<SeriesSamples> {
        let mut rng = Rng(0x5eed);
        let mut out = Vec::new();
        for host in 0..config.hosts {
            let node = node_exporter(&mut rng);
            let mut app: Vec<(SeriesSpec, Life)> = application(&mut rng, host)
                .into_iter()
                .map(|s| (s, Life::Always))
                .collect();
            // A pod replaced mid-block on host 1: its series go stale, the new pod's appear.
            let half = config.scrapes / 2;
            if host == 1 {
                let old = pod_series("web-1-old", host).into_iter();
                app.extend(old.map(|s| (s, Life::StaleAt(half))));
                let new = pod_series("web-1-new", host).into_iter();
                app.extend(new.map(|s| (s, Life::From(half + 1))));
            }
            let targets = [
                Target {
                    job: "node",
                    instance: format!("host-{host:02}:9100"),
                    series: node.into_iter().map(|s| (s, Life::Always)).collect(),
                    timestamps: scrape_times(config, &mut rng, None),
                    reset_at: None,
                },
                Target {
                    job: "app",
                    instance: format!("host-{host:02}:8080"),
                    series: app,
                    // Host 3's application target misses one scrape.
                    timestamps: scrape_times(
                        config,
                        &mut rng,
                        (host == 3).then_some(config.scrapes / 3),
                    ),
                    // Host 5's application restarts a third into the block.
                    reset_at: (host == 5).then_some(config.scrapes / 3),
                },
            ];
            for target in targets {
                for (spec, life) in &target.series {
                    out.push(series(&target, spec, *life, host, &mut rng));
                }
            }
        }
        out
    }

    /// One target's scrape timestamps: its own phase, ±jitter per scrape.
    fn scrape_times(config: &Config, rng: &mut Rng, missed: Option<usize>) -> Vec<Option<i64>> {
        let jitter = config.jitter_ms;
        let phase = rng.between(jitter, config.interval_ms - 1 - jitter);
        (0..config.scrapes)
            .map(|i| {
                let t = START_MS + phase + i as i64 * config.interval_ms;
                let t = t + rng.between(-jitter, jitter);
                (Some(i) != missed).then_some(t)
            })
            .collect()
    }

    fn series(
        target: &Target,
        spec: &SeriesSpec,
        life: Life,
        host: usize,
        rng: &mut Rng,
    ) -> SeriesSamples {
        let mut labels = spec.labels.clone();
        labels.push(("job".to_string(), target.job.to_string()));
        labels.push(("instance".to_string(), target.instance.clone()));
        let mut series = SeriesSamples {
            labels: Labels::from_pairs(labels),
            ..SeriesSamples::default()
        };
        // Host 2's GC summary has seen no collection during the first 40 scrapes.
        let nan_until = match host == 2 && spec.labels[0].1 == "go_gc_duration_seconds" {
            true => 40,
            false => 0,
        };
        let mut state = State::new(spec.kind, rng);
        for (i, timestamp) in target.timestamps.iter().enumerate() {
            if Some(i) == target.reset_at {
                state = State::new(spec.kind, rng);
            }
            let value = state.next(spec.kind, rng, timestamp.unwrap_or_default());
            let Some(timestamp) = *timestamp else {
                continue;
            };
            let value = match life {
                Life::StaleAt(at) if i > at => break,
                Life::StaleAt(at) if i == at => f64::from_bits(STALE_NAN),
                Life::From(from) if i < from => continue,
                _ if i < nan_until => f64::from_bits(GO_NAN),
                _ => value,
            };
            series.timestamps.push(timestamp);
            series.values.push(value);
        }
        series
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
                    let moved = self.integer + rng.between(-step, step) * unit;
                    self.integer = moved.clamp(min * unit, max * unit);
                    decimal(self.integer, scale)
                }
                Kind::Constant(value) => value,
                Kind::Flag { .. } => {
                    if rng.chance(0.002) {
                        self.on = !self.on;
                    }
                    f64::from(u8::from(self.on))
                }
                Kind::Noisy { magnitude } => magnitude * (0.2 + rng.unit()),
                Kind::NoisyCounter { mean } => {
                    self.float += mean * 2.0 * rng.unit();
                    self.float
                }
                Kind::Clock => (timestamp * 1_000_000 + rng.between(0, 999_999)) as f64 / 1e9,
                Kind::Edge => {
                    self.integer += 1;
                    EDGE_VALUES[self.integer as usize % EDGE_VALUES.len()]
                }
            }
        }
    }

    /// `integer / 10^scale`: the double that parsing the decimal text gives.
    fn decimal(integer: i64, scale: u8) -> f64 {
        integer as f64 / 10f64.powi(i32::from(scale))
    }

    /// Prints what kind of values the workload holds, as the shipped writer sees them.
    pub(super) fn describe(series: &[SeriesSamples]) {
        let mut decimal_series = 0;
        let mut float_samples = 0usize;
        let mut scales = [0usize; MAX_SCALE as usize + 1];
        for s in series {
            match choose_scale(&s.values) {
                Some(scale) => {
                    decimal_series += 1;
                    scales[usize::from(scale)] += 1;
                    let inexact = s
                        .values
                        .iter()
                        .filter(|&&v| scaled_value(v, scale).is_none());
                    float_samples += inexact.count();
                }
                None => float_samples += s.values.len(),
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

/// The candidate layouts, written with the shipped writer's Parquet settings (zstd, page
/// statistics, row group and page sizes) so that only the layout differs.
mod layouts {
    use std::sync::Arc;

    use anyhow::{ensure, Context, Result};
    use arrow::array::{
        Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, Int8Array, PrimitiveArray,
        RecordBatch, StringArray,
    };
    use arrow::datatypes::{Field, Float64Type, Int32Type, Int64Type, Int8Type, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::arrow_writer::ArrowWriterOptions;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, Encoding, ZstdLevel};
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::schema::types::ColumnPath;
    use strata_shared::block::{
        choose_scale, group_timestamps, scaled_value, unscaled_value, EncodeOptions, SeriesSamples,
    };
    use strata_shared::labels::{Labels, METRIC_NAME};

    use super::series_order;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Time {
        /// A `timestamp` column on every sample row (delta encoded).
        PerRow,
        /// `scrape` on sample rows, the timestamps once per group in `timestamps.parquet`.
        Grouped { share_subsets: bool },
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Values {
        /// One float64 `value` column.
        Float(Encoding),
        /// `value_int` (value × 10^scale, absolute or as the difference to the series'
        /// previous integer) and `value_float` for the values that are not exact.
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

    /// The layouts compared, all at zstd `level`; `quick` keeps the two the issue names.
    pub(super) fn candidates(quick: bool, level: i32) -> Vec<Layout> {
        use Encoding::{BYTE_STREAM_SPLIT, DELTA_BINARY_PACKED, PLAIN};
        let page_rows = EncodeOptions::default().data_page_rows;
        let layout = |name: &str, time, values| Layout {
            name: name.to_string(),
            time,
            values,
            page_rows,
            zstd_level: level,
        };
        let exact_groups = Time::Grouped {
            share_subsets: false,
        };
        let groups = Time::Grouped {
            share_subsets: true,
        };
        let split = |per_series_delta, ints| Values::Split {
            per_series_delta,
            ints,
        };
        let mut all = vec![
            layout(
                "A  row per sample: timestamp, value f64 (BSS)",
                Time::PerRow,
                Values::Float(BYTE_STREAM_SPLIT),
            ),
            layout(
                "B  d1: split value (int DBP), exact ts groups",
                exact_groups,
                split(false, DELTA_BINARY_PACKED),
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
            layout(
                "A2 row per sample, split value (int DBP)",
                Time::PerRow,
                split(false, DELTA_BINARY_PACKED),
            ),
            layout(
                "B1 d1 + subsets join groups",
                groups,
                split(false, DELTA_BINARY_PACKED),
            ),
            layout(
                "B2 B1 with int BSS",
                groups,
                split(false, BYTE_STREAM_SPLIT),
            ),
            layout(
                "B3 B1 with int per-series delta, DBP",
                groups,
                split(true, DELTA_BINARY_PACKED),
            ),
            layout(
                "B4 B1 with int per-series delta, BSS",
                groups,
                split(true, BYTE_STREAM_SPLIT),
            ),
        ]);
        for rows in [20_000, 1 << 20] {
            let mut l = layout(
                &format!("B4, pages of {rows} rows"),
                groups,
                split(true, BYTE_STREAM_SPLIT),
            );
            l.page_rows = rows;
            all.push(l);
        }
        all
    }

    /// Writes one file with the shipped settings; `encodings` name the non-default ones,
    /// `dictionary` the dictionary-encoded columns.
    fn write(
        layout: &Layout,
        columns: Vec<(&str, ArrayRef)>,
        encodings: &[(&str, Encoding)],
        dictionary: &[&str],
    ) -> Result<Bytes> {
        let defaults = EncodeOptions::default();
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(layout.zstd_level)?))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(defaults.row_group_rows))
            .set_data_page_row_count_limit(layout.page_rows)
            .set_data_page_size_limit(defaults.data_page_bytes)
            .set_dictionary_enabled(false);
        for (column, encoding) in encodings {
            properties = properties.set_column_encoding(ColumnPath::from(*column), *encoding);
        }
        for column in dictionary {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(*column), true);
        }
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let arrays = columns.into_iter().map(|(_, a)| a).collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        let options = ArrowWriterOptions::new()
            .with_properties(properties.build())
            .with_skip_arrow_metadata(true);
        let mut writer = ArrowWriter::try_new_with_options(Vec::new(), schema, options)?;
        writer.write(&batch)?;
        Ok(Bytes::from(writer.into_inner()?))
    }

    pub(super) fn encode(layout: &Layout, input: &[SeriesSamples]) -> Result<Vec<(String, Bytes)>> {
        use Encoding::{BYTE_STREAM_SPLIT, DELTA_BINARY_PACKED};
        let mut series: Vec<&SeriesSamples> = input.iter().collect();
        series.sort_by(|a, b| series_order(&a.labels, &b.labels));
        let mut label_names: Vec<&str> = series
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.as_str()))
            .collect();
        label_names.sort_by_key(|name| (*name != METRIC_NAME, *name));
        label_names.dedup();
        let split = matches!(layout.values, Values::Split { .. });
        let scales: Vec<Option<u8>> = series
            .iter()
            .map(|s| split.then(|| choose_scale(&s.values)).flatten())
            .collect();

        let mut files = Vec::new();
        let ids = Int32Array::from_iter_values(0..series.len() as i32);
        let mut series_table: Vec<(&str, ArrayRef)> = vec![("series_id", Arc::new(ids))];
        for name in &label_names {
            let values: StringArray = series.iter().map(|s| s.labels.get(name)).collect();
            series_table.push((name, Arc::new(values)));
        }
        if split {
            let scale: Int8Array = scales.iter().map(|s| s.map(|k| k as i8)).collect();
            series_table.push(("scale", Arc::new(scale)));
        }

        let rows: usize = series.iter().map(|s| s.values.len()).sum();
        let mut samples: Vec<(&str, ArrayRef)> = Vec::new();
        let mut encodings = vec![("series_id", DELTA_BINARY_PACKED)];
        let ids = series
            .iter()
            .enumerate()
            .flat_map(|(id, s)| std::iter::repeat_n(id as i32, s.values.len()));
        samples.push(("series_id", Arc::new(Int32Array::from_iter_values(ids))));
        match layout.time {
            Time::PerRow => {
                let times = series.iter().flat_map(|s| s.timestamps.iter().copied());
                samples.push(("timestamp", Arc::new(Int64Array::from_iter_values(times))));
                encodings.push(("timestamp", DELTA_BINARY_PACKED));
            }
            Time::Grouped { share_subsets } => {
                let refs: Vec<&[i64]> = series.iter().map(|s| s.timestamps.as_slice()).collect();
                let grouped = group_timestamps(&refs, share_subsets);
                let mut scrapes = Vec::with_capacity(rows);
                for (s, &g) in series.iter().zip(&grouped.series_group) {
                    let group = &grouped.groups[g as usize];
                    for t in &s.timestamps {
                        let position = group.binary_search(t).ok().context("not in group")?;
                        scrapes.push(position as i32);
                    }
                }
                samples.push(("scrape", Arc::new(Int32Array::from(scrapes))));
                encodings.push(("scrape", DELTA_BINARY_PACKED));
                let group_of = grouped.series_group.iter().map(|&g| g as i32);
                series_table.push(("ts_group", Arc::new(Int32Array::from_iter_values(group_of))));
                let (mut group_ids, mut positions, mut times) =
                    (Vec::new(), Vec::new(), Vec::new());
                for (g, group) in grouped.groups.iter().enumerate() {
                    group_ids.extend(std::iter::repeat_n(g as i32, group.len()));
                    positions.extend(0..group.len() as i32);
                    times.extend_from_slice(group);
                }
                let columns: Vec<(&str, ArrayRef)> = vec![
                    ("ts_group", Arc::new(Int32Array::from(group_ids))),
                    ("scrape", Arc::new(Int32Array::from(positions))),
                    ("timestamp", Arc::new(Int64Array::from(times))),
                ];
                let delta = [
                    ("ts_group", DELTA_BINARY_PACKED),
                    ("scrape", DELTA_BINARY_PACKED),
                    ("timestamp", DELTA_BINARY_PACKED),
                ];
                files.push((
                    "timestamps.parquet".to_string(),
                    write(layout, columns, &delta, &[])?,
                ));
            }
        }
        match layout.values {
            Values::Float(encoding) => {
                let values = series.iter().flat_map(|s| s.values.iter().copied());
                samples.push(("value", Arc::new(Float64Array::from_iter_values(values))));
                encodings.push(("value", encoding));
            }
            Values::Split {
                per_series_delta,
                ints,
            } => {
                let mut value_int: Vec<Option<i64>> = Vec::with_capacity(rows);
                let mut value_float: Vec<Option<f64>> = Vec::with_capacity(rows);
                for (s, scale) in series.iter().zip(&scales) {
                    let mut previous = 0i64;
                    for &v in &s.values {
                        match scale.and_then(|k| scaled_value(v, k)) {
                            Some(m) => {
                                value_int.push(Some(if per_series_delta {
                                    m - previous
                                } else {
                                    m
                                }));
                                previous = m;
                                value_float.push(None);
                            }
                            None => {
                                value_int.push(None);
                                value_float.push(Some(v));
                            }
                        }
                    }
                }
                samples.push(("value_int", Arc::new(Int64Array::from(value_int))));
                samples.push(("value_float", Arc::new(Float64Array::from(value_float))));
                encodings.push(("value_int", ints));
                encodings.push(("value_float", BYTE_STREAM_SPLIT));
            }
        }
        let series_encodings = [("series_id", DELTA_BINARY_PACKED)];
        let series_file = write(layout, series_table, &series_encodings, &label_names)?;
        files.push(("series.parquet".to_string(), series_file));
        files.push((
            "samples.parquet".to_string(),
            write(layout, samples, &encodings, &[])?,
        ));
        Ok(files)
    }

    /// Where a sample row's timestamp comes from.
    #[derive(Clone, Copy, Debug)]
    enum TimeColumn<'a> {
        PerRow(&'a PrimitiveArray<Int64Type>),
        Grouped(&'a PrimitiveArray<Int32Type>),
    }

    fn read(files: &[(String, Bytes)], name: &str) -> Result<Vec<RecordBatch>> {
        let (_, bytes) = files
            .iter()
            .find(|(n, _)| n == name)
            .with_context(|| format!("no {name}"))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())?
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
        let mut group_of: Vec<usize> = Vec::new();
        for batch in read(files, "series.parquet")? {
            let schema = batch.schema();
            let mut labels: Vec<(&str, &StringArray)> = Vec::new();
            for (field, array) in schema.fields().iter().zip(batch.columns()) {
                if !["series_id", "scale", "ts_group"].contains(&field.name().as_str()) {
                    let strings = array.as_string_opt::<i32>().context("label column")?;
                    labels.push((field.name().as_str(), strings));
                }
            }
            for row in 0..batch.num_rows() {
                let pairs = labels
                    .iter()
                    .filter(|(_, c)| c.is_valid(row))
                    .map(|(n, c)| (*n, c.value(row)));
                series.push(SeriesSamples {
                    labels: Labels::from_pairs(pairs),
                    ..SeriesSamples::default()
                });
            }
            if let Ok(scale) = column(&batch, "scale") {
                let scale = scale.as_primitive::<Int8Type>();
                scales.extend(scale.iter().map(|k| k.map(|k| k as u8)));
            }
            if let Ok(group) = column(&batch, "ts_group") {
                let group = group.as_primitive::<Int32Type>();
                group_of.extend(group.values().iter().map(|&g| g as usize));
            }
        }
        let mut groups: Vec<Vec<i64>> = Vec::new();
        if layout.time != Time::PerRow {
            for batch in read(files, "timestamps.parquet")? {
                let ids = column(&batch, "ts_group")?.as_primitive::<Int32Type>();
                let times = column(&batch, "timestamp")?.as_primitive::<Int64Type>();
                for (&g, &t) in ids.values().iter().zip(times.values()) {
                    if groups.len() <= g as usize {
                        groups.resize(g as usize + 1, Vec::new());
                    }
                    groups[g as usize].push(t);
                }
            }
        }
        let mut previous = vec![0i64; series.len()];
        for batch in read(files, "samples.parquet")? {
            let ids = column(&batch, "series_id")?.as_primitive::<Int32Type>();
            let time = match layout.time {
                Time::PerRow => TimeColumn::PerRow(column(&batch, "timestamp")?.as_primitive()),
                Time::Grouped { .. } => {
                    TimeColumn::Grouped(column(&batch, "scrape")?.as_primitive())
                }
            };
            let (floats, ints) = match layout.values {
                Values::Float(_) => (column(&batch, "value")?.as_primitive::<Float64Type>(), None),
                Values::Split { .. } => (
                    column(&batch, "value_float")?.as_primitive::<Float64Type>(),
                    Some(column(&batch, "value_int")?.as_primitive::<Int64Type>()),
                ),
            };
            for row in 0..batch.num_rows() {
                let id = ids.value(row) as usize;
                let timestamp = match time {
                    TimeColumn::PerRow(times) => times.value(row),
                    TimeColumn::Grouped(scrapes) => {
                        groups[group_of[id]][scrapes.value(row) as usize]
                    }
                };
                let value = match ints.filter(|ints| ints.is_valid(row)) {
                    Some(ints) => {
                        let per_series_delta = matches!(
                            layout.values,
                            Values::Split {
                                per_series_delta: true,
                                ..
                            }
                        );
                        let m = ints.value(row) + if per_series_delta { previous[id] } else { 0 };
                        previous[id] = m;
                        unscaled_value(m, scales[id].context("integer without a scale")?)
                            .context("scale out of range")?
                    }
                    None => floats.value(row),
                };
                series[id].timestamps.push(timestamp);
                series[id].values.push(value);
            }
        }
        ensure!(!series.is_empty(), "no series read back");
        Ok(series)
    }
}
