// The bounds a GOCACHEPROG helper keeps as it writes (`gocache_exporter
// cacheprog --max-bytes --max-inode-usage`), agreed on by every helper on
// the cache through a few files of their own in <cache>/.gocacheprog/:
//
//   state       the bytes the cache's entries hold: a running total, kept
//               under an exclusive lock on this file, exact after each
//               eviction (which walks the cache) and counted up by each put;
//   held/<pid>  the outputs each running helper handed to its go command,
//               which no eviction may remove until that helper ends;
//   lock        shared by a get that looks an entry up and holds it,
//               exclusive for an eviction: a get either finishes holding
//               its output before an eviction lists the holds, or looks up
//               after the eviction is done.
//
// A put that would cross a bound first evicts the least recently used
// entries (an action with its output) down to a low-water mark, so that few
// puts pay for a walk of the cache. Starting needs no walk: the total is
// read, not counted. Go commands writing the directory without a helper are
// not counted until the next eviction or daily trim recounts it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "cache/build_cache.h"
#include "cache/cache_trim.h"
#include "cache/disk_cache.h"

namespace gocache {

struct CacheLimits {
  std::optional<uint64_t> max_bytes = {};      // of the entries (st_size)
  std::optional<double> max_inode_usage = {};  // of the cache's filesystem, 0..1
  double low_water = 0.9;                      // an eviction goes down to this share of a bound
  bool any() const { return max_bytes || max_inode_usage; }
};

// What one eviction removed, and for which bound.
struct Eviction {
  TrimBound bound = TrimBound::kBytes;
  uint64_t entries = 0, bytes = 0;
};

class CacheBudget {
 public:
  // Opens (making it) the helpers' shared state of the cache `dir`.
  static std::optional<CacheBudget> Open(const std::string& dir, const CacheLimits& limits,
                                         std::string& error);
  CacheBudget(CacheBudget&& other) noexcept;
  CacheBudget& operator=(CacheBudget&&) = delete;
  ~CacheBudget();

  // A get of `action` from `cache` whose output, on a hit, this process
  // holds for its go command. Every method is safe from any thread.
  GetResult GetAndHold(const DiskCache& cache, const buildcache::Id& action);

  // Records that this process hands `output` (a put's) to its go command.
  void Hold(const buildcache::Id& output);

  // Makes room for a put that adds up to `bytes` bytes and `files` files:
  // when that would cross a bound, evicts first. Returns the eviction, if
  // one ran; `error` says what went wrong if the room could not be made
  // (the put goes ahead: a bound never fails a build).
  std::optional<Eviction> Reserve(uint64_t bytes, uint64_t files, std::string& error);

  // The cache changed behind the total (the daily trim): the next Reserve
  // recounts.
  void Recount();

  // This process's go command is done with what it was handed: nothing is
  // held for it any longer (also at destruction).
  void ReleaseHolds();

 private:
  CacheBudget(std::string dir, const CacheLimits& limits, int state_fd, int lock_fd)
      : dir_(std::move(dir)), limits_(limits), state_fd_(state_fd), lock_fd_(lock_fd) {}
  std::vector<buildcache::Id> ReadHeld() const;
  void AppendHold(const buildcache::Id& output);  // with the lock shared
  // The lock file shared by this process's threads: the first to come
  // takes the flock, the last to go releases it (one thread's LOCK_UN
  // would release it for all, the flock being the open file's).
  void LockShared();
  void UnlockShared();

  std::string dir_;
  CacheLimits limits_;
  int state_fd_ = -1;
  int lock_fd_ = -1;
  int held_fd_ = -1;  // this process's held/<pid>, opened on first use
  // The file locks order processes; these, the threads of one (a flock
  // belongs to the open file, which its threads share).
  std::unique_ptr<std::mutex> state_mu_ = std::make_unique<std::mutex>();
  std::unique_ptr<std::shared_mutex> lock_mu_ = std::make_unique<std::shared_mutex>();
  std::unique_ptr<std::mutex> held_mu_ = std::make_unique<std::mutex>();
  std::unique_ptr<std::mutex> readers_mu_ = std::make_unique<std::mutex>();
  int readers_ = 0;
};

}  // namespace gocache
