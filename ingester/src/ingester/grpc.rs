//! The ingester's gRPC server: the distributor's `Push`.

use std::sync::Arc;

use strata_shared::proto::ingester::ingester_server::{
    Ingester as IngesterService, IngesterServer,
};
use strata_shared::proto::ingester::{PushRequest, PushResponse};
use tonic::{Request, Response, Status};

use super::{Ingester, IngesterError};

/// Serves [`Ingester::push`] over gRPC.
#[derive(Debug, Clone)]
pub struct PushService(pub Arc<Ingester>);

#[tonic::async_trait]
impl IngesterService for PushService {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        match self.0.push(request.into_inner()).await {
            Ok(response) => Ok(Response::new(response)),
            Err(IngesterError::Stopping) => Err(Status::unavailable("ingester is shutting down")),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }
}

/// The tonic service to mount on the gRPC server; messages up to `max_message_bytes`.
pub fn server(ingester: Arc<Ingester>, max_message_bytes: usize) -> IngesterServer<PushService> {
    IngesterServer::new(PushService(ingester))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}
