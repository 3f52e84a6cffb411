#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang under ASan and UBSan
# (GOCACHE_FUZZ in CMakeLists.txt), replays the inputs kept in
# fuzz/regressions/<target>/, then fuzzes each target for a bounded time on
# a copy of its seed corpus fuzz/corpus/<target>/ (the checked-in corpus is
# never written). Fails when any input crashes or a sanitizer or an
# invariant check reports; a crashing input is kept in
# BUILD_DIR/fuzz-artifacts/<target>/.
#
#   scripts/fuzz.sh [BUILD_DIR] [SECONDS_PER_TARGET]     defaults: build-fuzz 30
#
# FUZZ_TARGETS="fuzz_trace fuzz_go_list" runs only those; FUZZ_JOBS sets the
# build's parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

build=${1:-build-fuzz}
seconds=${2:-30}
if [[ ! $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz: SECONDS_PER_TARGET must be a positive number of seconds, not '$seconds'" >&2
  exit 2
fi
started=$SECONDS

# clang and libFuzzer come with the test dependencies.
runtime_dir=$(clang++ --print-runtime-dir 2>/dev/null || true)
if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null ||
  [[ ! -e $runtime_dir/libclang_rt.fuzzer-$(uname -m).a ]]; then
  scripts/install-deps.sh
fi

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ \
  -DGOCACHE_FUZZ=ON -DGOCACHE_TESTS=OFF >/dev/null
cmake --build "$build" --target fuzz_targets -j "${FUZZ_JOBS:-2}"
built=$SECONDS

if [[ -n ${FUZZ_TARGETS:-} ]]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  targets=()
  for src in fuzz/fuzz_*.cc; do targets+=("$(basename "$src" .cc)"); done
fi

build_abs=$(cd "$build" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/gocache-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# UBSan prints no stack unless asked; leaks are reported by libFuzzer's
# own leak check.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
common=(-timeout=10 -rss_limit_mb=2048)

failed=()
summary=()
for target in "${targets[@]}"; do
  bin=$build_abs/fuzz/$target
  if [[ ! -x $bin ]]; then
    echo "fuzz: no target $target in $build/fuzz" >&2
    exit 2
  fi
  dict=()
  case $target in
    fuzz_trace | fuzz_cacheprog_request) dict=(-dict="$root/fuzz/json.dict") ;;
    fuzz_go_list) dict=(-dict="$root/fuzz/go_list.dict") ;;
    fuzz_web_config) dict=(-dict="$root/fuzz/web_config.dict") ;;
  esac
  artifacts=$build_abs/fuzz-artifacts/$target
  mkdir -p "$artifacts"

  # Regressions: every kept input once.
  regressions=0
  bad_regressions=()
  if [[ -d fuzz/regressions/$target ]]; then
    for input in fuzz/regressions/"$target"/*; do
      [[ -f $input ]] || continue
      regressions=$((regressions + 1))
      log=$work/$target.regression.log
      if ! (cd "$work" && "$bin" "${common[@]}" "$root/$input") >"$log" 2>&1; then
        bad_regressions+=("$input")
        echo "=== $target: regression input $input fails:"
        grep -v '^INFO:' "$log" | tail -n 60
      fi
    done
  fi

  # Fuzzing, on a copy of the seed corpus that libFuzzer may add to.
  corpus=$work/corpus/$target
  mkdir -p "$corpus"
  seeds=0
  if [[ -d fuzz/corpus/$target ]]; then
    cp fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
    seeds=$(find "$corpus" -type f | wc -l)
  fi
  log=$work/$target.log
  begin=$SECONDS
  status=0
  (cd "$work" && timeout $((seconds + 120)) "$bin" "${common[@]}" "${dict[@]}" \
    -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus") >"$log" 2>&1 || status=$?
  took=$((SECONDS - begin))

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
  corpus_now=$(find "$corpus" -type f | wc -l)
  result=ok
  if ((status != 0)); then
    result="FAILED (exit $status)"
    failed+=("$target")
    echo "=== $target: fuzzing failed (exit $status); the input is in $artifacts:"
    grep -v '^INFO:' "$log" | tail -n 80
  fi
  if ((${#bad_regressions[@]})); then
    result="$result; regressions: ${#bad_regressions[@]} of $regressions FAILED"
    [[ " ${failed[*]} " == *" $target "* ]] || failed+=("$target")
  elif ((regressions)); then
    result="$result; regressions: $regressions pass"
  fi
  summary+=("$(printf '%-18s %10s execs %7s/s  %-18s corpus %4s -> %-5s %4s s  %s' \
    "$target" "${execs:-?}" "${rate:-?}" "${cov:-cov: ?}" "$seeds" "$corpus_now" "$took" \
    "$result")")
  echo "${summary[-1]}"
done

echo
echo "fuzz summary ($seconds s per target; build $((built - started)) s, total $((SECONDS - started)) s):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in $build/fuzz-artifacts/; keep one under" \
    "fuzz/regressions/<target>/ once it is understood)" >&2
  exit 1
fi
