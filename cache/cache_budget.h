// The bounds a GOCACHEPROG helper keeps as it writes (`gocache_exporter
// cacheprog --max-bytes --max-inode-usage`), agreed on by every helper on
// the cache through a few files of their own in <cache>/.gocacheprog/:
//
//   state       the bytes the cache's entries hold: a running total, kept
//               under an exclusive lock on this file, exact after each
//               eviction (which walks the cache) and counted up by each put;
//   held/<pid>  the outputs each running helper handed to its go command,
//               which no eviction may remove until that helper ends.
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
#include <string>
#include <vector>

#include "cache/build_cache.h"
#include "cache/cache_trim.h"

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

  // Records that this process handed `output` to its go command. Hold and
  // Reserve are safe from any thread.
  void Hold(const buildcache::Id& output);

  // Makes room for a put that adds up to `bytes` bytes and `files` files:
  // when that would cross a bound, evicts first. Returns the eviction, if
  // one ran; `error` says what went wrong if the room could not be made
  // (the put goes ahead: a bound never fails a build).
  std::optional<Eviction> Reserve(uint64_t bytes, uint64_t files, std::string& error);

  // The cache changed behind the total (the daily trim): the next Reserve
  // recounts.
  void Recount();

 private:
  CacheBudget(std::string dir, const CacheLimits& limits, int state_fd)
      : dir_(std::move(dir)), limits_(limits), state_fd_(state_fd) {}
  // With mu_ held.
  std::vector<buildcache::Id> ReadHeld() const;

  std::string dir_;
  CacheLimits limits_;
  int state_fd_ = -1;
  int held_fd_ = -1;  // this process's held/<pid>, opened on first use
  // The file lock orders processes; this, the threads of one (a flock is
  // the open file's, shared by its threads).
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();
};

}  // namespace gocache
