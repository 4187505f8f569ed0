#!/usr/bin/env bash
# WAL replay benchmark: pushes the same deterministic node_exporter-like workload
# (strata-loadgen) into Strata (-target=all) and Prometheus 2.42, SIGKILLs each server,
# restarts it on the same data directory, and measures the replay: the duration each server
# logs, samples replayed per second, the wall time from the restart to its readiness
# endpoint answering 200, and the peak RSS. Every restart is checked: a count query must
# return every sample pushed.
#
#   bench/replay.sh                   # 20 hosts x 2 h at 15 s: ~10.5k series, ~5M samples
#   bench/replay.sh --quick           # 4 hosts x 1 h: a smoke run of a minute or two
#   bench/replay.sh --only strata --restarts 5
#
# Everything listens on 127.0.0.1; every wait is bounded; servers are killed on exit.
# See bench/README.md ("bench/replay.sh") for what the figures mean and what they do not.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ALL_SYSTEMS="strata,prometheus"

usage() {
  cat <<EOF
usage: bench/replay.sh [--quick] [--only LIST] [--hosts N] [--hours H] [--restarts N]
                       [--concurrency N] [--batch N] [--seed N] [--workdir DIR] [--keep]

  --quick          4 hosts x 1 h instead of 20 hosts x 2 h
  --only LIST      comma-separated subset of: $ALL_SYSTEMS
  --hosts N        scrape targets (about 526 series each)
  --hours H        hours of data, ending at the start of the run; under 3 (see below)
  --restarts N     SIGKILL + restart rounds per system (default 3); the table shows medians
  --concurrency N  requests in flight while loading (default 4)
  --batch N        samples per request (default 2000)
  --seed N         workload seed (default 1)
  --workdir DIR    where data, logs and results go (default: a new temporary directory)
  --keep           keep the servers' data directories (deleted at the end otherwise)

The data must stay in the WAL / head: Prometheus compacts its head once it spans 1.5 x the
2 h block range (3 h), so --hours must be under 3; Strata is started with
-blocks-storage.tsdb.block-cut-grace-period=3h so that it cuts no block of such a span
either (the script fails if either one wrote a block).

environment:
  STRATA_BIN        Strata binary (default: target/release/strata)
  STRATA_FLAGS      extra flags for Strata
  LOADGEN_BIN       strata-loadgen binary (default: target/release, else target/debug, else
                    a release build of it)
  PROMETHEUS_BIN    Prometheus binary (default: from the Debian package, installed if missing)
  LOADGEN_TIMEOUT   seconds the initial push may take before it is killed (default 3600)
  READY_TIMEOUT     seconds a restart may take to become ready (default 900)
  QUERY_TIMEOUT     seconds the count query may take (default 300)
EOF
}

QUICK=0
ONLY="$ALL_SYSTEMS"
HOSTS=""
HOURS=""
RESTARTS=3
CONCURRENCY=4
BATCH=2000
SEED=1
WORKDIR=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) ONLY="$2"; shift ;;
    --only=*) ONLY="${1#*=}" ;;
    --hosts) HOSTS="$2"; shift ;;
    --hours) HOURS="$2"; shift ;;
    --restarts) RESTARTS="$2"; shift ;;
    --concurrency) CONCURRENCY="$2"; shift ;;
    --batch) BATCH="$2"; shift ;;
    --seed) SEED="$2"; shift ;;
    --workdir) WORKDIR="$2"; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/replay.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  HOSTS="${HOSTS:-4}"; HOURS="${HOURS:-1}"
else
  HOSTS="${HOSTS:-20}"; HOURS="${HOURS:-2}"
fi
SYSTEMS=()
IFS=',' read -r -a requested <<<"$ONLY"
for s in "${requested[@]}"; do
  case "$s" in
    strata|prometheus) SYSTEMS+=("$s") ;;
    "") ;;
    *) echo "bench/replay.sh: unknown system '$s' (known: $ALL_SYSTEMS)" >&2; exit 2 ;;
  esac
done
[ "${#SYSTEMS[@]}" -gt 0 ] || { echo "bench/replay.sh: --only selects no system" >&2; exit 2; }
awk -v h="$HOURS" 'BEGIN { exit !(h > 0 && h < 3) }' ||
  { echo "bench/replay.sh: --hours must be over 0 and under 3 (the head must not be compacted)" >&2; exit 2; }
[ "$RESTARTS" -ge 1 ] 2>/dev/null || { echo "bench/replay.sh: --restarts must be at least 1" >&2; exit 2; }

LOADGEN_TIMEOUT="${LOADGEN_TIMEOUT:-3600}"
READY_TIMEOUT="${READY_TIMEOUT:-900}"
QUERY_TIMEOUT="${QUERY_TIMEOUT:-300}"
INTERVAL_MS=15000
TENANT=bench

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/replay.sh: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------------------------

# Installs a Debian package if its binary is missing and prints the binary's path.
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
    strata) [ -x "$STRATA_BIN" ] || die "no Strata binary at $STRATA_BIN: run 'cargo build --release', set STRATA_BIN, or pass --only prometheus" ;;
    prometheus) PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(peer_binary prometheus prometheus)}" ;;
  esac
done
if [ -z "${LOADGEN_BIN:-}" ]; then
  for candidate in "$ROOT/target/release/strata-loadgen" "$ROOT/target/debug/strata-loadgen"; do
    if [ -x "$candidate" ]; then LOADGEN_BIN="$candidate"; break; fi
  done
fi
if [ -z "${LOADGEN_BIN:-}" ]; then
  log "building strata-loadgen (release; set LOADGEN_BIN to skip)"
  (cd "$ROOT" && cargo build --release -p strata-bench --bin strata-loadgen >&2)
  LOADGEN_BIN="$ROOT/target/release/strata-loadgen"
fi
[ -x "$LOADGEN_BIN" ] || die "no strata-loadgen at $LOADGEN_BIN"

# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    stop_pid "$pid"
  done
  if [ "$KEEP" != 1 ] && [ -n "${WORKDIR:-}" ]; then
    for s in "${SYSTEMS[@]}"; do rm -rf "${WORKDIR:?}/$s"; done
  fi
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

# The crash under test: SIGKILL, no chance to flush or close anything.
crash_pid() {
  local pid="$1"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# A free TCP port on 127.0.0.1, below the ephemeral range, from a random base.
free_port() {
  local port=$((20000 + RANDOM % 12000))
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
    [ "$port" -lt 32700 ] || die "no free port found"
  done
  printf '%s\n' "$port"
}

# start_server DIR LOG CMD...: starts CMD in DIR, sets SERVER_PID and START_T (the wall
# clock just before the fork, the zero of "time to ready").
start_server() {
  local dir="$1" logfile="$2"
  shift 2
  mkdir -p "$dir"
  START_T="$EPOCHREALTIME"
  (cd "$dir" && exec "$@") >"$logfile" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}

# wait_ready URL PID LOG: polls URL every 50 ms until it answers 200, at most READY_TIMEOUT
# seconds; sets READY_T to the wall clock of the first 200. Fails if the server exits.
wait_ready() {
  local url="$1" pid="$2" logfile="$3" deadline=$((SECONDS + READY_TIMEOUT)) code
  while :; do
    code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null || true)"
    if [ "$code" = 200 ]; then
      READY_T="$EPOCHREALTIME"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$logfile" >&2 || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "not ready after ${READY_TIMEOUT}s: $url" >&2
      tail -n 20 "$logfile" >&2 || true
      return 1
    fi
    sleep 0.05
  done
}

peak_rss() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$1/status"; }
dir_bytes() {
  local total=0 p b
  for p in "$@"; do
    if [ -e "$p" ]; then
      b="$(du -sb "$p" | cut -f1)"
      total=$((total + b))
    fi
  done
  printf '%s\n' "$total"
}
summary_value() { grep -o "\b$2=[^ ]*" "$1" | tail -n 1 | cut -d= -f2; }
# A Go duration (time.Duration.String(): 1m2.5s, 812.3ms, 95.1µs, 0s) in seconds.
go_duration_s() {
  printf '%s\n' "$1" | sed 's/µ/u/g' | awk '{
    s = $0; total = 0
    while (match(s, /^[0-9.]+(h|ms|us|ns|m|s)/)) {
      tok = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
      match(tok, /^[0-9.]+/); num = substr(tok, 1, RLENGTH); unit = substr(tok, RLENGTH + 1)
      f = (unit == "h") ? 3600 : (unit == "m") ? 60 : (unit == "s") ? 1 : (unit == "ms") ? 1e-3 : (unit == "us") ? 1e-6 : 1e-9
      total += num * f
    }
    if (s != "") { print "NaN"; exit }
    printf "%.6f\n", total
  }'
}
elapsed_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---------------------------------------------------------------------------------------------
# Per-system steps. start_X DIR LOG sets BASE_URL, READY_URL, PUSH_URL, LOADGEN_EXTRA,
# QUERY_PATH and CURL_TENANT; replay_X LOG sets LOGGED_S (the replay duration the server
# logged, seconds) and LOGGED_SAMPLES (empty when the server does not log it);
# check_unflushed_X DIR LOG fails when the server wrote a block (the data left the WAL).
# ---------------------------------------------------------------------------------------------

start_strata() {
  local dir="$1" logfile="$2" port grpc
  port="$(free_port)"
  grpc="$(free_port)"
  local -a limits=()
  if "$STRATA_BIN" -help 2>&1 | grep -q -e '-distributor.ingestion-rate-limit'; then
    limits=(-distributor.ingestion-rate-limit=1e15 -distributor.ingestion-burst-size=1000000000000
      -ingester.max-global-series-per-user=0)
  fi
  # shellcheck disable=SC2086 # STRATA_FLAGS is a list of flags
  start_server "$dir" "$logfile" "$STRATA_BIN" -target=all -ingester.ring.replication-factor=1 "${limits[@]}" \
    -server.http-listen-address=127.0.0.1 -server.http-listen-port="$port" \
    -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port="$grpc" \
    -blocks-storage.backend=filesystem -blocks-storage.filesystem.dir="$dir/blocks" \
    -blocks-storage.tsdb.dir="$dir/tsdb" -blocks-storage.tsdb.block-cut-grace-period=3h ${STRATA_FLAGS:-}
  BASE_URL="http://127.0.0.1:$port"
  READY_URL="$BASE_URL/ready"
  PUSH_URL="$BASE_URL/api/v1/push"
  QUERY_PATH="/prometheus/api/v1/query"
  LOADGEN_EXTRA=(--tenant "$TENANT")
  CURL_TENANT=(-H "X-Scope-OrgID: $TENANT")
}

# Strata's line: `... WAL replayed records=N samples=N elapsed_ms=N`, timed from the WAL's
# open (reading every segment) to the last record applied to the heads.
replay_strata() {
  local logfile="$1" line apply
  line="$(grep -F 'WAL replayed' "$logfile" | tail -n 1 || true)"
  [ -n "$line" ] || { echo "no 'WAL replayed' line in $logfile" >&2; return 1; }
  LOGGED_SAMPLES="$(printf '%s\n' "$line" | grep -o '\bsamples=[0-9]*' | cut -d= -f2)"
  LOGGED_RECORDS="$(printf '%s\n' "$line" | grep -o '\brecords=[0-9]*' | cut -d= -f2)"
  LOGGED_S="$(printf '%s\n' "$line" | grep -o '\belapsed_ms=[0-9]*' | cut -d= -f2 | awk '{ printf "%.3f", $1 / 1000 }')"
  # Split: reading the segments (up to the "WAL opened" line) and applying the records.
  apply="$(grep -E 'WAL (opened|replayed)' "$logfile" | tail -n 2 | awk '
    { split(substr($1, 12, 15), t, ":"); s[NR] = t[1] * 3600 + t[2] * 60 + t[3] }
    END { d = s[2] - s[1]; if (d < 0) d += 86400; if (NR == 2) printf "%.3f", d }')"
  LOGGED_DETAIL="records=$LOGGED_RECORDS wal_read_s=$(awk -v a="$LOGGED_S" -v b="${apply:-0}" 'BEGIN { printf "%.3f", a - b }') apply_s=${apply:-?}"
}

check_unflushed_strata() {
  local dir="$1" logfile="$2" blocks
  if grep -F 'cut block' "$logfile" >&2; then
    echo "Strata cut a block (see $logfile): the data is no longer all in the WAL" >&2
    return 1
  fi
  blocks="$(find "$dir/blocks" "$dir/tsdb/shipping" "$dir/tsdb/shipped" -name meta.json 2>/dev/null | wc -l)"
  [ "$blocks" -eq 0 ] || { echo "Strata has $blocks block(s) on disk" >&2; return 1; }
}

wal_bytes_strata() { dir_bytes "$1/tsdb/wal"; }

start_prometheus() {
  local dir="$1" logfile="$2" port
  port="$(free_port)"
  mkdir -p "$dir"
  cat >"$dir/prometheus.yml" <<'EOF'
# No scrape targets: samples arrive only through the remote-write receiver.
global:
  scrape_interval: 15s
EOF
  start_server "$dir" "$logfile" "$PROMETHEUS_BIN" --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" --web.listen-address="127.0.0.1:$port" \
    --web.enable-remote-write-receiver
  BASE_URL="http://127.0.0.1:$port"
  READY_URL="$BASE_URL/-/ready"
  PUSH_URL="$BASE_URL/api/v1/write"
  QUERY_PATH="/api/v1/query"
  LOADGEN_EXTRA=()
  CURL_TENANT=()
}

# Prometheus' line (tsdb/head.go): `msg="WAL replay completed" checkpoint_replay_duration=...
# wal_replay_duration=... wbl_replay_duration=... total_replay_duration=...`; the total
# includes the m-mapped head chunks (chunks_head/) read before the WAL. It logs no sample
# count.
replay_prometheus() {
  local logfile="$1" line total wal mmap
  line="$(grep -F 'msg="WAL replay completed"' "$logfile" | tail -n 1 || true)"
  [ -n "$line" ] || { echo "no 'WAL replay completed' line in $logfile" >&2; return 1; }
  total="$(printf '%s\n' "$line" | grep -o '\btotal_replay_duration=[^ ]*' | cut -d= -f2)"
  wal="$(printf '%s\n' "$line" | grep -o '\bwal_replay_duration=[^ ]*' | cut -d= -f2)"
  mmap="$(grep -F 'msg="On-disk memory mappable chunks replay completed"' "$logfile" | tail -n 1 |
    grep -o '\bduration=[^ ]*' | cut -d= -f2 || true)"
  LOGGED_S="$(go_duration_s "$total")"
  LOGGED_SAMPLES=""
  LOGGED_DETAIL="wal_replay=$wal mmap_chunks_replay=${mmap:-?} total=$total"
}

check_unflushed_prometheus() {
  local dir="$1" logfile="$2" blocks
  if grep -E 'msg="(write block|compact blocks|Head GC completed)"' "$logfile" >&2; then
    echo "Prometheus compacted its head (see $logfile): the data is no longer all in the WAL" >&2
    return 1
  fi
  blocks="$(find "$dir/data" -mindepth 2 -maxdepth 2 -name meta.json 2>/dev/null | wc -l)"
  [ "$blocks" -eq 0 ] || { echo "Prometheus has $blocks block(s) on disk" >&2; return 1; }
}

wal_bytes_prometheus() { dir_bytes "$1/data/wal"; }

# ---------------------------------------------------------------------------------------------
# Steps shared by both systems
# ---------------------------------------------------------------------------------------------

# The number of samples the server returns for the whole span, through its query API:
# sum(count_over_time({__name__="NAME"}[span + 10 m])) at the end of the span + 1 m, for
# every metric name, added up. (One query over {__name__=~".+"} is refused:
# count_over_time drops the metric name, so series of different names would collide.)
count_samples() {
  local range=$(( $(awk -v h="$HOURS" 'BEGIN { printf "%d", h * 3600 }') + 600 ))
  local at names name answer value total=0
  at="$(awk -v e="$END_MS" 'BEGIN { printf "%.3f", e / 1000 + 60 }')"
  names="$(curl -fsS --max-time "$QUERY_TIMEOUT" "${CURL_TENANT[@]}" "$BASE_URL${QUERY_PATH%/query}/label/__name__/values" |
    jq -r '.data[]')" || { echo "label values query failed" >&2; return 1; }
  [ -n "$names" ] || { echo "no metric names" >&2; return 1; }
  while IFS= read -r name; do
    answer="$(curl -fsS --max-time "$QUERY_TIMEOUT" "${CURL_TENANT[@]}" -G "$BASE_URL$QUERY_PATH" \
      --data-urlencode "query=sum(count_over_time({__name__=\"$name\"}[${range}s]))" \
      --data-urlencode "time=$at")" || { echo "count query failed for $name" >&2; return 1; }
    value="$(printf '%s' "$answer" | jq -r '.data.result[0].value[1] // "0"')"
    total=$((total + value))
  done <<<"$names"
  printf '%s\n' "$total"
}

declare -A R # R[system,key] = value; per restart: R[system,key,round]

# Starts a system on a fresh data directory, pushes the workload, checks the count, and
# SIGKILLs it.
load_system() {
  local system="$1" dir="$WORKDIR/$1" logfile="$WORKDIR/$1.load.log"
  local out="$WORKDIR/$1.loadgen.out" err="$WORKDIR/$1.loadgen.err" rc=0 count
  rm -rf "$dir"
  log "$system: starting on a fresh data directory"
  "start_$system" "$dir" "$logfile"
  wait_ready "$READY_URL" "$SERVER_PID" "$logfile" || { R[$system,status]="failed to start (see $logfile)"; return 1; }
  R[$system,version]="$(server_version "$system")"
  log "$system: pushing $HOSTS hosts x $HOURS h to $PUSH_URL"
  timeout --signal=TERM "$LOADGEN_TIMEOUT" "$LOADGEN_BIN" --url "$PUSH_URL" "${LOADGEN_EXTRA[@]}" \
    --hosts "$HOSTS" --hours "$HOURS" --end-ms "$END_MS" --interval-ms "$INTERVAL_MS" \
    --seed "$SEED" --concurrency "$CONCURRENCY" --batch "$BATCH" --pregenerate \
    >"$out" 2>"$err" || rc=$?
  if [ "$rc" -ne 0 ] || ! grep -q '^strata-loadgen summary:' "$out"; then
    tail -n 5 "$err" >&2 || true
    R[$system,status]="loadgen failed (exit $rc, see $err)"
    return 1
  fi
  grep '^strata-loadgen summary:' "$out" >&2
  R[$system,series]="$(summary_value "$out" series)"
  R[$system,pushed]="$(summary_value "$out" samples_acked)"
  R[$system,push_s]="$(summary_value "$out" elapsed_s)"
  count="$(count_samples)" || { R[$system,status]="count query failed before the crash"; return 1; }
  log "$system: count query before the crash: $count (pushed ${R[$system,pushed]})"
  R[$system,count_before]="$count"
  # A moment for anything asynchronous (Prometheus' m-mapping of full head chunks).
  sleep 2
  "check_unflushed_$system" "$dir" "$logfile" || { R[$system,status]="wrote a block before the crash"; return 1; }
  log "$system: kill -9 $SERVER_PID"
  crash_pid "$SERVER_PID"
  R[$system,wal_bytes]="$("wal_bytes_$system" "$dir")"
  R[$system,data_bytes]="$(dir_bytes "$dir")"
  R[$system,status]="ok"
}

# One restart: start on the same data directory, wait for ready, read the replay figures,
# check the count, SIGKILL again.
restart_system() {
  local system="$1" round="$2" dir="$WORKDIR/$1" logfile="$WORKDIR/$1.restart$2.log" count rss
  log "$system: restart $round"
  "start_$system" "$dir" "$logfile"
  if ! wait_ready "$READY_URL" "$SERVER_PID" "$logfile"; then
    R[$system,status]="restart $round never became ready (see $logfile)"
    return 1
  fi
  rss="$(peak_rss "$SERVER_PID")"
  "replay_$system" "$logfile" || { R[$system,status]="restart $round: no replay line (see $logfile)"; return 1; }
  R[$system,ready_s,$round]="$(elapsed_s "$START_T" "$READY_T")"
  R[$system,rss,$round]="$rss"
  R[$system,logged_s,$round]="$LOGGED_S"
  R[$system,detail,$round]="$LOGGED_DETAIL"
  # Samples replayed: what the server logged, else (Prometheus) what the count query found.
  count="$(count_samples)" || { R[$system,status]="restart $round: count query failed"; return 1; }
  R[$system,count,$round]="$count"
  R[$system,samples,$round]="${LOGGED_SAMPLES:-$count}"
  log "$system: restart $round ready in ${R[$system,ready_s,$round]} s; logged replay ${LOGGED_S} s ($LOGGED_DETAIL);" \
    "samples ${R[$system,samples,$round]}; count query $count; peak RSS $((rss / 1048576)) MiB"
  if [ "$count" != "${R[$system,pushed]}" ]; then
    R[$system,status]="restart $round: the count query returned $count, ${R[$system,pushed]} were pushed"
    return 1
  fi
  "check_unflushed_$system" "$dir" "$logfile" || { R[$system,status]="restart $round: wrote a block"; return 1; }
  crash_pid "$SERVER_PID"
}

server_version() {
  local version package bin
  case "$1" in
    strata) bin="$STRATA_BIN"; version="$("$bin" -version 2>&1 | head -n 1 || true)" ;;
    prometheus) bin="$PROMETHEUS_BIN"; version="$("$bin" --version 2>&1 | head -n 1 | awk '{ print $3 }')" ;;
  esac
  if [ -z "$version" ]; then
    package="$(dpkg -S "$(readlink -f "$bin")" 2>/dev/null | head -n 1 | cut -d: -f1 || true)"
    [ -z "$package" ] || version="$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)"
  fi
  printf '%s\n' "${version:-unknown}"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

if [ -z "$WORKDIR" ]; then
  WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/strata-replay.XXXXXX")"
fi
mkdir -p "$WORKDIR"
WORKDIR="$(cd "$WORKDIR" && pwd)"
NOW_MS="$(date +%s%3N)"
END_MS=$((NOW_MS - NOW_MS % INTERVAL_MS))
log "workload: $HOSTS hosts x $HOURS h at ${INTERVAL_MS} ms, seed $SEED, ending at $END_MS; $RESTARTS restart(s) per system; work dir $WORKDIR"

ACTIVE=()
for system in "${SYSTEMS[@]}"; do
  SERVER_PID=""
  if load_system "$system"; then
    ACTIVE+=("$system")
  else
    [ -z "$SERVER_PID" ] || stop_pid "$SERVER_PID"
  fi
done
# Rounds alternate between the systems, so that a slow moment of the (shared) machine does
# not land on one system's restarts only. One server runs at a time.
for round in $(seq 1 "$RESTARTS"); do
  next=()
  for system in "${ACTIVE[@]}"; do
    SERVER_PID=""
    if restart_system "$system" "$round"; then
      next+=("$system")
    else
      [ -z "$SERVER_PID" ] || stop_pid "$SERVER_PID"
    fi
  done
  ACTIVE=("${next[@]}")
done

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

RESULTS="$WORKDIR/results.tsv"
{
  printf 'system\tround\tstatus\tversion\tseries\tsamples_pushed\twal_bytes\tsamples_replayed\tcount_query\tlogged_replay_s\tsamples_per_s\tready_s\tpeak_rss_bytes\tdetail\n'
  for s in "${SYSTEMS[@]}"; do
    for round in $(seq 1 "$RESTARTS"); do
      [ -n "${R[$s,ready_s,$round]:-}" ] || continue
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$round" "${R[$s,status]:-}" \
        "${R[$s,version]:-}" "${R[$s,series]:-}" "${R[$s,pushed]:-}" "${R[$s,wal_bytes]:-}" \
        "${R[$s,samples,$round]}" "${R[$s,count,$round]}" "${R[$s,logged_s,$round]}" \
        "$(awk -v n="${R[$s,samples,$round]}" -v t="${R[$s,logged_s,$round]}" 'BEGIN { if (t > 0) printf "%.0f", n / t }')" \
        "${R[$s,ready_s,$round]}" "${R[$s,rss,$round]}" "${R[$s,detail,$round]}"
    done
  done
} >"$RESULTS"

printf '\nworkload: %s hosts x %s h at %s s (seed %s); medians of %s SIGKILL + restart round(s)\n\n' \
  "$HOSTS" "$HOURS" "$((INTERVAL_MS / 1000))" "$SEED" "$RESTARTS"
ROW='| %-10s | %-18s | %7s | %14s | %8s | %18s | %10s | %16s | %13s | %8s |\n'
# shellcheck disable=SC2059 # ROW is the format
printf "$ROW" system version series "samples in WAL" "WAL MiB" "replay (logged), s" "samples/s" "time to ready, s" "peak RSS, MiB" "count ok"
# shellcheck disable=SC2059
printf "$ROW" ---------- ------------------ ------- -------------- -------- ------------------ ---------- ---------------- ------------- --------
failed=""
col() { awk -F'\t' -v s="$1" -v c="$2" '$1 == s { print $c }' "$RESULTS" | median; }
for s in "${SYSTEMS[@]}"; do
  if [ "${R[$s,status]:-}" != ok ]; then
    failed="$failed  $s: ${R[$s,status]:-not run}\n"
  fi
  n="$(awk -F'\t' -v s="$s" '$1 == s' "$RESULTS" | wc -l)"
  [ "$n" -gt 0 ] || continue
  # shellcheck disable=SC2059
  printf "$ROW" "$s" "$(printf '%s' "${R[$s,version]:-}" | cut -c1-18)" "${R[$s,series]:-}" \
    "$(col "$s" 8 | awk '{ printf "%.0f", $1 }')" \
    "$(awk -v b="${R[$s,wal_bytes]:-0}" 'BEGIN { printf "%.1f", b / 1048576 }')" \
    "$(col "$s" 10 | awk '{ printf "%.2f", $1 }')" "$(col "$s" 11 | awk '{ printf "%.0f", $1 }')" \
    "$(col "$s" 12 | awk '{ printf "%.2f", $1 }')" "$(col "$s" 13 | awk '{ printf "%.0f", $1 / 1048576 }')" \
    "$(awk -F'\t' -v s="$s" '$1 == s && $9 == $6 { ok++ } $1 == s { n++ } END { printf "%d/%d", ok, n }' "$RESULTS")"
done
if [ -n "$failed" ]; then
  printf '\nnot measured or failed:\n%b' "$failed"
fi
echo
echo "per restart: $RESULTS (logs in $WORKDIR)"
[ -z "$failed" ]
