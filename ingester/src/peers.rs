//! How many members of a statically listed group are healthy, polled in the background:
//!
//! - **distributors** share each tenant's ingestion and request rate (each enforces the limit
//!   divided by the healthy distributors, Mimir's global rate strategy).
//!   `-distributor.ring.static-members` lists every distributor's HTTP address, this one
//!   included; a member is healthy when `GET /ready` answers 200;
//! - **ingesters** turn a tenant's global series limits into their own share (the global
//!   limit times the replication factor divided by the healthy ingesters, Mimir's limiter).
//!   `-ingester.ring.static-members` lists their gRPC addresses; a member is healthy when it
//!   accepts a TCP connection on that port (the gRPC server has no HTTP `/ready`).
//!
//! Every [`POLL_PERIOD`] all members are probed; the count is the members that passed on the
//! last round and never less than 1 (this process is serving). With an empty list it is 1. A
//! ring in a KV store can replace this later without changing what the limiters read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often every member is probed.
pub const POLL_PERIOD: Duration = Duration::from_secs(5);
/// How long one probe may take before the member counts as unhealthy.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// How a member's health is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `GET /ready` answers 200 (distributors' HTTP addresses).
    HttpReady,
    /// The address accepts a TCP connection (ingesters' gRPC addresses).
    TcpConnect,
}

/// The number of healthy members of a group, updated in the background.
#[derive(Debug)]
pub struct HealthyPeers {
    /// For logs: "distributors", "ingesters".
    what: &'static str,
    probe: Probe,
    members: Vec<String>,
    healthy: AtomicUsize,
}

/// The distributors sharing the tenants' rate limits.
pub type HealthyDistributors = HealthyPeers;

impl HealthyPeers {
    /// Distributors: `static_members` is comma-separated `host:port` (or `http://host:port`)
    /// HTTP addresses, probed with `GET /ready`.
    pub fn new(static_members: &str) -> Arc<Self> {
        let members = static_members
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect();
        Self::with_members("distributors", Probe::HttpReady, members)
    }

    /// Ingesters: their gRPC `host:port` addresses, probed by connecting.
    pub fn ingesters(addresses: Vec<String>) -> Arc<Self> {
        Self::with_members("ingesters", Probe::TcpConnect, addresses)
    }

    /// Starts optimistic: every member counts as healthy until the first round says not.
    pub fn with_members(what: &'static str, probe: Probe, members: Vec<String>) -> Arc<Self> {
        let initial = members.len().max(1);
        Arc::new(Self {
            what,
            probe,
            members,
            healthy: AtomicUsize::new(initial),
        })
    }

    /// Healthy members, at least 1.
    pub fn count(&self) -> usize {
        self.healthy.load(Ordering::Relaxed).max(1)
    }

    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Probes every member once and stores the count.
    pub async fn poll_once(&self) -> usize {
        let results = futures::future::join_all(self.members.iter().map(|m| match self.probe {
            Probe::HttpReady => futures::future::Either::Left(is_ready(m, POLL_TIMEOUT)),
            Probe::TcpConnect => futures::future::Either::Right(accepts(m, POLL_TIMEOUT)),
        }))
        .await;
        let healthy = results.iter().filter(|ok| **ok).count();
        let before = self.healthy.swap(healthy, Ordering::Relaxed);
        if before != healthy {
            tracing::info!(
                healthy,
                members = self.members.len(),
                group = self.what,
                "healthy {} changed; limits shared among them now use 1/{} each",
                self.what,
                healthy.max(1)
            );
        }
        healthy.max(1)
    }

    /// Probes every member every [`POLL_PERIOD`] (nothing to do without members).
    pub fn start(self: &Arc<Self>) {
        if self.members.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(POLL_PERIOD);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                strata_shared::supervise::unit("peer-probe", this.poll_once()).await;
            }
        });
    }
}

/// `addr` accepts a TCP connection within `timeout`.
pub async fn accepts(addr: &str, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// `GET /ready` answered 200 within `timeout`. A bare HTTP/1.1 request: the distributor needs
/// no HTTP client for this one call.
pub async fn is_ready(addr: &str, timeout: Duration) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let mut read = 0;
        while read < head.len() {
            let n = stream.read(&mut head[read..]).await.ok()?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let status = std::str::from_utf8(&head[..read]).ok()?;
        Some(status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200"))
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_and_count_starts_at_the_list() {
        let h = HealthyPeers::new(" a:1, http://b:2/ ,,");
        assert_eq!(h.members(), &["a:1".to_string(), "b:2".to_string()]);
        assert_eq!(h.count(), 2);
        assert_eq!(HealthyPeers::new("").count(), 1);
    }

    #[tokio::test]
    async fn ingesters_count_the_addresses_that_accept_connections() {
        let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs: Vec<String> = [&a, &b, &c]
            .iter()
            .map(|l| l.local_addr().unwrap().to_string())
            .collect();
        let h = HealthyPeers::ingesters(addrs);
        assert_eq!(h.count(), 3);
        assert_eq!(h.poll_once().await, 3);
        drop(c);
        assert_eq!(h.poll_once().await, 2);
        assert_eq!(h.count(), 2);
        drop((a, b));
        // Never below 1: this process serves.
        assert_eq!(h.poll_once().await, 1);
    }

    #[tokio::test]
    async fn ready_polls_a_real_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nready\n")
                    .await;
            }
        });
        assert!(is_ready(&addr, Duration::from_secs(2)).await);
        // Nobody listens on port 1.
        assert!(!is_ready("127.0.0.1:1", Duration::from_secs(2)).await);
    }
}
