//! The HA tracker's records in etcd (v3 gRPC API): a transaction that compares the record's
//! `mod_revision` for each write, a range read for listings and a watch on the prefix.
//!
//! The connection is lazy and re-made by tonic on use. Every unary call is bounded by the
//! dial timeout. A hung etcd (SIGSTOP, network partition) must break the watch rather than
//! leave it silent: the watch asks etcd for a progress report every dial timeout (at least
//! every second) and gives up when nothing has come for another dial timeout. (HTTP/2
//! keep-alive pings cannot be that frequent: etcd answers clients that ping more often than
//! its `--grpc-keepalive-min-time`, 5 s by default, by closing the connection.)

use std::time::Duration;

use futures::StreamExt;
use tonic::transport::{Channel, Endpoint};

use super::kv::{CasOutcome, HaKv, KvError, ReplicaDesc, Versioned, WatchEvent, WatchStream};

use strata_shared::proto::etcd as pb;

use pb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::kv_client::KvClient;
use pb::request_op::Request;
use pb::response_op::Response;
use pb::watch_client::WatchClient;

/// An etcd cluster holding the records under a key prefix.
#[derive(Clone)]
pub struct EtcdKv {
    channel: Channel,
    prefix: String,
    endpoints: String,
    timeout: Duration,
}

impl std::fmt::Debug for EtcdKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdKv")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn status(what: &'static str, s: tonic::Status) -> KvError {
    KvError(format!("etcd {what}: {:?}: {}", s.code(), s.message()))
}

/// The next progress request of a watch, one tick later (the first tick is immediate and
/// follows the create request).
async fn progress_request(
    mut ticks: tokio::time::Interval,
) -> Option<(pb::WatchRequest, tokio::time::Interval)> {
    ticks.tick().await;
    let request = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
            pb::WatchProgressRequest {},
        )),
    };
    Some((request, ticks))
}

struct WatchState {
    responses: tonic::Streaming<pb::WatchResponse>,
    kv: EtcdKv,
    /// Silence longer than this means etcd is gone.
    silence: Duration,
    ended: bool,
}

/// The next changes on a watch; an error ends it.
async fn next_events(
    mut state: WatchState,
) -> Option<(Result<Vec<WatchEvent>, KvError>, WatchState)> {
    if state.ended {
        return None;
    }
    let item = match tokio::time::timeout(state.silence, state.responses.next()).await {
        Err(_) => Err(KvError(format!(
            "etcd at {} sent nothing on the watch for {:?}, progress requests included",
            state.kv.endpoints, state.silence
        ))),
        Ok(None) => return None,
        Ok(Some(Err(s))) => Err(status("watch", s)),
        Ok(Some(Ok(r))) => state.kv.events(r),
    };
    state.ended = item.is_err();
    Some((item, state))
}

/// The create request, then a progress request every `every`.
fn watch_requests(
    create: pb::WatchRequest,
    every: Duration,
) -> impl futures::Stream<Item = pb::WatchRequest> + Send + 'static {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::iter([create]).chain(futures::stream::unfold(ticks, progress_request))
}

fn events_stream(state: WatchState) -> WatchStream {
    futures::stream::unfold(state, next_events).boxed()
}

/// The end of the key range that holds every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdKv {
    /// `endpoints`: comma-separated `host:port` or URLs. Connects lazily: etcd need not be
    /// up yet.
    pub fn new(endpoints: &str, prefix: &str, dial_timeout: Duration) -> anyhow::Result<Self> {
        let urls: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e.contains("://") {
                    e.to_string()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        anyhow::ensure!(
            !urls.is_empty(),
            "-distributor.ha-tracker.store=etcd needs -distributor.ha-tracker.etcd.endpoints (comma-separated host:port)"
        );
        let timeout = dial_timeout.max(Duration::from_millis(100));
        let mut list = Vec::with_capacity(urls.len());
        for url in &urls {
            list.push(
                Endpoint::from_shared(url.clone())
                    .map_err(|e| {
                        anyhow::anyhow!("invalid etcd endpoint {url:?} in -distributor.ha-tracker.etcd.endpoints: {e}")
                    })?
                    .connect_timeout(timeout)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .keep_alive_timeout(timeout),
            );
        }
        let channel = if list.len() == 1 {
            list.remove(0).connect_lazy()
        } else {
            Channel::balance_list(list.into_iter())
        };
        Ok(Self {
            channel,
            prefix: prefix.to_string(),
            endpoints: urls.join(","),
            timeout,
        })
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    fn versioned(&self, kv: &pb::KeyValue) -> Option<(String, Versioned)> {
        let key = std::str::from_utf8(&kv.key).ok()?;
        let key = key.strip_prefix(&self.prefix)?.to_string();
        match ReplicaDesc::decode(&kv.value) {
            Ok(desc) => Some((
                key,
                Versioned {
                    desc,
                    revision: kv.mod_revision,
                },
            )),
            Err(e) => {
                tracing::warn!(key, error = %e, "ignoring an HA tracker record etcd holds");
                None
            }
        }
    }

    fn events(&self, r: pb::WatchResponse) -> Result<Vec<WatchEvent>, KvError> {
        if r.canceled {
            return Err(KvError(format!(
                "etcd canceled the watch (compact revision {}): {}",
                r.compact_revision, r.cancel_reason
            )));
        }
        Ok(r.events
            .iter()
            .filter_map(|e| {
                let kv = e.kv.as_ref()?;
                if e.r#type == pb::event::EventType::Delete as i32 {
                    let key = std::str::from_utf8(&kv.key).ok()?;
                    Some(WatchEvent::Delete {
                        key: key.strip_prefix(&self.prefix)?.to_string(),
                    })
                } else {
                    self.versioned(kv)
                        .map(|(key, value)| WatchEvent::Put { key, value })
                }
            })
            .collect())
    }

    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, KvError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|s| status(what, s)),
            Err(_) => Err(KvError(format!(
                "etcd {what}: no answer from {} within {:?} (-distributor.ha-tracker.etcd.dial-timeout)",
                self.endpoints, self.timeout
            ))),
        }
    }
}

/// The transaction guard of every write: the key's `mod_revision` is `revision` (0: absent).
fn mod_revision_is(key: &[u8], revision: i64) -> pb::Compare {
    pb::Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::ModRevision(revision)),
    }
}

#[async_trait::async_trait]
impl HaKv for EtcdKv {
    async fn put_if(
        &self,
        key: &str,
        expected_revision: i64,
        desc: &ReplicaDesc,
    ) -> Result<CasOutcome, KvError> {
        let full = self.full_key(key);
        let request = pb::TxnRequest {
            compare: vec![mod_revision_is(&full, expected_revision)],
            success: vec![pb::RequestOp {
                request: Some(Request::RequestPut(pb::PutRequest {
                    key: full.clone(),
                    value: desc.encode(),
                })),
            }],
            failure: vec![pb::RequestOp {
                request: Some(Request::RequestRange(pb::RangeRequest {
                    key: full,
                    ..Default::default()
                })),
            }],
        };
        let mut client = KvClient::new(self.channel.clone());
        let response = self.bounded("txn", client.txn(request)).await?.into_inner();
        if response.succeeded {
            let revision = response.header.map(|h| h.revision).unwrap_or_default();
            return Ok(CasOutcome::Written(revision));
        }
        let current = response
            .responses
            .iter()
            .find_map(|r| match &r.response {
                Some(Response::ResponseRange(range)) => Some(range),
                _ => None,
            })
            .and_then(|range| range.kvs.first())
            .and_then(|kv| self.versioned(kv).map(|(_, v)| v));
        Ok(CasOutcome::Conflict(current))
    }

    async fn delete_if(&self, key: &str, expected_revision: i64) -> Result<bool, KvError> {
        let full = self.full_key(key);
        let request = pb::TxnRequest {
            compare: vec![mod_revision_is(&full, expected_revision)],
            success: vec![pb::RequestOp {
                request: Some(Request::RequestDeleteRange(pb::DeleteRangeRequest {
                    key: full,
                    range_end: Vec::new(),
                })),
            }],
            failure: Vec::new(),
        };
        let mut client = KvClient::new(self.channel.clone());
        let response = self.bounded("txn", client.txn(request)).await?.into_inner();
        Ok(response.succeeded)
    }

    async fn list(&self) -> Result<(Vec<(String, Versioned)>, i64), KvError> {
        let key = self.prefix.as_bytes().to_vec();
        let request = pb::RangeRequest {
            range_end: prefix_end(&key),
            key,
            ..Default::default()
        };
        let mut client = KvClient::new(self.channel.clone());
        let response = self
            .bounded("range", client.range(request))
            .await?
            .into_inner();
        let revision = response.header.map(|h| h.revision).unwrap_or_default();
        Ok((
            response
                .kvs
                .iter()
                .filter_map(|kv| self.versioned(kv))
                .collect(),
            revision,
        ))
    }

    async fn watch(&self, from_revision: i64) -> Result<WatchStream, KvError> {
        let key = self.prefix.as_bytes().to_vec();
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    range_end: prefix_end(&key),
                    key,
                    start_revision: from_revision,
                    progress_notify: false,
                },
            )),
        };
        // The request stream stays open (etcd ends the watch when it closes) and asks for a
        // progress report regularly, so that silence means etcd is gone.
        let every = self.timeout.max(Duration::from_secs(1));
        let requests = watch_requests(create, every);
        let mut client = WatchClient::new(self.channel.clone());
        let responses = self
            .bounded("watch", client.watch(requests))
            .await?
            .into_inner();
        Ok(events_stream(WatchState {
            responses,
            kv: self.clone(),
            silence: every + self.timeout,
            ended: false,
        }))
    }

    fn describe(&self) -> String {
        format!("etcd at {} under {:?}", self.endpoints, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end(b"ha-tracker/"), b"ha-tracker0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
