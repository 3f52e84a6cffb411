// Scans every cache directory in the background, one pass per interval, and
// publishes each result as an immutable snapshot. Collectors that need the
// tree (inode for its size, density for its layout) read the latest one, so a
// scrape never waits for a walk.
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

namespace gocache {

// What the enabled collectors need from a scan.
enum class ScanDepth {
  kNone,    // no scan at all
  kCount,   // count inodes (no per-file status)
  kCensus,  // also stat every file and read every action entry
};

// The outcome of one scan of one cache.
struct ScanSnapshot {
  ScanResult walk;
  std::optional<CacheCensus> census;  // with ScanDepth::kCensus and a readable root
  uint64_t errors_total = 0;          // unreadable entries over every scan so far
};

// Why a scan is not a complete success, worded for a collector's errors;
// empty when it is, and when the cache directory does not exist.
std::string ScanProblem(const std::string& path, const ScanSnapshot& scan);

class ScanService {
 public:
  ScanService(std::vector<CacheDir> caches, std::chrono::milliseconds interval, ScanDepth depth,
              int threads = 2);
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
    std::vector<CacheState> caches;  // touched only by the scanning thread
    mutable std::mutex mu;
    std::map<std::string, std::shared_ptr<const ScanSnapshot>> latest;
  };
  static void ScanAll(Shared& shared, const std::function<bool()>& stop);
  static std::shared_ptr<ScanSnapshot> ScanOne(CacheState& state, ScanDepth depth, int threads,
                                               const std::function<bool()>& stop);

  const std::chrono::milliseconds interval_;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Worker> worker_;
};

}  // namespace gocache
