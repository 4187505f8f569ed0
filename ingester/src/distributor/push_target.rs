//! The distributor's one seam to the ingesters: a [`PushTarget`] takes one ingester's share
//! of a push. The distributor sees nothing else of an ingester, so it reads the same whether
//! the ingester runs in this process (`-target=all`, implemented beside the ingester) or
//! behind gRPC ([`GrpcPushTarget`], here).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use strata_shared::proto::ingester::ingester_client::IngesterClient;
use strata_shared::proto::ingester::{PushRequest, PushResponse};
use tonic::transport::{Channel, Endpoint};

/// Where one ingester's share of a push goes.
#[async_trait::async_trait]
pub trait PushTarget: Send + Sync + Debug {
    /// Writes `request`; `Ok` once the ingester's WAL holds what it accepted (its
    /// per-series refusals are in the response), `Err` naming why it could not be reached or
    /// failed whole.
    async fn push(&self, request: PushRequest) -> Result<PushResponse, String>;

    /// Whether calls cross the network: such a target gets `-distributor.remote-timeout` and
    /// a health state on the ring page. An in-process ingester cannot be unreachable, only
    /// slow (a cut holding its tenant), so it gets neither.
    fn is_remote(&self) -> bool;
}

/// Shared, since every push task holds one.
pub type SharedPushTarget = Arc<dyn PushTarget>;

/// An ingester behind gRPC, connected lazily (and reconnected) on use.
#[derive(Debug, Clone)]
pub struct GrpcPushTarget {
    client: IngesterClient<Channel>,
}

impl GrpcPushTarget {
    pub fn new(addr: &str, timeout: Duration, max_message_bytes: usize) -> anyhow::Result<Self> {
        let url = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let channel = Endpoint::from_shared(url)?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            client: IngesterClient::new(channel)
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes),
        })
    }
}

#[async_trait::async_trait]
impl PushTarget for GrpcPushTarget {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, String> {
        let mut client = self.client.clone();
        client
            .push(request)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    }

    fn is_remote(&self) -> bool {
        true
    }
}
