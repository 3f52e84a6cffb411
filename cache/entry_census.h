// What a scan learns about a cache's entries, tallied during the same walk:
// entries and bytes by type, shard spread, broken entries, ages, and what the
// go command's next trim would delete. Shared by the density collector and the
// companion commands.
#pragma once

#include <sys/stat.h>

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/build_cache.h"
#include "cache/cache_dir.h"
#include "cache/cache_scanner.h"

namespace gocache {

// Upper bounds (seconds) of gocache_entry_age_seconds.
inline constexpr std::array<double, 8> kAgeBuckets = {3600,   21600,  86400,   172800,
                                                      432000, 604800, 1209600, 2592000};

// Upper bounds (bytes) of gocache_entry_size_bytes: a few hundred bytes (an
// action entry, a small vet or test result) to 64 MiB (a large archive or
// linked binary), a factor of 4 apart.
inline constexpr std::array<double, 10> kSizeBuckets = {
    256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864};

// Actions and outputs by apparent size: counts per bucket (not cumulative),
// the last one past kSizeBuckets. Their sums and counts are CacheCensus's
// bytes and entries.
struct EntrySizes {
  std::array<std::array<uint64_t, kSizeBuckets.size() + 1>, 2> counts{};  // by EntryType

  void Add(buildcache::EntryType type, int64_t size);  // kOther is not counted
  EntrySizes& operator+=(const EntrySizes& other);
};

struct CacheCensus {
  // Indexed by buildcache::EntryType.
  std::array<uint64_t, 3> entries{};
  std::array<uint64_t, 3> bytes{};
  uint64_t allocated_bytes = 0;  // st_blocks * 512 over all files
  EntrySizes sizes;

  std::bitset<256> shards_present;
  std::array<uint32_t, 256> shard_entries{};  // actions and outputs per shard
  uint64_t shard_dir_bytes = 0;

  uint64_t corrupt = 0;
  uint64_t action_without_output = 0;
  uint64_t output_without_action = 0;
  uint64_t size_mismatch = 0;

  // Actions and outputs by age; counts per bucket (not cumulative), the last
  // one past kAgeBuckets.
  std::array<uint64_t, kAgeBuckets.size() + 1> age_counts{};
  double age_sum_seconds = 0;

  uint64_t trimmable_entries = 0;
  uint64_t trimmable_bytes = 0;
  std::optional<int64_t> last_trim_unix;
};

// An action entry as a previous scan read it: entries are immutable apart
// from their mtime, so a rescan re-reads only new ones and those whose inode
// changed (its ctime: a new mtime, and also a chmod that may now make it
// unreadable). 32 bytes an entry, sorted by key.
struct IndexedAction {
  uint64_t key;
  int64_t ctime_ns;
  uint64_t output_key;
  int64_t output_size;  // kCorrupt when the entry did not parse
  static constexpr int64_t kCorrupt = -1;
};
using ActionIndex = std::vector<IndexedAction>;

// The age_counts bucket of an entry `age` seconds old.
size_t AgeBucket(double age);

// An action entry file as the census reads it: opened without following a
// link or blocking on a FIFO, stat'ed on the open file, and read with one
// read of one byte more than an entry, to tell a long file from a complete
// one as the go command does.
struct ActionLook {
  bool found = false;  // else vanished (err ENOENT) or unreadable
  int err = 0;
  struct stat status {};
  // The entry's output, or output_size kCorrupt: it does not parse, or it is
  // not a regular file (a symbolic link is stat'ed, never followed or read).
  uint64_t output_key = 0;
  int64_t output_size = IndexedAction::kCorrupt;
};
ActionLook LookAtAction(int dir_fd, std::string_view name, bool& noatime);

// One thread's share of the census.
class CensusVisitor final : public ScanVisitor {
 public:
  CensusVisitor(CacheKind kind, int64_t scan_start_ns, const ActionIndex& previous);

  bool wants_file_status() const override { return true; }
  // Action entries not in the previous scan's index are opened anyway.
  bool StatsItself(std::string_view parent, std::string_view name, int depth) const override;
  void OnFile(int dir_fd, std::string_view parent, std::string_view name, int depth,
              const struct stat* status) override;
  void OnDirectory(std::string_view name, int depth, const struct stat& status) override;

  // Sizes this thread's arrays up front (from the previous scan's counts), so
  // that they do not grow by doubling.
  void Reserve(size_t actions, size_t outputs);

  uint64_t read_errors() const { return read_errors_; }
  const std::string& first_read_error() const { return first_read_error_; }
  uint64_t actions_read() const { return actions_read_; }

 private:
  friend CacheCensus FinishCensus(std::vector<CensusVisitor>& visitors, ActionIndex& index);
  // Reads and parses an action entry: from the index when its inode did not
  // change, else again.
  void ReadAction(int dir_fd, std::string_view name, int64_t ctime_ns);
  const IndexedAction* Known(uint64_t key) const;
  void Fail(std::string_view name, int err);

  const CacheKind kind_;
  const int64_t scan_start_ns_;
  const ActionIndex& previous_;
  bool noatime_ = true;
  CacheCensus census_;
  std::vector<IndexedAction> actions_;
  std::vector<std::pair<uint64_t, int64_t>> outputs_;  // key, size
  uint64_t read_errors_ = 0;
  std::string first_read_error_;
  uint64_t actions_read_ = 0;
};

// Adds the threads' shares up and matches actions with outputs. `index`
// becomes the action index for the next scan. The visitors' arrays are freed
// on the way; the previous index may be freed before this is called (the
// visitors no longer read it), which keeps the peak at one index, not two.
CacheCensus FinishCensus(std::vector<CensusVisitor>& visitors, ActionIndex& index);

}  // namespace gocache
