#!/usr/bin/env bash
# Load benchmark (not a test): wrk against /metrics while the exporter
# rescans a synthetic build cache without a pause. Prints requests/s, p50 and
# p99 latency, errors (non-2xx/3xx responses and connect, read, write and
# timeout socket errors) and the exporter's RSS before and after the load,
# then PASS or FAIL against the targets: 0 errors, p99 under 20 ms, RSS growth
# under 5 MiB. The scans allocate and free their arrays all the time, so one
# reading of VmRSS says more about where the scan was than about the load:
# RSS is sampled every 0.1 s over two scans' time (at least 2 s) before and
# after the load, and the peaks of the two windows are compared. The last
# line is a machine-readable summary ("bench_load: key=value ..."), which
# tests/integration/test_load.py reads.
#
# Usage: scripts/bench_load.sh [BUILD_DIR]    (default BUILD_DIR: build)
# Environment:
#   ENTRIES         actions and outputs in the synthetic cache (default
#                   $BENCH_ENTRIES, else 1000000), in 256 shard directories
#   DURATION        seconds of load (default 30)
#   CONNECTIONS     wrk connections (default 50)
#   THREADS         wrk threads (default 2)
#   INTERVAL        the exporter's --scan.interval (default 1ms: rescans
#                   back to back)
#   BENCH_CACHE     an existing cache tree to use instead of generating one
#   BENCH_DATA_DIR  where to keep the generated tree for later runs
#                   (BENCH_DATA_DIR/synthetic-ENTRIES); without it the tree is
#                   generated in a temporary directory and removed at exit
#   BENCH_EXPORTER  the binary (default BUILD_DIR/gocache_exporter)
#   BENCH_SCRAPE_OUT  a file to write the body of one scrape made after the load
# Exit status: 0 PASS, 3 FAIL (a target missed), 2 bad parameters, 1 the run
# itself failed (the exporter did not start, scan or stop cleanly).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
exporter=${BENCH_EXPORTER:-$build/gocache_exporter}
entries=${ENTRIES:-${BENCH_ENTRIES:-1000000}}
duration=${DURATION:-30}
connections=${CONNECTIONS:-50}
threads=${THREADS:-2}
interval=${INTERVAL:-1ms}
p99_target_ms=20
rss_growth_target_kib=5120

for pair in "ENTRIES=$entries" "DURATION=$duration" "CONNECTIONS=$connections" \
  "THREADS=$threads"; do
  if [[ ! ${pair#*=} =~ ^[1-9][0-9]*$ ]]; then
    echo "bench_load: ${pair%%=*} must be a positive integer, not '${pair#*=}'" >&2
    exit 2
  fi
done
if ((threads > connections)); then
  echo "bench_load: THREADS ($threads) must not exceed CONNECTIONS ($connections)" >&2
  exit 2
fi
if [[ ! -x $exporter ]]; then
  echo "bench_load: no exporter binary at $exporter (make build, or set BENCH_EXPORTER)" >&2
  exit 1
fi
for tool in wrk curl python3 civetweb; do
  command -v "$tool" >/dev/null || {
    echo "bench_load: $tool is not installed: run scripts/install-deps.sh" >&2
    exit 1
  }
done

work=$(mktemp -d)
exporter_pid=
reference_pid=
cleanup() {
  if [[ -n $exporter_pid ]]; then kill -KILL "$exporter_pid" 2>/dev/null || true; fi
  if [[ -n $reference_pid ]]; then kill -KILL "$reference_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

seconds_since() {  # START (an $EPOCHREALTIME)
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}'
}

# --- the cache ---------------------------------------------------------------
# harness.make_synthetic_cache lays entries out as the go command does: 256
# shards of <64 hex>-a action entries (175 bytes, naming their output) and
# <64 hex>-d outputs, mostly under 2 KiB, one in 16 up to 64 KiB, aged over
# 40 days; about 5 GB for a million entries.
generate() {  # DIR
  PYTHONPATH=tests/integration python3 -c '
import sys, harness
harness.make_synthetic_cache(sys.argv[1], pairs=int(sys.argv[2]) // 2)' "$1" "$entries"
}

if [[ -n ${BENCH_CACHE:-} ]]; then
  cache=$BENCH_CACHE
  [[ -d $cache ]] || { echo "bench_load: BENCH_CACHE $cache is not a directory" >&2; exit 1; }
  echo "== using the cache $cache"
elif [[ -n ${BENCH_DATA_DIR:-} ]]; then
  mkdir -p "$BENCH_DATA_DIR"
  cache=$BENCH_DATA_DIR/synthetic-$entries
  if [[ -d $cache ]]; then
    echo "== reusing the synthetic cache of $entries entries in $cache"
  else
    echo "== making a synthetic cache of $entries entries in $cache (kept for later runs)"
    t0=$EPOCHREALTIME
    rm -rf "$cache.partial"  # an interrupted earlier run
    generate "$cache.partial"
    mv "$cache.partial" "$cache"
    echo "generated in $(seconds_since "$t0") s"
  fi
else
  cache=$work/cache
  echo "== making a synthetic cache of $entries entries in $cache (removed at exit)"
  t0=$EPOCHREALTIME
  generate "$cache"
  echo "generated in $(seconds_since "$t0") s"
fi
cache=$(cd "$cache" && pwd -P)  # the path label the exporter reports

# --- the exporter --------------------------------------------------------------
log=$work/exporter.log
# --no-scan.events: the load is measured against continuous rescans (events
# would leave the idle cache alone).
"$exporter" --web.listen-address=127.0.0.1:0 --cache.dir="$cache" --scan.interval="$interval" \
  --no-scan.events >/dev/null 2>"$log" &
exporter_pid=$!
port=
for _ in $(seq 200); do
  port=$(grep -o 'ports=[0-9]*' "$log" | head -n 1 | cut -d= -f2 || true)
  [[ -n $port ]] && break
  kill -0 "$exporter_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "bench_load: the exporter did not start:" >&2
  cat "$log" >&2
  exit 1
fi
url=http://127.0.0.1:$port/metrics
scan_line="gocache_scan_duration_seconds{path=\"$cache\"}"

echo "== waiting for the first scan (exporter pid $exporter_pid, port $port, --scan.interval=$interval)"
t0=$EPOCHREALTIME
scanned=
for _ in $(seq 1200); do  # at most 10 minutes
  if curl -sf --max-time 10 "$url" | grep -qF "$scan_line"; then
    scanned=yes
    break
  fi
  kill -0 "$exporter_pid" 2>/dev/null || break
  sleep 0.5
done
if [[ -z $scanned ]]; then
  echo "bench_load: the first scan did not finish" >&2
  cat "$log" >&2
  exit 1
fi
scan_seconds=$(curl -sf --max-time 10 "$url" | grep -F "$scan_line" | awk '{print $2}')
echo "first scan seen after $(seconds_since "$t0") s; last scan took" \
  "$(awk -v s="$scan_seconds" 'BEGIN {printf "%.2f", s}') s"

hwm_kib() { awk '$1 == "VmHWM:" {print $2}' "/proc/$exporter_pid/status"; }
# Two scans' time, at least 2 s and at most 30 s, in tenths of a second.
samples=$(awk -v s="$scan_seconds" 'BEGIN {n = int(s * 20) + 1; print (n < 20 ? 20 : (n > 300 ? 300 : n))}')
rss_window() {  # -> "MIN MAX" of VmRSS in KiB, sampled every 0.1 s
  for _ in $(seq "$samples"); do
    awk '$1 == "VmRSS:" {print $2}' "/proc/$exporter_pid/status"
    sleep 0.1
  done | sort -n | awk 'NR == 1 {min = $1} {max = $1} END {print min, max}'
}

# --- the load ------------------------------------------------------------------
echo "== VmRSS over $(awk -v n="$samples" 'BEGIN {print n / 10}') s before the load"
read -r rss_before_min rss_before < <(rss_window)
[[ $rss_before =~ ^[0-9]+$ ]] || { echo "bench_load: cannot read the exporter's VmRSS" >&2; exit 1; }
hwm_before=$(hwm_kib)
echo "== wrk -c $connections -t $threads -d ${duration}s --latency $url"
wrk_out=$work/wrk.out
if ! timeout $((duration + 60)) wrk -c "$connections" -t "$threads" -d "${duration}s" --latency \
  "$url" | tee "$wrk_out"; then
  echo "bench_load: wrk failed" >&2
  exit 1
fi
hwm_after=$(hwm_kib)
echo "== VmRSS over $(awk -v n="$samples" 'BEGIN {print n / 10}') s after the load"
read -r rss_after_min rss_after < <(rss_window)
[[ $rss_after =~ ^[0-9]+$ ]] || { echo "bench_load: cannot read the exporter's VmRSS" >&2; exit 1; }

# The exporter still answers, with the whole exposition.
if ! curl -sf --max-time 20 -o "$work/after.txt" "$url" || ! grep -qF "$scan_line" "$work/after.txt"; then
  echo "bench_load: no complete scrape after the load" >&2
  cat "$log" >&2
  exit 1
fi
if [[ -n ${BENCH_SCRAPE_OUT:-} ]]; then cp "$work/after.txt" "$BENCH_SCRAPE_OUT"; fi

kill -TERM "$exporter_pid"
exit_code=
for _ in $(seq 50); do  # at most 5 s
  if ! kill -0 "$exporter_pid" 2>/dev/null; then
    exit_code=0
    wait "$exporter_pid" || exit_code=$?
    break
  fi
  sleep 0.1
done
exporter_pid_was=$exporter_pid
exporter_pid=
if [[ -z $exit_code ]]; then
  kill -KILL "$exporter_pid_was" 2>/dev/null || true
  echo "bench_load: the exporter did not stop within 5 s of SIGTERM" >&2
  exit 1
fi

# --- the reference ---------------------------------------------------------------
# Debian's civetweb program serving the same body as a static file, with the
# exporter's defaults (16 threads, no keep-alive), under the same wrk load:
# what the HTTP layer alone costs on this machine at this moment.
ref_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/static"
cp "$work/after.txt" "$work/static/metrics"
civetweb -listening_ports "127.0.0.1:$ref_port" -document_root "$work/static" -num_threads 16 \
  -enable_keep_alive no >/dev/null 2>&1 &
reference_pid=$!
for _ in $(seq 50); do
  curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$ref_port/metrics" && break
  sleep 0.1
done
echo "== reference: civetweb serving the same body as a static file"
ref_out=$work/wrk-reference.out
timeout $((duration + 60)) wrk -c "$connections" -t "$threads" -d "${duration}s" --latency \
  "http://127.0.0.1:$ref_port/metrics" >"$ref_out" || true
kill "$reference_pid" 2>/dev/null || true
wait "$reference_pid" 2>/dev/null || true
reference_pid=
ref_rps=$(awk '/^Requests\/sec:/ {print $2}' "$ref_out")
ref_p99=$(awk '$1 == "99%" {print $2}' "$ref_out")
[[ -n $ref_rps ]] || { echo "bench_load: the reference run failed:" >&2; cat "$ref_out" >&2; exit 1; }

# --- the figures ---------------------------------------------------------------
summary=$(awk -v entries="$entries" -v duration="$duration" -v connections="$connections" \
  -v rss_before="$rss_before" -v rss_after="$rss_after" -v rss_before_min="$rss_before_min" \
  -v rss_after_min="$rss_after_min" -v hwm_before="$hwm_before" -v hwm_after="$hwm_after" \
  -v exit_code="$exit_code" -v p99_target="$p99_target_ms" \
  -v rss_target="$rss_growth_target_kib" '
  function ms(v,    n, unit) {  # wrk prints 850.00us, 1.23ms, 1.02s, 2.00m, 1.00h
    n = v + 0
    unit = v
    sub(/^[0-9.]+/, "", unit)
    if (unit == "us") return n / 1000
    if (unit == "ms") return n
    if (unit == "s") return n * 1000
    if (unit == "m") return n * 60000
    if (unit == "h") return n * 3600000
    return -1
  }
  / requests in / { requests = $1 }
  /^Requests\/sec:/ { rps = $2 }
  $1 == "50%" { p50 = ms($2) }
  $1 == "99%" { p99 = ms($2) }
  /Non-2xx or 3xx responses:/ { non2xx = $NF }
  /Socket errors:/ {
    for (i = 1; i <= NF; i++) {
      f = $(i + 1)
      sub(/,$/, "", f)
      if ($i == "connect") connect_errors = f
      if ($i == "read") read_errors = f
      if ($i == "write") write_errors = f
      if ($i == "timeout") timeout_errors = f
    }
  }
  END {
    if (requests == "" || p50 == "" || p99 == "") { print "unparsable"; exit }
    errors = non2xx + connect_errors + read_errors + write_errors + timeout_errors
    growth = rss_after - rss_before
    verdict = (errors == 0 && p99 >= 0 && p99 < p99_target && growth < rss_target && exit_code == 0) \
      ? "PASS" : "FAIL"
    printf "bench_load: entries=%d duration_s=%d connections=%d requests=%d rps=%.1f", \
      entries, duration, connections, requests, rps
    printf " p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d connect=%d read=%d write=%d timeout=%d", \
      p50, p99, errors, non2xx, connect_errors, read_errors, write_errors, timeout_errors
    printf " rss_before_kib=%d rss_after_kib=%d rss_growth_kib=%d", rss_before, rss_after, growth
    printf " rss_before_min_kib=%d rss_after_min_kib=%d hwm_before_kib=%d hwm_after_kib=%d", \
      rss_before_min, rss_after_min, hwm_before, hwm_after
    printf " exporter_exit=%d verdict=%s\n", exit_code, verdict
  }' "$wrk_out")
if [[ $summary == unparsable ]]; then
  echo "bench_load: cannot read wrk's output" >&2
  exit 1
fi
field() { tr ' ' '\n' <<<"$summary" | awk -F= -v k="$1" '$1 == k {print $2}'; }

echo "== $(field requests) requests in ${duration} s, $connections connections, cache of $entries entries rescanned continuously"
awk -v rps="$(field rps)" -v p50="$(field p50_ms)" -v p99="$(field p99_ms)" \
  -v errors="$(field errors)" -v non2xx="$(field non2xx)" -v c="$(field connect)" \
  -v r="$(field read)" -v w="$(field write)" -v t="$(field timeout)" \
  -v before="$rss_before" -v after="$rss_after" -v bmin="$rss_before_min" \
  -v amin="$rss_after_min" -v hb="$hwm_before" -v ha="$hwm_after" \
  -v p99_target="$p99_target_ms" -v rss_target="$rss_growth_target_kib" 'BEGIN {
  printf "%-22s %12.1f\n", "requests/s", rps
  printf "%-22s %12.2f\n", "latency p50 ms", p50
  printf "%-22s %12.2f   target < %d: %s\n", "latency p99 ms", p99, p99_target, \
    p99 < p99_target ? "ok" : "MISSED"
  printf "%-22s %12d   target 0: %s (non-2xx/3xx %d; socket connect %d, read %d, write %d, timeout %d)\n", \
    "errors", errors, errors == 0 ? "ok" : "MISSED", non2xx, c, r, w, t
  printf "%-22s %12.1f   (lowest %.1f)\n", "RSS before MiB", before / 1024, bmin / 1024
  printf "%-22s %12.1f   (lowest %.1f)\n", "RSS after MiB", after / 1024, amin / 1024
  printf "%-22s %12.1f   target < %.0f: %s\n", "RSS growth MiB", (after - before) / 1024, \
    rss_target / 1024, after - before < rss_target ? "ok" : "MISSED"
  printf "%-22s %12.1f -> %.1f (over the load)\n", "peak RSS (VmHWM) MiB", hb / 1024, ha / 1024
}'
if [[ $exit_code != 0 ]]; then echo "the exporter exited $exit_code on SIGTERM"; fi
verdict=$(field verdict)
printf '%-22s %12.1f   p99 %s: the exporter serves %.2fx its requests/s\n' "reference requests/s" \
  "$ref_rps" "$ref_p99" "$(awk -v a="$(field rps)" -v b="$ref_rps" 'BEGIN {print a / b}')"
echo "$verdict"
echo "$summary ref_rps=$ref_rps"
[[ $verdict == PASS ]] || exit 3
