// The census of one build cache kept file by file, so that it can follow the
// cache as it changes: a changed file is looked at again and put in its
// place, and only the totals of the shards it touched are added up again.
// The walk's census (entry_census) reads the same facts in one pass and keeps
// only what the next walk needs; this keeps what a change needs to be undone.
//
// Pure bookkeeping: what is in the directories is told to it (census_watch
// looks), which keeps the rules testable without a file system.
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cache/entry_census.h"

namespace gocache {

// st_blocks as the index keeps it: 512-byte units, up to 2 TiB a file.
uint32_t Blocks(const struct stat& status);

// Records are packed to 4-byte alignment: a million entries take 36 MiB
// instead of 40. A packed member may be misaligned: read it by value, never
// bind a reference to it (std::pair's constructor, std::min, gtest macros).
#pragma pack(push, 4)
// An action entry as last looked at. 44 bytes.
struct ActionRecord {
  uint64_t key;  // IdKey of its name
  int64_t mtime_ns;
  int64_t size;
  uint64_t output_key;
  int64_t output_size;  // IndexedAction::kCorrupt when it did not parse
  uint32_t blocks;
  bool operator==(const ActionRecord&) const = default;
};

// An output entry as last looked at. 28 bytes.
struct OutputRecord {
  uint64_t key;
  int64_t mtime_ns;
  int64_t size;
  uint32_t blocks;
  bool operator==(const OutputRecord&) const = default;
};
#pragma pack(pop)
static_assert(sizeof(ActionRecord) == 44 && sizeof(OutputRecord) == 28);

// Any other file: README, trim.txt, a name that is no entry of its shard.
struct OtherFile {
  int64_t mtime_ns;
  int64_t size;
  int64_t allocated;
  bool operator==(const OtherFile&) const = default;
};
using OtherFiles = std::map<std::string, OtherFile, std::less<>>;

// A directory that is not a shard (fuzz/, or one inside a shard) with all
// below it: few and small in a build cache, so counted whole when it changes.
struct SubtreeTally {
  uint64_t inodes = 0;  // itself included
  uint64_t directories = 0;
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t allocated = 0;
  bool operator==(const SubtreeTally&) const = default;
};
using Subtrees = std::map<std::string, SubtreeTally, std::less<>>;  // by name in their parent

// Everything in one shard directory.
struct ShardContents {
  std::vector<ActionRecord> actions;  // sorted by key
  std::vector<OutputRecord> outputs;  // sorted by key
  OtherFiles others;
  Subtrees subtrees;
};

// What a look at one name in a shard found: the name's new state, or none
// when it is gone. Exactly one of the records is set for a file.
struct NameState {
  std::string name;
  std::optional<ActionRecord> action;
  std::optional<OutputRecord> output;
  std::optional<OtherFile> other;
  std::optional<SubtreeTally> subtree;
};

class CensusIndex {
 public:
  CensusIndex();

  // A name directly in the root looked at again (not a shard's): a file, a
  // directory, or neither (gone).
  void ApplyRoot(const std::string& name, std::optional<OtherFile> file,
                 std::optional<SubtreeTally> subtree);
  void ClearRoot();
  const OtherFiles& root_files() const { return root_files_; }
  const Subtrees& root_subtrees() const { return root_subtrees_; }

  // A shard directory appeared or was looked at whole; `dir_size` is its
  // st_size.
  void ReplaceShard(int shard, ShardContents contents, int64_t dir_size);
  void RemoveShard(int shard);
  void SetShardDirSize(int shard, int64_t dir_size);
  bool shard_present(int shard) const { return shards_[shard].present; }
  const ShardContents& shard(int shard) const { return shards_[shard].contents; }

  // What the index holds of a file in a shard (kRoot: in the root), if
  // anything: to tell whether a new stat changes it.
  static constexpr int kRoot = 256;
  std::optional<OtherFile> Facts(int unit, const std::string& name) const;

  // Names in one shard looked at again, in any order; a name may repeat (the
  // last look wins).
  void Apply(int shard, std::vector<NameState> looks);

  // The census at `now_ns`: shards that changed or whose entries crossed an
  // age bound since the last call are added up again, the rest reused.
  CacheCensus Census(int64_t now_ns);
  // When the census next changes with the clock alone (an entry crosses an
  // age bound or the trim cutoff), as of the last Census().
  int64_t next_change_ns() const;
  // Files and directories: `find ROOT | wc -l`.
  uint64_t inodes() const;
  uint64_t directories() const;

  // How many of one shard's names differ from `fresh`, a new look at the same
  // directory: what a verifying walk reports as drift. Allocation is not
  // compared for `unsettled` names, which the file system may still change.
  size_t Differences(int shard, const ShardContents& fresh,
                     const std::vector<std::string>& unsettled) const;

 private:
  // The totals of one shard's own files at a time.
  struct ShardTally {
    std::array<uint64_t, 3> entries{};
    std::array<uint64_t, 3> bytes{};
    uint64_t allocated = 0;
    uint64_t corrupt = 0;
    EntrySizes sizes;
    std::array<uint64_t, kAgeBuckets.size() + 1> age_counts{};
    uint64_t trimmable_entries = 0;
    uint64_t trimmable_bytes = 0;
    // The age sum moves with the clock: at `at_ns` it was `age_sum`, and
    // `aged` entries (mtime not in the future) add a second each second.
    int64_t at_ns = 0;
    double age_sum = 0;
    uint64_t aged = 0;
    // When the next entry crosses an age bound or the trim cutoff.
    int64_t next_change_ns = 0;
  };
  // How one shard's outputs pair with the actions that name them.
  struct PairTally {
    uint64_t action_without_output = 0;
    uint64_t output_without_action = 0;
    uint64_t size_mismatch = 0;
  };
  // (output key, recorded size) of every valid action naming an output in
  // this shard, sorted; and the changes to it not yet merged in.
  struct References {
    std::vector<std::pair<uint64_t, int64_t>> sorted;
    std::vector<std::pair<std::pair<uint64_t, int64_t>, int>> pending;  // +1 or -1
  };
  struct Shard {
    bool present = false;
    int64_t dir_size = 0;
    ShardContents contents;
    References references;
    ShardTally tally;
    bool tally_stale = true;
    PairTally pairs;
    bool pairs_stale = true;
  };

  void Reference(const ActionRecord& action, int delta);
  static ShardTally Tally(const ShardContents& contents, int64_t now_ns);
  static void MergePending(References& references);
  static PairTally Pair(const std::vector<OutputRecord>& outputs, References& references);

  std::array<Shard, 256> shards_;
  OtherFiles root_files_;
  Subtrees root_subtrees_;
};

}  // namespace gocache
