//! The querier: PromQL and the Prometheus HTTP API over ingesters and store-gateways.

pub mod engine;
