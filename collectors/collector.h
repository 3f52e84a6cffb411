// The collector contract, after node_exporter's collector/collector.go: a
// collector has a name, a default state and a factory, and one job, turning
// what it observed into metric families. The exporter decides when it runs.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cache/cache_dir.h"
#include "cache/scan_service.h"

namespace cxxopts {
class Options;
class ParseResult;
}  // namespace cxxopts

namespace gocache {

// What one update observed. An update that could only see part of what it
// watches reports both the families it has and the errors: the families are
// still exposed, and the collector's success is 0.
struct CollectResult {
  std::vector<prometheus::MetricFamily> families;
  std::vector<std::string> errors;
};

class Collector {
 public:
  virtual ~Collector() = default;

  // Observes once. Must be safe to call from a worker thread; calls to one
  // collector never overlap.
  virtual CollectResult Update() = 0;
};

// Shared state a factory may use. Lives as long as the exporter.
struct CollectorContext {
  const std::vector<CacheDir>& caches;
  std::shared_ptr<const ScanService> scans;
  const cxxopts::ParseResult& flags;
};

// When a collector runs: at every scrape (cheap work, bounded by the scrape
// timeout), or in the background every `interval`, publishing a snapshot that
// scrapes render.
struct Schedule {
  static Schedule AtScrape() { return {}; }
  static Schedule Every(std::chrono::milliseconds interval) { return {interval}; }
  bool at_scrape() const { return interval.count() == 0; }
  std::chrono::milliseconds interval{0};
};

struct CollectorInfo {
  std::string name;
  std::string help;
  bool enabled_by_default;
  // Adds the collector's own `--<name>.<option>` flags; may be empty.
  std::function<void(cxxopts::Options&)> add_flags;
  // Checks the collector's flag values; returns an error message naming the
  // flag, or an empty string.
  std::function<std::string(const cxxopts::ParseResult&)> validate_flags;
  std::function<Schedule(const cxxopts::ParseResult&)> schedule;
  // Makes the collector; null when its flags give it nothing to do (it then
  // does not run and reports nothing).
  std::function<std::unique_ptr<Collector>(const CollectorContext&)> factory;
  // What the collector reads from the shared background scans of the caches.
  ScanDepth scan_depth = ScanDepth::kNone;
};

}  // namespace gocache
