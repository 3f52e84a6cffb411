// What the trace collector counts: files by format and outcome, and actions
// by the go command's action mode, with latency histograms. One tally is
// filled per file and merged into the collector's running total only when
// the whole file parsed, so a bad file counts nothing but itself.
#pragma once

#include <prometheus/metric_family.h>

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace gocache::trace {

// The action modes of the go command (cmd/go/internal/work and test), which
// bound the `mode` label; anything else is "other".
constexpr std::array<std::string_view, 27> kModes = {
    "build",
    "build-install",
    "built-in package",
    "gccgo stdlib",
    "go build",
    "go build -buildmode=shared",
    "go install",
    "go install (tools)",
    "go install -buildmode=shared",
    "go run",
    "go test",
    "go vet",
    "install header",
    "link",
    "link-install",
    "nop",
    "preprocess PGO profile",
    "shlib packages",
    "shlibname",
    "test build",
    "test clean",
    "test print",
    "test print (nop)",
    "test run",
    "vet",
    "write coverage meta-data file",
    "other",
};
constexpr size_t kOtherMode = kModes.size() - 1;

// The index in kModes of `mode`, or kOtherMode.
size_t ModeIndex(std::string_view mode);

// The index of the mode an action description such as "build fmt" or
// "built-in package unsafe" starts with (the longest that fits), or
// kOtherMode.
size_t ModeIndexOfDescription(std::string_view description);

enum class TraceFormat { kActionGraph, kChrome, kUnknown };
std::string_view FormatName(TraceFormat format);

// The latency histograms' bucket bounds, in seconds: 100 µs (a cache hit on
// a warm page cache) to 60 s (a long link or test run).
const std::vector<double>& LatencyBuckets();

struct LatencyHistogram {
  // One count per bucket, then the observations above the last bound.
  std::array<uint64_t, 19> counts{};
  double sum = 0;

  void Observe(double seconds);
  uint64_t count() const;
  void Merge(const LatencyHistogram& other);
};

struct ModeTally {
  uint64_t hits = 0;
  uint64_t misses = 0;
  LatencyHistogram cache_read;   // hits: the whole action
  LatencyHistogram cache_write;  // misses: the action outside its command
  LatencyHistogram duration_hit, duration_miss, duration_unknown;

  void Merge(const ModeTally& other);
};

struct TraceTally {
  std::array<ModeTally, kModes.size()> modes{};
  // Files by format (TraceFormat) and outcome (ok, error).
  std::array<std::array<uint64_t, 2>, 3> files{};

  // An action from an action graph: `ran_command` tells a miss from a hit.
  void AddAction(size_t mode, bool ran_command, double seconds, double command_seconds);
  // An action span from a Chrome trace, which cannot tell hits from misses.
  void AddSpan(size_t mode, double seconds);
  void CountFile(TraceFormat format, bool ok);
  void Merge(const TraceTally& other);
};

// The trace collector's families (the README's metric table). Families without samples
// are left out.
std::vector<prometheus::MetricFamily> Render(const TraceTally& tally);

}  // namespace gocache::trace
