#!/usr/bin/env bash
# Hot-path cost of the per-tenant limits and of HA-pair deduplication: the same strata-loadgen
# push into Strata (-target=all) in each mode, modes alternating run by run, reporting samples
# stored per Strata CPU-second and the push latency p50/p99 the load generator saw (first
# attempts answered 2xx).
#
#   bench/limits.sh                 # 4 hosts x 2 h (about 2 k series, 1 M samples), 3 runs each
#   bench/limits.sh --hosts 20 --hours 4 --runs 5 --modes "off on pair"
#
# Modes (all push to tenant "bench", every series labelled cluster="bench-ha" as an HA pair's
# external label would):
#   off     every limit out of the way (huge rates, series limits 0, no runtime config), HA
#           tracker off; the series carry no replica label (what a single Prometheus sends
#           and what Strata stores in the other modes). With BASE_BIN set, that binary.
#   limits  a runtime config overrides the tenant (ingestion rate and burst far above the
#           load, series limits per user and per metric set but not reached), so every push
#           goes through the override lookup, the token bucket and the series-limit checks.
#   on      limits as above and the HA tracker on for the tenant (memory KV store); the series
#           also carry __replica__="replica-0": each push is checked against the election and
#           the replica label is removed from every series.
#   pair    as on, with a second load generator pushing the same samples as
#           __replica__="replica-1" at the same time: one replica is elected, the other's
#           pushes are answered 202 and dropped. Samples/CPU-s counts stored samples only, so
#           the CPU spent on the dropped replica's requests is part of the cost.
# CPU is the Strata process's utime+stime from /proc (distributor and ingester: one process).
#
# Say which build the binaries are: debug numbers are not benchmark numbers.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOSTS=4
HOURS=2
RUNS=3
CONCURRENCY=4
MODES="off limits on pair"
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) HOSTS="$2"; shift ;;
    --hours) HOURS="$2"; shift ;;
    --runs) RUNS="$2"; shift ;;
    --concurrency) CONCURRENCY="$2"; shift ;;
    --modes) MODES="$2"; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "bench/limits.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

STRATA_BIN="${STRATA_BIN:-$ROOT/target/release/strata}"
BASE_BIN="${BASE_BIN:-}"
LOADGEN_BIN="${LOADGEN_BIN:-$ROOT/target/release/strata-loadgen}"
for b in "$STRATA_BIN" "$LOADGEN_BIN" ${BASE_BIN:+"$BASE_BIN"}; do
  [ -x "$b" ] || { echo "bench/limits.sh: no binary at $b (set STRATA_BIN, BASE_BIN, LOADGEN_BIN)" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/strata-limits-bench.XXXXXX)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
TICKS="$(getconf CLK_TCK)"
# A free port below the ephemeral range.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port" >&2; exit 1
}

cat >"$WORK/limits.yaml" <<EOF
overrides:
  bench:
    ingestion_rate: 100000000
    ingestion_burst_size: 100000000
    max_global_series_per_user: 10000000
    max_global_series_per_metric: 1000000
EOF
cat "$WORK/limits.yaml" >"$WORK/ha.yaml"
echo "    accept_ha_samples: true" >>"$WORK/ha.yaml"
# Every run pushes the same span (loadgen's default end is "now", which would differ between
# the two generators of a pair).
END_MS=$(( $(date +%s) * 1000 / 15000 * 15000 ))

run_once() { # mode run
  local mode="$1" run="$2" bin="$STRATA_BIN" port grpc dir
  port="$(free_port)"; grpc="$(free_port)"; dir="$WORK/$mode-$run"
  mkdir -p "$dir"
  local flags=(-server.http-listen-port="$port" -server.grpc-listen-port="$grpc"
    -blocks-storage.tsdb.dir="$dir/tsdb" -blocks-storage.filesystem.dir="$dir/blocks" -log.level=warn)
  local replicas=(-)
  case "$mode" in
    off)
      if [ -n "$BASE_BIN" ]; then
        bin="$BASE_BIN"
      else
        flags+=(-distributor.ingestion-rate-limit=1e15 -distributor.ingestion-burst-size=1000000000000
          -ingester.max-global-series-per-user=0 -ingester.max-global-series-per-metric=0)
      fi ;;
    limits)
      flags+=(-distributor.ingestion-rate-limit=1e15 -distributor.ingestion-burst-size=1000000000000
        -runtime-config.file="$WORK/limits.yaml") ;;
    on|pair)
      flags+=(-distributor.ingestion-rate-limit=1e15 -distributor.ingestion-burst-size=1000000000000
        -runtime-config.file="$WORK/ha.yaml" -distributor.ha-tracker.enable=true)
      replicas=(replica-0)
      [ "$mode" = pair ] && replicas+=(replica-1) ;;
    *) echo "bench/limits.sh: unknown mode $mode (off, limits, on, pair)" >&2; exit 2 ;;
  esac
  "$bin" "${flags[@]}" >"$dir/strata.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || { cat "$dir/strata.log" >&2; exit 1; }
    sleep 0.1
  done
  local before after i
  before="$(cpu_ticks "$PID")"
  local pids=()
  for i in "${!replicas[@]}"; do
    local labels=(--external-label cluster=bench-ha)
    [ "${replicas[$i]}" != - ] && labels+=(--external-label "__replica__=${replicas[$i]}")
    "$LOADGEN_BIN" --url "http://127.0.0.1:$port/api/v1/push" --tenant bench "${labels[@]}" \
      --hosts "$HOSTS" --hours "$HOURS" --end-ms "$END_MS" --concurrency "$CONCURRENCY" \
      --pregenerate --progress-s 0 >"$dir/loadgen-$i.out" 2>"$dir/loadgen-$i.err" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { cat "$dir/loadgen-$i.err" >&2; exit 1; }
  done
  after="$(cpu_ticks "$PID")"
  # What was stored (after the CPU reading): one copy of every series, no replica label.
  local series want at
  at=$(( END_MS / 1000 - 20 ))
  want="$(sed -n 's/.* series=\([0-9]*\).*/\1/p' "$dir/loadgen-0.out")"
  series="$(curl -fsS -H 'X-Scope-OrgID: bench' "http://127.0.0.1:$port/prometheus/api/v1/query" \
    --data-urlencode 'query=count({cluster="bench-ha"})' --data-urlencode "time=$at" |
    sed -n 's/.*"value":\[[0-9.]*,"\([0-9]*\)"\].*/\1/p')"
  if [ "$series" != "$want" ] || curl -fsS -H 'X-Scope-OrgID: bench' \
      "http://127.0.0.1:$port/prometheus/api/v1/query" --data-urlencode 'query=count({__replica__!=""})' \
      --data-urlencode "time=$at" | grep -q '"value"'; then
    echo "bench/limits.sh: $mode run $run stored ${series:-no} series of $want, or kept a replica label" >&2
    exit 1
  fi
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  # Stored = acknowledged minus answered 202; latencies of the generator whose pushes were stored.
  local stored=0 deduped=0 p50="?" p99="?" summary acked dropped
  for i in "${!pids[@]}"; do
    summary="$(grep 'summary:' "$dir/loadgen-$i.out")"
    acked="$(sed -n 's/.* samples_acked=\([0-9]*\).*/\1/p' <<<"$summary")"
    dropped="$(sed -n 's/.* samples_deduplicated=\([0-9]*\).*/\1/p' <<<"$summary")"
    stored=$(( stored + acked - dropped )); deduped=$(( deduped + dropped ))
    if [ "$dropped" -lt "$acked" ]; then
      p50="$(sed -n 's/.* push_p50_ms=\([0-9.]*\).*/\1/p' <<<"$summary")"
      p99="$(sed -n 's/.* push_p99_ms=\([0-9.]*\).*/\1/p' <<<"$summary")"
    fi
  done
  local cpu
  cpu="$(awk -v a="$after" -v b="$before" -v t="$TICKS" 'BEGIN { printf "%.2f", (a - b) / t }')"
  awk -v m="$mode" -v r="$run" -v s="$stored" -v d="$deduped" -v c="$cpu" -v p50="$p50" -v p99="$p99" \
    'BEGIN { printf "%-6s run %d: %9d samples stored, %9d dropped (other replica), %6.2f CPU-s, %9.0f stored samples/CPU-s, push p50 %s ms, p99 %s ms\n", m, r, s, d, c, (c > 0 ? s / c : 0), p50, p99 }'
}

echo "strata: $STRATA_BIN; off: ${BASE_BIN:-same binary, limits out of the way}; loadgen: $LOADGEN_BIN"
echo "workload: $HOSTS hosts x $HOURS h, concurrency $CONCURRENCY, $RUNS runs per mode ($MODES), alternating"
for run in $(seq "$RUNS"); do
  for mode in $MODES; do
    run_once "$mode" "$run"
  done
done
