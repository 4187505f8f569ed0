//! End-to-end tests: real `strata` processes on 127.0.0.1, a real Prometheus 2.42 as the
//! remote-write client, a real S3 server (s3s-fs). One test binary, shared fixtures.
//!
//! The peers are installed by the README's test command (`scripts/test.sh`). A test whose
//! peer binary is missing fails with a message saying how to install it.

mod bad_input;
mod block_cutting;
mod chaos;
mod cluster;
mod fixtures;
mod ha_tracker;
mod limits;
mod open_format;
mod prometheus_remote_write;
mod promql_diff;
mod read_api;
mod s3;
