// Scans every cache directory in the background and publishes each result as
// an immutable snapshot. Collectors that need the tree (inode for its size,
// density for its layout) read the latest one, so a scrape never waits for a
// walk. A build cache's census follows it by inotify events where it can
// (census_watch), with a snapshot at most once a second while it changes;
// other caches are walked whole, one pass per interval.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/worker.h"
#include "cache/cache_dir.h"
#include "cache/cache_scanner.h"
#include "cache/entry_census.h"
#include "cache/scan_snapshot.h"

namespace gocache {

// What the enabled collectors need from a scan.
enum class ScanDepth {
  kNone,    // no scan at all
  kCount,   // count inodes (no per-file status)
  kCensus,  // also stat every file and read every action entry
};

// Why a scan is not a complete success, worded for a collector's errors;
// empty when it is, and when the cache directory does not exist.
std::string ScanProblem(const std::string& path, const ScanSnapshot& scan);

struct EventOptions {
  bool enabled = false;  // follow build caches by events where the census is wanted
  std::chrono::milliseconds verify_interval = std::chrono::hours(1);
};

class ScanService {
 public:
  ScanService(std::vector<CacheDir> caches, std::chrono::milliseconds interval, ScanDepth depth,
              int threads = 2, EventOptions events = {});
  ~ScanService();

  void Start();
  void Stop(std::chrono::milliseconds grace);
  // Scans every cache once on the calling thread (for --once and benchmarks).
  void ScanAllNow();

  // Ends the pause before the next scan (a watched directory has appeared).
  void RequestScan() const;

  // The latest completed scan of `path`, or nullptr before the first.
  std::shared_ptr<const ScanSnapshot> Latest(const std::string& path) const;

 private:
  struct CacheState {
    CacheDir cache;
    ActionIndex index;   // from the previous scan
    size_t outputs = 0;  // seen by the previous scan
    uint64_t errors_total = 0;
  };
  struct Shared {
    ScanDepth depth;
    int threads;
    // Touched only by the thread that scans them: the walking one, or, while
    // it follows them, the events one.
    std::vector<CacheState> caches;
    mutable std::mutex mu;
    std::vector<bool> walked;  // per cache: whether the walking thread scans it
    std::map<std::string, std::shared_ptr<const ScanSnapshot>> latest;
    void Publish(const std::string& path, std::shared_ptr<const ScanSnapshot> snapshot);
  };
  static void ScanAll(Shared& shared, const std::function<bool()>& stop, bool all);
  static void FollowEvents(Shared& shared, const EventOptions& options,
                           const Worker::Control& control);
  static std::shared_ptr<ScanSnapshot> ScanOne(CacheState& state, ScanDepth depth, int threads,
                                               const std::function<bool()>& stop);

  const std::chrono::milliseconds interval_;
  const EventOptions events_;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<Worker> events_worker_;
};

}  // namespace gocache
