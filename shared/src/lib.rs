//! Strata's common crate: what two or more roles need.
//!
//! The data model ([`labels`]), the wire protocols ([`proto`]), tenant ids ([`tenant`]),
//! the hash ring ([`ring`]), the block format ([`block`]), object storage ([`storage`]),
//! limits ([`limits`]), configuration durations ([`duration`]) and logging ([`telemetry`]).

pub mod block;
pub mod duration;
pub mod labels;
pub mod limits;
pub mod metrics;
pub mod proto;
pub mod query;
pub mod query_grpc;
pub mod ring;
pub mod storage;
pub mod telemetry;
pub mod tenant;
