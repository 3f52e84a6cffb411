# The README's two commands: `make run` and `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
ARGS       ?=
CMAKE_FLAGS = -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps deps-run build run test test-asan fuzz golden bench format clean

all: build

deps:
	scripts/install-deps.sh

deps-run:
	scripts/install-deps.sh --run

# Configuring every time keeps the revision in gocache_exporter_build_info current.
build: deps-run
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DGOCACHE_TESTS=OFF >/dev/null
	cmake --build $(BUILD)

# Starts the exporter on the current user's Go caches; flags go in ARGS,
# for example: make run ARGS='--web.listen-address=127.0.0.1:9959'
run: build
	exec $(BUILD)/gocache_exporter $(ARGS)

# Every test, twice: warnings as errors, then under ASan+UBSan; then every
# parser's fuzz target for FUZZ_SECONDS each.
test: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DGOCACHE_TESTS=ON -DGOCACHE_WERROR=ON >/dev/null
	cmake --build $(BUILD)
	ctest --test-dir $(BUILD) --output-on-failure --timeout 900
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory fuzz

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_FLAGS) -DGOCACHE_TESTS=ON -DGOCACHE_WERROR=ON -DGOCACHE_SANITIZE=ON \
	  -DGOCACHE_TOOLS_DIR=$(CURDIR)/$(BUILD)/tools >/dev/null
	cmake --build $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure --timeout 1200 -E '^clang_format$$'

# The libFuzzer targets of fuzz/ under ASan+UBSan (clang), FUZZ_SECONDS each,
# after replaying fuzz/regressions/; for example: make fuzz FUZZ_SECONDS=300
fuzz: deps
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Rewrites tests/golden/metrics.txt from the fixture (review the diff!).
golden: build
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DGOCACHE_TESTS=ON >/dev/null
	cmake --build $(BUILD)
	cd tests/integration && GOCACHE_EXPORTER=$(CURDIR)/$(BUILD)/gocache_exporter GOCACHE_UPDATE_GOLDEN=1 \
	  python3 -m unittest test_golden

bench: build
	scripts/bench.sh $(BUILD)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
