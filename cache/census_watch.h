// Follows build caches by inotify events instead of walking them: a watch on
// the root and on every shard directory (and on the few other directories)
// tells which names changed, and only those are looked at again. Events are
// hints, never trusted for what they say: a changed name is stat'ed (and an
// action entry read) afresh, so their order and coalescing do not matter.
//
// What events cannot tell is covered by looking again: files written in the
// last minute are stat'ed each second until writeback has allocated their
// blocks (delayed allocation changes st_blocks with no event), a lost event
// (queue overflow, a lost watch) walks the whole cache, and a verifying walk
// now and then counts what the events missed as drift.
#pragma once

#include <sys/types.h>

#include <array>
#include <bitset>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cache/cache_dir.h"
#include "cache/census_index.h"
#include "cache/scan_snapshot.h"

namespace gocache {

// Whether inotify sees every change on the file system holding `path`: not on
// network and FUSE file systems, where other hosts and processes change files
// behind the kernel's back. Empty when it does, else the reason.
std::string EventsUnsupportedReason(const std::string& path);

class CensusWatch {
 public:
  // `inotify_fd` may be shared with other caches' watches.
  CensusWatch(CacheDir cache, int inotify_fd);
  ~CensusWatch();  // removes its watches
  CensusWatch(const CensusWatch&) = delete;
  CensusWatch& operator=(const CensusWatch&) = delete;

  enum class WalkResult {
    kDone,
    kNoRoot,     // the cache directory is missing or unreadable: tried again each tick
    kNoWatches,  // a watch could not be set (watch_error() says why): events cannot serve
  };
  // Looks at the whole cache again and sets its watches: at start, after a
  // lost event, and to verify (then names that differ from what the events
  // kept are counted as drift). `drain` reads pending events, of every cache,
  // so that none are lost while a large cache is walked.
  WalkResult Walk(bool verify, const std::function<void()>& drain);
  const std::string& watch_error() const { return watch_error_; }
  bool needs_walk() const { return needs_walk_; }

  // Whether `wd` is one of this cache's watches.
  bool Owns(int wd) const;
  void OnEvent(int wd, uint32_t mask, std::string_view name, int64_t now_ns);
  // Events were lost (the queue overflowed): the next tick walks.
  void Lost() { needs_walk_ = lost_ = true; }
  // Whether events were lost since the last call.
  bool TakeLost() { return std::exchange(lost_, false); }
  uint64_t drift_total() const { return drift_total_; }

  // Looks at the names events reported and at unsettled files. Returns true
  // when the census changed (also by the clock alone).
  bool Tick(int64_t now_ns);
  std::shared_ptr<ScanSnapshot> Snapshot(int64_t now_ns);

  const CacheDir& cache() const { return cache_; }

 private:
  static constexpr int kRoot = CensusIndex::kRoot;  // the unit of names directly in the root
  // What a watch covers: a unit's names (a shard, or the root), or, for a
  // directory below a name in a unit, that name.
  struct Watched {
    int unit;
    std::string name;  // empty for the unit's own directory
  };

  int AddWatch(const std::string& path, int unit, const std::string& name);
  void RemoveWatches(int unit, const std::string& name);
  void RemoveAllWatches();
  std::string UnitPath(int unit) const;

  NameState LookAt(int dir_fd, int unit, const std::string& name);
  SubtreeTally TallySubtree(int parent_fd, const std::string& name, const std::string& path,
                            int unit, const std::string& top, int depth);
  bool Excluded(const struct stat& status) const;
  ShardContents ListShard(int shard, int dir_fd);
  // Looks again at the names of `unit` that events reported.
  void ApplyNames(int unit);
  void LookAtRootName(int root_fd, const std::string& name);
  // A shard directory (new, or seen through a lost watch) listed whole.
  bool FollowShard(int root_fd, int shard, bool verify, const std::function<void()>& drain);
  void Fail(int unit, const std::string& name, int err);
  void FailFile(int unit, const std::string& name, int err);
  void ForgetFailures(int unit);
  void RecheckUnsettled(int64_t now_ns);
  void NoteWritten(int unit, const std::string& name, const struct stat& st);

  const CacheDir cache_;
  const int inotify_fd_;
  const int64_t settle_ns_;
  CensusIndex index_;
  std::map<int, Watched> watches_;
  std::array<int, 256> shard_wd_;
  dev_t device_ = 0;
  std::vector<std::pair<dev_t, ino_t>> excluded_;
  bool noatime_ = true;

  std::array<std::vector<std::string>, kRoot + 1> dirty_;
  std::array<uint64_t, kRoot + 1> events_seen_{};
  std::bitset<256> dir_changed_;
  // Names written recently, until their allocation has settled.
  std::map<std::pair<int, std::string>, int64_t> unsettled_;
  std::map<std::pair<int, std::string>, std::string> unreadable_;
  std::set<std::pair<int, std::string>> unreadable_files_;
  bool needs_walk_ = true;
  bool lost_ = false;
  bool changed_ = true;
  int64_t clock_change_ns_ = 0;
  std::string watch_error_;

  ScanResult last_walk_;
  std::optional<int64_t> last_trim_;
  uint64_t errors_total_ = 0;
  uint64_t drift_total_ = 0;
};

// One inotify instance for every cache followed by events.
class EventCensus {
 public:
  // None when inotify cannot be used (`error` says why).
  static std::unique_ptr<EventCensus> Open(std::string& error);
  ~EventCensus();

  CensusWatch& Follow(CacheDir cache);
  void Unfollow(const std::string& path);
  std::vector<std::unique_ptr<CensusWatch>>& caches() { return caches_; }
  int fd() const { return fd_; }
  // Reads every pending event and hands it to its cache.
  void Drain();

 private:
  explicit EventCensus(int fd) : fd_(fd) {}
  const int fd_;
  std::vector<std::unique_ptr<CensusWatch>> caches_;
};

}  // namespace gocache
