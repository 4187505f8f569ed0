//! The hash ring that places each series on `replication_factor` distinct ingesters.
//!
//! Members come from a static list for now; every member owns tokens derived from its id, so
//! every distributor computes the same ring without talking to the others. Health is tracked
//! locally, for the status page only: a failed member is still called (a failed call counts
//! as a failed replica, not replaced, as in Mimir), so a restarted member is used again by the
//! first write after it is back.

use std::sync::Mutex;

use serde::Serialize;

use crate::labels::Labels;

/// Tokens each member owns; enough to spread series evenly over a handful of ingesters.
pub const TOKENS_PER_MEMBER: u32 = 128;

/// One ring member as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    /// Address of its gRPC server (`host:port`), or `inprocess` for the local ingester.
    pub addr: String,
}

/// A member's health as this process sees it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MemberState {
    Active,
    Unhealthy,
}

#[derive(Debug)]
struct Health {
    state: MemberState,
    consecutive_failures: u32,
    last_error: Option<String>,
}

/// The ring: members, their tokens and their health.
#[derive(Debug)]
pub struct Ring {
    members: Vec<Member>,
    /// (token, member index), sorted by token.
    tokens: Vec<(u32, usize)>,
    replication_factor: usize,
    health: Vec<Mutex<Health>>,
}

/// Error building a ring from configuration.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("the ring has no members: set -ingester.ring.static-members")]
    Empty,
    #[error("ring member id {0:?} appears twice in -ingester.ring.static-members")]
    DuplicateId(String),
    #[error("invalid ring member {0:?} in -ingester.ring.static-members: expected id=host:port")]
    BadMember(String),
    #[error("-ingester.ring.replication-factor must be at least 1")]
    ZeroReplication,
}

/// Status of one member, as served by `/ring`.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    pub id: String,
    pub addr: String,
    pub state: MemberState,
    pub tokens: usize,
    /// Share of the hash space this member owns as primary, in percent.
    pub ownership_percent: f64,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

impl Ring {
    pub fn new(members: Vec<Member>, replication_factor: usize) -> Result<Self, RingError> {
        if members.is_empty() {
            return Err(RingError::Empty);
        }
        if replication_factor == 0 {
            return Err(RingError::ZeroReplication);
        }
        let mut tokens = Vec::with_capacity(members.len() * TOKENS_PER_MEMBER as usize);
        for (index, member) in members.iter().enumerate() {
            if members[..index].iter().any(|m| m.id == member.id) {
                return Err(RingError::DuplicateId(member.id.clone()));
            }
            for n in 0..TOKENS_PER_MEMBER {
                let key = format!("{}\u{0}{n}", member.id);
                tokens.push((xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as u32, index));
            }
        }
        tokens.sort_unstable();
        let health = members
            .iter()
            .map(|_| {
                Mutex::new(Health {
                    state: MemberState::Active,
                    consecutive_failures: 0,
                    last_error: None,
                })
            })
            .collect();
        Ok(Self {
            members,
            tokens,
            replication_factor,
            health,
        })
    }

    /// Parses `id=host:port,id=host:port`.
    pub fn parse_members(spec: &str) -> Result<Vec<Member>, RingError> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| match item.split_once('=') {
                Some((id, addr)) if !id.is_empty() && !addr.is_empty() => Ok(Member {
                    id: id.to_string(),
                    addr: addr.to_string(),
                }),
                _ => Err(RingError::BadMember(item.to_string())),
            })
            .collect()
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Replicas per series: the configured factor, capped by the member count.
    pub fn replication_factor(&self) -> usize {
        self.replication_factor.min(self.members.len())
    }

    /// Acknowledgements needed for a write: a majority of the replicas.
    pub fn quorum(&self) -> usize {
        self.replication_factor() / 2 + 1
    }

    /// The ring key of a series: tenant and labels, so tenants spread independently.
    pub fn series_key(tenant: &str, labels: &Labels) -> u32 {
        Self::series_key_from_hash(tenant, labels.stable_hash())
    }

    /// [`Ring::series_key`] from the label set's [`Labels::stable_hash`].
    pub fn series_key_from_hash(tenant: &str, labels_hash: u64) -> u32 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(tenant.as_bytes());
        hasher.update(&[0xff]);
        hasher.update(&labels_hash.to_le_bytes());
        hasher.digest() as u32
    }

    /// The member indexes that hold `key`: walking clockwise from the key's token, the
    /// first `replication_factor` distinct members.
    pub fn replicas(&self, key: u32) -> Vec<usize> {
        let want = self.replication_factor();
        let mut out = Vec::with_capacity(want);
        let start = self.tokens.partition_point(|(t, _)| *t < key);
        for offset in 0..self.tokens.len() {
            let (_, member) = self.tokens[(start + offset) % self.tokens.len()];
            if !out.contains(&member) {
                out.push(member);
                if out.len() == want {
                    break;
                }
            }
        }
        out
    }

    pub fn report_success(&self, member: usize) {
        if let Some(health) = self.health.get(member) {
            let mut health = health.lock().unwrap_or_else(|e| e.into_inner());
            if health.state != MemberState::Active {
                tracing::info!(member = %self.members[member].id, "ring member is healthy again");
            }
            health.state = MemberState::Active;
            health.consecutive_failures = 0;
        }
    }

    /// Marks a member unhealthy, for the status page and the member-state metric. Writes keep
    /// going to it: a member that is back must be used at once (a skipped member, with one
    /// other down, is a lost quorum), and a call to a dead one fails fast or times out in a
    /// task of its own while the others make the quorum.
    pub fn report_failure(&self, member: usize, error: &str) {
        if let Some(health) = self.health.get(member) {
            let mut health = health.lock().unwrap_or_else(|e| e.into_inner());
            health.consecutive_failures = health.consecutive_failures.saturating_add(1);
            if health.state == MemberState::Active {
                tracing::warn!(member = %self.members[member].id, error, "ring member failed; marking it unhealthy");
            }
            health.state = MemberState::Unhealthy;
            health.last_error = Some(error.to_string());
        }
    }

    pub fn state(&self, member: usize) -> MemberState {
        self.health
            .get(member)
            .map(|h| h.lock().unwrap_or_else(|e| e.into_inner()).state.clone())
            .unwrap_or(MemberState::Unhealthy)
    }

    /// Every member's status, for `/ring` and the member-state metric.
    pub fn status(&self) -> Vec<MemberStatus> {
        let mut owned = vec![0u64; self.members.len()];
        for (i, (token, member)) in self.tokens.iter().enumerate() {
            let prev = if i == 0 {
                self.tokens[self.tokens.len() - 1].0
            } else {
                self.tokens[i - 1].0
            };
            owned[*member] += u64::from(token.wrapping_sub(prev));
        }
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let health = self.health[i].lock().unwrap_or_else(|e| e.into_inner());
                MemberStatus {
                    id: m.id.clone(),
                    addr: m.addr.clone(),
                    state: health.state.clone(),
                    tokens: TOKENS_PER_MEMBER as usize,
                    ownership_percent: owned[i] as f64 * 100.0 / (1u64 << 32) as f64,
                    consecutive_failures: health.consecutive_failures,
                    last_error: health.last_error.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize, rf: usize) -> Ring {
        let members = (0..n)
            .map(|i| Member {
                id: format!("ingester-{i}"),
                addr: format!("127.0.0.1:{}", 9000 + i),
            })
            .collect();
        Ring::new(members, rf).unwrap()
    }

    #[test]
    fn replicas_are_distinct_and_stable() {
        let r = ring(5, 3);
        for key in [0u32, 1, u32::MAX, 123_456_789] {
            let reps = r.replicas(key);
            assert_eq!(reps.len(), 3);
            let mut sorted = reps.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 3);
            assert_eq!(reps, ring(5, 3).replicas(key));
        }
        assert_eq!(r.quorum(), 2);
    }

    #[test]
    fn replication_is_capped_by_members() {
        let r = ring(1, 3);
        assert_eq!(r.replication_factor(), 1);
        assert_eq!(r.quorum(), 1);
        assert_eq!(r.replicas(42), vec![0]);
    }

    #[test]
    fn ownership_is_roughly_even() {
        let r = ring(3, 3);
        let total: f64 = r.status().iter().map(|s| s.ownership_percent).sum();
        assert!((total - 100.0).abs() < 1e-6, "total {total}");
        for s in r.status() {
            assert!(
                s.ownership_percent > 20.0 && s.ownership_percent < 47.0,
                "{s:?}"
            );
        }
    }

    #[test]
    fn a_failed_member_is_unhealthy_until_its_next_success() {
        let r = ring(3, 3);
        r.report_failure(1, "connection refused");
        assert_eq!(r.state(1), MemberState::Unhealthy);
        assert_eq!(r.status()[1].consecutive_failures, 1);
        r.report_success(1);
        assert_eq!(r.state(1), MemberState::Active);
        assert_eq!(r.status()[1].consecutive_failures, 0);
    }

    #[test]
    fn parses_static_members() {
        let m = Ring::parse_members("a=127.0.0.1:1, b=127.0.0.1:2").unwrap();
        assert_eq!(m.len(), 2);
        assert!(Ring::parse_members("nope").is_err());
        assert!(Ring::new(vec![m[0].clone(), m[0].clone()], 1).is_err());
    }
}
