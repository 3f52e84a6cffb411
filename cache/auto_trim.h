// Opt-in automatic trimming: a service that DELETES the least recently used
// entries of the build caches when a trigger holds (the filesystem's inode
// usage, or the entries' bytes), down to a target below the trigger, at most
// once per min_interval. It runs on a worker of its own, as the scan service
// does; the trim collector only reports its counters.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/worker.h"
#include "cache/cache_trim.h"
#include "cache/scan_service.h"

namespace gocache {

struct AutoTrimConfig {
  std::optional<double> trigger_inode_usage;  // of the cache's filesystem, 0..1
  std::optional<uint64_t> trigger_bytes;      // of its entries, from the background scan
  double target_fraction = 0.9;               // trim down to this fraction of the trigger
  std::chrono::milliseconds min_interval{0};  // between two trims of one cache
  std::chrono::milliseconds check_interval{0};
  std::chrono::seconds keep_recent = kDefaultKeepRecent;
  bool any_trigger() const { return trigger_inode_usage || trigger_bytes; }
};

// What the trims of one cache did since the exporter started.
struct AutoTrimCounters {
  uint64_t runs = 0, entries = 0, bytes = 0;  // trims run, entries and bytes removed
  std::map<TrimBound, uint64_t> unreachable;  // runs that found a bound out of reach
  std::optional<double> last_run_unix;        // when the last trim ended
  // What went wrong at the latest check (an unreadable cache, failed
  // removals, a bound out of reach that still holds): the collector fails
  // while there is any.
  std::vector<std::string> problems;
};

class AutoTrimService {
 public:
  // `scans` gives the entry bytes for the byte trigger.
  AutoTrimService(AutoTrimConfig config, std::vector<std::string> caches,
                  std::shared_ptr<const ScanService> scans);
  ~AutoTrimService();

  // Checks the triggers every check_interval on the service's own worker,
  // trimming where one holds.
  void Start();
  void Stop(std::chrono::milliseconds grace);
  // One check of every cache on the calling thread (for --once and tests).
  void CheckNow();

  // The counters of every cache, in the order given.
  std::vector<std::pair<std::string, AutoTrimCounters>> Counters() const;

 private:
  struct Shared {
    AutoTrimConfig config;
    std::vector<std::string> caches;
    std::shared_ptr<const ScanService> scans;
    mutable std::mutex mu;
    std::map<std::string, AutoTrimCounters> counters;  // guarded by mu
    // Messages of bounds out of reach, kept while the trigger holds and the
    // next trim must wait for min_interval. Touched by the checking thread only.
    std::map<std::string, std::vector<std::string>> unreachable;
    std::map<std::string, std::chrono::steady_clock::time_point> last_run;
  };
  static void CheckAll(Shared& shared);
  static void CheckOne(Shared& shared, const std::string& dir);

  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Worker> worker_;
};

}  // namespace gocache
