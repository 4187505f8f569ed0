//! How many distributors are healthy, so each enforces its share of a tenant's ingestion and
//! request rate (the limit divided by that number), as Mimir's global rate strategy does.
//!
//! There is no distributor ring yet: `-distributor.ring.static-members` lists every
//! distributor's HTTP address (this one included), and each distributor polls `GET /ready` on
//! all of them every [`POLL_PERIOD`]. The count is the members that answered 200 on the last
//! round, and never less than 1 (this distributor is serving). With an empty list it is 1. A
//! ring in a KV store can replace this later without changing what the limiter reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often every member's `/ready` is polled.
pub const POLL_PERIOD: Duration = Duration::from_secs(5);
/// How long one poll may take before the member counts as unhealthy.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// The number of healthy distributors, updated in the background.
#[derive(Debug)]
pub struct HealthyDistributors {
    members: Vec<String>,
    healthy: AtomicUsize,
}

impl HealthyDistributors {
    /// `static_members`: comma-separated `host:port` (or `http://host:port`) HTTP addresses.
    pub fn new(static_members: &str) -> Arc<Self> {
        let members: Vec<String> = static_members
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect();
        let initial = members.len().max(1);
        Arc::new(Self {
            members,
            healthy: AtomicUsize::new(initial),
        })
    }

    /// Healthy distributors, at least 1.
    pub fn count(&self) -> usize {
        self.healthy.load(Ordering::Relaxed).max(1)
    }

    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Polls every member every [`POLL_PERIOD`] (nothing to do without members).
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
                let results = futures::future::join_all(
                    this.members.iter().map(|m| is_ready(m, POLL_TIMEOUT)),
                )
                .await;
                let healthy = results.iter().filter(|ok| **ok).count();
                let before = this.healthy.swap(healthy, Ordering::Relaxed);
                if before != healthy {
                    tracing::info!(
                        healthy,
                        members = this.members.len(),
                        "healthy distributors changed; each enforces 1/{} of the tenants' rate limits",
                        healthy.max(1)
                    );
                }
            }
        });
    }
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
        let h = HealthyDistributors::new(" a:1, http://b:2/ ,,");
        assert_eq!(h.members(), &["a:1".to_string(), "b:2".to_string()]);
        assert_eq!(h.count(), 2);
        assert_eq!(HealthyDistributors::new("").count(), 1);
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
