// The collector contract, after node_exporter's collector/collector.go: a
// collector has a name, a default state and a factory, and one job, turning
// what it observed into metric families. The exporter decides when it runs.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "base/flags.h"
#include "cache/cache_dir.h"
#include "cache/scan_service.h"

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

  // Starts and stops work of the collector's own that runs between updates
  // (a service on a worker of its own), in a running exporter; --once calls
  // neither. Stop waits up to `grace`. Both may run while an update does.
  virtual void Start() {}
  virtual void Stop(std::chrono::milliseconds /*grace*/) {}
};

// Shared state a collector's maker may use. Lives as long as the exporter.
struct CollectorContext {
  const std::vector<CacheDir>& caches;
  std::shared_ptr<const ScanService> scans;
  std::string procfs = "/proc";  // where /proc is mounted (--path.procfs)
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

// A collector whose flags are parsed: when it runs, and how to make it from
// its typed configuration (captured in `make`).
struct ConfiguredCollector {
  Schedule schedule;
  // Empty when the configuration gives it nothing to do (no --stale.module,
  // no --trace.dir): it then does not run and reports nothing.
  std::function<std::unique_ptr<Collector>(const CollectorContext&)> make;
};

// What parsing a collector's flags gives: the configured collector, or a
// usage error naming the flag (the exporter exits 2 with it).
using Configured = std::variant<ConfiguredCollector, std::string>;

struct CollectorInfo {
  std::string name;
  std::string help;
  bool enabled_by_default;
  // Adds the collector's own `--<name>.<option>` flags; may be empty.
  std::function<void(FlagSet&)> add_flags;
  // Parses the collector's flags, once, whether or not it is enabled (a bad
  // value is an error either way).
  std::function<Configured(const ParsedFlags&)> configure;
  // What the collector reads from the shared background scans of the caches.
  ScanDepth scan_depth = ScanDepth::kNone;
};

}  // namespace gocache
