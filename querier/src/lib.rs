//! The querier: the Prometheus HTTP API ([`api`]) and PromQL ([`engine`]) over every data
//! source at once ([`fanout`]): ingesters for recent data, store-gateways for blocks.

pub mod api;
pub mod bounds;
pub mod config;
pub mod engine;
pub mod fanout;
pub mod limits;
pub mod query_shape;

pub use config::QuerierConfig;
