//! The key-value store behind the HA tracker: one record per (tenant, cluster) naming the
//! elected replica, written with compare-and-swap on the record's revision and watched so
//! that every distributor's cache follows the decisions of the others.
//!
//! Keys are `<tenant>/<cluster>` (tenant ids cannot contain `/`, cluster names can); the
//! store adds its own prefix. Values are [`ReplicaDesc`] as JSON, readable with `etcdctl`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The elected replica of one HA cluster, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaDesc {
    /// The replica label's value of the replica samples are accepted from.
    pub replica: String,
    /// When (ms since the epoch) a distributor last saw a request from it and wrote so.
    pub received_at: i64,
    /// When (ms) this replica was elected.
    pub elected_at: i64,
    /// How many times the elected replica of this cluster has changed.
    pub elected_changes: u64,
    /// When (ms) the clean-up marked the record for deletion because its cluster had sent
    /// nothing for 30 minutes (0: not marked). A marked record counts as absent; the
    /// clean-up deletes it 30 minutes later.
    #[serde(default)]
    pub deleted_at: i64,
}

impl ReplicaDesc {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, KvError> {
        serde_json::from_slice(bytes)
            .map_err(|e| KvError(format!("undecodable HA tracker record: {e}")))
    }
}

/// A record and the store revision that last modified it (etcd's `mod_revision`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub desc: ReplicaDesc,
    pub revision: i64,
}

/// The result of a conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written; the record's new revision.
    Written(i64),
    /// The record was not at the expected revision; what it is now (`None`: absent).
    Conflict(Option<Versioned>),
}

/// A change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    Put { key: String, value: Versioned },
    Delete { key: String },
}

/// The store could not be reached or answered nonsense.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KvError(pub String);

/// Changes after a revision, in order; an error or the end means the watch is lost.
pub type WatchStream = BoxStream<'static, Result<Vec<WatchEvent>, KvError>>;

/// What the HA tracker needs from a store.
#[async_trait::async_trait]
pub trait HaKv: Send + Sync + Debug + 'static {
    /// Writes `desc` at `key` if the record's revision is `expected_revision` (0: absent).
    async fn put_if(
        &self,
        key: &str,
        expected_revision: i64,
        desc: &ReplicaDesc,
    ) -> Result<CasOutcome, KvError>;

    /// Deletes the record at `key` if its revision is `expected_revision`; false when it was
    /// not (changed or gone).
    async fn delete_if(&self, key: &str, expected_revision: i64) -> Result<bool, KvError>;

    /// Every record, and the store revision the listing is consistent with.
    async fn list(&self) -> Result<(Vec<(String, Versioned)>, i64), KvError>;

    /// Changes from `from_revision` on (inclusive).
    async fn watch(&self, from_revision: i64) -> Result<WatchStream, KvError>;

    /// For logs and error messages: the store's kind and address.
    fn describe(&self) -> String;
}

/// An in-process store: right for one distributor (the default, `-target=all`); several
/// trackers in one process (tests) share it like distributors share etcd.
#[derive(Debug, Clone)]
pub struct MemoryKv {
    inner: Arc<MemoryInner>,
}

#[derive(Debug)]
struct MemoryInner {
    state: Mutex<MemoryState>,
    events: broadcast::Sender<(i64, Vec<WatchEvent>)>,
}

#[derive(Debug, Default)]
struct MemoryState {
    records: BTreeMap<String, Versioned>,
    revision: i64,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryKv {
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(MemoryInner {
                state: Mutex::new(MemoryState::default()),
                events,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes a record (as an operator with `etcdctl del` would).
    pub fn delete(&self, key: &str) {
        let mut state = self.state();
        Self::remove_locked(&self.inner, &mut state, key);
    }

    fn remove_locked(inner: &MemoryInner, state: &mut MemoryState, key: &str) -> bool {
        if state.records.remove(key).is_none() {
            return false;
        }
        state.revision += 1;
        let _ = inner.events.send((
            state.revision,
            vec![WatchEvent::Delete {
                key: key.to_string(),
            }],
        ));
        true
    }
}

#[async_trait::async_trait]
impl HaKv for MemoryKv {
    async fn put_if(
        &self,
        key: &str,
        expected_revision: i64,
        desc: &ReplicaDesc,
    ) -> Result<CasOutcome, KvError> {
        let mut state = self.state();
        let current = state.records.get(key).cloned();
        if current.as_ref().map_or(0, |v| v.revision) != expected_revision {
            return Ok(CasOutcome::Conflict(current));
        }
        state.revision += 1;
        let value = Versioned {
            desc: desc.clone(),
            revision: state.revision,
        };
        state.records.insert(key.to_string(), value.clone());
        // Sent under the lock, so a watcher that subscribed under it sees every later write.
        let _ = self.inner.events.send((
            state.revision,
            vec![WatchEvent::Put {
                key: key.to_string(),
                value,
            }],
        ));
        Ok(CasOutcome::Written(state.revision))
    }

    async fn delete_if(&self, key: &str, expected_revision: i64) -> Result<bool, KvError> {
        let mut state = self.state();
        if state.records.get(key).map(|v| v.revision) != Some(expected_revision) {
            return Ok(false);
        }
        Ok(Self::remove_locked(&self.inner, &mut state, key))
    }

    async fn list(&self) -> Result<(Vec<(String, Versioned)>, i64), KvError> {
        let state = self.state();
        Ok((
            state
                .records
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            state.revision,
        ))
    }

    async fn watch(&self, from_revision: i64) -> Result<WatchStream, KvError> {
        // Subscribe and snapshot under the lock: the snapshot covers what happened before,
        // the subscription everything after. No history is kept, so changes between
        // `from_revision` and now come from the snapshot.
        let (receiver, replay) = {
            let state = self.state();
            let receiver = self.inner.events.subscribe();
            let replay: Vec<WatchEvent> = state
                .records
                .iter()
                .filter(|(_, v)| v.revision >= from_revision)
                .map(|(k, v)| WatchEvent::Put {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect();
            (receiver, replay)
        };
        let first = futures::stream::iter((!replay.is_empty()).then_some(Ok(replay)));
        let live = futures::stream::unfold(receiver, move |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok((revision, events)) if revision >= from_revision => {
                        return Some((Ok(events), receiver))
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some((
                            Err(KvError(format!("watch fell {n} changes behind"))),
                            receiver,
                        ))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(first.chain(live).boxed())
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}
