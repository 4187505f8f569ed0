#!/usr/bin/env bash
# Read benchmark: loads the same deterministic workload (strata-loadgen) into Strata, Prometheus
# 2.42 and VictoriaMetrics 1.79, then runs the same PromQL queries (querybench) against each,
# cold (the server restarted before every run) and warm (after one warm-up run), and prints
# median latencies, peak RSS and whether each system's answers match Prometheus'.
#
#   bench/read.sh                     # 40 hosts x 8 h at 15 s: ~21k series, ~40M samples
#   bench/read.sh --quick             # 4 hosts x 2 h: a smoke run
#   bench/read.sh --only prometheus,victoria-metrics --runs 5
#
# Strata answers from the store-gateway only: after the load it flushes its ingester into
# blocks and is restarted with STRATA_READ_FLAGS, which keep the ingesters out of queries.
# Everything listens on 127.0.0.1; every wait is bounded; servers are killed on exit.
# See bench/README.md for what the figures mean and what they do not.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ALL_SYSTEMS="strata,prometheus,victoria-metrics"

usage() {
  cat <<EOF
usage: bench/read.sh [--quick] [--only LIST] [--hosts N] [--hours H] [--runs N]
                     [--queries LIST] [--seed N] [--workdir DIR] [--drop-caches] [--keep]

  --quick          4 hosts x 2 h instead of 40 hosts x 8 h
  --only LIST      comma-separated subset of: $ALL_SYSTEMS
  --hosts N        scrape targets (about 526 series each)
  --hours H        hours of data
  --runs N         timed runs per query and cache state (default 10)
  --queries LIST   comma-separated subset of the queries (querybench list)
  --seed N         workload seed (default 1)
  --workdir DIR    where data, logs and results go (default: a new temporary directory)
  --drop-caches    also drop the OS page cache before every cold run (root; slows the
                   whole machine, so off by default: "cold" means a fresh server process)
  --keep           keep the servers' data directories (deleted at the end otherwise)

environment:
  STRATA_BIN          Strata binary (default: target/release/strata)
  STRATA_FLAGS        extra flags for Strata, at load and at query time
  STRATA_READ_FLAGS   flags that make Strata read from the store-gateway only (default:
                      $DEFAULT_STRATA_READ_FLAGS_DOC)
  LOADGEN_BIN         strata-loadgen binary (default: target/release, else target/debug, else
                      a release build of it)
  QUERYBENCH_BIN      querybench binary (default: target/release, else a release build of it)
  PROMETHEUS_BIN      Prometheus binary (default: from the Debian package, installed if missing)
  VM_BIN              VictoriaMetrics binary (default: from the Debian package, installed if missing)
  LOADGEN_TIMEOUT     seconds the load may take before it is killed (default 3600)
  MERGE_TIMEOUT       seconds a flush may take (default 900)
  SYNC_TIMEOUT        seconds Strata's store-gateway may take to list the blocks (default 120)
EOF
}

DEFAULT_STRATA_READ_FLAGS="-querier.query-store-after=0 -querier.query-ingesters-within=1ms -blocks-storage.tsdb.retention-period=0 -blocks-storage.bucket-store.sync-interval=5s"
DEFAULT_STRATA_READ_FLAGS_DOC="-querier.query-store-after=0
                      -querier.query-ingesters-within=1ms -blocks-storage.tsdb.retention-period=0
                      -blocks-storage.bucket-store.sync-interval=5s"

QUICK=0
ONLY="$ALL_SYSTEMS"
HOSTS=""
HOURS=""
RUNS=10
QUERIES=""
SEED=1
WORKDIR=""
DROP_CACHES=0
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY="$2"; shift ;;
    --only=*) ONLY="${1#*=}" ;;
    --hosts) HOSTS="$2"; shift ;;
    --hours) HOURS="$2"; shift ;;
    --runs) RUNS="$2"; shift ;;
    --queries) QUERIES="$2"; shift ;;
    --queries=*) QUERIES="${1#*=}" ;;
    --seed) SEED="$2"; shift ;;
    --workdir) WORKDIR="$2"; shift ;;
    --drop-caches) DROP_CACHES=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/read.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  HOSTS="${HOSTS:-4}"; HOURS="${HOURS:-2}"
else
  HOSTS="${HOSTS:-40}"; HOURS="${HOURS:-8}"
fi
[[ "$HOSTS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/read.sh: --hosts must be a positive integer" >&2; exit 2; }
[[ "$HOURS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/read.sh: --hours must be a positive integer" >&2; exit 2; }
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "bench/read.sh: --runs must be a positive integer" >&2; exit 2; }
SYSTEMS=()
IFS=',' read -r -a requested <<<"$ONLY"
for s in "${requested[@]}"; do
  case "$s" in
    strata|prometheus|victoria-metrics) SYSTEMS+=("$s") ;;
    vm|victoriametrics) SYSTEMS+=("victoria-metrics") ;;
    "") ;;
    *) echo "bench/read.sh: unknown system '$s' (known: $ALL_SYSTEMS)" >&2; exit 2 ;;
  esac
done
[ "${#SYSTEMS[@]}" -gt 0 ] || { echo "bench/read.sh: --only selects no system" >&2; exit 2; }
if [ "$DROP_CACHES" = 1 ] && [ ! -w /proc/sys/vm/drop_caches ]; then
  echo "bench/read.sh: --drop-caches needs root (cannot write /proc/sys/vm/drop_caches)" >&2
  exit 2
fi

LOADGEN_TIMEOUT="${LOADGEN_TIMEOUT:-3600}"
MERGE_TIMEOUT="${MERGE_TIMEOUT:-900}"
SYNC_TIMEOUT="${SYNC_TIMEOUT:-120}"
INTERVAL_MS=15000
STRATA_TENANT=bench

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/read.sh: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------------------------------------
# Binaries (as in bench/run.sh)
# ---------------------------------------------------------------------------------------------

peer_binary() {
  local package="$1" binary="$2" path
  if ! dpkg -s "$package" >/dev/null 2>&1; then
    log "installing $package (Debian package)"
    as_root apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "$package" >&2
  fi
  path="$(dpkg -L "$package" | grep -E "/s?bin/$binary\$" | head -n 1 || true)"
  [ -n "$path" ] && [ -x "$path" ] || die "package $package installed no executable named $binary"
  printf '%s\n' "$path"
}

STRATA_BIN="${STRATA_BIN:-$ROOT/target/release/strata}"
for s in "${SYSTEMS[@]}"; do
  case "$s" in
    strata) [ -x "$STRATA_BIN" ] || die "no Strata binary at $STRATA_BIN: run 'cargo build --release', set STRATA_BIN, or pass --only prometheus,victoria-metrics" ;;
    prometheus) PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(peer_binary prometheus prometheus)}" ;;
    victoria-metrics) VM_BIN="${VM_BIN:-$(peer_binary victoria-metrics victoria-metrics)}" ;;
  esac
done
if [ -z "${LOADGEN_BIN:-}" ]; then
  for candidate in "$ROOT/target/release/strata-loadgen" "$ROOT/target/debug/strata-loadgen"; do
    if [ -x "$candidate" ]; then LOADGEN_BIN="$candidate"; break; fi
  done
fi
# querybench times the server, but a debug build reads large answers measurably slower, so
# only a release build is taken by default.
if [ -z "${QUERYBENCH_BIN:-}" ] && [ -x "$ROOT/target/release/querybench" ]; then
  QUERYBENCH_BIN="$ROOT/target/release/querybench"
fi
if [ -z "${LOADGEN_BIN:-}" ] || [ -z "${QUERYBENCH_BIN:-}" ]; then
  log "building strata-loadgen and querybench (release; set LOADGEN_BIN and QUERYBENCH_BIN to skip)"
  (cd "$ROOT" && cargo build --release -p strata-bench --bin strata-loadgen --bin querybench >&2)
  LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/strata-loadgen}"
  QUERYBENCH_BIN="${QUERYBENCH_BIN:-$ROOT/target/release/querybench}"
fi
# Servers start in their data directory: make every path absolute.
for var in STRATA_BIN PROMETHEUS_BIN VM_BIN LOADGEN_BIN QUERYBENCH_BIN; do
  if [ -n "${!var:-}" ] && [ -e "${!var}" ]; then
    printf -v "$var" '%s' "$(realpath "${!var}")"
  fi
done
[ -x "$LOADGEN_BIN" ] || die "no strata-loadgen at $LOADGEN_BIN"
[ -x "$QUERYBENCH_BIN" ] || die "no querybench at $QUERYBENCH_BIN"
"$QUERYBENCH_BIN" list >/dev/null || die "$QUERYBENCH_BIN does not run"

# ---------------------------------------------------------------------------------------------
# Processes (as in bench/run.sh): started in their data directory, tracked by pid, killed on
# exit.
# ---------------------------------------------------------------------------------------------

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    stop_pid "$pid"
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# SIGTERM, up to 30 s of grace, then SIGKILL.
stop_pid() {
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# A free TCP port on 127.0.0.1, below the ephemeral range (see bench/run.sh).
free_port() {
  local port=$((20000 + RANDOM % 12000))
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
    [ "$port" -lt 32700 ] || die "no free port found"
  done
  printf '%s\n' "$port"
}

# start_server DIR LOG CMD...: starts CMD in DIR, appending to LOG, sets SERVER_PID.
start_server() {
  local dir="$1" logfile="$2"
  shift 2
  mkdir -p "$dir"
  printf '\n==== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$logfile"
  (cd "$dir" && exec "$@") >>"$logfile" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}

# wait_ready URL PID LOG: until URL answers 2xx, at most 120 s; fails if the server exits.
wait_ready() {
  local url="$1" pid="$2" logfile="$3" deadline=$((SECONDS + 120))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$logfile" >&2 || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "not ready after 120 s: $url" >&2
      tail -n 20 "$logfile" >&2 || true
      return 1
    fi
    sleep 0.2
  done
}

peak_rss() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
current_rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# Resets the process' peak RSS (VmHWM) to its current RSS (Linux >= 4.0), so that the peak
# read after the queries is the queries' own, not the start-up's (WAL replay, index loading).
reset_peak_rss() { echo 5 2>/dev/null >"/proc/$1/clear_refs"; }
summary_value() { grep -o "\b$2=[^ ]*" "$1" | tail -n 1 | cut -d= -f2; }

# ---------------------------------------------------------------------------------------------
# Per-system steps. start_X DIR [load|read]: starts the server on new ports (sets BASE_URL,
# READY_URL, PUSH_URL, LOADGEN_EXTRA, QUERY_HEADERS); persist_X DIR: makes the loaded data
# durable and queryable from what a restart reads; prepare_cold_X DIR: run before a cold start.
# ---------------------------------------------------------------------------------------------

# The flags of STRATA_READ_FLAGS this Strata binary knows; the others are reported and dropped.
strata_read_flags() {
  local help flag name
  help="$("$STRATA_BIN" -help 2>&1 || true)"
  for flag in ${STRATA_READ_FLAGS-$DEFAULT_STRATA_READ_FLAGS}; do
    name="${flag%%=*}"
    if grep -q -e "${name}[ =]" -e "${name}\$" <<<"$help"; then
      printf '%s\n' "$flag"
    else
      log "strata: this binary has no flag $name; not passed"
      note strata "this binary has no flag $name: not passed"
    fi
  done
}

start_strata() {
  local dir="$1" phase="${2:-load}" port grpc
  local -a extra=()
  port="$(free_port)"
  grpc="$(free_port)"
  if [ "$phase" = read ]; then
    extra=("${STRATA_READ_ARGS[@]}")
  fi
  # The benchmark measures Strata, not Mimir's default per-tenant limits (10 000 samples/s,
  # 150 000 series): lift them when this binary has them.
  local -a limits=()
  if "$STRATA_BIN" -help 2>&1 | grep -q -e '-distributor.ingestion-rate-limit'; then
    limits=(-distributor.ingestion-rate-limit=1e15 -distributor.ingestion-burst-size=1000000000000
      -ingester.max-global-series-per-user=0)
  fi
  # shellcheck disable=SC2086 # STRATA_FLAGS is a list of flags
  start_server "$dir" "$dir.log" "$STRATA_BIN" -target=all -ingester.ring.replication-factor=1 "${limits[@]}" \
    -server.http-listen-address=127.0.0.1 -server.http-listen-port="$port" \
    -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port="$grpc" \
    -blocks-storage.backend=filesystem -blocks-storage.filesystem.dir="$dir/blocks" \
    -blocks-storage.tsdb.dir="$dir/tsdb" ${STRATA_FLAGS:-} "${extra[@]}"
  BASE_URL="http://127.0.0.1:$port"
  READY_URL="$BASE_URL/ready"
  PUSH_URL="$BASE_URL/api/v1/push"
  LOADGEN_EXTRA=(--tenant "$STRATA_TENANT")
  QUERY_HEADERS=(--header "X-Scope-OrgID: $STRATA_TENANT")
}

# Cuts every block out of the head and waits for the upload.
persist_strata() {
  local dir="$1" blocks
  curl -fsS -X POST --max-time "$MERGE_TIMEOUT" "$BASE_URL/ingester/flush?wait=true" >&2
  blocks="$(strata_block_count "$dir")"
  log "strata: $blocks block(s) in $dir/blocks/$STRATA_TENANT"
  [ "$blocks" -gt 0 ] || { echo "no block was uploaded" >&2; return 1; }
}

strata_block_count() {
  find "$1/blocks/$STRATA_TENANT" -mindepth 2 -maxdepth 2 -name meta.json 2>/dev/null | wc -l
}

# After a start for reads: waits (without querying) until the store-gateway lists every
# uploaded block, so that a cold run measures the query, not the first discovery.
wait_queryable_strata() {
  local dir="$1" want have deadline=$((SECONDS + SYNC_TIMEOUT))
  want="$(strata_block_count "$dir")"
  while :; do
    have="$(curl -fsS --max-time 5 "$BASE_URL/metrics" 2>/dev/null |
      awk -v t="$STRATA_TENANT" '$1 ~ /^strata_store_gateway_blocks_loaded[{]/ && index($1, "user=\"" t "\"") { n += $2 } END { print n + 0 }')"
    [ "$have" -ge "$want" ] && return 0
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "strata: the store-gateway lists $have of $want blocks after ${SYNC_TIMEOUT}s; querying anyway"
      note strata "store-gateway listed $have of $want blocks after ${SYNC_TIMEOUT}s"
      return 0
    fi
    sleep 0.2
  done
}

prepare_cold_strata() { :; }

start_prometheus() {
  local dir="$1" port
  port="$(free_port)"
  mkdir -p "$dir"
  cat >"$dir/prometheus.yml" <<'EOF'
# No scrape targets: samples arrive only through the remote-write receiver.
global:
  scrape_interval: 15s
EOF
  start_server "$dir" "$dir.log" "$PROMETHEUS_BIN" --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" --web.listen-address="127.0.0.1:$port" \
    --web.enable-remote-write-receiver
  BASE_URL="http://127.0.0.1:$port"
  READY_URL="$BASE_URL/-/ready"
  PUSH_URL="$BASE_URL/api/v1/write"
  LOADGEN_EXTRA=()
  QUERY_HEADERS=()
}

# Prometheus' WAL holds what the head has not compacted yet; a restart replays it (the ready
# check waits for the replay).
persist_prometheus() { :; }
wait_queryable_prometheus() { :; }
prepare_cold_prometheus() { :; }

start_victoria_metrics() {
  local dir="$1" port
  port="$(free_port)"
  start_server "$dir" "$dir.log" "$VM_BIN" -storageDataPath="$dir/data" \
    -httpListenAddr="127.0.0.1:$port"
  BASE_URL="http://127.0.0.1:$port"
  READY_URL="$BASE_URL/health"
  PUSH_URL="$BASE_URL/api/v1/write"
  LOADGEN_EXTRA=()
  QUERY_HEADERS=()
}

vm_metric() {
  curl -fsS --max-time 5 "$BASE_URL/metrics" | awk -v re="$1" '$0 ~ re { n += $NF } END { print n + 0 }'
}

# Writes the rows buffered in memory to parts on disk.
persist_victoria_metrics() {
  local deadline=$((SECONDS + MERGE_TIMEOUT))
  curl -fsS --max-time 60 "$BASE_URL/internal/force_flush" >/dev/null
  until [ "$(vm_metric '^vm_pending_rows[{]')" = 0 ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "rows still pending after ${MERGE_TIMEOUT}s" >&2; return 1; }
    sleep 1
  done
}
wait_queryable_victoria_metrics() { :; }

# VictoriaMetrics saves its caches (rollup results, series ids, ...) under <data>/cache on
# shutdown and loads them at start: a cold start must not find them.
prepare_cold_victoria_metrics() { rm -rf "${1:?}/data/cache"; }

server_version() {
  local bin version package
  case "$1" in
    strata) bin="$STRATA_BIN"; version="$("$bin" -version 2>&1 | head -n 1 || true)" ;;
    prometheus) bin="$PROMETHEUS_BIN"; version="$("$bin" --version 2>&1 | head -n 1 | awk '{ print $3 }')" ;;
    victoria-metrics) bin="$VM_BIN"; version="$("$bin" -version 2>&1 | head -n 1)" ;;
  esac
  if [ -z "$version" ]; then
    package="$(dpkg -S "$(readlink -f "$bin")" 2>/dev/null | head -n 1 | cut -d: -f1 || true)"
    [ -z "$package" ] || version="$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)"
  fi
  printf '%s\n' "${version:-unknown}"
}

# ---------------------------------------------------------------------------------------------
# Results: querybench appends run/summary/failure lines; this script adds rss and note lines.
# ---------------------------------------------------------------------------------------------

# note SYSTEM TEXT: a line the report lists under "Problems" (TEXT without double quotes).
note() {
  printf '{"kind":"note","system":"%s","text":"%s"}\n' "$1" "${2//\"/\'}" >>"$RESULTS"
}

record_rss() {
  local system="$1" mode="$2" peak="$3" idle="$4"
  printf '{"kind":"rss","system":"%s","mode":"%s","peak_rss_bytes":%s,"idle_rss_bytes":%s}\n' \
    "$system" "$mode" "${peak:-0}" "${idle:-0}" >>"$RESULTS"
}

# querybench ARGS...: one querybench run against the current server.
querybench() {
  "$QUERYBENCH_BIN" run --url "$BASE_URL" "${QUERY_HEADERS[@]}" --start-ms "$START_MS" \
    --end-ms "$END_MS" --hosts "$HOSTS" --out "$RESULTS" "$@" >>"$WORKDIR/querybench.out"
}

# (Re)starts the system for queries and waits until it can answer; sets SERVER_PID and IDLE_RSS
# and resets the peak RSS. Returns non-zero when the server does not come up.
start_for_queries() {
  local system="$1" dir="$2" fn="${1//-/_}"
  if [ -n "${SERVER_PID:-}" ]; then
    stop_pid "$SERVER_PID"
    SERVER_PID=""
  fi
  if [ "${3:-}" = cold ]; then
    "prepare_cold_$fn" "$dir"
    if [ "$DROP_CACHES" = 1 ]; then
      sync
      echo 3 >/proc/sys/vm/drop_caches
    fi
  fi
  "start_$fn" "$dir" read
  wait_ready "$READY_URL" "$SERVER_PID" "$dir.log" || return 1
  "wait_queryable_$fn" "$dir"
  IDLE_RSS="$(current_rss "$SERVER_PID")"
  if ! reset_peak_rss "$SERVER_PID"; then
    [ -n "${HWM_WARNED:-}" ] || note "$system" "cannot reset VmHWM: peak RSS includes start-up"
    HWM_WARNED=1
  fi
}

# ---------------------------------------------------------------------------------------------
# One system, end to end
# ---------------------------------------------------------------------------------------------

bench_system() {
  local system="$1"
  SERVER_PID=""
  measure_system "$system" || { log "$system: failed"; note "$system" "${FAILED_STEP:-failed} (see $WORKDIR/$system.log)"; }
  if [ -n "$SERVER_PID" ]; then
    log "$system: stopping"
    stop_pid "$SERVER_PID"
    SERVER_PID=""
  fi
  [ "$KEEP" = 1 ] || rm -rf "${WORKDIR:?}/$system"
}

measure_system() {
  local system="$1" dir="$WORKDIR/$system" fn="${1//-/_}"
  local out="$WORKDIR/$system.loadgen.out" err="$WORKDIR/$system.loadgen.err"
  local rc=0 rejected q run peak max_peak version
  rm -rf "$dir"
  FAILED_STEP="failed to start"
  log "$system: starting for the load"
  "start_$fn" "$dir" load
  wait_ready "$READY_URL" "$SERVER_PID" "$dir.log" || return 1
  version="$(server_version "$system")"
  VERSIONS+=("$system ${version#"$system "}")

  FAILED_STEP="load failed"
  log "$system: pushing $HOSTS hosts x $HOURS h to $PUSH_URL"
  timeout --signal=TERM "$LOADGEN_TIMEOUT" "$LOADGEN_BIN" --url "$PUSH_URL" "${LOADGEN_EXTRA[@]}" \
    --hosts "$HOSTS" --hours "$HOURS" --end-ms "$END_MS" --interval-ms "$INTERVAL_MS" \
    --seed "$SEED" --pregenerate --allow-errors >"$out" 2>"$err" || rc=$?
  if [ "$rc" -ne 0 ] || ! grep -q '^strata-loadgen summary:' "$out"; then
    tail -n 5 "$err" >&2 || true
    return 1
  fi
  grep '^strata-loadgen summary:' "$out" >&2
  SERIES="$(summary_value "$out" series)"
  rejected="$(summary_value "$out" samples_rejected)"
  if [ "${rejected:-0}" != 0 ]; then
    log "$system: $rejected samples rejected at load: its answers cannot match"
    note "$system" "$rejected samples rejected at load ($(summary_value "$out" rejected_by_status))"
  fi

  FAILED_STEP="persisting failed"
  log "$system: persisting"
  "persist_$fn" "$dir" || return 1

  # The queries end at END_MS; waiting a little past it keeps VictoriaMetrics' latency offset
  # (30 s: newer points are hidden) out of the answers.
  while [ "$(date +%s%3N)" -lt $((END_MS + 60000)) ]; do sleep 1; done

  FAILED_STEP="failed to restart for queries"
  log "$system: warm: one warm-up and $RUNS runs per query"
  start_for_queries "$system" "$dir" warm || return 1
  FAILED_STEP="queries failed"
  querybench --system "$system" --mode warm --runs "$RUNS" --warmup 1 \
    ${QUERIES:+--queries "$QUERIES"} --answers-dir "$WORKDIR/answers/$system" \
    ${REFERENCE_DIR:+--reference-dir "$REFERENCE_DIR"} || log "$system: warm: some query failed"
  kill -0 "$SERVER_PID" 2>/dev/null || { note "$system" "server exited during the warm runs"; return 1; }
  record_rss "$system" warm "$(peak_rss "$SERVER_PID")" "$IDLE_RSS"

  log "$system: cold: a restart before each of $RUNS runs per query"
  for q in $("$QUERYBENCH_BIN" list | cut -f1); do
    if [ -n "$QUERIES" ] && [[ ",$QUERIES," != *",$q,"* ]]; then continue; fi
    max_peak=0
    for run in $(seq 1 "$RUNS"); do
      FAILED_STEP="failed to restart for a cold run"
      start_for_queries "$system" "$dir" cold || return 1
      querybench --system "$system" --mode cold --runs 1 --warmup 0 --queries "$q" ||
        log "$system: cold $q run $run failed"
      kill -0 "$SERVER_PID" 2>/dev/null || { note "$system" "server exited during cold $q"; return 1; }
      peak="$(peak_rss "$SERVER_PID")"
      [ "$peak" -le "$max_peak" ] || max_peak="$peak"
      record_rss "$system" cold "$peak" "$IDLE_RSS"
    done
    log "$system: cold $q: done (peak RSS $((max_peak / 1048576)) MiB)"
  done
  FAILED_STEP=""
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

if [ -z "$WORKDIR" ]; then
  WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/strata-read-bench.XXXXXX")"
fi
mkdir -p "$WORKDIR"
WORKDIR="$(cd "$WORKDIR" && pwd)"
RESULTS="$WORKDIR/results.jsonl"
: >"$RESULTS"
rm -rf "$WORKDIR/answers"
VERSIONS=()
STRATA_READ_ARGS=()
if [[ " ${SYSTEMS[*]} " == *" strata "* ]]; then
  mapfile -t STRATA_READ_ARGS < <(strata_read_flags)
  log "strata: query-time flags: ${STRATA_READ_ARGS[*]}"
fi
# One end time for every system, 10 minutes back so that no system treats the newest points
# as too recent (VictoriaMetrics does not cache the last 5 minutes' results).
NOW_MS="$(date +%s%3N)"
END_MS=$((NOW_MS - NOW_MS % INTERVAL_MS - 600000))
START_MS=$((END_MS - HOURS * 3600000))
log "workload: $HOSTS hosts x $HOURS h at ${INTERVAL_MS} ms, seed $SEED, from $START_MS to $END_MS; work dir $WORKDIR"
# For bench/metadata.sh, which queries the kept data later.
printf 'START_MS=%s\nEND_MS=%s\nHOSTS=%s\nHOURS=%s\nSTRATA_TENANT=%s\n' \
  "$START_MS" "$END_MS" "$HOSTS" "$HOURS" "$STRATA_TENANT" >"$WORKDIR/workload.env"

# Prometheus first, so that the others' answers are compared with its answers as they run.
ORDERED=()
for s in prometheus strata victoria-metrics; do
  [[ " ${SYSTEMS[*]} " == *" $s "* ]] && ORDERED+=("$s")
done
REFERENCE_DIR=""
for system in "${ORDERED[@]}"; do
  bench_system "$system"
  if [ "$system" = prometheus ] && [ -d "$WORKDIR/answers/prometheus" ]; then
    REFERENCE_DIR="$WORKDIR/answers/prometheus"
  fi
done

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

REPORT="$WORKDIR/report.md"
{
  printf '## Read benchmark: %s hosts x %s h (%s series), %s runs per query\n\n' \
    "$HOSTS" "$HOURS" "${SERIES:-?}" "$RUNS"
  printf 'Versions: %s. Machine: %s cores, %s GiB. Median ms, cold (server restarted before each run%s) / warm (after one warm-up run).\n\n' \
    "$(IFS=';'; echo "${VERSIONS[*]}" | sed 's/;/, /g')" "$(nproc)" \
    "$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" \
    "$([ "$DROP_CACHES" = 1 ] && echo ', OS page cache dropped' || echo ', OS page cache kept')"
  "$QUERYBENCH_BIN" report --results "$RESULTS" --answers "$WORKDIR/answers" \
    --reference prometheus --primary strata
} >"$REPORT"
echo
cat "$REPORT"
echo
echo "report: $REPORT; raw results: $RESULTS (server logs and querybench output in $WORKDIR)"
# Non-zero when a system or a query failed (the report lists what).
if grep -q -e '"kind":"failure"' -e '"kind":"note"' "$RESULTS"; then
  exit 1
fi
