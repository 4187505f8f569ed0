#!/usr/bin/env bash
# Runs every check and test of Strata: formatting, clippy, unit tests and the end-to-end
# tests. Installs the real peers the end-to-end tests need first: Prometheus 2.42, etcd and
# node_exporter (Debian), s3s-fs (an S3 server, from crates.io) and DuckDB's Python package
# (the plain Parquet reader the open-format test compares with).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v prometheus >/dev/null 2>&1; then
  echo "== installing prometheus (Debian package)"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends prometheus
fi
if ! command -v etcd >/dev/null 2>&1; then
  echo "== installing etcd (Debian package etcd-server), the HA tracker's KV store in the HA test"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends etcd-server
fi
if ! command -v prometheus-node-exporter >/dev/null 2>&1; then
  echo "== installing prometheus-node-exporter (Debian package), scraped by the HA test's Prometheus pair"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends prometheus-node-exporter
fi
if ! command -v s3s-fs >/dev/null 2>&1; then
  echo "== installing s3s-fs (S3 server for the S3 tests)"
  # 0.14.1 is the newest release that builds with rustc 1.95.
  cargo install s3s-fs --version 0.14.1 --locked --features binary
fi

if ! python3 -c "import duckdb" >/dev/null 2>&1; then
  echo "== installing duckdb (Python), to check that blocks read without Strata"
  python3 -m pip install --quiet duckdb
fi

echo "== rustfmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tests"
cargo test --workspace -- --nocapture --test-threads=2
