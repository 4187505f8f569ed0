#!/usr/bin/env bash
# Ingest benchmark: pushes the same deterministic node_exporter-like workload (strata-loadgen)
# into Strata, Prometheus 2.42 and VictoriaMetrics 1.79, one after another, and compares
# ingest rate, server CPU per million samples, peak RSS and persisted bytes per sample.
#
#   bench/run.sh                      # 40 hosts x 8 h at 15 s: ~21k series, ~40M samples
#   bench/run.sh --quick              # 4 hosts x 2 h: a smoke run of a minute or two
#   bench/run.sh --only prometheus,victoria-metrics
#
# Everything listens on 127.0.0.1; every wait is bounded; servers are killed on exit.
# See bench/README.md for what the figures mean and what they do not.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ALL_SYSTEMS="strata,prometheus,victoria-metrics"

usage() {
  cat <<EOF
usage: bench/run.sh [--quick] [--only LIST] [--hosts N] [--hours H] [--concurrency N]
                    [--batch N] [--seed N] [--workdir DIR] [--keep]

  --quick          4 hosts x 2 h instead of 40 hosts x 8 h
  --only LIST      comma-separated subset of: $ALL_SYSTEMS
  --hosts N        scrape targets (about 526 series each)
  --hours H        hours of data, ending at the start of the run
  --concurrency N  requests in flight (default 4)
  --batch N        samples per request (default 2000)
  --seed N         workload seed (default 1)
  --workdir DIR    where data, logs and results go (default: a new temporary directory)
  --keep           keep the servers' data directories (deleted after measuring otherwise)

environment:
  STRATA_BIN        Strata binary (default: target/release/strata)
  STRATA_FLAGS      extra flags for Strata
  LOADGEN_BIN       strata-loadgen binary (default: target/release, else target/debug, else
                    a release build of it)
  PROMETHEUS_BIN    Prometheus binary (default: from the Debian package, installed if missing)
  VM_BIN            VictoriaMetrics binary (default: from the Debian package, installed if missing)
  LOADGEN_TIMEOUT   seconds one push may take before it is killed (default 3600)
  MERGE_TIMEOUT     seconds a flush, snapshot or merge may take (default 900)
EOF
}

QUICK=0
ONLY="$ALL_SYSTEMS"
HOSTS=""
HOURS=""
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
    --concurrency) CONCURRENCY="$2"; shift ;;
    --batch) BATCH="$2"; shift ;;
    --seed) SEED="$2"; shift ;;
    --workdir) WORKDIR="$2"; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  HOSTS="${HOSTS:-4}"; HOURS="${HOURS:-2}"
else
  HOSTS="${HOSTS:-40}"; HOURS="${HOURS:-8}"
fi
SYSTEMS=()
IFS=',' read -r -a requested <<<"$ONLY"
for s in "${requested[@]}"; do
  case "$s" in
    strata|prometheus|victoria-metrics) SYSTEMS+=("$s") ;;
    vm|victoriametrics) SYSTEMS+=("victoria-metrics") ;;
    "") ;;
    *) echo "bench/run.sh: unknown system '$s' (known: $ALL_SYSTEMS)" >&2; exit 2 ;;
  esac
done
[ "${#SYSTEMS[@]}" -gt 0 ] || { echo "bench/run.sh: --only selects no system" >&2; exit 2; }

LOADGEN_TIMEOUT="${LOADGEN_TIMEOUT:-3600}"
MERGE_TIMEOUT="${MERGE_TIMEOUT:-900}"
INTERVAL_MS=15000
CLK_TCK="$(getconf CLK_TCK)"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------------------------

# Installs a Debian package if its binary is missing and prints the binary's path, found with
# dpkg -L (the package names its binary; PATH may not hold it).
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
# The generator encodes every request before the clock starts, so a debug build of it is
# good enough when no release build exists.
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
# Processes: started in their data directory (so relative default paths land there), tracked
# by pid, killed on exit.
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

# A free TCP port on 127.0.0.1 (nothing answers a connect there), searched from a random
# base so as not to meet the well-known ports other tools on a shared machine use (and may
# kill processes by: fuser -k 9090/tcp).
free_port() {
  # Below the kernel's ephemeral range (32768 and up here): a port that is the local end of
  # some outgoing connection refuses a bind although nothing answers a connect on it.
  local port=$((20000 + RANDOM % 12000))
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
    [ "$port" -lt 32700 ] || die "no free port found"
  done
  printf '%s\n' "$port"
}

# start_server DIR LOG CMD...: starts CMD in DIR, sets SERVER_PID.
start_server() {
  local dir="$1" logfile="$2"
  shift 2
  mkdir -p "$dir"
  (cd "$dir" && exec "$@") >"$logfile" 2>&1 &
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

# CPU ticks (utime + stime) of a process; the command name may hold spaces, so cut after ')'.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# Peak and current resident set size, in bytes.
peak_rss() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$1/status"; }
current_rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
# Apparent size of files under the given paths, in bytes (0 when none exist).
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
# key=value from the loadgen summary line.
summary_value() { grep -o "\b$2=[^ ]*" "$1" | tail -n 1 | cut -d= -f2; }

# ---------------------------------------------------------------------------------------------
# Per-system steps: start, push URL and extra loadgen flags, flush/persist, persisted paths.
# ---------------------------------------------------------------------------------------------

start_strata() {
  local dir="$1" port grpc
  port="$(free_port)"
  grpc="$(free_port)"
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
    -blocks-storage.tsdb.dir="$dir/tsdb" ${STRATA_FLAGS:-}
  BASE_URL="http://127.0.0.1:$port"
  READY_URL="$BASE_URL/ready"
  PUSH_URL="$BASE_URL/api/v1/push"
  LOADGEN_EXTRA=(--tenant bench)
}

# Cuts every block out of the head and waits for the upload (bounded by Strata to 5 min).
persist_strata() {
  local dir="$1"
  curl -fsS -X POST --max-time "$MERGE_TIMEOUT" "$BASE_URL/ingester/flush?wait=true" >&2
  PERSISTED=("$dir/blocks")
}

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
    --web.enable-remote-write-receiver --web.enable-admin-api
  BASE_URL="http://127.0.0.1:$port"
  READY_URL="$BASE_URL/-/ready"
  PUSH_URL="$BASE_URL/api/v1/write"
  LOADGEN_EXTRA=()
}

# A snapshot holds the blocks compacted so far plus the head written out as a block: the
# persisted form of every sample, without the WAL.
persist_prometheus() {
  local dir="$1" answer name
  answer="$(curl -fsS -X POST --max-time "$MERGE_TIMEOUT" "$BASE_URL/api/v1/admin/tsdb/snapshot")"
  name="$(printf '%s' "$answer" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')"
  [ -n "$name" ] || { echo "unexpected snapshot answer: $answer" >&2; return 1; }
  PERSISTED=("$dir/data/snapshots/$name")
}

start_victoria_metrics() {
  local dir="$1" port
  port="$(free_port)"
  start_server "$dir" "$dir.log" "$VM_BIN" -storageDataPath="$dir/data" \
    -httpListenAddr="127.0.0.1:$port"
  BASE_URL="http://127.0.0.1:$port"
  READY_URL="$BASE_URL/health"
  PUSH_URL="$BASE_URL/api/v1/write"
  LOADGEN_EXTRA=()
}

# Sum of the VictoriaMetrics metrics whose line matches an awk regex, from /metrics.
vm_metric() {
  curl -fsS --max-time 5 "$BASE_URL/metrics" | awk -v re="$1" '$0 ~ re { n += $NF } END { print n + 0 }'
}

# force_flush writes the rows buffered in memory; force_merge merges each partition's parts
# in the background. Parts flushed while a merge runs stay separate (and cost about 5 % more
# bytes), so this repeats, up to 3 rounds, until there is one storage part per partition;
# then it waits for no merge running and the size to hold still over three polls.
persist_victoria_metrics() {
  local dir="$1" deadline=$((SECONDS + MERGE_TIMEOUT)) round=0 last="" stable=0 size parts partitions
  local finished='forced merge for partition_prefix="" has been successfully finished'
  while :; do
    round=$((round + 1))
    curl -fsS --max-time 60 "$BASE_URL/internal/force_flush" >/dev/null
    until [ "$(vm_metric '^vm_pending_rows[{]')" = 0 ]; do
      [ "$SECONDS" -lt "$deadline" ] || { echo "rows still pending after ${MERGE_TIMEOUT}s" >&2; return 1; }
      sleep 1
    done
    curl -fsS --max-time 60 "$BASE_URL/internal/force_merge" >/dev/null
    until [ "$(grep -c -F "$finished" "$dir.log")" -ge "$round" ]; do
      [ "$SECONDS" -lt "$deadline" ] || { echo "force_merge did not finish in ${MERGE_TIMEOUT}s" >&2; return 1; }
      grep -q 'cannot force merge' "$dir.log" && { echo "force_merge failed" >&2; return 1; }
      sleep 1
    done
    parts="$(vm_metric '^vm_parts[{]type="storage/')"
    partitions="$(vm_metric '^vm_references[{]type="storage", name="partitions"')"
    [ "$parts" -gt "$partitions" ] && [ "$round" -lt 3 ] || break
    sleep 2
  done
  while [ "$stable" -lt 3 ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "merges still running after ${MERGE_TIMEOUT}s" >&2; return 1; }
    size="$(dir_bytes "$dir/data/data" "$dir/data/indexdb")"
    if [ "$(vm_metric '^vm_active_(force_)?merges')" = 0 ] && [ "$size" = "$last" ]; then
      stable=$((stable + 1))
    else
      stable=0
    fi
    last="$size"
    sleep 1
  done
  echo "victoria-metrics: $round force_merge round(s); $(vm_metric '^vm_parts[{]type="storage/') storage part(s)" >&2
  PERSISTED=("$dir/data/data" "$dir/data/indexdb")
}

# ---------------------------------------------------------------------------------------------
# One system, end to end
# ---------------------------------------------------------------------------------------------

declare -A R # R[system,metric] = value

# Runs one system; whatever happens, stops its server and (unless --keep) deletes its data.
bench_system() {
  local system="$1"
  SERVER_PID=""
  measure_system "$system" || R[$system,status]="${R[$system,status]:-failed}"
  if [ -n "$SERVER_PID" ]; then
    log "$system: stopping"
    stop_pid "$SERVER_PID"
  fi
  [ "$KEEP" = 1 ] || rm -rf "${WORKDIR:?}/$system"
}

measure_system() {
  local system="$1" dir="$WORKDIR/$system" fn="${1//-/_}"
  local out="$WORKDIR/$system.loadgen.out" err="$WORKDIR/$system.loadgen.err"
  local pid lg rc=0 deadline cpu_start cpu_ingest cpu_end t_flush idle_rss
  rm -rf "$dir"
  log "$system: starting"
  "start_$fn" "$dir"
  pid="$SERVER_PID"
  wait_ready "$READY_URL" "$pid" "$dir.log" || { R[$system,status]="failed to start (see $dir.log)"; return 0; }
  sleep 1
  idle_rss="$(current_rss "$pid")"
  R[$system,version]="$(server_version "$system")"

  log "$system: pushing $HOSTS hosts x $HOURS h to $PUSH_URL"
  timeout --signal=TERM "$LOADGEN_TIMEOUT" "$LOADGEN_BIN" --url "$PUSH_URL" "${LOADGEN_EXTRA[@]}" \
    --hosts "$HOSTS" --hours "$HOURS" --end-ms "$END_MS" --interval-ms "$INTERVAL_MS" \
    --seed "$SEED" --concurrency "$CONCURRENCY" --batch "$BATCH" --pregenerate --allow-errors \
    >"$out" 2>"$err" &
  lg=$!
  PIDS+=("$lg")
  # The server's CPU is counted from the moment the generator has finished encoding.
  deadline=$((SECONDS + LOADGEN_TIMEOUT))
  until grep -q 'sending$' "$err" 2>/dev/null; do
    kill -0 "$lg" 2>/dev/null || break
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.1
  done
  cpu_start="$(cpu_ticks "$pid")"
  wait "$lg" || rc=$?
  if ! kill -0 "$pid" 2>/dev/null; then
    R[$system,status]="server exited during the push (see $dir.log)"
    return 0
  fi
  cpu_ingest="$(cpu_ticks "$pid")"
  if [ "$rc" -ne 0 ] || ! grep -q '^strata-loadgen summary:' "$out"; then
    tail -n 5 "$err" >&2 || true
    R[$system,status]="loadgen failed (exit $rc, see $err)"
    return 0
  fi
  grep '^strata-loadgen summary:' "$out" >&2
  grep 'first error' "$err" >&2 || true

  log "$system: persisting"
  t_flush="$EPOCHREALTIME"
  if ! "persist_$fn" "$dir"; then
    R[$system,status]="persisting failed (see $dir.log)"
    return 0
  fi
  R[$system,flush_s]="$(awk -v a="$t_flush" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
  cpu_end="$(cpu_ticks "$pid")"
  R[$system,peak_rss]="$(peak_rss "$pid")"
  R[$system,idle_rss]="$idle_rss"
  R[$system,disk_bytes]="$(dir_bytes "${PERSISTED[@]}")"
  R[$system,series]="$(summary_value "$out" series)"
  R[$system,acked]="$(summary_value "$out" samples_acked)"
  R[$system,rejected]="$(summary_value "$out" samples_rejected)"
  R[$system,rejected_by_status]="$(summary_value "$out" rejected_by_status)"
  R[$system,ingest_s]="$(summary_value "$out" elapsed_s)"
  R[$system,cpu_ingest_s]="$(awk -v a="$cpu_start" -v b="$cpu_ingest" -v t="$CLK_TCK" 'BEGIN { print (b - a) / t }')"
  R[$system,cpu_total_s]="$(awk -v a="$cpu_start" -v b="$cpu_end" -v t="$CLK_TCK" 'BEGIN { print (b - a) / t }')"
  R[$system,status]="ok"
}

# The server's version: its own report, or its Debian package's (Debian's VictoriaMetrics
# build reports an empty version).
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
# Main
# ---------------------------------------------------------------------------------------------

if [ -z "$WORKDIR" ]; then
  WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")"
fi
mkdir -p "$WORKDIR"
WORKDIR="$(cd "$WORKDIR" && pwd)"
# One end time for every system, so all of them ingest exactly the same samples.
NOW_MS="$(date +%s%3N)"
END_MS=$((NOW_MS - NOW_MS % INTERVAL_MS))
log "workload: $HOSTS hosts x $HOURS h at ${INTERVAL_MS} ms, seed $SEED, ending at $END_MS; work dir $WORKDIR"

for system in "${SYSTEMS[@]}"; do
  bench_system "$system"
done

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

RESULTS="$WORKDIR/results.tsv"
{
  printf 'system\tstatus\tversion\tseries\tsamples_acked\tsamples_rejected\tingest_s\tsamples_per_s\tcpu_ingest_s\tcpu_total_s\tflush_s\tidle_rss_bytes\tpeak_rss_bytes\tdisk_bytes\n'
  for s in "${SYSTEMS[@]}"; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "${R[$s,status]:-}" "${R[$s,version]:-}" \
      "${R[$s,series]:-}" "${R[$s,acked]:-}" "${R[$s,rejected]:-}" "${R[$s,ingest_s]:-}" \
      "$(awk -v n="${R[$s,acked]:-0}" -v t="${R[$s,ingest_s]:-0}" 'BEGIN { if (t > 0) printf "%.0f", n / t }')" \
      "${R[$s,cpu_ingest_s]:-}" "${R[$s,cpu_total_s]:-}" "${R[$s,flush_s]:-}" "${R[$s,idle_rss]:-}" \
      "${R[$s,peak_rss]:-}" "${R[$s,disk_bytes]:-}"
  done
} >"$RESULTS"

# The table: one column per system that ran, then the first system's ratio to each other one.
awk -F'\t' -v hosts="$HOSTS" -v hours="$HOURS" '
  NR == 1 { next }
  {
    if ($2 != "ok") { failed = failed sprintf("  %s: %s\n", $1, $2); next }
    n++; name[n] = $1
    v[n, "version"] = $3
    v[n, "acked"] = $5; v[n, "rejected"] = $6; v[n, "ingest"] = $7; v[n, "rate"] = $8
    m = $5 / 1e6
    v[n, "cpu_ingest"] = (m > 0) ? $9 / m : 0
    v[n, "cpu_total"] = (m > 0) ? $10 / m : 0
    v[n, "flush"] = $11
    v[n, "peak"] = $13 / 1048576
    v[n, "rss_series"] = ($4 > 0) ? $13 / $4 : 0
    v[n, "rss_series_net"] = ($4 > 0) ? ($13 - $12) / $4 : 0
    v[n, "bps"] = ($5 > 0) ? $14 / $5 : 0
    v[n, "disk"] = $14 / 1048576
  }
  END {
    printf "\nworkload: %s hosts x %s h\n\n", hosts, hours
    if (n == 0) { printf "no system completed\n%s", failed; exit 1 }
    rows = "acked|samples ingested|%.0f;rejected|samples rejected|%.0f;ingest|ingest wall time, s|%.1f;" \
           "rate|ingest rate, samples/s (higher is better)|%.0f;cpu_ingest|CPU s per M samples, ingest|%.2f;" \
           "cpu_total|CPU s per M samples, incl. flush/merge|%.2f;flush|flush/snapshot/merge wall time, s|%.1f;" \
           "peak|peak RSS, MiB|%.0f;rss_series|peak RSS per active series, bytes|%.0f;" \
           "rss_series_net|(peak - idle RSS) per active series, bytes|%.0f;disk|persisted, MiB|%.1f;" \
           "bps|persisted bytes per sample|%.3f"
    nr = split(rows, r, ";")
    printf "%-44s", "metric"
    for (i = 1; i <= n; i++) printf " %18s", name[i]
    for (i = 2; i <= n; i++) printf " %22s", name[1] "/" name[i]
    printf "\n"
    printf "%-44s", "version"
    for (i = 1; i <= n; i++) printf " %18s", substr(v[i, "version"], 1, 18)
    printf "\n"
    for (k = 1; k <= nr; k++) {
      split(r[k], f, "|")
      printf "%-44s", f[2]
      for (i = 1; i <= n; i++) printf " %18s", sprintf(f[3], v[i, f[1]])
      for (i = 2; i <= n; i++) {
        if (v[i, f[1]] + 0 != 0) printf " %22s", sprintf("%.2fx", v[1, f[1]] / v[i, f[1]])
        else printf " %22s", "-"
      }
      printf "\n"
    }
    if (failed != "") printf "\nnot measured:\n%s", failed
  }' "$RESULTS"
echo
echo "raw results: $RESULTS (logs in $WORKDIR)"
