#!/usr/bin/env bash
# Metadata API benchmark: the label and series calls Grafana makes (label names, values of a
# dashboard variable, series of a selector), each over the workload's whole time window, on
# the data a kept bench/read.sh run left behind, against Strata and Prometheus 2.42 (and
# VictoriaMetrics when its data is there). Median of --runs warm runs after one warm-up;
# answers compared between the systems (label lists as sorted sets, series by count).
#
#   bench/read.sh --keep --workdir /tmp/rb --only strata,prometheus   # loads and keeps the data
#   bench/metadata.sh /tmp/rb [--runs 20]
#
# Strata starts with its defaults plus STRATA_FLAGS: with the default split every request of
# the last 12 h goes to the ingester (head and local blocks). Run read.sh with
# STRATA_READ_FLAGS=-blocks-storage.bucket-store.sync-interval=5s so that the ingester keeps
# its local blocks (read.sh's default deletes them to measure the store-gateway).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -ge 1 ] || { sed -n '2,15p' "$0"; exit 2; }
DIR="$(cd "$1" && pwd)"; shift
RUNS=20
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench/metadata.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$DIR/workload.env" ] || { echo "bench/metadata.sh: no $DIR/workload.env (run bench/read.sh --keep --workdir $DIR first)" >&2; exit 1; }
# shellcheck disable=SC1091 # written by bench/read.sh
. "$DIR/workload.env"
STRATA_BIN="${STRATA_BIN:-$ROOT/target/release/strata}"
PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(command -v prometheus || true)}"
VM_BIN="${VM_BIN:-$(command -v victoria-metrics || true)}"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() {
  local p
  for _ in $(seq 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port" >&2; exit 1
}

wait_ready() { # url pid log
  for _ in $(seq 1200); do
    curl -fs --max-time 2 "$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || { tail -20 "$3" >&2; return 1; }
    sleep 0.1
  done
  return 1
}

START_S=$(( START_MS / 1000 )); END_S=$(( END_MS / 1000 ))
# name|path (start and end are added)
REQUESTS=(
  "labels|/api/v1/labels?"
  "metric_names|/api/v1/label/__name__/values?"
  "instance_values|/api/v1/label/instance/values?"
  "pod_values_matched|/api/v1/label/pod/values?match[]=kube_pod_status_phase%7Bphase%3D%22Running%22%7D&"
  "labels_matched|/api/v1/labels?match[]=node_filesystem_avail_bytes&"
  "series_node_info|/api/v1/series?match[]=kube_node_info&"
  "series_cpu_one_host|/api/v1/series?match[]=node_cpu_seconds_total%7Binstance%3D%22host-07%3A9100%22%7D&"
)

# The answer reduced to something comparable: label lists as a sorted set, series as a count.
digest() { # name file
  case "$1" in
    series_*) printf 'series:%s' "$(grep -o '"__name__"' "$2" | wc -l)" ;;
    *) sed -n 's/.*"data":\[\(.*\)\].*/\1/p' "$2" | tr ',' '\n' | sort | md5sum | cut -c1-12 ;;
  esac
}

declare -A MEDIAN DIGEST
measure() { # system base-url header...
  local system="$1" base="$2"; shift 2
  local entry name path out times t
  for entry in "${REQUESTS[@]}"; do
    name="${entry%%|*}"; path="${entry#*|}"
    out="$DIR/metadata.$system.$name.json"
    local url="$base${path}start=$START_S&end=$END_S"
    curl -fsS "$@" -o "$out" "$url"   # warm-up, and the answer
    times=()
    for _ in $(seq "$RUNS"); do
      t="$(curl -fsS "$@" -o /dev/null -w '%{time_total}' "$url")"
      times+=("$t")
    done
    MEDIAN[$system.$name]="$(printf '%s\n' "${times[@]}" | sort -g | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f", m * 1000 }')"
    DIGEST[$system.$name]="$(digest "$name" "$out")"
  done
}

SYSTEMS=()
if [ -d "$DIR/strata" ]; then
  port="$(free_port)"; grpc="$(free_port)"
  # shellcheck disable=SC2086 # STRATA_FLAGS is a list of flags
  "$STRATA_BIN" -target=all -ingester.ring.replication-factor=1 -ingester.max-global-series-per-user=0 \
    -server.http-listen-address=127.0.0.1 -server.http-listen-port="$port" \
    -server.grpc-listen-address=127.0.0.1 -server.grpc-listen-port="$grpc" \
    -blocks-storage.backend=filesystem -blocks-storage.filesystem.dir="$DIR/strata/blocks" \
    -blocks-storage.tsdb.dir="$DIR/strata/tsdb" ${STRATA_FLAGS:-} >"$DIR/metadata.strata.log" 2>&1 &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$port/ready" "$!" "$DIR/metadata.strata.log"
  measure strata "http://127.0.0.1:$port/prometheus" -H "X-Scope-OrgID: $STRATA_TENANT"
  SYSTEMS+=(strata)
fi
if [ -d "$DIR/prometheus/data" ] && [ -n "$PROMETHEUS_BIN" ]; then
  port="$(free_port)"
  "$PROMETHEUS_BIN" --config.file="$DIR/prometheus/prometheus.yml" --storage.tsdb.path="$DIR/prometheus/data" \
    --web.listen-address="127.0.0.1:$port" >"$DIR/metadata.prometheus.log" 2>&1 &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$port/-/ready" "$!" "$DIR/metadata.prometheus.log"
  measure prometheus "http://127.0.0.1:$port"
  SYSTEMS+=(prometheus)
fi
if [ -d "$DIR/victoria-metrics/data" ] && [ -n "$VM_BIN" ]; then
  port="$(free_port)"
  "$VM_BIN" -storageDataPath="$DIR/victoria-metrics/data" -httpListenAddr="127.0.0.1:$port" \
    >"$DIR/metadata.victoria-metrics.log" 2>&1 &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$port/health" "$!" "$DIR/metadata.victoria-metrics.log"
  measure victoria-metrics "http://127.0.0.1:$port"
  SYSTEMS+=(victoria-metrics)
fi
[ ${#SYSTEMS[@]} -gt 0 ] || { echo "bench/metadata.sh: no system's data in $DIR" >&2; exit 1; }

printf '## Metadata API: %s hosts x %s h, median of %s warm runs, ms\n\n' "$HOSTS" "$HOURS" "$RUNS"
printf '| request |'; for s in "${SYSTEMS[@]}"; do printf ' %s |' "$s"; done
printf ' answers |\n|---|'; for _ in "${SYSTEMS[@]}"; do printf -- '---|'; done; printf -- '---|\n'
for entry in "${REQUESTS[@]}"; do
  name="${entry%%|*}"
  printf '| `%s` |' "$name"
  for s in "${SYSTEMS[@]}"; do printf ' %s |' "${MEDIAN[$s.$name]}"; done
  same=same
  for s in "${SYSTEMS[@]}"; do
    [ "${DIGEST[$s.$name]}" = "${DIGEST[${SYSTEMS[0]}.$name]}" ] || same="differ: $(for x in "${SYSTEMS[@]}"; do printf '%s=%s ' "$x" "${DIGEST[$x.$name]}"; done)"
  done
  printf ' %s |\n' "$same"
done
