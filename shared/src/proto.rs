//! Generated protocol types: Prometheus remote-write 1.0 and the ingester gRPC service.

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
}

pub use self::strata::ingester;
