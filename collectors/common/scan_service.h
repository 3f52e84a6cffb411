// Scans every cache directory in the background, one pass per interval, and
// publishes each result as an immutable snapshot. Collectors that need the
// tree (inode for its size, density for its layout) read the latest one, so a
// scrape never waits for a walk.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "collectors/common/cache_dir.h"
#include "collectors/common/cache_scanner.h"
#include "exporter/worker.h"

namespace gocache {

class ScanService {
 public:
  ScanService(std::vector<CacheDir> caches, std::chrono::milliseconds interval);
  ~ScanService();

  void Start();
  void Stop(std::chrono::milliseconds grace);
  // Scans every cache once on the calling thread (for --once).
  void ScanAllNow();

  // The latest completed scan of `path`, or nullptr before the first.
  std::shared_ptr<const ScanResult> Latest(const std::string& path) const;

 private:
  struct Shared {
    std::vector<CacheDir> caches;
    mutable std::mutex mu;
    std::map<std::string, std::shared_ptr<const ScanResult>> latest;
  };
  static void ScanAll(Shared& shared, const std::function<bool()>& stop);

  const std::chrono::milliseconds interval_;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Worker> worker_;
};

}  // namespace gocache
