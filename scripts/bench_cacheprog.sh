#!/usr/bin/env bash
# Benchmark (not a test) of the GOCACHEPROG helper, `gocache_exporter
# cacheprog`, against the go command's own cache, in the same run on the same
# machine, with an exporter receiving the helpers' reports:
#
# 1. Builds with a real go (go 1.23 built with GOEXPERIMENT=cacheprog, by
#    scripts/build-go-cacheprog.sh): `go build std` with every action a hit,
#    ROUNDS (default 7) times each without and with the helper, alternating,
#    also all on one CPU (taskset -c 0: every wake-up of the helper or of the
#    go command then happens on the CPU that is running, not on an idle
#    one); then a cold build of a real module (cmd/go and all it imports)
#    into an empty cache, COLD_ROUNDS (default 3) times each. Medians, and
#    their ratio.
# 2. bench/bench_cacheprog on a synthetic cache of ENTRIES (default
#    1,000,000) actions and outputs: start-up to the first answer, gets and
#    puts against the same work done directly, peak RSS (see that program).
# 3. The exporter's request counts against what bench_cacheprog sent.
#
# Usage: scripts/bench_cacheprog.sh [BUILD_DIR]
# BENCH_CACHE=DIR uses an existing synthetic cache (its puts are added to
# it); BENCH_DATA_DIR=DIR keeps the one made in DIR/synthetic-ENTRIES.
# GOCACHE_TOOLS_DIR is where the go that speaks GOCACHEPROG is built
# (default BUILD_DIR/tools).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
build=$(cd "$build" && pwd)
rounds=${ROUNDS:-7}
cold_rounds=${COLD_ROUNDS:-3}
entries=${ENTRIES:-1000000}
tools=${GOCACHE_TOOLS_DIR:-$build/tools}
exporter=$build/gocache_exporter
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

scripts/build-go-cacheprog.sh "$tools"
go=$tools/go-cacheprog
export GOROOT=/usr/lib/go-1.23 HOME=$work/home GOFLAGS= GOTOOLCHAIN=local GOTELEMETRY=off \
  GOPROXY=off CGO_ENABLED=0
mkdir -p "$HOME"

socket=$work/cacheprog.sock
"$exporter" --web.listen-address=127.0.0.1:0 --collector.disable-defaults --collector.cacheprog \
  --cacheprog.socket="$socket" --cache.dir="$work/helper" >/dev/null 2>"$work/exporter.log" &
pids+=($!)
port=
for _ in $(seq 100); do
  port=$(grep -o 'ports=[0-9]*' "$work/exporter.log" | cut -d= -f2 || true)
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || { echo "the exporter did not start" >&2; exit 1; }

helper() {  # CACHE_DIR [FLAGS...]: a GOCACHEPROG value
  echo "$exporter cacheprog --cache.dir=$1 --cacheprog.socket=$socket ${*:2}"
}
seconds() {  # ENV... -- COMMAND...: wall seconds of one run
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  local t0=$EPOCHREALTIME
  env "${envs[@]}" "$@" >/dev/null
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.4f\n", b - a}'
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo "== go build std, every action a hit: $rounds rounds each, alternating"
# Fill both caches first.
GOCACHE=$work/plain "$go" build std
GOCACHE=$work/unused GOCACHEPROG="$(helper "$work/helper")" "$go" build std
GOCACHE=$work/unused GOCACHEPROG="$(helper "$work/bounded" --max-bytes=1TiB)" "$go" build std
for _ in $(seq "$rounds"); do
  seconds GOCACHE="$work/plain" -- "$go" build std >>"$work/warm-plain"
  seconds GOCACHE="$work/unused" GOCACHEPROG="$(helper "$work/helper")" -- "$go" build std \
    >>"$work/warm-helper"
  seconds GOCACHE="$work/unused" GOCACHEPROG="$(helper "$work/bounded" --max-bytes=1TiB)" \
    -- "$go" build std >>"$work/warm-bounded"
  seconds GOCACHE="$work/plain" -- taskset -c 0 "$go" build std >>"$work/pinned-plain"
  seconds GOCACHE="$work/unused" GOCACHEPROG="$(helper "$work/helper")" -- taskset -c 0 "$go" \
    build std >>"$work/pinned-helper"
done

echo "== cold build of cmd/go into an empty cache: $cold_rounds rounds each, alternating"
for i in $(seq "$cold_rounds"); do
  seconds GOCACHE="$work/cold-plain-$i" -- "$go" build -o "$work/go.plain" cmd/go \
    >>"$work/cold-plain"
  seconds GOCACHE="$work/unused" GOCACHEPROG="$(helper "$work/cold-helper-$i")" \
    -- "$go" build -o "$work/go.helper" cmd/go >>"$work/cold-helper"
  rm -rf "$work/cold-plain-$i" "$work/cold-helper-$i"
done
cmp "$work/go.plain" "$work/go.helper" || { echo "the two go binaries differ" >&2; exit 1; }

warm_plain=$(median <"$work/warm-plain")
warm_helper=$(median <"$work/warm-helper")
warm_bounded=$(median <"$work/warm-bounded")
pinned_plain=$(median <"$work/pinned-plain")
pinned_helper=$(median <"$work/pinned-helper")
cold_plain=$(median <"$work/cold-plain")
cold_helper=$(median <"$work/cold-helper")
awk -v wp="$warm_plain" -v wh="$warm_helper" -v wb="$warm_bounded" -v cp="$cold_plain" \
  -v ch="$cold_helper" -v pp="$pinned_plain" -v ph="$pinned_helper" 'BEGIN {
  printf "%-44s %9s %8s\n", "median seconds", "seconds", "ratio"
  printf "%-44s %9.3f %7.2fx\n", "go build std, warm, no helper (ref)", wp, 1
  printf "%-44s %9.3f %7.3fx\n", "go build std, warm, through the helper", wh, wh / wp
  printf "%-44s %9.3f %7.3fx\n", "  the same with --max-bytes", wb, wb / wp
  printf "%-44s %9.3f %7.2fx\n", "go build std, warm, one CPU, no helper (ref)", pp, 1
  printf "%-44s %9.3f %7.3fx\n", "go build std, warm, one CPU, the helper", ph, ph / pp
  printf "%-44s %9.3f %7.2fx\n", "go build cmd/go, cold, no helper (ref)", cp, 1
  printf "%-44s %9.3f %7.3fx\n", "go build cmd/go, cold, through the helper", ch, ch / cp
}'

if [[ -n ${BENCH_CACHE:-} ]]; then
  cache=$BENCH_CACHE
else
  data=${BENCH_DATA_DIR:-$work}
  cache=$data/synthetic-$entries
  if [[ ! -d $cache ]]; then
    echo "== making a synthetic build cache of $entries actions and outputs in $cache"
    PYTHONPATH=tests/integration python3 -c '
import sys, harness
harness.make_synthetic_cache(sys.argv[1], pairs=int(sys.argv[2]) // 2)' "$cache" "$entries"
  fi
fi
counted() {  # "gets puts others": the exporter's gocache_cacheprog_requests_total for a cache
  curl -s "http://127.0.0.1:$port/metrics" |
    awk -v p="path=\"$1\"" '/^gocache_cacheprog_requests_total/ && index($0, p) {
      if ($0 ~ /command="get",result="hit"/) g += $NF
      else if ($0 ~ /command="put",result="ok"/) u += $NF
      else o += $NF
    } END {printf "%d %d %d\n", g, u, o}'
}
echo "== bench_cacheprog on $cache"
read -r gets0 puts0 others0 < <(counted "$cache")
"$build/bench_cacheprog" "$exporter" "$cache" 2000 "$socket" | tee "$work/requests.out"
sleep 1  # the last reports
read -r gets1 puts1 others1 < <(counted "$cache")
echo "the exporter counted gets=$((gets1 - gets0)) puts=$((puts1 - puts0))" \
  "misses or errors=$((others1 - others0))"
