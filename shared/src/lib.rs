//! Strata's common crate: what two or more roles need.
//!
//! The data model ([`labels`]), the wire protocols ([`proto`]), tenant ids ([`tenant`]),
//! the hash ring ([`ring`]), the block format ([`block`]), object storage ([`storage`]),
//! limits ([`limits`], read through [`overrides`], overridden per tenant by
//! [`runtime_config`]), configuration durations ([`duration`]) and logging ([`telemetry`]).

pub mod block;
pub mod duration;
pub mod labels;
pub mod limits;
pub mod metrics;
pub mod overrides;
pub mod postings;
pub mod proto;
pub mod query;
pub mod query_grpc;
pub mod ring;
pub mod runtime_config;
pub mod storage;
pub mod supervise;
pub mod telemetry;
pub mod tenant;
pub mod time;
