#!/usr/bin/env bash
# Benchmarks (not tests), each against a reference measured in the same run on
# the same data: the cache scan against du -sb and find on a synthetic cache of
# BENCH_ENTRIES (default 1,000,000) actions and outputs; the exporter's peak
# RSS over several rescans of it; and scrape latency while that cache is
# scanned continuously, against an exporter watching an empty cache. Then the
# trace parser's throughput on a synthetic action graph of BENCH_TRACE_MB
# (default 120) megabytes, against `jq length` on the same file.
# Usage: scripts/bench.sh [BUILD_DIR]
# BENCH_ONLY=cache runs only the cache sections, BENCH_ONLY=trace only the
# trace parser's, BENCH_ONLY=trim only check and trim on a cache of
# BENCH_TRIM_PAIRS (default 100,000) pairs, BENCH_ONLY=load only the load
# benchmark (scripts/bench_load.sh: wrk against /metrics while the cache is
# rescanned; its own variables are described there), BENCH_ONLY=cacheprog only
# the GOCACHEPROG helper's (scripts/bench_cacheprog.sh), BENCH_ONLY=events only
# the census followed by inotify events against periodic walks
# (bench/bench_events.py: an idle window of BENCH_IDLE_SECONDS, default 300, and
# a go build std into the cache) (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
only=${BENCH_ONLY:-}
case $only in
  "" | cache | events | trace | trim | load | cacheprog) ;;
  *) echo "BENCH_ONLY must be cache, events, trace, trim, load or cacheprog, not '$only'" >&2
     exit 2 ;;
esac
want() { [[ -z $only || $only == "$1" ]]; }
entries=${BENCH_ENTRIES:-1000000}
scrapes=${BENCH_SCRAPES:-200}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

if want cache || want events; then  # not indented: the Python program below starts at column 0
echo "== making a synthetic build cache of $entries actions and outputs in $work/big"
PYTHONPATH=tests/integration python3 -c '
import sys, harness
pairs = int(sys.argv[2]) // 2 - 400
w = harness.make_synthetic_cache(sys.argv[1], pairs=pairs, missing_outputs=100, orphan_outputs=100,
                                 mismatches=100, corrupt=100)
print("known: corrupt 100, action_without_output 100, output_without_action 100, size_mismatch 100;",
      w["entries"])' "$work/big" "$entries"
fi

if want cache; then
mkdir "$work/empty"

echo "== scan throughput (page cache warm)"
"$build/bench_scan" "$work/big" 3

start_exporter() {  # DIR LOG; sets $port
  # Rescans without a pause, the worst case for memory and scrapes: walks, not events.
  "$build/gocache_exporter" --web.listen-address=127.0.0.1:0 --cache.dir="$1" --scan.interval=1ms \
    --no-scan.events >/dev/null 2>"$2" &
  pids+=($!)
  for _ in $(seq 100); do
    port=$(grep -o 'ports=[0-9]*' "$2" | cut -d= -f2 || true)
    [[ -n $port ]] && return
    sleep 0.1
  done
  echo "exporter did not start" >&2
  exit 1
}

latency() {  # PORT -> "median p99" in ms over $scrapes scrapes
  for _ in $(seq "$scrapes"); do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$1/metrics"
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f %.2f\n", a[int(NR/2)+1]*1000, a[int(NR*0.99)]*1000}'
}

echo "== scrape latency, $scrapes scrapes each, scanner running continuously"
start_exporter "$work/big" "$work/big.log"
big_port=$port
start_exporter "$work/empty" "$work/empty.log"
empty_port=$port
for _ in $(seq 600); do
  curl -s "http://127.0.0.1:$big_port/metrics" | grep -q '^gocache_dir_inodes' && break
  sleep 0.1
done
read -r big_p50 big_p99 < <(latency "$big_port")
scans_done=$(curl -s "http://127.0.0.1:$big_port/metrics" | awk '/^gocache_scan_duration_seconds/ {print "yes"}')
[[ -n $scans_done ]] || { echo "the census of the big cache never finished" >&2; exit 1; }
read -r empty_p50 empty_p99 < <(latency "$empty_port")
printf '%-32s %10s %10s\n' "cache" "p50 ms" "p99 ms"
printf '%-32s %10s %10s\n' "$entries entries" "$big_p50" "$big_p99"
printf '%-32s %10s %10s\n' "empty" "$empty_p50" "$empty_p99"
awk -v a="$big_p50" -v b="$empty_p50" 'BEGIN {printf "p50 ratio big/empty: %.2f\n", a/b}'

echo "== exporter peak RSS over repeated scans of the $entries-entry cache"
sleep 10  # several more full rescans at --scan.interval=1ms
awk '/VmHWM|VmRSS/ {printf "%s %.1f MiB\n", $1, $2 / 1024}' "/proc/${pids[0]}/status"
# Both exporters rescan without a pause: stop them before the next sections.
kill "${pids[@]}"
wait "${pids[@]}" 2>/dev/null || true
pids=()
fi

if want events; then
  echo "== the census followed by events against walks every ${BENCH_IDLE_SECONDS:-300} s"
  # Last among the cache sections: its go build writes into the cache.
  python3 -u bench/bench_events.py "$build/gocache_exporter" "$work/big" "${BENCH_IDLE_SECONDS:-300}"
fi

if want trace; then
  trace_mb=${BENCH_TRACE_MB:-120}
  graph=$work/actiongraph.json
  echo "== trace parse throughput: a synthetic action graph of $trace_mb MB, against jq length"
  made=$(python3 bench/make_actiongraph.py "$graph" --mb "$trace_mb" --gzip)
  echo "$made"
  written=$(awk '{print $2}' <<<"$made")
  "$build/bench_trace" "$graph" 3 | tee "$work/trace.out"
  "$build/bench_trace" "$graph.gz" 3 | tee "$work/trace-gz.out"
  field() { awk -v k="$1" '$1 == k {print $2}' "$2"; }  # ROW FILE
  bytes=$(field bytes "$work/trace.out")
  parser_s=$(field seconds "$work/trace.out")
  parser_mbs=$(field MB/s "$work/trace.out")
  parsed=$(field actions "$work/trace.out")
  gzip_s=$(field seconds "$work/trace-gz.out")
  gzip_mbs=$(field MB/s "$work/trace-gz.out")
  parsed_gz=$(field actions "$work/trace-gz.out")
  jq_s=
  for _ in 1 2 3; do  # best of 3, as bench_trace
    t0=$EPOCHREALTIME
    jq_length=$(jq length "$graph")
    t1=$EPOCHREALTIME
    jq_s=$(awk -v a="$t0" -v b="$t1" -v best="$jq_s" \
      'BEGIN {s = b - a; print (best == "" || s < best) ? s : best}')
  done
  echo "actions: $written written, jq length $jq_length, parser $parsed (gzip: $parsed_gz)"
  if [[ $jq_length != "$written" || $parsed != "$written" || $parsed_gz != "$written" ]]; then
    echo "the action counts differ" >&2
    exit 1
  fi
  awk -v n="$bytes" -v ps="$parser_s" -v pm="$parser_mbs" -v gs="$gzip_s" -v gm="$gzip_mbs" \
    -v js="$jq_s" 'BEGIN {
    jm = n / 1e6 / js
    printf "%-32s %9s %10s\n", "parse " n " bytes", "seconds", "MB/s"
    printf "%-32s %9.3f %10.1f\n", "gocache trace parser", ps, pm
    printf "%-32s %9.3f %10.1f\n", "gocache trace parser, gzip file", gs, gm
    printf "%-32s %9.3f %10.1f\n", "jq length FILE", js, jm
    printf "parser is %.1fx jq (%.1f MB/s against %.1f MB/s)\n", pm / jm, pm, jm
  }'
fi

if want trim; then
  pairs=${BENCH_TRIM_PAIRS:-100000}
  echo "== check and trim: a synthetic cache of $pairs action/output pairs, against du -sb and rm"
  PYTHONPATH=tests/integration python3 -c '
import sys, harness
harness.make_synthetic_cache(sys.argv[1], pairs=int(sys.argv[2]))' "$work/trim" "$pairs"
  seconds() {  # COMMAND...: wall seconds of one run
    local t0=$EPOCHREALTIME
    "$@" >/dev/null
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}'
  }
  du_s=$(seconds du -sb "$work/trim")
  check_s=$(seconds "$build/gocache_exporter" check --cache.dir="$work/trim" --max-bytes=1TiB)
  dry_s=$(seconds "$build/gocache_exporter" trim --cache.dir="$work/trim" --max-bytes=50MiB --dry-run)
  cp -a "$work/trim" "$work/trim-copy"
  cp -a "$work/trim" "$work/rm-copy"
  "$build/gocache_exporter" trim --cache.dir="$work/trim-copy" --max-bytes=50MiB | tee "$work/trim.out"
  trim_s=$(seconds "$build/gocache_exporter" trim --cache.dir="$work/trim" --max-bytes=50MiB)
  removed=$(grep -o 'removed [0-9]*' "$work/trim.out" | awk '{print $2}')
  rm_s=$(seconds rm -rf "$work/rm-copy")
  files=$((2 * pairs))
  awk -v f="$files" -v r="$removed" -v du="$du_s" -v c="$check_s" -v d="$dry_s" -v t="$trim_s" \
    -v rm="$rm_s" 'BEGIN {
    printf "%-40s %9s %12s %9s\n", "", "seconds", "entries/s", "ratio"
    printf "%-40s %9.3f %12.0f %8.2fx\n", "du -sb DIR (listing reference)", du, f / du, 1
    printf "%-40s %9.3f %12.0f %8.2fx\n", "check --max-bytes (lists, reads actions)", c, f / c, c / du
    printf "%-40s %9.3f %12.0f %8.2fx\n", "trim --dry-run", d, f / d, d / du
    printf "%-40s %9.3f %12.0f %8.2fx\n", "rm -rf DIR (removal reference)", rm, f / rm, 1
    printf "%-40s %9.3f\n", "trim, removing " r " entries", t
    # Its removals alone: the run minus the listing of a dry run, per entry.
    printf "%-40s %9.3f %12.0f %8.2fx\n", "  of which removal (trim - dry run)", t - d, r / (t - d),
      ((t - d) / r) / (rm / f)
  }'
fi

if want load; then
  # The cache section's tree, when there is one; else bench_load.sh makes one.
  if [[ -d $work/big ]]; then
    BENCH_CACHE=$work/big ENTRIES=$entries scripts/bench_load.sh "$build"
  else
    ENTRIES=$entries scripts/bench_load.sh "$build"
  fi
fi

if want cacheprog; then
  # The cache section's tree, when there is one; else bench_cacheprog.sh makes one.
  if [[ -d $work/big ]]; then
    BENCH_CACHE=$work/big ENTRIES=$entries scripts/bench_cacheprog.sh "$build"
  else
    ENTRIES=$entries scripts/bench_cacheprog.sh "$build"
  fi
fi
