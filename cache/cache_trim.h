// A size-bounded trim of a build cache, least recently used first: what the
// `trim` command and the exporter's opt-in automatic trim do. Unlike the go
// command's own trim (by age only, once a day) it takes bounds on bytes,
// inode usage and age.
//
// Safety: it deletes only regular files named "<64 hex>-a" or "<64 hex>-d"
// inside the shard directories "00".."ff" of the cache, found without
// following symbolic links and without leaving the cache's filesystem; an
// action entry goes with its output, and an output that a surviving action
// still references stays. An entry whose mtime changed since it was listed
// (a build just used it) is left alone. trim.txt is not written, so the go
// command's own schedule stays as it was.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace gocache {

// How long an entry is kept after its last use whatever the byte and inode
// bounds say: a trim must not take what the builds running now still use.
inline constexpr std::chrono::seconds kDefaultKeepRecent{3600};

struct TrimBounds {
  std::optional<uint64_t> max_bytes;            // entry bytes (st_size) of actions and outputs
  std::optional<double> max_inode_usage;        // of the filesystem holding the cache, 0..1
  std::optional<std::chrono::seconds> max_age;  // since last use (mtime)
  // Entries used within this long are not removed for max_bytes or
  // max_inode_usage (max_age is explicit and applies anyway). Zero keeps none.
  std::chrono::seconds keep_recent = kDefaultKeepRecent;
  bool any() const { return max_bytes || max_inode_usage || max_age; }
};

enum class TrimBound { kBytes, kInodeUsage };

// A bound that removing every entry the trim may remove would still not meet
// (the filesystem's other files hold more inodes than the bound allows, or
// the recently used entries alone more bytes). The trim removes nothing for
// it, so that a cache is never emptied for nothing.
struct UnreachableBound {
  TrimBound bound;
  double limit;  // bytes, or a usage ratio
  double floor;  // the least that removing every removable entry would leave
};

// What a cache holds, as the trim sees it.
struct CacheUsage {
  uint64_t entries = 0;    // actions and outputs
  uint64_t bytes = 0;      // their st_size
  uint64_t trimmable = 0;  // unused past the go command's own trim cutoff
  // Of the filesystem (statvfs): files 0 means it has no fixed inode table.
  uint64_t files = 0, files_free = 0;
  uint64_t avail_bytes = 0;
  uint64_t used_files() const { return files > files_free ? files - files_free : 0; }
  std::optional<double> inode_usage() const;
};

struct TrimResult {
  uint64_t actions = 0, outputs = 0;  // removed (or, dry run, to remove)
  uint64_t bytes = 0;
  uint64_t skipped = 0;  // used or changed since listed: left alone
  CacheUsage before, after;
  bool bounds_met = false;
  std::vector<UnreachableBound> unreachable;  // bounds it removed nothing for
  std::vector<std::string> errors;            // unreadable shards, failed unlinks
  uint64_t entries() const { return actions + outputs; }
};

struct TrimProgress {
  const char* phase;  // "listing" or "removing"
  uint64_t done, total;
};

struct TrimOptions {
  bool dry_run = false;
  // Called now and then during a long trim (the command's progress line).
  std::function<void(const TrimProgress&)> progress;
  // Asked between removals; true ends the trim early (exporter shutdown).
  std::function<bool()> stop;
  // Outputs that running go commands hold (a GOCACHEPROG helper handed
  // them out), sorted: never removed (the actions naming them may be).
  std::vector<std::array<uint8_t, 32>> held;
};

// Reads the cache's usage: statvfs alone, or with `count_entries` also a
// listing of its shard directories. None, with `error`, when the cache
// directory cannot be read.
std::optional<CacheUsage> MeasureCache(const std::string& dir, bool count_entries,
                                       std::string& error);

// Removes least recently used entries until every bound holds; a byte or
// inode bound that cannot be met is left out (see UnreachableBound). None,
// with `error`, when the cache directory cannot be read at all.
std::optional<TrimResult> TrimCache(const std::string& dir, const TrimBounds& bounds,
                                    const TrimOptions& options, std::string& error);

}  // namespace gocache
