//! Generated protocol types: Prometheus remote-write 1.0, the ingester and query gRPC services,
//! etcd's v3 KV and Watch services.

#![allow(missing_debug_implementations, unreachable_pub, clippy::all)]

/// `prometheus.*`: the remote-write 1.0 messages.
pub mod prometheus {
    tonic::include_proto!("prometheus");
}

/// `strata.*`: Strata's own services.
pub mod strata {
    /// `strata.ingester.*`: distributor → ingester push.
    pub mod ingester {
        tonic::include_proto!("strata.ingester");
    }
    /// `strata.query.*`: querier → ingester and store-gateway reads.
    pub mod query {
        tonic::include_proto!("strata.query");
    }
}

/// `etcdserverpb.*`: the subset of etcd's v3 API the distributors' HA tracker uses.
pub mod etcd {
    tonic::include_proto!("etcdserverpb");
}

pub use self::strata::{ingester, query};
