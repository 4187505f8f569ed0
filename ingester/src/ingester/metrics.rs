//! The ingester's metrics (the WAL registers its own in [`super::wal`]).

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Counters and gauges of the head, block cutting and shipping.
#[derive(Clone, Debug)]
pub struct IngesterMetrics {
    pub ingested_samples: IntCounterVec,
    pub head_series: IntGaugeVec,
    pub head_bytes: IntGauge,
    pub blocks_cut: IntCounter,
    pub blocks_shipped: IntCounter,
    pub ship_failures: IntCounter,
    pub blocks_pending_ship: IntGauge,
    pub series_table_cache_bytes: IntGauge,
}

impl IngesterMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            ingested_samples: IntCounterVec::new(
                Opts::new(
                    "strata_ingester_ingested_samples_total",
                    "Samples appended to the head and the WAL, by tenant.",
                ),
                &["user"],
            )?,
            head_series: IntGaugeVec::new(
                Opts::new(
                    "strata_ingester_memory_series",
                    "Active series in the head, by tenant.",
                ),
                &["user"],
            )?,
            head_bytes: IntGauge::new(
                "strata_ingester_head_bytes",
                "Approximate heap bytes held by the heads of all tenants.",
            )?,
            blocks_cut: IntCounter::new(
                "strata_ingester_blocks_cut_total",
                "Blocks cut from the head.",
            )?,
            blocks_shipped: IntCounter::new(
                "strata_ingester_blocks_shipped_total",
                "Blocks uploaded to object storage.",
            )?,
            ship_failures: IntCounter::new(
                "strata_ingester_ship_failures_total",
                "Failed attempts to upload a block.",
            )?,
            blocks_pending_ship: IntGauge::new(
                "strata_ingester_blocks_pending_ship",
                "Blocks cut and kept on local disk, waiting for upload.",
            )?,
            series_table_cache_bytes: IntGauge::new(
                "strata_ingester_series_table_cache_bytes",
                "Approximate heap bytes of the cached series tables (and their postings) of local blocks.",
            )?,
        };
        registry.register(Box::new(m.ingested_samples.clone()))?;
        registry.register(Box::new(m.head_series.clone()))?;
        registry.register(Box::new(m.head_bytes.clone()))?;
        registry.register(Box::new(m.blocks_cut.clone()))?;
        registry.register(Box::new(m.blocks_shipped.clone()))?;
        registry.register(Box::new(m.ship_failures.clone()))?;
        registry.register(Box::new(m.blocks_pending_ship.clone()))?;
        registry.register(Box::new(m.series_table_cache_bytes.clone()))?;
        Ok(m)
    }
}
