//! Metrics more than one role updates; each role registers its own otherwise.

use prometheus::{IntCounterVec, Opts, Registry};

/// `strata_discarded_samples_total{reason,user}`: samples refused by the distributor's
/// validation or by an ingester, by reason and tenant (Mimir's `cortex_discarded_samples_total`).
#[derive(Clone, Debug)]
pub struct DiscardedSamples(pub IntCounterVec);

impl DiscardedSamples {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = IntCounterVec::new(
            Opts::new(
                "strata_discarded_samples_total",
                "Samples discarded, by reason and tenant.",
            ),
            &["reason", "user"],
        )?;
        registry.register(Box::new(counter.clone()))?;
        Ok(Self(counter))
    }

    pub fn add(&self, reason: &str, tenant: &str, samples: usize) {
        self.0
            .with_label_values(&[reason, tenant])
            .inc_by(samples as u64);
    }
}
