//! `strata-loadgen`: pushes a deterministic node_exporter-like workload to a remote-write
//! endpoint and prints a one-line summary (`key=value` pairs) that `bench/run.sh` parses.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use strata_bench::{
    prepare_load, LoadOptions, Workload, DEFAULT_BATCH, DEFAULT_INTERVAL_MS, DEFAULT_JITTER_MS,
};

/// Pushes a deterministic node_exporter-like workload over Prometheus remote write 1.0.
#[derive(Debug, Parser)]
#[command(name = "strata-loadgen", version)]
struct Args {
    /// Remote-write URL: /api/v1/push for Strata and Mimir, /api/v1/write for Prometheus and VictoriaMetrics.
    #[arg(long, default_value = "http://127.0.0.1:8080/api/v1/push")]
    url: String,
    /// Tenant to send in X-Scope-OrgID (none when absent).
    #[arg(long)]
    tenant: Option<String>,
    /// Scrape targets; each exposes about 520 series.
    #[arg(long, default_value_t = 40)]
    hosts: usize,
    /// Hours of data, ending at --end-ms.
    #[arg(long, default_value_t = 8.0)]
    hours: f64,
    /// End of the span (exclusive), in ms since the epoch; default: now, rounded down to the interval.
    #[arg(long)]
    end_ms: Option<i64>,
    /// Scrape interval in milliseconds.
    #[arg(long, default_value_t = DEFAULT_INTERVAL_MS)]
    interval_ms: i64,
    /// Maximum scrape jitter in milliseconds, per host and scrape (0 for regular timestamps).
    #[arg(long, default_value_t = DEFAULT_JITTER_MS)]
    jitter_ms: i64,
    /// Seed of the workload: the same seed and span always give the same samples.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Requests in flight (shards by series; each series' samples stay in order).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Samples per request.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Retries of a request answered 429/5xx or not answered, before it counts as rejected.
    #[arg(long, default_value_t = 3)]
    max_retries: u32,
    /// Timeout of one HTTP request, in seconds.
    #[arg(long, default_value_t = 60)]
    request_timeout_s: u64,
    /// Scrapes a shard may run ahead of the slowest shard.
    #[arg(long, default_value_t = 20)]
    max_skew_scrapes: usize,
    /// Encode every request before starting the clock (about 25 bytes of memory per sample).
    #[arg(long)]
    pregenerate: bool,
    /// Generate and encode only; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Exit 0 even when requests were rejected.
    #[arg(long)]
    allow_errors: bool,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 10)]
    progress_s: u64,
    /// A label added to every series, as Prometheus' external labels (repeatable), e.g.
    /// `--external-label cluster=eu-1 --external-label __replica__=a` for one member of an HA pair.
    #[arg(long = "external-label", value_name = "NAME=VALUE", value_parser = parse_label)]
    external_labels: Vec<(String, String)>,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let end_ms = match args.end_ms {
        Some(end_ms) => end_ms,
        None => {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            now_ms - now_ms.rem_euclid(args.interval_ms.max(1))
        }
    };
    let mut workload = Workload::ending_at(args.hosts, args.hours, end_ms, args.seed);
    workload.interval_ms = args.interval_ms;
    workload.jitter_ms = args.jitter_ms;
    if let Err(e) = workload.validate() {
        eprintln!("strata-loadgen: {e}");
        return ExitCode::from(2);
    }
    let options = LoadOptions {
        url: args.url.clone(),
        tenant: args.tenant.clone(),
        concurrency: args.concurrency,
        batch: args.batch,
        max_retries: args.max_retries,
        request_timeout: Duration::from_secs(args.request_timeout_s.max(1)),
        pregenerate: args.pregenerate,
        dry_run: args.dry_run,
        max_skew_scrapes: args.max_skew_scrapes,
        progress_every: (args.progress_s > 0).then(|| Duration::from_secs(args.progress_s)),
        external_labels: args.external_labels.clone(),
    };
    eprintln!(
        "strata-loadgen: workload hosts={} series={} scrapes={} samples={} start_ms={} end_ms={} interval_ms={} jitter_ms={} seed={} -> {}",
        workload.hosts,
        workload.series_count(),
        workload.scrape_count(),
        workload.sample_count(),
        workload.start_ms,
        workload.end_ms,
        workload.interval_ms,
        workload.jitter_ms,
        workload.seed,
        if args.dry_run { "(dry run)" } else { args.url.as_str() },
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("strata-loadgen: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let prepared = match prepare_load(&workload, &options) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("strata-loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    // bench/run.sh waits for this line to start counting the server's CPU time.
    eprintln!(
        "strata-loadgen: prepared {} requests in {:.2}s; sending",
        prepared.ready_requests(),
        prepared.generate_seconds()
    );
    let report = match runtime.block_on(prepared.send()) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("strata-loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(error) = &report.first_error {
        eprintln!("strata-loadgen: first error: {error}");
    }
    println!("strata-loadgen summary: {report}");
    if report.failed_requests > 0 && !args.allow_errors {
        eprintln!(
            "strata-loadgen: {} requests ({} samples) were not accepted; pass --allow-errors to exit 0 anyway",
            report.failed_requests, report.samples_rejected
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
