// The go command's build cache as the go command itself reads and writes it
// (cmd/go/internal/cache DiskCache): what a GOCACHEPROG helper needs to serve
// gets and puts from a directory that a plain go command can share.
//
// Differences from the go command, all invisible to it: an output and an
// action entry are written under a temporary name in their shard and renamed
// into place, so no reader ever sees half an entry; a get checks that the
// output exists with the recorded size (the go command checks that later,
// in GetFile); an output already present with the right size is kept.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cache/build_cache.h"
#include "cache/cache_trim.h"

namespace gocache {

// Why a get missed: kNone for a get that did not; kRemote for a miss a
// wrapped helper answered (it does not say why).
enum class MissReason { kNone, kNoEntry, kCorrupt, kOutputMissing, kSizeMismatch, kRemote };

// Their names, as the `reason` label: "-" for kNone.
inline constexpr std::array<std::string_view, 6> kMissReasonNames = {
    "-", "no_entry", "corrupt", "output_missing", "size_mismatch", "remote"};

inline std::string_view MissReasonLabel(MissReason reason) {
  return kMissReasonNames[static_cast<size_t>(reason)];
}

struct CacheHit {
  buildcache::Id output_id;
  int64_t size = 0;
  int64_t time_ns = 0;      // when the entry was written
  std::string output_path;  // absolute: the output file
};

struct GetResult {
  std::optional<CacheHit> hit;
  MissReason miss = MissReason::kNoEntry;  // without a hit and without an error
  std::string error;                       // set: the entry could not be read
};

struct PutResult {
  std::string output_path;  // set on success
  std::string error;        // set on failure; nothing of the put is left then
};

class DiskCache {
 public:
  // Opens the cache directory `dir` (absolute), creating the shard
  // directories the way the go command's Open does. None, with `error`,
  // when `dir` is not a directory that can be written.
  static std::optional<DiskCache> Open(const std::string& dir, std::string& error);

  const std::string& dir() const { return dir_; }

  // Looks up an action; on a hit marks the entry and its output used (their
  // mtime set to now, at most once per kMtimeIntervalSeconds).
  GetResult Get(const buildcache::Id& action) const;

  // Stores `body` as the output `output` of `action`: the output first, then
  // the action entry that names it.
  PutResult Put(const buildcache::Id& action, const buildcache::Id& output,
                std::string_view body) const;

  // The go command's trim (Trim): when trim.txt says the last one was a day
  // ago or more, records now there and removes the entries unused for
  // kTrimCutoffSeconds. None when it was not due; the trim's result else.
  std::optional<TrimResult> TrimIfDue(std::string& error) const;

 private:
  explicit DiskCache(std::string dir) : dir_(std::move(dir)) {}
  bool WriteAndRename(const std::string& path, std::string_view content, std::string& error) const;

  std::string dir_;
};

}  // namespace gocache
