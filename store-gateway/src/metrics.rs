//! The store-gateway's metrics. Created unregistered so that [`crate::StoreGateway::new`]
//! needs no registry; [`crate::StoreGateway::register_metrics`] adds them to one.

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Counters, gauges and histograms of discovery and reads.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    /// Blocks known per tenant after the last sync.
    pub(crate) blocks_loaded: IntGaugeVec,
    pub(crate) sync_duration: Histogram,
    pub(crate) sync_failures: IntCounter,
    /// Bytes read from object storage, by tenant and file.
    pub(crate) bytes_fetched: IntCounterVec,
    /// Series streamed out by `select` (one per block a series is in).
    pub(crate) series_returned: IntCounterVec,
    /// Blocks whose samples a `select` scanned.
    pub(crate) blocks_scanned: IntCounterVec,
    /// Series tables decoded (a block's first query after discovery).
    pub(crate) series_tables_loaded: IntCounterVec,
}

impl Metrics {
    pub(crate) fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            blocks_loaded: IntGaugeVec::new(
                Opts::new(
                    "strata_store_gateway_blocks_loaded",
                    "Blocks the store-gateway knows, by tenant.",
                ),
                &["user"],
            )?,
            sync_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "strata_store_gateway_blocks_sync_duration_seconds",
                    "Time to list a tenant's blocks and read new metas.",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0]),
            )?,
            sync_failures: IntCounter::new(
                "strata_store_gateway_blocks_sync_failures_total",
                "Tenant block syncs that failed.",
            )?,
            bytes_fetched: IntCounterVec::new(
                Opts::new(
                    "strata_store_gateway_bytes_fetched_total",
                    "Bytes read from object storage, by tenant and file.",
                ),
                &["user", "file"],
            )?,
            series_returned: IntCounterVec::new(
                Opts::new(
                    "strata_store_gateway_series_returned_total",
                    "Series streamed by select, once per block a series is in, by tenant.",
                ),
                &["user"],
            )?,
            blocks_scanned: IntCounterVec::new(
                Opts::new(
                    "strata_store_gateway_blocks_scanned_total",
                    "Blocks whose samples a select scanned, by tenant.",
                ),
                &["user"],
            )?,
            series_tables_loaded: IntCounterVec::new(
                Opts::new(
                    "strata_store_gateway_series_tables_loaded_total",
                    "Blocks' series tables read and decoded, by tenant.",
                ),
                &["user"],
            )?,
        })
    }

    pub(crate) fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let collectors: [Box<dyn Collector>; 7] = [
            Box::new(self.blocks_loaded.clone()),
            Box::new(self.sync_duration.clone()),
            Box::new(self.sync_failures.clone()),
            Box::new(self.bytes_fetched.clone()),
            Box::new(self.series_returned.clone()),
            Box::new(self.blocks_scanned.clone()),
            Box::new(self.series_tables_loaded.clone()),
        ];
        for collector in collectors {
            registry.register(collector)?;
        }
        Ok(())
    }
}
