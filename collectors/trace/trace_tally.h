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

// The `mode` label: the go command's action modes whose results it keeps in
// the build cache (compiles, links, vet runs, test runs), each by name; every
// other mode (nop, built-in package, link-install, test print, the top-level
// go build or go test, ...) is "other", which keeps the label, and the series,
// bounded. No other mode starts with one of these followed by a space, so an
// action description ("build fmt", "link-install x") maps by its prefix.
constexpr std::array<std::string_view, 5> kModes = {"build", "link", "vet", "test run", "other"};
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
// a warm page cache) to 60 s (a long link or test run), 1 and 5 per decade:
// enough for a heatmap, few enough for a fleet.
inline constexpr std::array<double, 11> kLatencyBuckets = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
                                                           0.1,    0.5,    1,     5,     60};

struct LatencyHistogram {
  // One count per bucket, then the observations above the last bound.
  std::array<uint64_t, kLatencyBuckets.size() + 1> counts{};
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
  // Whole actions that ran a command, and those of Chrome traces, which
  // cannot tell hits from misses. A hit's duration is its cache_read.
  LatencyHistogram duration_miss, duration_unknown;

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
