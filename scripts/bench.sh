#!/usr/bin/env bash
# Benchmarks (not tests): the scanner against find and du on one tree, and
# scrape latency with a 200,000-file cache under continuous scanning against
# an empty cache, both measured in the same run. Usage: scripts/bench.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
files=${BENCH_FILES:-200000}
scrapes=${BENCH_SCRAPES:-200}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== making a build-cache-shaped tree of $files files in $work/big"
PYTHONPATH=tests/integration python3 -c \
  'import sys, harness; harness.make_big_cache(sys.argv[1], int(sys.argv[2]))' "$work/big" "$files"
mkdir "$work/empty"

echo "== scanner throughput"
"$build/bench_scan" "$work/big" 5

start_exporter() {  # DIR LOG; sets $port
  "$build/gocache_exporter" --web.listen-address=127.0.0.1:0 --cache.dir="$1" --density.interval=1ms \
    >/dev/null 2>"$2" &
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
read -r empty_p50 empty_p99 < <(latency "$empty_port")
printf '%-32s %10s %10s\n' "cache" "p50 ms" "p99 ms"
printf '%-32s %10s %10s\n' "$files files" "$big_p50" "$big_p99"
printf '%-32s %10s %10s\n' "empty" "$empty_p50" "$empty_p99"
awk -v a="$big_p50" -v b="$empty_p50" 'BEGIN {printf "p50 ratio big/empty: %.2f\n", a/b}'
