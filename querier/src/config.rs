//! `querier:` — the querier's flags (Mimir's names).

use serde::{Deserialize, Serialize};
use strata_shared::duration::ConfigDuration;

/// How the querier splits a query between ingesters and store-gateways, and its PromQL limits.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct QuerierConfig {
    /// Ask ingesters only for the part of a query newer than this much before now; 0 asks them for every query whatever its range. Must not exceed -blocks-storage.tsdb.retention-period, or recent blocks could be in neither place.
    #[arg(
        long = "querier.query-ingesters-within",
        id = "querier.query_ingesters_within",
        default_value = "13h"
    )]
    pub query_ingesters_within: ConfigDuration,
    /// Ask store-gateways only for the part of a query older than this much before now; 0 asks them for every query. Must be below -querier.query-ingesters-within so that the two overlap.
    #[arg(
        long = "querier.query-store-after",
        id = "querier.query_store_after",
        default_value = "12h"
    )]
    pub query_store_after: ConfigDuration,
    /// Comma-separated host:grpc-port of the store-gateways. Empty with -target=all: the in-process store-gateway.
    #[arg(
        long = "querier.store-gateway-addresses",
        id = "querier.store_gateway_addresses",
        default_value = ""
    )]
    pub store_gateway_addresses: String,
    /// Most samples a single query may hold in memory at once (Prometheus' -query.max-samples).
    #[arg(
        long = "querier.max-samples",
        id = "querier.max_samples",
        default_value_t = 50_000_000
    )]
    pub max_samples: usize,
    /// Longest a query may run before it fails with a timeout (Prometheus' -query.timeout).
    #[arg(long = "querier.timeout", id = "querier.timeout", default_value = "2m")]
    pub timeout: ConfigDuration,
    /// How far back an instant selector looks for the latest sample (Prometheus' -query.lookback-delta).
    #[arg(
        long = "querier.lookback-delta",
        id = "querier.lookback_delta",
        default_value = "5m"
    )]
    pub lookback_delta: ConfigDuration,
    /// Largest gRPC message exchanged with ingesters and store-gateways, in bytes.
    #[arg(
        long = "querier.max-recv-msg-size",
        id = "querier.max_recv_msg_size",
        default_value_t = 104_857_600
    )]
    pub max_recv_msg_size: usize,
    /// Deepest nesting of a query expression accepted, counted before parsing as the deepest nesting of parentheses, brackets and braces plus the number of operators (a + b + c nests two levels). Bounds the stack every stage of a query needs; at most 20000.
    #[arg(
        long = "querier.max-query-expression-depth",
        id = "querier.max_query_expression_depth",
        default_value_t = DEFAULT_MAX_QUERY_EXPRESSION_DEPTH,
        value_parser = depth_parser()
    )]
    pub max_query_expression_depth: usize,
}

/// Default of `-querier.max-query-expression-depth`: Prometheus answers 1,000 nested
/// parentheses or a 1,000-term sum, and so does Strata; 10,000 is refused.
pub const DEFAULT_MAX_QUERY_EXPRESSION_DEPTH: usize = 1_000;

/// Ceiling of `-querier.max-query-expression-depth`: a query thread for 20,000 levels
/// reserves about 640 MiB of address space (see `EngineOptions::query_stack_bytes`).
pub const MAX_QUERY_EXPRESSION_DEPTH: usize = 20_000;

/// `1..=MAX_QUERY_EXPRESSION_DEPTH`: 0 cannot mean "off" for a limit that keeps the stack
/// from overflowing.
fn depth_parser() -> impl clap::builder::TypedValueParser<Value = usize> {
    use clap::builder::TypedValueParser;
    clap::value_parser!(u64)
        .range(1..=MAX_QUERY_EXPRESSION_DEPTH as u64)
        .map(|v| usize::try_from(v).unwrap_or(MAX_QUERY_EXPRESSION_DEPTH))
}

impl QuerierConfig {
    /// The pre-parse limits, the depth kept within 1..=[`MAX_QUERY_EXPRESSION_DEPTH`]
    /// whatever a YAML file said (flags are range-checked by clap).
    pub fn shape_limits(&self) -> crate::query_shape::ShapeLimits {
        crate::query_shape::ShapeLimits {
            // Per tenant (`max_query_expression_size_bytes`): set per request.
            max_bytes: 0,
            max_depth: self
                .max_query_expression_depth
                .clamp(1, MAX_QUERY_EXPRESSION_DEPTH),
        }
    }
}
