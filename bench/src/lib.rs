//! Strata's load generator: a deterministic node_exporter-like workload, pushed over
//! Prometheus remote-write 1.0.
//!
//! Benchmarks compare systems on *the same* samples, and tests must be able to check what a
//! store returns, so nothing here keeps state between scrapes: every sample is a pure function
//! of `(seed, host, series index, scrape index)` (see [`Workload::sample`]) and can be
//! recomputed at any time without replaying the scrapes before it.
//!
//! Two ways to get requests out of a [`Workload`]:
//! - [`Workload::requests`] yields prost [`WriteRequest`]s in time order; simple, and what tests
//!   and small tools want.
//! - [`run_load`] drives a server at speed. It encodes the protobuf bytes directly from label
//!   sets encoded once per series ([`SeriesCatalog`]), byte-for-byte what prost would produce,
//!   because on a small machine the load generator shares the CPU with the server it measures.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use strata_shared::proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use tokio::sync::Notify;

/// Samples per request by default: Prometheus' `queue_config.max_samples_per_send`.
pub const DEFAULT_BATCH: usize = 2000;
/// Scrape interval by default, in milliseconds.
pub const DEFAULT_INTERVAL_MS: i64 = 15_000;
/// Scrape jitter by default: each host's timestamps wander by up to ±4 ms, as real targets do.
pub const DEFAULT_JITTER_MS: i64 = 4;

/// What went wrong while generating or pushing load.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The workload or the options describe nothing sensible (e.g. a zero interval).
    #[error("invalid workload or options: {0}")]
    Invalid(String),
    /// Snappy refused to compress a request body.
    #[error("compressing a request with snappy: {0}")]
    Compress(#[from] snap::Error),
    /// The HTTP request could not be sent or its response not read (connection refused, timeout...).
    #[error("HTTP request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// A load worker stopped abnormally.
    #[error("load worker failed: {0}")]
    Worker(String),
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------------

/// The SplitMix64 finaliser: a cheap bijective mixer, so that nearby inputs (scrape 7 and 8)
/// give unrelated outputs. Written out rather than taken from a crate because the workload's
/// values must never change when a dependency is upgraded.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a tuple of integers; the first element is always a purpose tag (`TAG_*`) so that
/// different uses of the same coordinates draw independent numbers.
fn hash(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x05EE_D0F5_7A7A, |acc, &part| mix(acc ^ part))
}

/// A uniform number in [0, 1) from a hash, with 53 random bits.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `lo + (hi - lo) * u`.
fn between(lo: f64, hi: f64, u: f64) -> f64 {
    lo + (hi - lo) * u
}

const TAG_JITTER: u64 = 1;
const TAG_PARAM_A: u64 = 2;
const TAG_PARAM_B: u64 = 3;
const TAG_PARAM_C: u64 = 4;
const TAG_NOISE: u64 = 5;
const TAG_KNOT: u64 = 6;
const TAG_FAMILY_A: u64 = 7;
const TAG_FAMILY_B: u64 = 8;
const TAG_FAMILY_C: u64 = 9;
const TAG_FAMILY_NOISE: u64 = 10;
const TAG_PHASE: u64 = 11;
const TAG_POD_NAME: u64 = 12;

// ---------------------------------------------------------------------------------------------
// The series template: what one host exposes
// ---------------------------------------------------------------------------------------------

/// How a value is rounded: most real metrics are decimal-exact (bytes, counts, centiseconds),
/// a few are full-precision floats; storage engines behave very differently on the two, so the
/// workload has both in realistic proportions (about 93 % / 7 %).
#[derive(Debug, Clone, Copy)]
enum Step {
    /// A multiple of 10^-d.
    Decimals(u32),
    /// A multiple of an integer quantum (pages of 4096 bytes, kB of meminfo).
    Multiple(f64),
    /// Every bit of the float is significant (durations, ratios).
    Full,
}

impl Step {
    /// Rounds `x` to the step; `down` for counters, so that rounding never breaks monotonicity.
    /// The result is `m / 10^d` (or `m * q`), a correctly rounded IEEE operation: exactly the
    /// float a decimal-exact store would rebuild.
    fn apply(self, x: f64, down: bool) -> f64 {
        let round = |v: f64| if down { v.floor() } else { v.round() };
        match self {
            Step::Decimals(d) => {
                let scale = 10f64.powi(d as i32);
                round(x * scale) / scale
            }
            Step::Multiple(q) => round(x / q) * q,
            Step::Full => x,
        }
    }
}

/// How a series' value moves with the scrape index.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Drawn once per host from [lo, hi], then constant (sizes, limits, info metrics).
    Constant { lo: f64, hi: f64, step: Step },
    /// Monotonic counter: starts in [start_lo, start_hi] and grows by a rate drawn from
    /// [rate_lo, rate_hi] per second, with a per-scrape wobble that never makes it decrease.
    Counter {
        start_lo: f64,
        start_hi: f64,
        rate_lo: f64,
        rate_hi: f64,
        step: Step,
    },
    /// Gauge wandering between lo and hi: a piecewise-linear curve through random knots
    /// (so neighbouring samples are close, as in reality) plus `noise` of the range per sample.
    Gauge {
        lo: f64,
        hi: f64,
        step: Step,
        noise: f64,
    },
    /// `node_time_seconds`: the scrape time in seconds with sub-millisecond noise.
    WallClock,
    /// A cumulative histogram bucket of a family: `floor(count * cdf(le))`.
    Bucket { family: u32, le: f64 },
    /// The `_count` of a histogram family.
    HistogramCount { family: u32 },
    /// The `_sum` of a histogram family: count × a full-precision mean.
    HistogramSum { family: u32 },
    /// `kube_pod_status_phase`: 1 when the pod is in `phase`, 0 otherwise.
    PodPhase { pod: u32, phase: u32 },
}

/// A label value that may depend on the host (pod names, node names).
#[derive(Debug, Clone)]
enum LabelValue {
    Fixed(String),
    /// The pod's name: an app name and a hash suffix, different per host and seed.
    Pod(u32),
    /// The host's node name, `host-NN`.
    Node,
    /// The host's internal IP address.
    InternalIp,
}

/// One series of the per-host template; the host adds `instance` and `job`.
#[derive(Debug, Clone)]
struct SeriesTemplate {
    name: String,
    labels: Vec<(&'static str, LabelValue)>,
    shape: Shape,
}

const POD_PHASES: [&str; 5] = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
const PODS_PER_HOST: u32 = 8;
const POD_APPS: [(&str, &str); 8] = [
    ("api-gateway", "web"),
    ("checkout", "payments"),
    ("coredns", "kube-system"),
    ("kube-proxy", "kube-system"),
    ("ledger", "payments"),
    ("node-exporter", "monitoring"),
    ("frontend", "web"),
    ("worker", "default"),
];
/// Scrapes a pod phase lasts before it may change (one hour at 15 s).
const PHASE_SEGMENT_SCRAPES: u64 = 240;

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

const INT: Step = Step::Decimals(0);
const D2: Step = Step::Decimals(2);
const D3: Step = Step::Decimals(3);
const D6: Step = Step::Decimals(6);
const D9: Step = Step::Decimals(9);
const KB: Step = Step::Multiple(KIB);
const PAGES: Step = Step::Multiple(4096.0);
const SECTORS: Step = Step::Multiple(512.0);
const FULL: Step = Step::Full;

/// A counter starting in [start_lo, start_hi], growing at [rate_lo, rate_hi] per second.
const fn counter(start_lo: f64, start_hi: f64, rate_lo: f64, rate_hi: f64, step: Step) -> Shape {
    Shape::Counter {
        start_lo,
        start_hi,
        rate_lo,
        rate_hi,
        step,
    }
}

/// A gauge wandering in [lo, hi] with `noise` (fraction of the range) per sample.
const fn gauge(lo: f64, hi: f64, step: Step, noise: f64) -> Shape {
    Shape::Gauge {
        lo,
        hi,
        step,
        noise,
    }
}

/// A value drawn once per host in [lo, hi].
const fn constant(lo: f64, hi: f64, step: Step) -> Shape {
    Shape::Constant { lo, hi, step }
}

/// CPU modes and their share of a core, per second.
const CPU_MODES: [(&str, f64, f64); 8] = [
    ("idle", 0.60, 0.97),
    ("iowait", 0.0005, 0.02),
    ("irq", 0.0, 0.001),
    ("nice", 0.0, 0.002),
    ("softirq", 0.001, 0.01),
    ("steal", 0.0, 0.004),
    ("system", 0.01, 0.08),
    ("user", 0.02, 0.30),
];

const PER_CPU: [(&str, Shape); 4] = [
    (
        "node_cpu_scaling_frequency_hertz",
        gauge(8e8, 3.5e9, Step::Multiple(1000.0), 0.3),
    ),
    (
        "node_schedstat_running_seconds_total",
        counter(1e4, 1e6, 0.02, 0.4, D9),
    ),
    (
        "node_schedstat_waiting_seconds_total",
        counter(1e3, 1e5, 0.001, 0.05, D9),
    ),
    (
        "node_schedstat_timeslices_total",
        counter(1e7, 1e9, 50.0, 2000.0, INT),
    ),
];

/// `node_memory_*` (meminfo is in kB, hence multiples of 1024).
const MEMORY: [(&str, Shape); 40] = [
    ("MemTotal_bytes", constant(16.0 * GIB, 64.0 * GIB, KB)),
    ("MemFree_bytes", gauge(0.5 * GIB, 8.0 * GIB, KB, 0.02)),
    ("MemAvailable_bytes", gauge(2.0 * GIB, 30.0 * GIB, KB, 0.02)),
    ("Buffers_bytes", gauge(0.05 * GIB, 1.0 * GIB, KB, 0.02)),
    ("Cached_bytes", gauge(1.0 * GIB, 20.0 * GIB, KB, 0.02)),
    ("SwapCached_bytes", gauge(0.0, 0.01 * GIB, KB, 0.02)),
    ("Active_bytes", gauge(2.0 * GIB, 20.0 * GIB, KB, 0.02)),
    ("Inactive_bytes", gauge(1.0 * GIB, 10.0 * GIB, KB, 0.02)),
    ("Active_anon_bytes", gauge(1.0 * GIB, 12.0 * GIB, KB, 0.02)),
    (
        "Inactive_anon_bytes",
        gauge(0.01 * GIB, 1.0 * GIB, KB, 0.02),
    ),
    ("Active_file_bytes", gauge(1.0 * GIB, 8.0 * GIB, KB, 0.02)),
    ("Inactive_file_bytes", gauge(1.0 * GIB, 9.0 * GIB, KB, 0.02)),
    ("Unevictable_bytes", constant(0.0, 0.05 * GIB, KB)),
    ("Mlocked_bytes", constant(0.0, 0.05 * GIB, KB)),
    ("SwapTotal_bytes", constant(0.0, 4.0 * GIB, KB)),
    ("SwapFree_bytes", gauge(0.0, 4.0 * GIB, KB, 0.02)),
    ("Dirty_bytes", gauge(0.0, 0.2 * GIB, KB, 0.02)),
    ("Writeback_bytes", gauge(0.0, 0.01 * GIB, KB, 0.02)),
    ("AnonPages_bytes", gauge(1.0 * GIB, 12.0 * GIB, KB, 0.02)),
    ("Mapped_bytes", gauge(0.1 * GIB, 2.0 * GIB, KB, 0.02)),
    ("Shmem_bytes", gauge(0.01 * GIB, 1.0 * GIB, KB, 0.02)),
    ("KReclaimable_bytes", gauge(0.1 * GIB, 2.0 * GIB, KB, 0.02)),
    ("Slab_bytes", gauge(0.2 * GIB, 3.0 * GIB, KB, 0.02)),
    ("SReclaimable_bytes", gauge(0.1 * GIB, 2.0 * GIB, KB, 0.02)),
    ("SUnreclaim_bytes", gauge(0.1 * GIB, 1.0 * GIB, KB, 0.02)),
    ("KernelStack_bytes", gauge(0.01 * GIB, 0.05 * GIB, KB, 0.02)),
    ("PageTables_bytes", gauge(0.02 * GIB, 0.3 * GIB, KB, 0.02)),
    ("NFS_Unstable_bytes", constant(0.0, 0.0, KB)),
    ("Bounce_bytes", constant(0.0, 0.0, KB)),
    ("WritebackTmp_bytes", constant(0.0, 0.0, KB)),
    ("CommitLimit_bytes", constant(8.0 * GIB, 36.0 * GIB, KB)),
    ("Committed_AS_bytes", gauge(4.0 * GIB, 40.0 * GIB, KB, 0.02)),
    ("VmallocTotal_bytes", constant(3.4e13, 3.4e13, KB)),
    ("VmallocUsed_bytes", gauge(0.02 * GIB, 0.1 * GIB, KB, 0.02)),
    ("Percpu_bytes", constant(0.001 * GIB, 0.02 * GIB, KB)),
    ("HardwareCorrupted_bytes", constant(0.0, 0.0, KB)),
    ("AnonHugePages_bytes", gauge(0.0, 2.0 * GIB, KB, 0.02)),
    ("Hugepagesize_bytes", constant(2.0 * MIB, 2.0 * MIB, KB)),
    ("DirectMap4k_bytes", constant(0.1 * GIB, 1.0 * GIB, KB)),
    ("DirectMap2M_bytes", constant(8.0 * GIB, 60.0 * GIB, KB)),
];

const MOUNTS: [(&str, &str, &str); 6] = [
    ("/dev/sda1", "/", "ext4"),
    ("/dev/sda2", "/boot", "ext4"),
    ("/dev/sdb1", "/var/lib/docker", "xfs"),
    ("/dev/nvme0n1p1", "/data", "xfs"),
    ("tmpfs", "/run", "tmpfs"),
    ("tmpfs", "/dev/shm", "tmpfs"),
];

const PER_MOUNT: [(&str, Shape); 7] = [
    ("avail_bytes", gauge(1.0 * GIB, 200.0 * GIB, PAGES, 0.001)),
    ("free_bytes", gauge(2.0 * GIB, 220.0 * GIB, PAGES, 0.001)),
    ("size_bytes", constant(250.0 * GIB, 500.0 * GIB, PAGES)),
    ("files", constant(1e6, 3e7, INT)),
    ("files_free", gauge(5e5, 2.9e7, INT, 0.0005)),
    ("readonly", constant(0.0, 0.0, INT)),
    ("device_error", constant(0.0, 0.0, INT)),
];

const PER_INTERFACE: [(&str, Shape); 12] = [
    ("receive_bytes_total", counter(1e9, 1e12, 1e3, 5e6, INT)),
    ("transmit_bytes_total", counter(1e9, 1e12, 1e3, 5e6, INT)),
    ("receive_packets_total", counter(1e6, 1e9, 10.0, 5e3, INT)),
    ("transmit_packets_total", counter(1e6, 1e9, 10.0, 5e3, INT)),
    ("receive_errs_total", counter(0.0, 10.0, 0.0, 0.001, INT)),
    ("transmit_errs_total", counter(0.0, 10.0, 0.0, 0.001, INT)),
    ("receive_drop_total", counter(0.0, 1e3, 0.0, 0.02, INT)),
    ("transmit_drop_total", counter(0.0, 1e3, 0.0, 0.02, INT)),
    ("receive_multicast_total", counter(0.0, 1e5, 0.0, 0.1, INT)),
    ("up", constant(1.0, 1.0, INT)),
    ("mtu_bytes", constant(1500.0, 1500.0, INT)),
    ("speed_bytes", constant(1.25e9, 1.25e9, INT)),
];

const PER_DISK: [(&str, Shape); 14] = [
    ("reads_completed_total", counter(1e5, 1e8, 0.1, 200.0, INT)),
    ("reads_merged_total", counter(1e4, 1e7, 0.0, 20.0, INT)),
    ("read_bytes_total", counter(1e9, 1e12, 1e3, 2e6, SECTORS)),
    ("read_time_seconds_total", counter(1e3, 1e5, 0.0, 0.2, D3)),
    ("writes_completed_total", counter(1e5, 1e8, 1.0, 300.0, INT)),
    ("writes_merged_total", counter(1e4, 1e7, 0.0, 50.0, INT)),
    ("written_bytes_total", counter(1e9, 1e12, 1e4, 5e6, SECTORS)),
    (
        "write_time_seconds_total",
        counter(1e3, 1e5, 0.001, 0.5, D3),
    ),
    ("io_now", gauge(0.0, 4.0, INT, 0.5)),
    ("io_time_seconds_total", counter(1e3, 1e5, 0.001, 0.3, D3)),
    (
        "io_time_weighted_seconds_total",
        counter(1e3, 2e5, 0.001, 0.8, D3),
    ),
    (
        "discards_completed_total",
        counter(0.0, 1e5, 0.0, 0.05, INT),
    ),
    ("discarded_sectors_total", counter(0.0, 1e8, 0.0, 50.0, INT)),
    ("flush_requests_total", counter(0.0, 1e6, 0.0, 2.0, INT)),
];

/// Kernel-wide series without labels, from several collectors.
const NODE: [(&str, Shape); 53] = [
    ("node_load1", gauge(0.0, 6.0, D2, 0.2)),
    ("node_load5", gauge(0.0, 5.0, D2, 0.05)),
    ("node_load15", gauge(0.0, 4.0, D2, 0.02)),
    ("node_boot_time_seconds", constant(1.69e9, 1.70e9, INT)),
    ("node_time_seconds", Shape::WallClock),
    (
        "node_context_switches_total",
        counter(1e8, 1e11, 1e3, 5e4, INT),
    ),
    ("node_intr_total", counter(1e8, 1e11, 1e3, 3e4, INT)),
    ("node_forks_total", counter(1e5, 1e8, 0.5, 20.0, INT)),
    ("node_procs_running", gauge(1.0, 8.0, INT, 0.5)),
    ("node_procs_blocked", gauge(0.0, 2.0, INT, 0.5)),
    ("node_entropy_available_bits", constant(256.0, 256.0, INT)),
    ("node_filefd_allocated", gauge(1e3, 2e4, INT, 0.01)),
    ("node_filefd_maximum", constant(9.2e18, 9.2e18, INT)),
    ("node_sockstat_TCP_inuse", gauge(10.0, 500.0, INT, 0.05)),
    ("node_sockstat_TCP_tw", gauge(0.0, 300.0, INT, 0.1)),
    ("node_sockstat_TCP_alloc", gauge(20.0, 600.0, INT, 0.05)),
    ("node_sockstat_UDP_inuse", gauge(1.0, 20.0, INT, 0.05)),
    (
        "node_sockstat_sockets_used",
        gauge(100.0, 2000.0, INT, 0.02),
    ),
    ("node_nf_conntrack_entries", gauge(100.0, 2e4, INT, 0.05)),
    (
        "node_nf_conntrack_entries_limit",
        constant(262_144.0, 262_144.0, INT),
    ),
    ("node_timex_offset_seconds", gauge(-1e-4, 1e-4, FULL, 0.5)),
    (
        "node_timex_frequency_adjustment_ratio",
        gauge(0.99999, 1.00001, FULL, 0.2),
    ),
    ("node_vmstat_pgpgin", counter(1e7, 1e10, 10.0, 5e3, INT)),
    ("node_vmstat_pgpgout", counter(1e7, 1e10, 10.0, 5e3, INT)),
    ("node_vmstat_pswpin", counter(0.0, 100.0, 0.0, 0.0005, INT)),
    ("node_vmstat_pswpout", counter(0.0, 100.0, 0.0, 0.0005, INT)),
    ("node_vmstat_pgfault", counter(1e8, 1e11, 1e3, 1e5, INT)),
    ("node_vmstat_pgmajfault", counter(1e4, 1e7, 0.01, 5.0, INT)),
    ("node_vmstat_oom_kill", counter(0.0, 5.0, 0.0, 0.0001, INT)),
    (
        "node_netstat_Tcp_ActiveOpens",
        counter(1e3, 1e7, 0.01, 5.0, INT),
    ),
    (
        "node_netstat_Tcp_PassiveOpens",
        counter(1e3, 1e7, 0.01, 5.0, INT),
    ),
    ("node_netstat_Tcp_CurrEstab", gauge(5.0, 400.0, INT, 0.05)),
    (
        "node_netstat_Tcp_InSegs",
        counter(1e6, 1e10, 10.0, 5e3, INT),
    ),
    (
        "node_netstat_Tcp_OutSegs",
        counter(1e6, 1e10, 10.0, 5e3, INT),
    ),
    (
        "node_netstat_Tcp_RetransSegs",
        counter(1e3, 1e7, 0.01, 2.0, INT),
    ),
    (
        "node_netstat_Udp_InDatagrams",
        counter(1e6, 1e10, 1.0, 500.0, INT),
    ),
    (
        "node_netstat_Udp_OutDatagrams",
        counter(1e6, 1e10, 1.0, 500.0, INT),
    ),
    (
        "node_netstat_Udp_InErrors",
        counter(0.0, 50.0, 0.0, 0.001, INT),
    ),
    (
        "node_netstat_TcpExt_ListenDrops",
        counter(0.0, 50.0, 0.0, 0.001, INT),
    ),
    (
        "node_netstat_TcpExt_ListenOverflows",
        counter(0.0, 50.0, 0.0, 0.001, INT),
    ),
    (
        "node_netstat_TcpExt_TCPSynRetrans",
        counter(1e2, 1e5, 0.0, 0.1, INT),
    ),
    ("node_netstat_Icmp_InMsgs", counter(1e3, 1e6, 0.0, 0.5, INT)),
    (
        "node_netstat_Icmp_OutMsgs",
        counter(1e3, 1e6, 0.0, 0.5, INT),
    ),
    (
        "node_pressure_cpu_waiting_seconds_total",
        counter(1e3, 1e6, 0.001, 0.2, D6),
    ),
    (
        "node_pressure_io_waiting_seconds_total",
        counter(1e3, 1e6, 0.001, 0.1, D6),
    ),
    (
        "node_pressure_io_stalled_seconds_total",
        counter(1e3, 1e6, 0.001, 0.08, D6),
    ),
    (
        "node_pressure_memory_waiting_seconds_total",
        counter(0.0, 1e4, 0.0, 0.01, D6),
    ),
    (
        "node_pressure_memory_stalled_seconds_total",
        counter(0.0, 1e4, 0.0, 0.005, D6),
    ),
    (
        "process_cpu_seconds_total",
        counter(1e3, 1e5, 0.005, 0.05, D2),
    ),
    (
        "process_resident_memory_bytes",
        gauge(1.5e7, 4e7, PAGES, 0.05),
    ),
    ("process_virtual_memory_bytes", gauge(7e8, 2e9, PAGES, 0.01)),
    ("process_open_fds", gauge(8.0, 20.0, INT, 0.2)),
    ("process_start_time_seconds", constant(1.69e9, 1.70e9, D2)),
];

const HWMON_SENSORS: [(&str, &str); 4] = [
    ("platform_coretemp_0", "temp1"),
    ("platform_coretemp_0", "temp2"),
    ("platform_coretemp_0", "temp3"),
    ("pci0000:00_0000:00:01_1", "temp1"),
];

const PER_SENSOR: [(&str, Shape); 3] = [
    ("node_hwmon_temp_celsius", gauge(35.0, 85.0, INT, 0.1)),
    ("node_hwmon_temp_crit_celsius", constant(100.0, 100.0, INT)),
    ("node_hwmon_temp_max_celsius", constant(82.0, 82.0, INT)),
];

/// node_exporter's collectors: their scrape durations are the workload's main noisy floats.
const COLLECTORS: [&str; 25] = [
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
    "filefd",
    "filesystem",
    "hwmon",
    "loadavg",
    "meminfo",
    "netclass",
    "netdev",
    "netstat",
    "pressure",
    "schedstat",
    "sockstat",
    "stat",
    "time",
    "vmstat",
];

/// `go_gc_duration_seconds` quantiles: disjoint ranges keep them ordered.
const GC_QUANTILES: [(&str, f64, f64); 5] = [
    ("0", 1.5e-5, 3e-5),
    ("0.25", 3e-5, 5e-5),
    ("0.5", 5e-5, 8e-5),
    ("0.75", 8e-5, 1.5e-4),
    ("1", 1.5e-4, 5e-3),
];

/// The Go runtime and process series of node_exporter itself.
const GO: [(&str, Shape); 28] = [
    (
        "go_gc_duration_seconds_sum",
        counter(1.0, 100.0, 1e-5, 1e-4, FULL),
    ),
    (
        "go_gc_duration_seconds_count",
        counter(1e4, 1e6, 0.05, 0.3, INT),
    ),
    ("go_goroutines", gauge(6.0, 12.0, INT, 0.3)),
    ("go_threads", gauge(6.0, 10.0, INT, 0.05)),
    ("go_memstats_alloc_bytes", gauge(2e6, 2e7, INT, 0.1)),
    (
        "go_memstats_alloc_bytes_total",
        counter(1e10, 1e13, 1e4, 1e6, INT),
    ),
    ("go_memstats_sys_bytes", gauge(2e7, 5e7, INT, 0.1)),
    ("go_memstats_heap_alloc_bytes", gauge(2e6, 2e7, INT, 0.1)),
    ("go_memstats_heap_idle_bytes", gauge(5e6, 3e7, INT, 0.1)),
    ("go_memstats_heap_inuse_bytes", gauge(4e6, 2.5e7, INT, 0.1)),
    ("go_memstats_heap_objects", gauge(1e4, 2e5, INT, 0.1)),
    ("go_memstats_heap_released_bytes", gauge(1e6, 2e7, INT, 0.1)),
    ("go_memstats_heap_sys_bytes", gauge(1.5e7, 4e7, INT, 0.1)),
    ("go_memstats_gc_sys_bytes", gauge(4e6, 9e6, INT, 0.1)),
    ("go_memstats_next_gc_bytes", gauge(4e6, 3e7, INT, 0.1)),
    ("go_memstats_stack_inuse_bytes", gauge(5e5, 2e6, INT, 0.1)),
    ("go_memstats_stack_sys_bytes", gauge(5e5, 2e6, INT, 0.1)),
    ("go_memstats_mspan_inuse_bytes", gauge(5e4, 5e5, INT, 0.1)),
    (
        "go_memstats_mcache_inuse_bytes",
        constant(9600.0, 9600.0, INT),
    ),
    (
        "go_memstats_buck_hash_sys_bytes",
        gauge(1.4e6, 1.5e6, INT, 0.1),
    ),
    ("go_memstats_other_sys_bytes", gauge(5e5, 2e6, INT, 0.1)),
    (
        "go_memstats_mallocs_total",
        counter(1e8, 1e11, 100.0, 1e4, INT),
    ),
    (
        "go_memstats_frees_total",
        counter(1e8, 1e11, 100.0, 1e4, INT),
    ),
    ("go_memstats_lookups_total", constant(0.0, 0.0, INT)),
    ("go_memstats_last_gc_time_seconds", Shape::WallClock),
    ("process_max_fds", constant(1_048_576.0, 1_048_576.0, INT)),
    (
        "process_virtual_memory_max_bytes",
        constant(1.8446744073709552e19, 1.8446744073709552e19, FULL),
    ),
    (
        "promhttp_metric_handler_requests_in_flight",
        constant(1.0, 1.0, INT),
    ),
];

/// Buckets of the application histogram, as `le` label text and bound.
const BUCKETS: [(&str, f64); 12] = [
    ("0.005", 0.005),
    ("0.01", 0.01),
    ("0.025", 0.025),
    ("0.05", 0.05),
    ("0.1", 0.1),
    ("0.25", 0.25),
    ("0.5", 0.5),
    ("1", 1.0),
    ("2.5", 2.5),
    ("5", 5.0),
    ("10", 10.0),
    ("+Inf", f64::INFINITY),
];

const HANDLERS: [&str; 4] = [
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/metrics",
];

/// Collects template entries; `fixed` labels are plain strings.
#[derive(Debug, Default)]
struct TemplateBuilder(Vec<SeriesTemplate>);

impl TemplateBuilder {
    fn add(&mut self, name: &str, labels: &[(&'static str, &str)], shape: Shape) {
        let labels = labels
            .iter()
            .map(|(n, v)| (*n, LabelValue::Fixed((*v).to_string())))
            .collect();
        self.add_with(name, labels, shape);
    }

    fn add_with(&mut self, name: &str, labels: Vec<(&'static str, LabelValue)>, shape: Shape) {
        self.0.push(SeriesTemplate {
            name: name.to_string(),
            labels,
            shape,
        });
    }
}

/// Builds the ~520 series one host exposes: node_exporter's main collectors, its Go runtime
/// and process metrics, an HTTP latency histogram and the kube-state-metrics series that the
/// read-path benchmark queries (`kube_pod_status_phase`, `kube_pod_container_resource_requests`).
fn build_template() -> Vec<SeriesTemplate> {
    let mut b = TemplateBuilder::default();
    b.add("up", &[], constant(1.0, 1.0, INT));
    for (name, shape) in GO {
        b.add(name, &[], shape);
    }
    for cpu in (0..8).map(|c: u32| c.to_string()) {
        for (mode, lo, hi) in CPU_MODES {
            let shape = counter(hi * 1e4, hi * 3e6, lo, hi, D2);
            b.add(
                "node_cpu_seconds_total",
                &[("cpu", &cpu), ("mode", mode)],
                shape,
            );
        }
        for mode in ["nice", "user"] {
            let zero = constant(0.0, 0.0, INT);
            b.add(
                "node_cpu_guest_seconds_total",
                &[("cpu", &cpu), ("mode", mode)],
                zero,
            );
        }
        for (name, shape) in PER_CPU {
            b.add(name, &[("cpu", &cpu)], shape);
        }
    }
    for (name, shape) in MEMORY {
        b.add(&format!("node_memory_{name}"), &[], shape);
    }
    for (device, mountpoint, fstype) in MOUNTS {
        let labels = [
            ("device", device),
            ("fstype", fstype),
            ("mountpoint", mountpoint),
        ];
        for (name, shape) in PER_MOUNT {
            b.add(&format!("node_filesystem_{name}"), &labels, shape);
        }
    }
    for device in ["docker0", "eth0", "lo"] {
        for (name, shape) in PER_INTERFACE {
            b.add(
                &format!("node_network_{name}"),
                &[("device", device)],
                shape,
            );
        }
    }
    for device in ["nvme0n1", "sda"] {
        for (name, shape) in PER_DISK {
            b.add(&format!("node_disk_{name}"), &[("device", device)], shape);
        }
    }
    for (name, shape) in NODE {
        b.add(name, &[], shape);
    }
    for (chip, sensor) in HWMON_SENSORS {
        for (name, shape) in PER_SENSOR {
            b.add(name, &[("chip", chip), ("sensor", sensor)], shape);
        }
    }
    for collector in COLLECTORS {
        let labels = [("collector", collector)];
        let duration = gauge(1e-5, 5e-2, FULL, 0.6);
        b.add("node_scrape_collector_duration_seconds", &labels, duration);
        b.add(
            "node_scrape_collector_success",
            &labels,
            constant(1.0, 1.0, INT),
        );
    }
    for (quantile, lo, hi) in GC_QUANTILES {
        b.add(
            "go_gc_duration_seconds",
            &[("quantile", quantile)],
            gauge(lo, hi, FULL, 1.0),
        );
    }
    b.add(
        "go_info",
        &[("version", "go1.19.8")],
        constant(1.0, 1.0, INT),
    );
    for code in ["200", "500", "503"] {
        let shape = match code {
            "200" => counter(1e4, 1e6, 1.0 / 15.0, 1.0 / 15.0, INT),
            _ => constant(0.0, 0.0, INT),
        };
        b.add(
            "promhttp_metric_handler_requests_total",
            &[("code", code)],
            shape,
        );
    }
    for cause in ["encoding", "gathering"] {
        let zero = constant(0.0, 0.0, INT);
        b.add(
            "promhttp_metric_handler_errors_total",
            &[("cause", cause)],
            zero,
        );
    }

    // An application histogram: cumulative buckets consistent with _count and _sum.
    for (family, handler) in (0u32..).zip(HANDLERS) {
        for (le_text, le) in BUCKETS {
            let labels = [("handler", handler), ("le", le_text)];
            b.add(
                "http_request_duration_seconds_bucket",
                &labels,
                Shape::Bucket { family, le },
            );
        }
        let labels = [("handler", handler)];
        b.add(
            "http_request_duration_seconds_sum",
            &labels,
            Shape::HistogramSum { family },
        );
        b.add(
            "http_request_duration_seconds_count",
            &labels,
            Shape::HistogramCount { family },
        );
    }

    // kube-state-metrics: the series the read-path benchmark queries.
    let fixed = |value: &str| LabelValue::Fixed(value.to_string());
    let node_info = vec![
        ("container_runtime_version", fixed("containerd://1.6.20")),
        ("internal_ip", LabelValue::InternalIp),
        ("kernel_version", fixed("6.1.0-18-amd64")),
        ("kubelet_version", fixed("v1.27.4")),
        ("node", LabelValue::Node),
        ("os_image", fixed("Debian GNU/Linux 12 (bookworm)")),
    ];
    b.add_with("kube_node_info", node_info, constant(1.0, 1.0, INT));
    for pod in 0..PODS_PER_HOST {
        let (container, namespace) = POD_APPS[pod as usize % POD_APPS.len()];
        for (phase, phase_name) in (0u32..).zip(POD_PHASES) {
            let labels = vec![
                ("namespace", fixed(namespace)),
                ("phase", fixed(phase_name)),
                ("pod", LabelValue::Pod(pod)),
            ];
            b.add_with(
                "kube_pod_status_phase",
                labels,
                Shape::PodPhase { pod, phase },
            );
        }
        let requests = [
            ("cpu", "core", constant(0.05, 2.0, D2)),
            (
                "memory",
                "byte",
                constant(64.0 * MIB, 4.0 * GIB, Step::Multiple(MIB)),
            ),
        ];
        for (resource, unit, shape) in requests {
            let labels = vec![
                ("container", fixed(container)),
                ("namespace", fixed(namespace)),
                ("node", LabelValue::Node),
                ("pod", LabelValue::Pod(pod)),
                ("resource", fixed(resource)),
                ("unit", fixed(unit)),
            ];
            b.add_with("kube_pod_container_resource_requests", labels, shape);
        }
    }
    b.0
}

/// The per-host template, built once: it depends on nothing but the code.
fn template() -> &'static [SeriesTemplate] {
    static TEMPLATE: OnceLock<Vec<SeriesTemplate>> = OnceLock::new();
    TEMPLATE.get_or_init(build_template)
}

// ---------------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------------

/// A deterministic fleet of `hosts` node_exporter-like targets scraped every `interval_ms`
/// from `start_ms` (inclusive) to `end_ms` (exclusive).
///
/// Host `h`'s scrape `k` happens at `start_ms + k * interval_ms + jitter`, the jitter being
/// drawn in ±`jitter_ms` once per (host, scrape) and shared by all series of that host, as in
/// a real scrape. Every value is a pure function of `(seed, host, series index, scrape index)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Number of scrape targets, each exposing [`Workload::series_per_host`] series.
    pub hosts: usize,
    /// Nominal time of scrape 0, in milliseconds since the epoch.
    pub start_ms: i64,
    /// End of the span (exclusive): the last scrape is the last one nominally before it.
    pub end_ms: i64,
    /// Scrape interval in milliseconds.
    pub interval_ms: i64,
    /// Maximum scrape jitter in milliseconds (0: perfectly regular timestamps).
    pub jitter_ms: i64,
    /// Seed of every random choice; the same seed always gives the same samples.
    pub seed: u64,
}

impl Workload {
    /// A workload of `hosts` hosts covering `hours` hours that end at `end_ms`, with the
    /// default interval and jitter.
    pub fn ending_at(hosts: usize, hours: f64, end_ms: i64, seed: u64) -> Self {
        let span_ms = (hours * 3_600_000.0).round() as i64;
        Workload {
            hosts,
            start_ms: end_ms - span_ms,
            end_ms,
            interval_ms: DEFAULT_INTERVAL_MS,
            jitter_ms: DEFAULT_JITTER_MS,
            seed,
        }
    }

    /// Checks the parameters describe a workload (positive interval, jitter below half of it,
    /// an ordered span), so that later arithmetic cannot divide by zero or reorder scrapes.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.interval_ms <= 0 {
            return Err(BenchError::Invalid(format!(
                "interval_ms must be positive, got {}",
                self.interval_ms
            )));
        }
        if self.jitter_ms < 0 || self.jitter_ms * 2 >= self.interval_ms {
            return Err(BenchError::Invalid(format!(
                "jitter_ms must be in [0, interval_ms/2), got {} for an interval of {} ms",
                self.jitter_ms, self.interval_ms
            )));
        }
        if self.end_ms < self.start_ms {
            return Err(BenchError::Invalid(format!(
                "end_ms {} is before start_ms {}",
                self.end_ms, self.start_ms
            )));
        }
        Ok(())
    }

    /// Series exposed by each host (the same for every host and seed).
    pub fn series_per_host() -> usize {
        template().len()
    }

    /// Active series of the whole workload.
    pub fn series_count(&self) -> usize {
        self.hosts * Self::series_per_host()
    }

    /// Scrapes per host: nominal scrape times in `[start_ms, end_ms)`.
    pub fn scrape_count(&self) -> usize {
        if self.interval_ms <= 0 || self.end_ms <= self.start_ms {
            return 0;
        }
        let span = self.end_ms - self.start_ms;
        ((span + self.interval_ms - 1) / self.interval_ms) as usize
    }

    /// Samples in the whole workload.
    pub fn sample_count(&self) -> u64 {
        self.series_count() as u64 * self.scrape_count() as u64
    }

    /// The timestamp of host `host`'s scrape `scrape`: nominal time plus the host's jitter.
    pub fn timestamp(&self, host: usize, scrape: usize) -> i64 {
        let nominal = self.start_ms + scrape as i64 * self.interval_ms;
        if self.jitter_ms == 0 {
            return nominal;
        }
        let width = (2 * self.jitter_ms + 1) as u64;
        let offset = (hash(&[TAG_JITTER, self.seed, host as u64, scrape as u64]) % width) as i64;
        nominal + offset - self.jitter_ms
    }

    /// The label set of series `series` (0..[`Workload::series_per_host`]) of host `host`,
    /// sorted by label name as Prometheus sends them.
    pub fn labels(&self, host: usize, series: usize) -> Vec<Label> {
        let Some(template) = template().get(series) else {
            return Vec::new();
        };
        let mut labels = Vec::with_capacity(template.labels.len() + 3);
        labels.push(Label {
            name: "__name__".to_string(),
            value: template.name.clone(),
        });
        labels.push(Label {
            name: "instance".to_string(),
            value: format!("host-{host:02}:9100"),
        });
        labels.push(Label {
            name: "job".to_string(),
            value: "node".to_string(),
        });
        for (name, value) in &template.labels {
            let value = match value {
                LabelValue::Fixed(v) => v.clone(),
                LabelValue::Node => format!("host-{host:02}"),
                LabelValue::InternalIp => format!("10.0.{}.{}", host / 250, host % 250 + 1),
                LabelValue::Pod(pod) => self.pod_name(host, *pod),
            };
            labels.push(Label {
                name: (*name).to_string(),
                value,
            });
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        labels
    }

    /// A Kubernetes-looking pod name (`checkout-7d9f8b6c5-x2k4q`), stable for a host and seed.
    fn pod_name(&self, host: usize, pod: u32) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let app = POD_APPS[pod as usize % POD_APPS.len()].0;
        let mut h = hash(&[TAG_POD_NAME, self.seed, host as u64, pod as u64]);
        let mut name = String::with_capacity(app.len() + 17);
        name.push_str(app);
        name.push('-');
        for i in 0..15 {
            if i == 9 {
                name.push('-');
            }
            name.push(ALPHABET[(h % ALPHABET.len() as u64) as usize] as char);
            h = mix(h);
        }
        name
    }

    /// The value of series `series` of host `host` at scrape `scrape`. A pure function of the
    /// seed and these three numbers (and, for `node_time_seconds`, of the timestamp), so a
    /// verifier can recompute any sample a store returns.
    pub fn value(&self, host: usize, series: usize, scrape: usize) -> f64 {
        let Some(template) = template().get(series) else {
            return f64::NAN;
        };
        let (seed, h, s, k) = (self.seed, host as u64, series as u64, scrape as u64);
        let param = |tag: u64| unit(hash(&[tag, seed, h, s]));
        match template.shape {
            Shape::Constant { lo, hi, step } => {
                step.apply(between(lo, hi, param(TAG_PARAM_A)), false)
            }
            Shape::Counter {
                start_lo,
                start_hi,
                rate_lo,
                rate_hi,
                step,
            } => {
                let start = between(start_lo, start_hi, param(TAG_PARAM_A));
                let rate = between(rate_lo, rate_hi, param(TAG_PARAM_B));
                step.apply(
                    counter_value(start, rate, self.interval_ms, k, || {
                        unit(hash(&[TAG_NOISE, seed, h, s, k]))
                    }),
                    true,
                )
            }
            Shape::Gauge {
                lo,
                hi,
                step,
                noise,
            } => {
                // Knots every 40 to 240 scrapes (10 min to 1 h): slow, realistic drifts.
                let period = 40 + (hash(&[TAG_PARAM_C, seed, h, s]) % 200);
                let segment = k / period;
                let fraction = (k % period) as f64 / period as f64;
                let a = unit(hash(&[TAG_KNOT, seed, h, s, segment]));
                let b = unit(hash(&[TAG_KNOT, seed, h, s, segment + 1]));
                let wobble = noise * (unit(hash(&[TAG_NOISE, seed, h, s, k])) - 0.5);
                let position = (a + (b - a) * fraction + wobble).clamp(0.0, 1.0);
                step.apply(between(lo, hi, position), false)
            }
            Shape::WallClock => {
                let seconds = self.timestamp(host, scrape) as f64 / 1000.0;
                seconds + 0.000_999 * unit(hash(&[TAG_NOISE, seed, h, s, k]))
            }
            Shape::Bucket { family, le } => {
                let count = self.histogram_count(host, family, scrape);
                let median = self.histogram_median(host, family);
                let cdf = if le.is_infinite() {
                    1.0
                } else {
                    le / (le + median)
                };
                (count * cdf).floor()
            }
            Shape::HistogramCount { family } => self.histogram_count(host, family, scrape),
            Shape::HistogramSum { family } => {
                let mean = self.histogram_median(host, family)
                    * between(
                        1.2,
                        2.5,
                        unit(hash(&[TAG_FAMILY_C, seed, h, family as u64])),
                    );
                self.histogram_count(host, family, scrape) * mean
            }
            Shape::PodPhase { pod, phase } => {
                let offset = hash(&[TAG_PHASE, seed, h, pod as u64]) % PHASE_SEGMENT_SCRAPES;
                let segment = (k + offset) / PHASE_SEGMENT_SCRAPES;
                let u = unit(hash(&[TAG_PHASE, seed, h, pod as u64, segment]));
                // Mostly Running; sometimes Pending, Succeeded, Failed or Unknown.
                let current = match u {
                    u if u < 0.90 => 1,
                    u if u < 0.94 => 0,
                    u if u < 0.97 => 2,
                    u if u < 0.99 => 3,
                    _ => 4,
                };
                if current == phase {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    /// Observations of a histogram family so far (its `_count` and `+Inf` bucket).
    fn histogram_count(&self, host: usize, family: u32, scrape: usize) -> f64 {
        let (seed, h, f, k) = (self.seed, host as u64, family as u64, scrape as u64);
        let start = between(1e3, 1e6, unit(hash(&[TAG_FAMILY_A, seed, h, f])));
        let rate = between(0.2, 40.0, unit(hash(&[TAG_FAMILY_B, seed, h, f])));
        counter_value(start, rate, self.interval_ms, k, || {
            unit(hash(&[TAG_FAMILY_NOISE, seed, h, f, k]))
        })
        .floor()
    }

    /// The median latency of a histogram family, full precision (so `_sum` is a noisy float).
    fn histogram_median(&self, host: usize, family: u32) -> f64 {
        between(
            0.01,
            0.4,
            unit(hash(&[
                TAG_FAMILY_C,
                self.seed,
                host as u64,
                family as u64,
                1,
            ])),
        )
    }

    /// Sample `series` of host `host` at scrape `scrape`.
    pub fn sample(&self, host: usize, series: usize, scrape: usize) -> Sample {
        Sample {
            value: self.value(host, series, scrape),
            timestamp: self.timestamp(host, scrape),
        }
    }

    /// Everything host `host` exposes at scrape `scrape`: one series per template entry, one
    /// sample each, all with the same timestamp.
    pub fn scrape(&self, host: usize, scrape: usize) -> Vec<TimeSeries> {
        (0..Self::series_per_host())
            .map(|series| TimeSeries {
                labels: self.labels(host, series),
                samples: vec![self.sample(host, series, scrape)],
                exemplars: Vec::new(),
            })
            .collect()
    }

    /// Write requests of up to `batch` samples (one sample per series entry, as Prometheus
    /// sends them) in time order: every host's scrape k comes before any scrape k+1.
    pub fn requests(&self, batch: usize) -> WriteRequests<'_> {
        WriteRequests {
            workload: self,
            batch: batch.max(1),
            scrape: 0,
            host: 0,
            series: 0,
        }
    }
}

/// A counter's raw value at scrape `k`: `start + rate·interval·(k + 0.9·u_k)`. Each step adds
/// between 0.1 and 1.9 times the mean increment, so the counter never decreases, and it needs
/// no state from earlier scrapes.
fn counter_value(
    start: f64,
    rate_per_second: f64,
    interval_ms: i64,
    k: u64,
    noise: impl Fn() -> f64,
) -> f64 {
    let per_scrape = rate_per_second * interval_ms as f64 / 1000.0;
    if per_scrape == 0.0 {
        return start;
    }
    start + per_scrape * (k as f64 + 0.9 * noise())
}

/// Iterator over a workload's write requests in time order; see [`Workload::requests`].
#[derive(Debug)]
pub struct WriteRequests<'a> {
    workload: &'a Workload,
    batch: usize,
    scrape: usize,
    host: usize,
    series: usize,
}

impl Iterator for WriteRequests<'_> {
    type Item = WriteRequest;

    fn next(&mut self) -> Option<WriteRequest> {
        let w = self.workload;
        let per_host = Workload::series_per_host();
        if w.hosts == 0 || per_host == 0 {
            return None;
        }
        let mut timeseries = Vec::with_capacity(self.batch);
        while timeseries.len() < self.batch && self.scrape < w.scrape_count() {
            timeseries.push(TimeSeries {
                labels: w.labels(self.host, self.series),
                samples: vec![w.sample(self.host, self.series, self.scrape)],
                exemplars: Vec::new(),
            });
            self.series += 1;
            if self.series == per_host {
                self.series = 0;
                self.host += 1;
                if self.host == w.hosts {
                    self.host = 0;
                    self.scrape += 1;
                }
            }
        }
        (!timeseries.is_empty()).then(|| WriteRequest {
            timeseries,
            metadata: Vec::new(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Fast encoding: protobuf bytes written directly, label sets encoded once
// ---------------------------------------------------------------------------------------------

/// Every series' label set, encoded once as the `labels` fields of a `prometheus.TimeSeries`.
/// Re-encoding label strings for each of tens of millions of samples would make the load
/// generator compete with the server for the CPU it is measuring.
#[derive(Debug)]
pub struct SeriesCatalog {
    per_host: usize,
    labels: Vec<Vec<u8>>,
}

impl SeriesCatalog {
    /// Encodes the label sets of every series of `workload`.
    pub fn new(workload: &Workload) -> Self {
        Self::with_external_labels(workload, &[])
    }

    /// Like [`SeriesCatalog::new`], with `external` added to every series as Prometheus adds
    /// its `global.external_labels` to what it remote-writes (a series' own label wins).
    pub fn with_external_labels(workload: &Workload, external: &[(String, String)]) -> Self {
        let per_host = Workload::series_per_host();
        let mut labels = Vec::with_capacity(workload.series_count());
        for host in 0..workload.hosts {
            for series in 0..per_host {
                let mut series_labels = workload.labels(host, series);
                for (name, value) in external {
                    if !series_labels.iter().any(|l| &l.name == name) {
                        series_labels.push(Label {
                            name: name.clone(),
                            value: value.clone(),
                        });
                    }
                }
                series_labels.sort_by(|a, b| a.name.cmp(&b.name));
                let only_labels = TimeSeries {
                    labels: series_labels,
                    samples: Vec::new(),
                    exemplars: Vec::new(),
                };
                labels.push(only_labels.encode_to_vec());
            }
        }
        SeriesCatalog { per_host, labels }
    }

    fn labels(&self, host: usize, series: usize) -> &[u8] {
        self.labels
            .get(host * self.per_host + series)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends one `WriteRequest.timeseries` entry holding one sample, exactly as prost encodes
/// it: proto3 leaves out a zero value and a zero timestamp.
fn append_series(buf: &mut Vec<u8>, labels: &[u8], timestamp: i64, value: f64) {
    let value_len = if value != 0.0 { 9 } else { 0 };
    let timestamp_len = if timestamp != 0 {
        1 + varint_len(timestamp as u64)
    } else {
        0
    };
    let sample_len = value_len + timestamp_len;
    let series_len = labels.len() + 1 + varint_len(sample_len as u64) + sample_len;
    buf.push(0x0A); // WriteRequest.timeseries = 1, length-delimited
    put_varint(buf, series_len as u64);
    buf.extend_from_slice(labels);
    buf.push(0x12); // TimeSeries.samples = 2, length-delimited
    put_varint(buf, sample_len as u64);
    if value != 0.0 {
        buf.push(0x09); // Sample.value = 1, fixed64
        buf.extend_from_slice(&value.to_bits().to_le_bytes());
    }
    if timestamp != 0 {
        buf.push(0x10); // Sample.timestamp = 2, varint
        put_varint(buf, timestamp as u64);
    }
}

/// One request body ready to send: snappy-compressed protobuf.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    /// The snappy-compressed `WriteRequest`.
    pub body: Bytes,
    /// Samples in the request.
    pub samples: usize,
    /// Uncompressed protobuf size, for reporting.
    pub raw_bytes: usize,
    /// The latest scrape index the request holds a sample of; used to keep shards in step.
    pub last_scrape: usize,
}

/// The requests of one shard of a workload, in time order: shard `s` of `n` holds the series
/// whose global index (`host * series_per_host + series`) is `s` modulo `n`, like Prometheus'
/// remote-write shards, so each series' samples stay in order within its shard.
#[derive(Debug)]
pub struct ShardBatches {
    workload: Workload,
    catalog: Arc<SeriesCatalog>,
    shard: usize,
    shards: usize,
    batch: usize,
    scrape: usize,
    host: usize,
    series: usize,
    raw: Vec<u8>,
    encoder: snap::raw::Encoder,
}

impl ShardBatches {
    /// Shard `shard` of `shards` of `workload`, in requests of up to `batch` samples.
    pub fn new(
        workload: Workload,
        catalog: Arc<SeriesCatalog>,
        shard: usize,
        shards: usize,
        batch: usize,
    ) -> Self {
        let shards = shards.max(1);
        let mut batches = ShardBatches {
            workload,
            catalog,
            shard,
            shards,
            batch: batch.max(1),
            scrape: 0,
            host: 0,
            series: 0,
            raw: Vec::new(),
            encoder: snap::raw::Encoder::new(),
        };
        batches.series = batches.first_series(0);
        batches
    }

    /// The first series index of `host` that belongs to this shard.
    fn first_series(&self, host: usize) -> usize {
        let base = (host * Workload::series_per_host()) % self.shards;
        (self.shard % self.shards + self.shards - base) % self.shards
    }
}

impl Iterator for ShardBatches {
    type Item = Result<EncodedBatch, BenchError>;

    fn next(&mut self) -> Option<Self::Item> {
        let w = self.workload;
        let (scrapes, per_host) = (w.scrape_count(), Workload::series_per_host());
        if w.hosts == 0 {
            return None;
        }
        self.raw.clear();
        let (mut samples, mut last_scrape) = (0, 0);
        while samples < self.batch && self.scrape < scrapes {
            if self.series >= per_host {
                self.host += 1;
                if self.host == w.hosts {
                    self.host = 0;
                    self.scrape += 1;
                }
                self.series = self.first_series(self.host);
                continue;
            }
            let labels = self.catalog.labels(self.host, self.series);
            let sample = w.sample(self.host, self.series, self.scrape);
            append_series(&mut self.raw, labels, sample.timestamp, sample.value);
            samples += 1;
            last_scrape = self.scrape;
            self.series += self.shards;
        }
        if samples == 0 {
            return None;
        }
        let body = match self.encoder.compress_vec(&self.raw) {
            Ok(body) => body,
            Err(e) => return Some(Err(e.into())),
        };
        Some(Ok(EncodedBatch {
            body: Bytes::from(body),
            samples,
            raw_bytes: self.raw.len(),
            last_scrape,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Remote write over HTTP
// ---------------------------------------------------------------------------------------------

/// What the server answered to one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// HTTP status code.
    pub status: u16,
    /// Response body (error bodies say what was wrong).
    pub body: String,
}

impl PushOutcome {
    /// 2xx: the samples were accepted.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// 429 and 5xx: Prometheus' remote-write contract says the sender may retry these.
    pub fn is_retryable(&self) -> bool {
        self.status == 429 || self.status >= 500
    }
}

/// Encodes a request for the wire: prost, then snappy's block format (not the framed one:
/// remote write 1.0 uses raw blocks).
pub fn encode_request(request: &WriteRequest) -> Result<Bytes, BenchError> {
    let raw = request.encode_to_vec();
    Ok(Bytes::from(snap::raw::Encoder::new().compress_vec(&raw)?))
}

/// An HTTP client for pushing: plain HTTP/1.1, no proxy (benchmarks talk to 127.0.0.1), and a
/// whole-request timeout so a stuck server cannot hang a run.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, BenchError> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()
        .map_err(|source| BenchError::Http {
            url: String::new(),
            source,
        })
}

/// Pushes one write request to a remote-write endpoint (`/api/v1/push` for Strata and Mimir,
/// `/api/v1/write` for Prometheus and VictoriaMetrics), as tenant `tenant` if given.
pub async fn push(
    client: &reqwest::Client,
    url: &str,
    tenant: Option<&str>,
    request: &WriteRequest,
) -> Result<PushOutcome, BenchError> {
    push_body(client, url, tenant, encode_request(request)?).await
}

/// Pushes an already encoded (snappy-compressed protobuf) body; see [`push`].
pub async fn push_body(
    client: &reqwest::Client,
    url: &str,
    tenant: Option<&str>,
    body: Bytes,
) -> Result<PushOutcome, BenchError> {
    use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
    let mut request = client
        .post(url)
        .header(CONTENT_ENCODING, "snappy")
        .header(CONTENT_TYPE, "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header(
            USER_AGENT,
            concat!("strata-loadgen/", env!("CARGO_PKG_VERSION")),
        )
        .body(body);
    if let Some(tenant) = tenant {
        request = request.header("X-Scope-OrgID", tenant);
    }
    let http_error = |source| BenchError::Http {
        url: url.to_string(),
        source,
    };
    let response = request.send().await.map_err(http_error)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(http_error)?;
    Ok(PushOutcome { status, body })
}

// ---------------------------------------------------------------------------------------------
// Driving a server
// ---------------------------------------------------------------------------------------------

/// How [`run_load`] pushes a workload.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Remote-write URL.
    pub url: String,
    /// `X-Scope-OrgID` to send, if any.
    pub tenant: Option<String>,
    /// Shards, each with one request in flight (Prometheus' `queue_config.max_shards`).
    pub concurrency: usize,
    /// Samples per request.
    pub batch: usize,
    /// Retries of a request answered 429 or 5xx, or that got no answer, before giving up.
    pub max_retries: u32,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Encode every request before the clock starts, so that the timing measures the server
    /// rather than the generator (costs memory: about 25 bytes per sample).
    pub pregenerate: bool,
    /// Generate and encode, but send nothing (measures the generator).
    pub dry_run: bool,
    /// How many scrapes a shard may run ahead of the slowest one. Receivers reject samples far
    /// behind the newest they have (Prometheus: older than its head's appendable window, an
    /// hour behind), so shards must not drift apart.
    pub max_skew_scrapes: usize,
    /// Print a progress line to stderr this often.
    pub progress_every: Option<Duration>,
    /// Labels added to every series (Prometheus' external labels), e.g. an HA pair's
    /// `cluster` and `__replica__`.
    pub external_labels: Vec<(String, String)>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            url: "http://127.0.0.1:8080/api/v1/push".to_string(),
            tenant: None,
            concurrency: 4,
            batch: DEFAULT_BATCH,
            max_retries: 3,
            request_timeout: Duration::from_secs(60),
            pregenerate: false,
            dry_run: false,
            max_skew_scrapes: 20,
            progress_every: None,
            external_labels: Vec::new(),
        }
    }
}

/// What a load run did. Its `Display` is the one-line summary the bench script parses
/// (`key=value` pairs).
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Active series of the workload.
    pub series: usize,
    /// Samples in requests sent (each request counted once, however often it was retried).
    pub samples_sent: u64,
    /// Samples in requests finally answered 2xx.
    pub samples_acked: u64,
    /// Of those, samples in requests answered 202: accepted and dropped as an HA replica's
    /// that is not the elected one.
    pub samples_deduplicated: u64,
    /// Samples in requests finally answered otherwise.
    pub samples_rejected: u64,
    /// Rejected samples by final HTTP status; status 0 means no answer (transport error).
    pub rejected_by_status: BTreeMap<u16, u64>,
    /// Requests sent (not counting retries).
    pub requests: u64,
    /// Requests not finally answered 2xx.
    pub failed_requests: u64,
    /// Retries made.
    pub retries: u64,
    /// Compressed bytes sent (each request once).
    pub wire_bytes: u64,
    /// Uncompressed protobuf bytes.
    pub raw_bytes: u64,
    /// Seconds spent generating before sending started (pregeneration).
    pub generate_seconds: f64,
    /// Seconds from the first request to the last answer.
    pub elapsed_seconds: f64,
    /// The first failure seen, with the server's message.
    pub first_error: Option<String>,
    /// Seconds each request answered 2xx at its first attempt took, from send to answer.
    pub push_latencies: Vec<f64>,
}

impl LoadReport {
    /// The `q` quantile (0..=1) of [`Self::push_latencies`] in milliseconds, 0 when empty.
    pub fn push_latency_ms(&self, q: f64) -> f64 {
        let mut sorted = self.push_latencies.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return 0.0;
        }
        let index = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        sorted[index] * 1000.0
    }

    /// Acknowledged samples per second of sending.
    pub fn samples_per_second(&self) -> f64 {
        if self.elapsed_seconds > 0.0 {
            self.samples_acked as f64 / self.elapsed_seconds
        } else {
            0.0
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejected = if self.rejected_by_status.is_empty() {
            "none".to_string()
        } else {
            self.rejected_by_status
                .iter()
                .map(|(status, n)| {
                    if *status == 0 {
                        format!("transport:{n}")
                    } else {
                        format!("{status}:{n}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "series={} samples_sent={} samples_acked={} samples_deduplicated={} samples_rejected={} rejected_by_status={} requests={} \
             failed_requests={} retries={} wire_bytes={} raw_bytes={} generate_s={:.2} elapsed_s={:.2} samples_per_s={:.0} \
             push_p50_ms={:.3} push_p99_ms={:.3}",
            self.series,
            self.samples_sent,
            self.samples_acked,
            self.samples_deduplicated,
            self.samples_rejected,
            rejected,
            self.requests,
            self.failed_requests,
            self.retries,
            self.wire_bytes,
            self.raw_bytes,
            self.generate_seconds,
            self.elapsed_seconds,
            self.samples_per_second(),
            self.push_latency_ms(0.5),
            self.push_latency_ms(0.99)
        )
    }
}

/// Keeps shards within `max_skew` scrapes of each other. A shard may always send when it is
/// (one of) the slowest, so the gate can never deadlock, whatever the batch size.
#[derive(Debug)]
struct SkewGate {
    /// Per shard: every scrape before this index has been answered (`usize::MAX` when done).
    done: Vec<AtomicUsize>,
    notify: Notify,
    max_skew: usize,
}

impl SkewGate {
    fn new(shards: usize, max_skew: usize) -> Self {
        SkewGate {
            done: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            notify: Notify::new(),
            max_skew,
        }
    }

    fn may_send(&self, shard: usize, last_scrape: usize) -> bool {
        let slowest = self
            .done
            .iter()
            .map(|d| d.load(Ordering::Acquire))
            .min()
            .unwrap_or(usize::MAX);
        let mine = self
            .done
            .get(shard)
            .map_or(usize::MAX, |d| d.load(Ordering::Acquire));
        mine <= slowest || last_scrape <= slowest.saturating_add(self.max_skew)
    }

    async fn wait(&self, shard: usize, last_scrape: usize) {
        loop {
            let mut notified = std::pin::pin!(self.notify.notified());
            // Register before checking, so an advance between the check and the await wakes us.
            notified.as_mut().enable();
            if self.may_send(shard, last_scrape) {
                return;
            }
            notified.await;
        }
    }

    fn set(&self, shard: usize, done: usize) {
        if let Some(d) = self.done.get(shard) {
            d.store(done, Ordering::Release);
        }
        self.notify.notify_waiters();
    }
}

/// Where a shard's requests come from.
#[derive(Debug)]
enum BatchSource {
    Ready(std::vec::IntoIter<EncodedBatch>),
    Lazy(Box<ShardBatches>),
}

impl Iterator for BatchSource {
    type Item = Result<EncodedBatch, BenchError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            BatchSource::Ready(batches) => batches.next().map(Ok),
            BatchSource::Lazy(batches) => batches.next(),
        }
    }
}

#[derive(Debug)]
struct Shared {
    gate: SkewGate,
    report: Mutex<LoadReport>,
    options: LoadOptions,
    client: reqwest::Client,
}

impl Shared {
    fn record(&self, f: impl FnOnce(&mut LoadReport)) {
        // A poisoned lock only means another worker panicked; the counts are still usable.
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut report);
    }

    fn snapshot(&self) -> LoadReport {
        self.report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Pushes `workload` to `options.url` and reports what the server accepted: [`prepare_load`]
/// then [`PreparedLoad::send`].
pub async fn run_load(
    workload: &Workload,
    options: &LoadOptions,
) -> Result<LoadReport, BenchError> {
    prepare_load(workload, options)?.send().await
}

/// A load ready to send: the per-shard request sources, encoded up front when
/// `options.pregenerate` is set.
#[derive(Debug)]
pub struct PreparedLoad {
    workload: Workload,
    options: LoadOptions,
    sources: Vec<BatchSource>,
    generate_seconds: f64,
}

/// Validates the options and builds the shards' request sources. With `pregenerate`, this
/// is where all the encoding happens (on one thread per shard), so that a caller can tell
/// the generator's CPU time apart from the server's: the bench script samples the server's
/// CPU counters once this returns.
pub fn prepare_load(
    workload: &Workload,
    options: &LoadOptions,
) -> Result<PreparedLoad, BenchError> {
    workload.validate()?;
    if options.batch == 0 {
        return Err(BenchError::Invalid(
            "batch must be at least 1 sample".to_string(),
        ));
    }
    let shards = options.concurrency.max(1);
    let catalog = Arc::new(SeriesCatalog::with_external_labels(
        workload,
        &options.external_labels,
    ));

    let generate_started = Instant::now();
    let sources: Vec<BatchSource> = if options.pregenerate {
        let per_shard = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..shards)
                .map(|shard| {
                    let catalog = catalog.clone();
                    scope.spawn(move || {
                        ShardBatches::new(*workload, catalog, shard, shards, options.batch)
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().map_err(|_| {
                        BenchError::Worker("a generator thread panicked".to_string())
                    })?
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        per_shard
            .into_iter()
            .map(|b| BatchSource::Ready(b.into_iter()))
            .collect()
    } else {
        (0..shards)
            .map(|shard| {
                BatchSource::Lazy(Box::new(ShardBatches::new(
                    *workload,
                    catalog.clone(),
                    shard,
                    shards,
                    options.batch,
                )))
            })
            .collect()
    };
    Ok(PreparedLoad {
        workload: *workload,
        options: options.clone(),
        sources,
        generate_seconds: generate_started.elapsed().as_secs_f64(),
    })
}

impl PreparedLoad {
    /// Seconds spent preparing (encoding, when pregenerated).
    pub fn generate_seconds(&self) -> f64 {
        self.generate_seconds
    }

    /// Requests ready to send (0 when they are generated while sending).
    pub fn ready_requests(&self) -> usize {
        self.sources
            .iter()
            .map(|s| match s {
                BatchSource::Ready(batches) => batches.len(),
                BatchSource::Lazy(_) => 0,
            })
            .sum()
    }

    /// Sends the requests and reports what the server accepted.
    ///
    /// Requests go out in time order per shard (see [`ShardBatches`]), one in flight per
    /// shard, shards kept within `options.max_skew_scrapes` of each other. A request answered
    /// 429 or 5xx, or not answered, is retried up to `options.max_retries` times with
    /// exponential backoff before it counts as rejected; the next request of its shard waits
    /// for it, so order holds.
    pub async fn send(self) -> Result<LoadReport, BenchError> {
        let PreparedLoad {
            workload,
            options,
            sources,
            generate_seconds,
        } = self;
        let shards = sources.len();
        let shared = Arc::new(Shared {
            gate: SkewGate::new(shards, options.max_skew_scrapes),
            report: Mutex::new(LoadReport {
                series: workload.series_count(),
                generate_seconds,
                ..LoadReport::default()
            }),
            options: options.clone(),
            client: http_client(options.request_timeout)?,
        });

        let started = Instant::now();
        let progress = options.progress_every.map(|every| {
            let shared = shared.clone();
            let total = workload.sample_count();
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    let r = shared.snapshot();
                    let seconds = started.elapsed().as_secs_f64();
                    eprintln!(
                        "strata-loadgen: {:.0}s: {}/{} samples sent ({:.1}%), {:.0} acked/s, {} rejected, {} retries",
                        seconds,
                        r.samples_sent,
                        total,
                        100.0 * r.samples_sent as f64 / total.max(1) as f64,
                        r.samples_acked as f64 / seconds.max(1e-9),
                        r.samples_rejected,
                        r.retries
                    );
                }
            })
        });

        let workers: Vec<_> = sources
            .into_iter()
            .enumerate()
            .map(|(shard, source)| tokio::spawn(shard_worker(shard, source, shared.clone())))
            .collect();
        let mut failure = None;
        for worker in workers {
            let result = worker
                .await
                .unwrap_or_else(|e| Err(BenchError::Worker(e.to_string())));
            if let Err(e) = result {
                failure.get_or_insert(e);
            }
        }
        if let Some(progress) = progress {
            progress.abort();
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let mut report = shared.snapshot();
        report.elapsed_seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}

async fn shard_worker(
    shard: usize,
    mut source: BatchSource,
    shared: Arc<Shared>,
) -> Result<(), BenchError> {
    let result = async {
        for batch in source.by_ref() {
            let batch = batch?;
            shared.gate.wait(shard, batch.last_scrape).await;
            deliver(&shared, &batch).await;
            shared.gate.set(shard, batch.last_scrape);
        }
        Ok(())
    }
    .await;
    // Finished (or failed): never hold the other shards back.
    shared.gate.set(shard, usize::MAX);
    result
}

/// Sends one batch, retrying what the remote-write contract says is retryable.
async fn deliver(shared: &Shared, batch: &EncodedBatch) {
    let options = &shared.options;
    let samples = batch.samples as u64;
    shared.record(|r| {
        r.requests += 1;
        r.samples_sent += samples;
        r.wire_bytes += batch.body.len() as u64;
        r.raw_bytes += batch.raw_bytes as u64;
    });
    let mut attempt = 0;
    loop {
        let sent_at = Instant::now();
        let result = if options.dry_run {
            Ok(PushOutcome {
                status: 200,
                body: String::new(),
            })
        } else {
            push_body(
                &shared.client,
                &options.url,
                options.tenant.as_deref(),
                batch.body.clone(),
            )
            .await
        };
        let (status, message) = match result {
            Ok(outcome) if outcome.is_success() => {
                let seconds = sent_at.elapsed().as_secs_f64();
                let deduplicated = outcome.status == 202;
                shared.record(|r| {
                    r.samples_acked += samples;
                    if deduplicated {
                        r.samples_deduplicated += samples;
                    }
                    if attempt == 0 {
                        r.push_latencies.push(seconds);
                    }
                });
                return;
            }
            Ok(outcome) => {
                if outcome.is_retryable() && attempt < options.max_retries {
                    (None, String::new())
                } else {
                    (
                        Some(outcome.status),
                        format!("HTTP {}: {}", outcome.status, outcome.body.trim()),
                    )
                }
            }
            Err(_) if attempt < options.max_retries => (None, String::new()),
            Err(e) => (Some(0), e.to_string()),
        };
        if let Some(status) = status {
            shared.record(|r| {
                r.samples_rejected += samples;
                r.failed_requests += 1;
                *r.rejected_by_status.entry(status).or_default() += samples;
                if r.first_error.is_none() {
                    let mut message = message;
                    message.truncate(2000);
                    r.first_error = Some(message);
                }
            });
            return;
        }
        attempt += 1;
        shared.record(|r| r.retries += 1);
        let backoff = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6)))
            .min(Duration::from_secs(5));
        tokio::time::sleep(backoff).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::{HashMap, HashSet};

    use super::*;

    /// A small workload: 3 hosts, 30 scrapes.
    fn small(seed: u64) -> Workload {
        Workload {
            hosts: 3,
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_000_450_000,
            interval_ms: 15_000,
            jitter_ms: 4,
            seed,
        }
    }

    /// A sample as comparable data: labels, timestamp and value bits.
    type SampleBits = (Vec<(String, String)>, i64, u64);

    fn bits(series: &[TimeSeries]) -> Vec<SampleBits> {
        series
            .iter()
            .map(|ts| {
                let labels = ts
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                (
                    labels,
                    ts.samples[0].timestamp,
                    ts.samples[0].value.to_bits(),
                )
            })
            .collect()
    }

    #[test]
    fn same_seed_gives_the_same_samples_and_another_seed_does_not() {
        let (a, b, c) = (small(7), small(7), small(8));
        for (host, scrape) in [(0, 0), (1, 17), (2, 29)] {
            assert_eq!(bits(&a.scrape(host, scrape)), bits(&b.scrape(host, scrape)));
            assert_ne!(bits(&a.scrape(host, scrape)), bits(&c.scrape(host, scrape)));
        }
        // A sample does not depend on what was generated before it.
        let direct = a.sample(2, 100, 29);
        let via_scrape = a.scrape(2, 29)[100].samples[0];
        assert_eq!(
            (direct.timestamp, direct.value.to_bits()),
            (via_scrape.timestamp, via_scrape.value.to_bits())
        );
    }

    #[test]
    fn every_host_exposes_the_same_number_of_distinct_sorted_series() {
        let w = small(1);
        let per_host = Workload::series_per_host();
        assert!(
            (500..=550).contains(&per_host),
            "series per host: {per_host}"
        );
        assert_eq!(w.series_count(), 3 * per_host);
        assert_eq!(w.scrape_count(), 30);
        assert_eq!(w.sample_count(), 90 * per_host as u64);
        let mut all = HashSet::new();
        for host in 0..w.hosts {
            let scrape = w.scrape(host, 0);
            assert_eq!(scrape.len(), per_host);
            for ts in &scrape {
                let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
                assert!(
                    names.windows(2).all(|p| p[0] < p[1]),
                    "labels not sorted or duplicated: {names:?}"
                );
                assert!(ts
                    .labels
                    .iter()
                    .any(|l| l.name == "instance" && l.value == format!("host-{host:02}:9100")));
                assert!(ts
                    .labels
                    .iter()
                    .any(|l| l.name == "job" && l.value == "node"));
                assert!(
                    all.insert(ts.labels.clone()),
                    "duplicate series {:?}",
                    ts.labels
                );
            }
        }
        // The families the read-path benchmark queries are present.
        let names: HashSet<String> = w
            .scrape(0, 0)
            .iter()
            .map(|ts| ts.labels[0].value.clone())
            .collect();
        for family in [
            "up",
            "node_cpu_seconds_total",
            "kube_node_info",
            "kube_pod_status_phase",
            "kube_pod_container_resource_requests",
            "http_request_duration_seconds_bucket",
            "go_gc_duration_seconds",
        ] {
            assert!(names.contains(family), "missing {family}");
        }
    }

    #[test]
    fn timestamps_are_shared_per_host_scrape_and_jitter_stays_within_bounds() {
        let w = small(3);
        for host in 0..w.hosts {
            for k in 0..w.scrape_count() {
                let ts = w.scrape(host, k);
                let t = ts[0].samples[0].timestamp;
                assert!(ts.iter().all(|s| s.samples[0].timestamp == t));
                assert!((t - (w.start_ms + k as i64 * w.interval_ms)).abs() <= w.jitter_ms);
            }
        }
        let regular = Workload { jitter_ms: 0, ..w };
        assert_eq!(regular.timestamp(1, 5), w.start_ms + 5 * 15_000);
    }

    #[test]
    fn counters_never_decrease_and_histograms_are_cumulative() {
        let w = Workload {
            end_ms: 1_700_000_000_000 + 600 * 15_000,
            ..small(5)
        };
        let template = template();
        for host in 0..2 {
            let mut previous: Vec<f64> = vec![f64::NEG_INFINITY; template.len()];
            for k in 0..w.scrape_count() {
                let scrape = w.scrape(host, k);
                for (i, t) in template.iter().enumerate() {
                    let v = scrape[i].samples[0].value;
                    assert!(v.is_finite(), "{} is {v}", t.name);
                    if matches!(
                        t.shape,
                        Shape::Counter { .. }
                            | Shape::Bucket { .. }
                            | Shape::HistogramCount { .. }
                            | Shape::HistogramSum { .. }
                    ) {
                        assert!(
                            v >= previous[i],
                            "{} decreased: {} -> {v}",
                            t.name,
                            previous[i]
                        );
                    }
                    previous[i] = v;
                }
                // Buckets of one family: non-decreasing in `le`, +Inf equal to _count.
                let mut by_family: HashMap<u32, Vec<f64>> = HashMap::new();
                let mut counts: HashMap<u32, f64> = HashMap::new();
                for (i, t) in template.iter().enumerate() {
                    match t.shape {
                        Shape::Bucket { family, .. } => by_family
                            .entry(family)
                            .or_default()
                            .push(scrape[i].samples[0].value),
                        Shape::HistogramCount { family } => {
                            counts.insert(family, scrape[i].samples[0].value);
                        }
                        _ => {}
                    }
                }
                for (family, buckets) in by_family {
                    assert!(
                        buckets.windows(2).all(|p| p[0] <= p[1]),
                        "buckets {buckets:?}"
                    );
                    assert_eq!(buckets.last().copied(), counts.get(&family).copied());
                }
            }
        }
    }

    #[test]
    fn exactly_one_phase_per_pod() {
        let w = small(9);
        for k in [0, 13, 29] {
            let mut running: HashMap<String, f64> = HashMap::new();
            for ts in w
                .scrape(1, k)
                .iter()
                .filter(|ts| ts.labels[0].value == "kube_pod_status_phase")
            {
                let pod = ts
                    .labels
                    .iter()
                    .find(|l| l.name == "pod")
                    .unwrap()
                    .value
                    .clone();
                *running.entry(pod).or_default() += ts.samples[0].value;
            }
            assert_eq!(running.len(), PODS_PER_HOST as usize);
            assert!(running.values().all(|&v| v == 1.0), "{running:?}");
        }
    }

    #[test]
    fn most_series_are_decimal_exact_and_a_few_are_noisy() {
        let w = small(2);
        let scrape = w.scrape(0, 11);
        let decimal = scrape
            .iter()
            .filter(|ts| {
                let v = ts.samples[0].value;
                (0..=9).any(|d| {
                    let scale = 10f64.powi(d);
                    let m = (v * scale).round();
                    m.abs() < 9.0e15 && (m / scale).to_bits() == v.to_bits()
                })
            })
            .count();
        let share = decimal as f64 / scrape.len() as f64;
        assert!((0.88..0.97).contains(&share), "decimal-exact share {share}");
    }

    #[test]
    fn requests_come_in_time_order_and_hold_every_sample_once() {
        let w = small(4);
        let batch = 700;
        let mut last_per_series: HashMap<Vec<Label>, i64> = HashMap::new();
        let mut last_scrape = 0;
        let mut total = 0;
        for request in w.requests(batch) {
            assert!(!request.timeseries.is_empty() && request.timeseries.len() <= batch);
            for ts in &request.timeseries {
                assert_eq!(ts.samples.len(), 1);
                let t = ts.samples[0].timestamp;
                // Every host's scrape k comes before any scrape k+1.
                let scrape = ((t - w.start_ms + w.jitter_ms) / w.interval_ms) as usize;
                assert!(scrape >= last_scrape, "scrape {scrape} after {last_scrape}");
                last_scrape = scrape;
                if let Some(previous) = last_per_series.insert(ts.labels.clone(), t) {
                    assert!(t > previous);
                }
                total += 1;
            }
        }
        assert_eq!(total, w.sample_count());
        assert_eq!(last_per_series.len(), w.series_count());
    }

    #[test]
    fn fast_encoding_is_byte_identical_to_prost() {
        let w = small(6);
        let catalog = Arc::new(SeriesCatalog::new(&w));
        let fast = ShardBatches::new(w, catalog, 0, 1, 900);
        let mut decoder = snap::raw::Decoder::new();
        let mut n = 0;
        for (fast, slow) in fast.zip(w.requests(900)) {
            let fast = fast.unwrap();
            assert_eq!(
                decoder.decompress_vec(&fast.body).unwrap(),
                slow.encode_to_vec()
            );
            assert_eq!(fast.samples, slow.timeseries.len());
            n += 1;
        }
        assert_eq!(n, w.requests(900).count());
        // Zero values and zero timestamps are left out, as prost does.
        let mut buf = Vec::new();
        append_series(&mut buf, &[], 0, 0.0);
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![],
                samples: vec![Sample {
                    value: 0.0,
                    timestamp: 0,
                }],
                exemplars: vec![],
            }],
            metadata: vec![],
        };
        assert_eq!(buf, request.encode_to_vec());
    }

    #[test]
    fn shards_partition_the_series_and_keep_each_in_order() {
        let w = small(11);
        let catalog = Arc::new(SeriesCatalog::new(&w));
        let shards = 3;
        let mut owner: HashMap<Vec<Label>, usize> = HashMap::new();
        let mut total = 0;
        for shard in 0..shards {
            let mut last: HashMap<Vec<Label>, i64> = HashMap::new();
            let mut last_scrape = 0;
            for batch in ShardBatches::new(w, catalog.clone(), shard, shards, 500) {
                let batch = batch.unwrap();
                assert!(batch.last_scrape >= last_scrape);
                last_scrape = batch.last_scrape;
                let raw = snap::raw::Decoder::new()
                    .decompress_vec(&batch.body)
                    .unwrap();
                let request = WriteRequest::decode(raw.as_slice()).unwrap();
                assert_eq!(request.timeseries.len(), batch.samples);
                for ts in request.timeseries {
                    let t = ts.samples[0].timestamp;
                    assert_eq!(*owner.entry(ts.labels.clone()).or_insert(shard), shard);
                    if let Some(previous) = last.insert(ts.labels, t) {
                        assert!(t > previous);
                    }
                    total += 1;
                }
            }
        }
        assert_eq!(total, w.sample_count());
        assert_eq!(owner.len(), w.series_count());
    }

    #[test]
    fn the_skew_gate_holds_back_only_shards_that_are_ahead() {
        let gate = SkewGate::new(3, 10);
        gate.set(0, 30);
        gate.set(1, 5);
        gate.set(2, 12);
        assert!(gate.may_send(1, 100), "the slowest shard always proceeds");
        assert!(gate.may_send(2, 15));
        assert!(!gate.may_send(0, 31));
        gate.set(1, usize::MAX);
        assert!(gate.may_send(0, 22));
        assert!(!gate.may_send(0, 23));
    }

    #[test]
    fn external_labels_are_added_sorted_and_never_replace_a_series_label() {
        let w = small(3);
        let external = [
            ("cluster".to_string(), "eu-1".to_string()),
            ("__replica__".to_string(), "a".to_string()),
            ("job".to_string(), "not-node".to_string()),
        ];
        let catalog = SeriesCatalog::with_external_labels(&w, &external);
        for host in 0..w.hosts {
            for series in 0..Workload::series_per_host() {
                let decoded = TimeSeries::decode(catalog.labels(host, series)).unwrap();
                let names: Vec<&str> = decoded.labels.iter().map(|l| l.name.as_str()).collect();
                let mut sorted = names.clone();
                sorted.sort();
                assert_eq!(names, sorted);
                let value = |n: &str| {
                    decoded
                        .labels
                        .iter()
                        .find(|l| l.name == n)
                        .map(|l| l.value.clone())
                };
                assert_eq!(value("cluster").as_deref(), Some("eu-1"));
                assert_eq!(value("__replica__").as_deref(), Some("a"));
                assert_eq!(value("job").as_deref(), Some("node"));
                assert_eq!(
                    decoded.labels.len(),
                    w.labels(host, series).len() + 2,
                    "{names:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_dry_run_counts_every_sample() {
        let w = small(12);
        let options = LoadOptions {
            dry_run: true,
            concurrency: 3,
            batch: 400,
            max_skew_scrapes: 1,
            ..LoadOptions::default()
        };
        let report = run_load(&w, &options).await.unwrap();
        assert_eq!(report.samples_sent, w.sample_count());
        assert_eq!(report.samples_acked, w.sample_count());
        assert_eq!(report.samples_rejected, 0);
        let pregenerated = run_load(
            &w,
            &LoadOptions {
                pregenerate: true,
                ..options
            },
        )
        .await
        .unwrap();
        assert_eq!(pregenerated.wire_bytes, report.wire_bytes);
    }
}
