//! [`SeriesSource`] over gRPC: [`server`] exposes any source (an ingester, a store-gateway) as
//! the `strata.query.Query` service, and [`RemoteSource`] is the querier's client for it.
//!
//! `Select` streams batches of series as the source produces them, so neither side holds a
//! whole answer. Errors keep their kind across the wire (see [`status_of`] / [`error_of`]),
//! so a limit hit in a store-gateway reaches the user as the same Prometheus error type.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::block::SeriesSamples;
use crate::labels::{Label, Labels};
use crate::proto::prometheus as prom;
use crate::proto::query as pb;
use crate::proto::query::query_client::QueryClient;
use crate::proto::query::query_server::{Query, QueryServer};
use crate::query::{LabelMatcher, MatchOp, QueryError, SelectRequest, SeriesSource, SeriesStream};

/// Series per `SelectResponse` message at most; a batch is sent as soon as the source has
/// nothing more ready, so this only caps message size.
const SERIES_PER_MESSAGE: usize = 256;

/// The gRPC service answering for `source`, messages up to `max_message_bytes`.
pub fn server(
    source: Arc<dyn SeriesSource>,
    max_message_bytes: usize,
) -> QueryServer<QueryService> {
    QueryServer::new(QueryService { source })
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// Serves a [`SeriesSource`] as `strata.query.Query`.
#[derive(Debug, Clone)]
pub struct QueryService {
    source: Arc<dyn SeriesSource>,
}

type SelectStream = Pin<Box<dyn Stream<Item = Result<pb::SelectResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Query for QueryService {
    type SelectStream = SelectStream;

    async fn select(
        &self,
        request: Request<pb::SelectRequest>,
    ) -> Result<Response<Self::SelectStream>, Status> {
        let request = select_request_from_proto(request.into_inner()).map_err(status_of)?;
        let stream = self.source.select(&request).await.map_err(status_of)?;
        let batches = stream.ready_chunks(SERIES_PER_MESSAGE).map(|batch| {
            let series = batch
                .into_iter()
                .map(|s| s.map(series_to_proto))
                .collect::<Result<Vec<_>, _>>()
                .map_err(status_of)?;
            Ok(pb::SelectResponse { series })
        });
        Ok(Response::new(Box::pin(batches)))
    }

    async fn series(
        &self,
        request: Request<pb::SelectRequest>,
    ) -> Result<Response<pb::SeriesResponse>, Status> {
        let request = select_request_from_proto(request.into_inner()).map_err(status_of)?;
        let series = self.source.series(&request).await.map_err(status_of)?;
        Ok(Response::new(pb::SeriesResponse {
            series: series
                .iter()
                .map(|labels| pb::LabelSet {
                    labels: labels_to_proto(labels),
                })
                .collect(),
        }))
    }

    async fn label_names(
        &self,
        request: Request<pb::SelectRequest>,
    ) -> Result<Response<pb::StringsResponse>, Status> {
        let request = select_request_from_proto(request.into_inner()).map_err(status_of)?;
        let values = self.source.label_names(&request).await.map_err(status_of)?;
        Ok(Response::new(pb::StringsResponse { values }))
    }

    async fn label_values(
        &self,
        request: Request<pb::LabelValuesRequest>,
    ) -> Result<Response<pb::StringsResponse>, Status> {
        let request = request.into_inner();
        let inner =
            select_request_from_proto(request.request.unwrap_or_default()).map_err(status_of)?;
        let values = self
            .source
            .label_values(&request.name, &inner)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::StringsResponse { values }))
    }
}

/// A source reached over gRPC at `address` (`host:port`); connects lazily and reconnects.
#[derive(Debug, Clone)]
pub struct RemoteSource {
    address: String,
    client: QueryClient<Channel>,
}

impl RemoteSource {
    pub fn new(address: &str, max_message_bytes: usize) -> Result<Self, QueryError> {
        let url = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let channel = Endpoint::from_shared(url)
            .map_err(|e| QueryError::BadRequest(format!("bad gRPC address {address:?}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = QueryClient::new(channel)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        Ok(Self {
            address: address.to_string(),
            client,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn error(&self, status: Status) -> QueryError {
        error_of(&self.address, status)
    }
}

#[async_trait::async_trait]
impl SeriesSource for RemoteSource {
    async fn select(&self, request: &SelectRequest) -> Result<SeriesStream, QueryError> {
        let mut client = self.client.clone();
        let response = client
            .select(select_request_to_proto(request))
            .await
            .map_err(|s| self.error(s))?;
        let address = self.address.clone();
        let stream = response
            .into_inner()
            .map_err(move |s| error_of(&address, s))
            .map_ok(|batch| futures::stream::iter(batch.series.into_iter().map(series_from_proto)))
            .try_flatten();
        Ok(Box::pin(stream))
    }

    async fn series(&self, request: &SelectRequest) -> Result<Vec<Labels>, QueryError> {
        let mut client = self.client.clone();
        let response = client
            .series(select_request_to_proto(request))
            .await
            .map_err(|s| self.error(s))?;
        Ok(response
            .into_inner()
            .series
            .into_iter()
            .map(|set| labels_from_proto(set.labels))
            .collect())
    }

    async fn label_names(&self, request: &SelectRequest) -> Result<Vec<String>, QueryError> {
        let mut client = self.client.clone();
        let response = client
            .label_names(select_request_to_proto(request))
            .await
            .map_err(|s| self.error(s))?;
        Ok(response.into_inner().values)
    }

    async fn label_values(
        &self,
        name: &str,
        request: &SelectRequest,
    ) -> Result<Vec<String>, QueryError> {
        let mut client = self.client.clone();
        let response = client
            .label_values(pb::LabelValuesRequest {
                name: name.to_string(),
                request: Some(select_request_to_proto(request)),
            })
            .await
            .map_err(|s| self.error(s))?;
        Ok(response.into_inner().values)
    }
}

/// The gRPC status carrying a query error of the same kind.
pub fn status_of(error: QueryError) -> Status {
    match error {
        QueryError::BadRequest(m) => Status::invalid_argument(m),
        QueryError::LimitExceeded(m) => Status::resource_exhausted(m),
        QueryError::Unavailable(m) => Status::unavailable(m),
        QueryError::Timeout(m) => Status::deadline_exceeded(m),
        QueryError::Internal(m) => Status::internal(m),
    }
}

/// The query error a status from `address` stands for. Transport failures are `Unavailable`.
pub fn error_of(address: &str, status: Status) -> QueryError {
    let message = status.message().to_string();
    match status.code() {
        tonic::Code::InvalidArgument => QueryError::BadRequest(message),
        tonic::Code::ResourceExhausted => QueryError::LimitExceeded(message),
        tonic::Code::DeadlineExceeded => QueryError::Timeout(message),
        tonic::Code::Internal => QueryError::Internal(format!("{address}: {message}")),
        _ => QueryError::Unavailable(format!("{address}: {message}")),
    }
}

fn select_request_to_proto(request: &SelectRequest) -> pb::SelectRequest {
    pb::SelectRequest {
        tenant: request.tenant.clone(),
        matchers: request
            .matchers
            .iter()
            .map(|m| pb::Matcher {
                op: match m.op {
                    MatchOp::Equal => pb::matcher::Op::Equal,
                    MatchOp::NotEqual => pb::matcher::Op::NotEqual,
                    MatchOp::Regex => pb::matcher::Op::Regex,
                    MatchOp::NotRegex => pb::matcher::Op::NotRegex,
                } as i32,
                name: m.name.clone(),
                value: m.value.clone(),
            })
            .collect(),
        start_ms: request.start_ms,
        end_ms: request.end_ms,
        limit: request.limit as u64,
    }
}

fn select_request_from_proto(request: pb::SelectRequest) -> Result<SelectRequest, QueryError> {
    let matchers = request
        .matchers
        .into_iter()
        .map(|m| {
            let op = match pb::matcher::Op::try_from(m.op) {
                Ok(pb::matcher::Op::Equal) => MatchOp::Equal,
                Ok(pb::matcher::Op::NotEqual) => MatchOp::NotEqual,
                Ok(pb::matcher::Op::Regex) => MatchOp::Regex,
                Ok(pb::matcher::Op::NotRegex) => MatchOp::NotRegex,
                Err(_) => {
                    return Err(QueryError::BadRequest(format!(
                        "unknown matcher operator {} for label {:?}",
                        m.op, m.name
                    )))
                }
            };
            LabelMatcher::new(op, m.name, m.value)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SelectRequest {
        tenant: request.tenant,
        matchers,
        start_ms: request.start_ms,
        end_ms: request.end_ms,
        limit: usize::try_from(request.limit).unwrap_or(usize::MAX),
    })
}

fn labels_to_proto(labels: &Labels) -> Vec<prom::Label> {
    labels
        .iter()
        .map(|l| prom::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

fn labels_from_proto(labels: Vec<prom::Label>) -> Labels {
    // Sources send label sets sorted; from_pairs keeps the invariant even if one did not.
    let sorted = labels.windows(2).all(|w| w[0].name < w[1].name);
    if sorted {
        Labels::from_sorted(
            labels
                .into_iter()
                .map(|l| Label::new(l.name, l.value))
                .collect(),
        )
    } else {
        Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)))
    }
}

fn series_to_proto(series: SeriesSamples) -> pb::SeriesSamples {
    pb::SeriesSamples {
        labels: labels_to_proto(&series.labels),
        value_bits: series.values.iter().map(|v| v.to_bits()).collect(),
        timestamps: series.timestamps,
    }
}

fn series_from_proto(series: pb::SeriesSamples) -> Result<SeriesSamples, QueryError> {
    if series.timestamps.len() != series.value_bits.len() {
        return Err(QueryError::Internal(format!(
            "malformed series in a select response: {} timestamps, {} values",
            series.timestamps.len(),
            series.value_bits.len()
        )));
    }
    Ok(SeriesSamples {
        labels: labels_from_proto(series.labels),
        timestamps: series.timestamps,
        values: series.value_bits.into_iter().map(f64::from_bits).collect(),
    })
}
