#!/usr/bin/env bash
# Hostile query input (issue 17): the same list of bad requests against Strata and a real
# Prometheus 2.42 in one run — extreme times, steps, @ and offsets on every query and
# metadata endpoint, 10k/100k-deep and long expressions, a nested subquery — and a table:
# input class | Strata status + short message | Prometheus status + short message. Then the
# peak RSS of Strata during the run (VmHWM of /proc/<pid>/status) and whether each process
# was still alive after every request.
#
#   bench/bad_input.sh [--timeout SECONDS] [--keep]
#
# STRATA_BIN defaults to the debug build under CARGO_TARGET_DIR (built when missing);
# PROMETHEUS_BIN to `prometheus` on PATH (installed from Debian when missing). Both listen on
# free ports on 127.0.0.1 with data in a temporary directory, removed at the end unless
# --keep. Every request has a deadline (--timeout, 30 s): the run ends by itself.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TIMEOUT=30
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) TIMEOUT="$2"; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench/bad_input.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
STRATA_BIN="${STRATA_BIN:-$TARGET/debug/strata}"
if [ ! -x "$STRATA_BIN" ]; then
  (cd "$ROOT" && cargo build --bin strata)
fi
PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(command -v prometheus || true)}"
if [ -z "$PROMETHEUS_BIN" ]; then
  apt-get install -y prometheus >/dev/null
  PROMETHEUS_BIN="$(command -v prometheus)"
fi

WORK="$(mktemp -d /tmp/strata-bad-input.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
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
  echo "not ready: $1" >&2
  return 1
}

S_PORT=$(free_port); S_GRPC=$(free_port); P_PORT=$(free_port)
"$STRATA_BIN" -auth.multitenancy-enabled=false \
  -server.http-listen-port="$S_PORT" -server.grpc-listen-port="$S_GRPC" \
  -blocks-storage.tsdb.dir="$WORK/strata/tsdb" -blocks-storage.filesystem.dir="$WORK/strata/blocks" \
  >"$WORK/strata.log" 2>&1 &
S_PID=$!; PIDS+=("$S_PID")
printf 'global:\n  scrape_interval: 15s\n' >"$WORK/prometheus.yml"
"$PROMETHEUS_BIN" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
  --web.listen-address="127.0.0.1:$P_PORT" >"$WORK/prometheus.log" 2>&1 &
P_PID=$!; PIDS+=("$P_PID")
wait_ready "http://127.0.0.1:$S_PORT/ready" "$S_PID" "$WORK/strata.log"
wait_ready "http://127.0.0.1:$P_PORT/-/ready" "$P_PID" "$WORK/prometheus.log"
P_VERSION="$("$PROMETHEUS_BIN" --version 2>&1 | head -1)"

python3 - "$S_PORT" "$S_PID" "$P_PORT" "$P_PID" "$TIMEOUT" "$P_VERSION" <<'PY'
import json, os, sys, time, urllib.error, urllib.parse, urllib.request

s_port, s_pid, p_port, p_pid, timeout, p_version = sys.argv[1:7]
timeout = float(timeout)

Q, R = "/api/v1/query", "/api/v1/query_range"
cases = [
    ("query time=1e300", Q, {"query": "up", "time": "1e300"}),
    ("query time=-1e18", Q, {"query": "up", "time": "-1e18"}),
    ("query time=9223372036854775.807", Q, {"query": "up", "time": "9223372036854775.807"}),
    ("query time=NaN", Q, {"query": "up", "time": "NaN"}),
    ("query timeout=1e300", Q, {"query": "up", "timeout": "1e300"}),
    ("query x @ -1e300", Q, {"query": "up @ -1e300"}),
    ("query x @ 1e300", Q, {"query": "up @ 1e300"}),
    ("query x offset 1000000y", Q, {"query": "up offset 1000000y"}),
    ("query rate(x[1000000y])", Q, {"query": "rate(up[1000000y])"}),
    ("query max_over_time(max_over_time(x[1y:1s])[1y:1s])", Q,
     {"query": "max_over_time(max_over_time(up[1y:1s])[1y:1s])"}),
    ("query_range start=-9.2e15 end=9.2e15 step=1e15", R,
     {"query": "up", "start": "-9.2e15", "end": "9.2e15", "step": "1e15"}),
    ("query_range start=end=9223372036854776", R,
     {"query": "up", "start": "9223372036854776", "end": "9223372036854776", "step": "1"}),
    ("query_range step=1e300", R, {"query": "up", "start": "0", "end": "1", "step": "1e300"}),
    ("query_range step=0", R, {"query": "up", "start": "0", "end": "1", "step": "0"}),
    ("query_range end < start", R, {"query": "up", "start": "10", "end": "1", "step": "1"}),
    ("query_range 11,001 points", R, {"query": "up", "start": "0", "end": "11001", "step": "1"}),
    ("query_exemplars start=1e300", "/api/v1/query_exemplars", {"query": "up", "start": "1e300"}),
    ("metadata limit=1e300", "/api/v1/metadata", {"limit": "1e300"}),
]
for endpoint in ["series", "labels", "label/job/values"]:
    for what, start, end in [("start=1e300 end=-1e300", "1e300", "-1e300"),
                             ("start=end=9223372036854776", "9223372036854776", "9223372036854776")]:
        cases.append((f"{endpoint} {what}", f"/api/v1/{endpoint}",
                      {"match[]": "up", "start": start, "end": end}))
for n in [1_000, 10_000, 100_000]:
    shapes = [
        ("nested parentheses", "(" * n + "up" + ")" * n),
        ("nested abs(", "abs(" * n + "up" + ")" * n),
        ("binary chain", " + ".join(["up"] * n)),
        ("pi() * chain", " * ".join(["pi()"] * n)),
    ]
    for what, query in shapes:
        cases.append((f"query {what} x{n:,}", Q, {"query": query}))
    cases.append((f"format_query nested parentheses x{n:,}", "/api/v1/format_query", {"query": shapes[0][1]}))
    cases.append((f"series match[] nested parentheses x{n:,}", "/api/v1/series", {"match[]": shapes[0][1]}))
cases.append(("query binary chain x200,000", Q, {"query": " + ".join(["up"] * 200_000)}))

def alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except OSError:
        return False

def send(port, path, params):
    get = "/label/" in path or path.endswith("/metadata")
    body = urllib.parse.urlencode(params)
    url = f"http://127.0.0.1:{port}{path}"
    if get:
        request = urllib.request.Request(f"{url}?{body}")
    else:
        request = urllib.request.Request(url, data=body.encode(),
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, text = r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    except Exception as e:  # connection dropped, timed out
        return f"no answer ({type(e).__name__}) after {time.monotonic() - started:.1f}s"
    took = time.monotonic() - started
    try:
        v = json.loads(text)
        if v.get("status") == "error":
            message = f"{v.get('errorType')}: {v.get('error', '')}"
        else:
            data = json.dumps(v.get("data"))
            message = "success " + (data[:40] + "…" if len(data) > 40 else data)
    except ValueError:
        message = "not JSON: " + text[:40]
    message = message.replace("|", "\\|").replace("\n", " ")
    if len(message) > 110:
        message = message[:110] + "…"
    slow = f" ({took:.1f}s)" if took >= 1 else ""
    return f"{status}{slow} {message}"

print(f"Strata (pid {s_pid}) vs {p_version}; request deadline {timeout:.0f}s\n")
print("| input class | Strata | Prometheus 2.42 |")
print("| --- | --- | --- |")
deaths = []
for what, path, params in cases:
    row = []
    for name, port, pid in [("Strata", s_port, s_pid), ("Prometheus", p_port, p_pid)]:
        if not alive(pid):
            row.append("(process dead)")
            continue
        answer = send(port, path, params)
        if not alive(pid):
            deaths.append(f"{name} died on: {what}")
            answer += " — PROCESS DIED"
        row.append(answer)
    print(f"| {what} | {row[0]} | {row[1]} |", flush=True)

def vm(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return "(process gone)"
    return "?"

print()
print(f"Strata peak RSS during the run (VmHWM): {vm(s_pid, 'VmHWM')}; now (VmRSS): {vm(s_pid, 'VmRSS')}")
print(f"Prometheus peak RSS during the run (VmHWM): {vm(p_pid, 'VmHWM')}")
print("Processes alive at the end:", "Strata" if alive(s_pid) else "Strata DEAD", "/",
      "Prometheus" if alive(p_pid) else "Prometheus DEAD")
for d in deaths:
    print(d)
PY
