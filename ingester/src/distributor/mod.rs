//! The distributor: validates remote-write requests and replicates each series to its
//! ingesters on the ring, acknowledging once a quorum of them has the series in its WAL.

pub mod ha_tracker;
pub mod http;
pub mod push_target;
pub mod quorum;
pub mod rate_limit;
pub mod validation;

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use strata_shared::limits::LimitsConfig;
use strata_shared::metrics::DiscardedSamples;
use strata_shared::overrides::{flags, per_tenant_limit_message, Overrides};
use strata_shared::proto::ingester::{PushRequest, PushResponse, Sample, Series};
use strata_shared::proto::prometheus::WriteRequestBytes;
use strata_shared::ring::{MemberState, Ring};

use crate::peers::HealthyDistributors;
use crate::DistributorConfig;
use push_target::SharedPushTarget;
use quorum::{QuorumTracker, ReplicaAnswer, SeriesOutcome};
use rate_limit::{Decision, RateLimiter};
use validation::{validate_series, ValidationError};

/// The result of a push the distributor accepted at least in part.
#[derive(Debug, Default)]
pub struct PushOutcome {
    /// Samples refused by validation or by the ingesters (non-retryable: the sender drops them).
    pub rejected: Vec<String>,
    pub accepted_series: usize,
}

/// Why a whole push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Too few replicas acknowledged: the sender should retry.
    #[error("{0}")]
    Replication(String),
    /// The tenant is over its ingestion or request rate (429: the sender retries later).
    #[error("{0}")]
    RateLimited(String),
    /// Dropped by HA deduplication (202), no HA election possible now (503), or a new HA
    /// cluster over the tenant's limit (400).
    #[error(transparent)]
    Ha(#[from] ha_tracker::HaError),
}

#[derive(Debug, Clone)]
struct DistributorMetrics {
    received_samples: IntCounterVec,
    requests: IntCounterVec,
    push_duration: HistogramVec,
    ring_members: IntGaugeVec,
    discarded_requests: IntCounterVec,
    healthy_distributors: prometheus::IntGauge,
}

impl DistributorMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            received_samples: IntCounterVec::new(
                Opts::new(
                    "strata_distributor_received_samples_total",
                    "Samples received in remote-write requests, before validation, by tenant.",
                ),
                &["user"],
            )?,
            requests: IntCounterVec::new(
                Opts::new(
                    "strata_distributor_requests_total",
                    "Remote-write requests by HTTP status code.",
                ),
                &["code"],
            )?,
            push_duration: HistogramVec::new(
                HistogramOpts::new(
                    "strata_distributor_push_duration_seconds",
                    "Time to validate and replicate one remote-write request.",
                ),
                &["code"],
            )?,
            ring_members: IntGaugeVec::new(
                Opts::new(
                    "strata_ring_member_state",
                    "1 for the state each ring member is in, as this distributor sees it.",
                ),
                &["member", "state"],
            )?,
            discarded_requests: IntCounterVec::new(
                Opts::new(
                    "strata_discarded_requests_total",
                    "Remote-write requests refused whole before decoding, by reason and tenant (Mimir's cortex_discarded_requests_total).",
                ),
                &["reason", "user"],
            )?,
            healthy_distributors: prometheus::IntGauge::new(
                "strata_distributor_healthy_distributors",
                "Distributors answering /ready (-distributor.ring.static-members); each enforces this fraction of the tenants' rate limits.",
            )?,
        };
        registry.register(Box::new(m.received_samples.clone()))?;
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.push_duration.clone()))?;
        registry.register(Box::new(m.ring_members.clone()))?;
        registry.register(Box::new(m.discarded_requests.clone()))?;
        registry.register(Box::new(m.healthy_distributors.clone()))?;
        Ok(m)
    }
}

/// The distributor.
#[derive(Debug)]
pub struct Distributor {
    config: DistributorConfig,
    overrides: Arc<Overrides>,
    ingestion_limiter: RateLimiter,
    request_limiter: RateLimiter,
    distributors: Arc<HealthyDistributors>,
    multitenancy_enabled: bool,
    ring: Arc<Ring>,
    ingesters: Vec<SharedPushTarget>,
    metrics: DistributorMetrics,
    discarded: DiscardedSamples,
    ha_tracker: Option<Arc<ha_tracker::HaTracker>>,
}

impl Distributor {
    /// `ingesters[i]` reaches `ring.members()[i]`; `distributors` counts the healthy
    /// distributors that share the tenants' rate limits.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: DistributorConfig,
        overrides: Arc<Overrides>,
        distributors: Arc<HealthyDistributors>,
        multitenancy_enabled: bool,
        ring: Arc<Ring>,
        ingesters: Vec<SharedPushTarget>,
        registry: &Registry,
        discarded: DiscardedSamples,
    ) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            ingesters.len() == ring.members().len(),
            "one ingester handle per ring member is needed"
        );
        let ha_tracker = if config.ha_tracker.enable_ha_tracker {
            Some(ha_tracker::HaTracker::from_config(
                &config.ha_tracker,
                registry,
            )?)
        } else {
            None
        };
        Ok(Arc::new(Self {
            config,
            overrides,
            ingestion_limiter: RateLimiter::new(),
            request_limiter: RateLimiter::new(),
            distributors,
            multitenancy_enabled,
            ring,
            ingesters,
            metrics: DistributorMetrics::new(registry)?,
            discarded,
            ha_tracker,
        }))
    }

    /// The HA tracker, when `-distributor.ha-tracker.enable` is on.
    pub fn ha_tracker(&self) -> Option<&Arc<ha_tracker::HaTracker>> {
        self.ha_tracker.as_ref()
    }

    pub fn ring(&self) -> &Arc<Ring> {
        &self.ring
    }

    pub fn overrides(&self) -> &Arc<Overrides> {
        &self.overrides
    }

    /// This distributor's share of a global rate: divided by the healthy distributors.
    fn local_rate(&self, global: f64) -> f64 {
        global / self.distributors.count() as f64
    }

    /// The request rate limit (`-distributor.request-rate-limit`, 0 = none), checked before
    /// the body is read.
    pub fn check_request_rate(&self, tenant: &str) -> Result<(), PushError> {
        let limits = self.overrides.tenant(tenant);
        if limits.request_rate <= 0.0 {
            return Ok(());
        }
        // A burst of 0 would refuse every request: it means "the rate, at least 1".
        let burst = if limits.request_burst_size > 0 {
            limits.request_burst_size
        } else {
            (limits.request_rate.ceil() as usize).max(1)
        };
        let rate = self.local_rate(limits.request_rate);
        match self
            .request_limiter
            .allow_n(tenant, std::time::Instant::now(), rate, burst, 1)
        {
            Decision::Allowed => Ok(()),
            Decision::RateLimited | Decision::OverBurst => {
                self.metrics
                    .discarded_requests
                    .with_label_values(&["request_rate_limited", tenant])
                    .inc();
                Err(PushError::RateLimited(request_rate_message(
                    tenant, &limits, burst,
                )))
            }
        }
    }

    /// Refreshes the ring-member gauge (called when `/metrics` is scraped).
    pub fn update_ring_metrics(&self) {
        self.metrics
            .healthy_distributors
            .set(self.distributors.count() as i64);
        for (i, member) in self.ring.members().iter().enumerate() {
            let state = self.ring.state(i);
            for (name, value) in [
                ("ACTIVE", MemberState::Active),
                ("UNHEALTHY", MemberState::Unhealthy),
            ] {
                self.metrics
                    .ring_members
                    .with_label_values(&[member.id.as_str(), name])
                    .set(i64::from(state == value));
            }
        }
    }

    /// HA deduplication before the body is decoded: a request from a replica that is not
    /// the elected one is refused from its first series, without decoding the rest
    /// ([`ha_tracker::HaTracker::precheck`]). `raw` is the uncompressed protobuf.
    #[tracing::instrument(level = "debug", skip_all, fields(tenant))]
    pub async fn ha_precheck(
        &self,
        tenant: &str,
        raw: &[u8],
        now_ms: i64,
    ) -> Result<(), PushError> {
        let Some(ha) = &self.ha_tracker else {
            return Ok(());
        };
        let limits = self.overrides.tenant(tenant);
        let limits = ha_tracker::HaLimits::from_limits(&limits);
        match ha.precheck(tenant, &limits, raw, now_ms).await {
            Ok(()) => Ok(()),
            Err((e, samples)) => {
                self.metrics
                    .received_samples
                    .with_label_values(&[tenant])
                    .inc_by(samples as u64);
                Err(self.ha_refused(tenant, e, samples))
            }
        }
    }

    fn ha_refused(&self, tenant: &str, e: ha_tracker::HaError, samples: usize) -> PushError {
        if matches!(e, ha_tracker::HaError::TooManyClusters(_)) {
            self.discarded.add("too_many_ha_clusters", tenant, samples);
        }
        e.into()
    }

    /// Validates and replicates a decoded write request for `tenant`.
    #[tracing::instrument(level = "debug", skip_all, fields(tenant, series = request.timeseries.len()))]
    pub async fn push(
        &self,
        tenant: &str,
        mut request: WriteRequestBytes,
        now_ms: i64,
    ) -> Result<PushOutcome, PushError> {
        let received: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
        let limits = self.overrides.tenant(tenant);
        let metadata = request.metadata.len();
        let mut validated_samples = 0usize;
        let mut validated_exemplars = 0usize;
        self.metrics
            .received_samples
            .with_label_values(&[tenant])
            .inc_by(received as u64);
        if let Some(ha) = &self.ha_tracker {
            let limits = ha_tracker::HaLimits::from_limits(&limits);
            if let Err(e) = ha.dedupe(tenant, &limits, &mut request, now_ms).await {
                return Err(self.ha_refused(tenant, e, received));
            }
        }

        let mut outcome = PushOutcome::default();
        let mut first_errors: HashMap<&'static str, (String, usize)> = HashMap::new();
        let mut record_error = |e: ValidationError, tenant: &str| {
            self.discarded.add(e.reason, tenant, e.samples);
            first_errors
                .entry(e.reason)
                .and_modify(|x| x.1 += e.samples)
                .or_insert((e.message, e.samples));
        };
        let mut valid = Vec::with_capacity(request.timeseries.len());
        for series in request.timeseries {
            if series.samples.is_empty() {
                continue;
            }
            let exemplars = series.exemplars.len();
            let (ok, errors) = validate_series(series, &limits, now_ms);
            for e in errors {
                record_error(e, tenant);
            }
            if let Some(series) = ok {
                validated_samples += series.samples.len();
                validated_exemplars += exemplars;
                valid.push(series);
            }
        }
        let mut rejected: Vec<(String, usize)> = first_errors.into_values().collect();

        // The ingestion rate limit, on what passed validation, as Mimir counts it.
        let items = validated_samples + validated_exemplars + metadata;
        let decision = self.ingestion_limiter.allow_n(
            tenant,
            std::time::Instant::now(),
            self.local_rate(limits.ingestion_rate),
            limits.ingestion_burst_size,
            items,
        );
        if decision != Decision::Allowed {
            self.discarded
                .add("rate_limited", tenant, validated_samples);
            return Err(PushError::RateLimited(ingestion_rate_message(
                tenant, &limits, decision, items,
            )));
        }

        // Place each series on its replicas.
        let members = self.ring.members().len();
        let mut per_member: Vec<Vec<usize>> = vec![Vec::new(); members];
        let mut replicas_of = Vec::with_capacity(valid.len());
        for (i, series) in valid.iter().enumerate() {
            let replicas = self
                .ring
                .replicas(Ring::series_key_from_hash(tenant, series.labels_hash));
            for &m in &replicas {
                per_member[m].push(i);
            }
            replicas_of.push(replicas);
        }
        let mut protos: Vec<Series> = valid
            .into_iter()
            .map(|s| Series {
                labels: s.labels,
                samples: s
                    .samples
                    .iter()
                    .map(|x| Sample {
                        timestamp: x.timestamp,
                        value_bits: x.value.to_bits(),
                    })
                    .collect(),
            })
            .collect();

        let mut uses: Vec<usize> = replicas_of.iter().map(Vec::len).collect();
        // One task per ingester, so a slow replica finishes (and reports its health) in the
        // background once the others have made the quorum.
        let mut calls: FuturesUnordered<
            tokio::task::JoinHandle<(usize, Result<PushResponse, String>)>,
        > = per_member
            .iter()
            .enumerate()
            .filter(|(_, idx)| !idx.is_empty())
            .map(|(m, idx)| {
                let request = PushRequest {
                    tenant: tenant.to_string(),
                    // The last replica to need a series takes it; the others get copies.
                    series: idx
                        .iter()
                        .map(|&i| {
                            uses[i] -= 1;
                            if uses[i] == 0 {
                                std::mem::take(&mut protos[i])
                            } else {
                                protos[i].clone()
                            }
                        })
                        .collect(),
                };
                let ring = self.ring.clone();
                let handle = self.ingesters[m].clone();
                let timeout = self.config.remote_timeout;
                tokio::spawn(async move {
                    if !handle.is_remote() {
                        return (m, handle.push(request).await);
                    }
                    let result = tokio::time::timeout(timeout.0, handle.push(request))
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!(
                                "timed out after {timeout} (-distributor.remote-timeout)"
                            ))
                        });
                    match &result {
                        Ok(_) => ring.report_success(m),
                        Err(e) => ring.report_failure(m, e),
                    }
                    (m, result)
                })
            })
            .collect();

        // Each series is decided by its own replicas, as Mimir's batch tracker does: it is
        // written once `quorum` of them took it, and refused (400) once more of them refused
        // it than may fail; one replica's refusal (say, it holds a later sample from a
        // request its sender never saw acknowledged) does not fail a write the others took.
        let quorum = self.ring.quorum();
        let mut tracker = QuorumTracker::new(quorum, replicas_of.iter().map(Vec::len).collect());
        let mut failures = Vec::new();
        // Per reason: the first message, the most samples one replica refused, the series.
        let mut ingester_errors: HashMap<String, (String, usize, Vec<usize>)> = HashMap::new();
        while let Some(joined) = calls.next().await {
            let (m, result) = match joined {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("push task failed: {e}"));
                    continue;
                }
            };
            let response = match result {
                Ok(response) => response,
                Err(e) => {
                    failures.push(format!(
                        "{} ({}): {e}",
                        self.ring.members()[m].id,
                        self.ring.members()[m].addr
                    ));
                    continue;
                }
            };
            // The request to member m held the series per_member[m], in that order.
            let sent = &per_member[m];
            let mut refused_here = vec![false; sent.len()];
            for e in response.errors {
                let entry = ingester_errors
                    .entry(e.reason)
                    .or_insert((e.message, 0, Vec::new()));
                entry.1 = entry.1.max(e.count as usize);
                // An ingester that does not say which series refused all of them.
                let positions: Vec<usize> = if e.series.is_empty() {
                    (0..sent.len()).collect()
                } else {
                    e.series.iter().map(|p| *p as usize).collect()
                };
                for position in positions {
                    if let (Some(flag), Some(&i)) =
                        (refused_here.get_mut(position), sent.get(position))
                    {
                        *flag = true;
                        entry.2.push(i);
                    }
                }
            }
            for (&i, refused) in sent.iter().zip(refused_here) {
                let answer = if refused {
                    ReplicaAnswer::Refused
                } else {
                    ReplicaAnswer::Took
                };
                tracker.record(i, answer);
            }
            if tracker.all_decided() {
                break;
            }
        }
        let short = tracker.undecided();
        if short > 0 {
            return Err(PushError::Replication(format!(
                "failed pushing to ingesters for tenant {tenant}: {short} of {} series reached fewer than {quorum} of {} replicas (err-strata-ingester-quorum; replication factor {}, -ingester.ring.replication-factor); retry later; errors: {}",
                replicas_of.len(), self.ring.replication_factor(), self.ring.replication_factor(), failures.join("; "))));
        }
        // Only refusals that decided a series reach the sender; a minority replica's are logged.
        for (reason, (message, count, series)) in ingester_errors {
            if series
                .iter()
                .any(|&i| tracker.outcome(i) == SeriesOutcome::Refused)
            {
                rejected.push((message, count));
            } else {
                tracing::debug!(reason, count, "a minority of replicas refused samples");
            }
        }
        outcome.accepted_series = tracker.written();
        outcome.rejected = rejected
            .into_iter()
            .map(|(msg, n)| {
                if n > 1 {
                    format!(
                        "{msg} (and {} more samples rejected for the same reason)",
                        n - 1
                    )
                } else {
                    msg
                }
            })
            .collect();
        Ok(outcome)
    }

    pub fn multitenancy_enabled(&self) -> bool {
        self.multitenancy_enabled
    }

    pub fn max_recv_msg_size(&self) -> usize {
        self.config.max_recv_msg_size
    }

    pub(crate) fn observe(&self, code: u16, seconds: f64) {
        let code = code.to_string();
        self.metrics
            .requests
            .with_label_values(&[code.as_str()])
            .inc();
        self.metrics
            .push_duration
            .with_label_values(&[code.as_str()])
            .observe(seconds);
    }
}

/// Mimir's ingestion rate message, with the tenant first.
fn ingestion_rate_message(
    tenant: &str,
    limits: &LimitsConfig,
    decision: Decision,
    items: usize,
) -> String {
    let text = if decision == Decision::OverBurst {
        per_tenant_limit_message(
            &format!("the request has been rejected because the tenant exceeded the ingestion burst size limit, set to {}, with {items} items. This limit is applied on the total number of samples, exemplars and metadata received across all distributors", limits.ingestion_burst_size),
            "err-strata-tenant-max-ingestion-rate",
            &[flags::INGESTION_BURST_SIZE],
        )
    } else {
        per_tenant_limit_message(
            &format!("the request has been rejected because the tenant exceeded the ingestion rate limit, set to {} items/s with a maximum allowed burst of {}. This limit is applied on the total number of samples, exemplars and metadata received across all distributors", limits.ingestion_rate, limits.ingestion_burst_size),
            "err-strata-tenant-max-ingestion-rate",
            &[flags::INGESTION_RATE, flags::INGESTION_BURST_SIZE],
        )
    };
    format!("tenant {tenant}: {text}")
}

/// Mimir's request rate message, with the tenant first.
fn request_rate_message(tenant: &str, limits: &LimitsConfig, burst: usize) -> String {
    let text = per_tenant_limit_message(
        &format!("the request has been rejected because the tenant exceeded the request rate limit, set to {} requests/s across all distributors with a maximum allowed burst of {burst}", limits.request_rate),
        "err-strata-tenant-max-request-rate",
        &[flags::REQUEST_RATE, flags::REQUEST_BURST_SIZE],
    );
    format!("tenant {tenant}: {text}")
}
