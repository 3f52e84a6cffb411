#include "cache/entry_census.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/fixtures.h"

namespace gocache {
namespace {

using buildcache::EntryType;
using testing_util::CtimeNs;
using testing_util::GoEntry;
using testing_util::Id;
using testing_util::kNs;
using testing_util::MtimeNs;
using testing_util::SetMtime;
using testing_util::Shard;
using testing_util::TempDir;

constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 24 * kHour;
constexpr size_t kAction = static_cast<size_t>(EntryType::kAction);
constexpr size_t kOutput = static_cast<size_t>(EntryType::kOutput);
constexpr size_t kOther = static_cast<size_t>(EntryType::kOther);

const std::function<bool()> kNeverStop = [] { return false; };

// A scan start in whole seconds, so that ages set relative to it are exact.
int64_t WholeSecondNow() { return static_cast<int64_t>(std::time(nullptr)) * kNs; }

// st_blocks * 512 over every non-directory below root, as we count it.
uint64_t AllocatedBytes(const std::string& root) {
  uint64_t total = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    struct stat st;
    EXPECT_EQ(lstat(entry.path().c_str(), &st), 0) << entry.path();
    if (!S_ISDIR(st.st_mode)) total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

uint64_t DirSize(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size);
}

struct CensusRun {
  CacheCensus census;
  ScanResult walk;
  uint64_t actions_read = 0;
  uint64_t read_errors = 0;
};

// One scan with `threads` census visitors, as the scan service runs it.
// `index` is the previous scan's action index and becomes this scan's.
CensusRun RunCensus(const std::string& root, CacheKind kind, int64_t start_ns, ActionIndex& index,
                    size_t threads = 1) {
  std::vector<CensusVisitor> visitors;
  visitors.reserve(threads);
  for (size_t i = 0; i < threads; ++i) visitors.emplace_back(kind, start_ns, index);
  std::vector<ScanVisitor*> pointers;
  for (auto& v : visitors) pointers.push_back(&v);
  CensusRun run;
  run.walk = ScanTree(root, pointers, kNeverStop);
  for (const auto& v : visitors) {
    run.actions_read += v.actions_read();
    run.read_errors += v.read_errors();
  }
  ActionIndex next;
  run.census = FinishCensus(visitors, next);
  index = std::move(next);
  return run;
}

CensusRun RunCensus(const std::string& root, CacheKind kind, int64_t start_ns, size_t threads = 1) {
  ActionIndex index;
  return RunCensus(root, kind, start_ns, index, threads);
}

void ExpectSameCensus(const CacheCensus& a, const CacheCensus& b) {
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.allocated_bytes, b.allocated_bytes);
  EXPECT_EQ(a.shards_present, b.shards_present);
  EXPECT_EQ(a.shard_entries, b.shard_entries);
  EXPECT_EQ(a.shard_dir_bytes, b.shard_dir_bytes);
  EXPECT_EQ(a.corrupt, b.corrupt);
  EXPECT_EQ(a.action_without_output, b.action_without_output);
  EXPECT_EQ(a.output_without_action, b.output_without_action);
  EXPECT_EQ(a.size_mismatch, b.size_mismatch);
  EXPECT_EQ(a.sizes.counts, b.sizes.counts);
  EXPECT_EQ(a.age_counts, b.age_counts);
  EXPECT_DOUBLE_EQ(a.age_sum_seconds, b.age_sum_seconds);
  EXPECT_EQ(a.trimmable_entries, b.trimmable_entries);
  EXPECT_EQ(a.trimmable_bytes, b.trimmable_bytes);
}

bool SameIndex(const ActionIndex& a, const ActionIndex& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const IndexedAction& x, const IndexedAction& y) {
                      return x.key == y.key && x.ctime_ns == y.ctime_ns &&
                             x.output_key == y.output_key && x.output_size == y.output_size;
                    });
}

class EntryCensusTest : public ::testing::Test {
 protected:
  EntryCensusTest() : root_(tmp_.MakeDir("go-build")) {}

  // Writes `rel` (below the cache root), creating its directory.
  std::string Write(const std::string& rel, const std::string& content) {
    const auto slash = rel.rfind('/');
    if (slash != std::string::npos) tmp_.MakeDir("go-build/" + rel.substr(0, slash));
    return tmp_.WriteFile("go-build/" + rel, content);
  }
  // Writes a file whose mtime is `age_seconds` before `start_ns`.
  std::string WriteAged(const std::string& rel, const std::string& content, int64_t start_ns,
                        int64_t age_seconds) {
    const std::string path = Write(rel, content);
    SetMtime(path, start_ns - age_seconds * kNs);
    return path;
  }
  std::string ActionPath(const std::string& id) { return Shard(id) + "/" + id + "-a"; }
  std::string OutputPath(const std::string& id) { return Shard(id) + "/" + id + "-d"; }
  std::string WriteAction(const std::string& id, const std::string& out, int64_t size) {
    return Write(ActionPath(id), GoEntry(id, out, size));
  }
  std::string WriteOutput(const std::string& id, size_t size) {
    return Write(OutputPath(id), std::string(size, 'o'));
  }

  TempDir tmp_;
  std::string root_;
};

TEST_F(EntryCensusTest, CountsTypesBytesShardsAndBrokenEntries) {
  const std::string o1 = Id(0x7f, 1), o2 = Id(0xff, 2), o3 = Id(0x00, 3), o4 = Id(0x00, 4);
  const std::string missing = Id(0x10, 5);
  const std::string a1 = Id(0x00, 0x11), a2 = Id(0x00, 0x12), a3 = Id(0x7f, 0x13);
  const std::string a4 = Id(0xff, 0x14), a5 = Id(0xff, 0x15);
  WriteOutput(o1, 10);
  WriteOutput(o2, 6);
  WriteOutput(o3, 3);
  WriteOutput(o4, 4);
  WriteAction(a1, o1, 10);
  WriteAction(a2, o2, 5);       // the output has 6 bytes: size_mismatch
  WriteAction(a3, o1, 10);      // a second action with the same output
  WriteAction(a4, missing, 7);  // action_without_output
  // Corrupt (the ID in it is another action's): it references nothing, so
  // o3 stays an output without action.
  Write(ActionPath(a5), GoEntry(Id(0xff, 0x99), o3, 3));
  // Other files: at the root, below fuzz/ (a "01" there is no shard, and a
  // -d file in it no output), not entries, in the wrong shard (a valid entry
  // naming o4, which must not count as referenced), in an uppercase "shard".
  const std::string readme = "This directory holds cached build artifacts.\n";
  const std::string wrong_shard = Id(0x01, 0x21);
  const std::vector<std::pair<std::string, std::string>> others = {
      {"README", readme},
      {"trim.txt", "1700000000"},
      {"fuzz/x/corpus", "go test fuzz v1\n"},
      {"fuzz/01/" + Id(0x01, 0x20) + "-d", "fuzz output"},
      {"00/junk.txt", "junk"},
      {"00/" + wrong_shard + "-a", GoEntry(wrong_shard, o4, 4)},
      {"AB/" + Id(0xab, 0x22) + "-a", GoEntry(Id(0xab, 0x22), o4, 4)},
  };
  uint64_t other_bytes = 0;
  for (const auto& [rel, content] : others) {
    Write(rel, content);
    other_bytes += content.size();
  }

  ActionIndex index;
  const auto run = RunCensus(root_, CacheKind::kBuild, WholeSecondNow(), index);
  const CacheCensus& c = run.census;
  ASSERT_TRUE(run.walk.root_readable);
  EXPECT_EQ(run.walk.errors, 0u) << run.walk.first_error;
  EXPECT_EQ(run.read_errors, 0u);
  EXPECT_EQ(run.actions_read, 5u);

  EXPECT_EQ(c.entries[kAction], 5u);
  EXPECT_EQ(c.entries[kOutput], 4u);
  EXPECT_EQ(c.entries[kOther], others.size());
  EXPECT_EQ(c.bytes[kAction], 5u * 175);
  EXPECT_EQ(c.bytes[kOutput], 10u + 6 + 3 + 4);
  EXPECT_EQ(c.bytes[kOther], other_bytes);
  EXPECT_EQ(c.allocated_bytes, AllocatedBytes(root_));
  EXPECT_GT(c.allocated_bytes, 0u);

  EXPECT_EQ(c.shards_present.count(), 3u);
  EXPECT_TRUE(c.shards_present[0x00]);
  EXPECT_TRUE(c.shards_present[0x7f]);
  EXPECT_TRUE(c.shards_present[0xff]);
  EXPECT_FALSE(c.shards_present[0x01]);  // fuzz/01 is two levels down
  EXPECT_FALSE(c.shards_present[0xab]);  // "AB" is not a shard name
  EXPECT_EQ(c.shard_entries[0x00], 4u);  // a1, a2, o3, o4; not junk.txt nor the misplaced one
  EXPECT_EQ(c.shard_entries[0x7f], 2u);
  EXPECT_EQ(c.shard_entries[0xff], 3u);
  EXPECT_EQ(c.shard_entries[0x01], 0u);
  uint64_t entries_in_shards = 0;
  for (uint32_t n : c.shard_entries) entries_in_shards += n;
  EXPECT_EQ(entries_in_shards, 9u);
  EXPECT_EQ(c.shard_dir_bytes,
            DirSize(root_ + "/00") + DirSize(root_ + "/7f") + DirSize(root_ + "/ff"));

  EXPECT_EQ(c.corrupt, 1u);
  EXPECT_EQ(c.action_without_output, 1u);
  EXPECT_EQ(c.output_without_action, 2u);  // o3 and o4
  EXPECT_EQ(c.size_mismatch, 1u);
  EXPECT_EQ(c.trimmable_entries, 0u);  // all just written
  EXPECT_EQ(c.trimmable_bytes, 0u);
  EXPECT_FALSE(c.last_trim_unix.has_value());  // the scan service reads trim.txt, not the census

  // The index for the next scan: every action read, sorted by key.
  ASSERT_EQ(index.size(), 5u);
  EXPECT_TRUE(std::is_sorted(index.begin(), index.end(),
                             [](const auto& a, const auto& b) { return a.key < b.key; }));
  const auto find = [&index](const std::string& id) -> const IndexedAction* {
    for (const auto& entry : index) {
      if (entry.key == buildcache::IdKey(id)) return &entry;
    }
    return nullptr;
  };
  const auto* first = find(a1);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->output_key, buildcache::IdKey(o1));
  EXPECT_EQ(first->output_size, 10);
  EXPECT_EQ(first->ctime_ns, CtimeNs(root_ + "/" + ActionPath(a1)));
  const auto* corrupt = find(a5);
  ASSERT_NE(corrupt, nullptr);
  EXPECT_EQ(corrupt->output_size, IndexedAction::kCorrupt);
  EXPECT_EQ(find(wrong_shard), nullptr);
}

TEST_F(EntryCensusTest, EmptyCache) {
  const auto run = RunCensus(root_, CacheKind::kBuild, WholeSecondNow());
  EXPECT_TRUE(run.walk.root_readable);
  EXPECT_EQ(run.census.entries, (std::array<uint64_t, 3>{}));
  EXPECT_EQ(run.census.shards_present.count(), 0u);
  EXPECT_EQ(run.census.output_without_action, 0u);
  EXPECT_EQ(run.census.allocated_bytes, 0u);
}

TEST_F(EntryCensusTest, AgesByBucketFromTheScanStart) {
  const int64_t start = WholeSecondNow();
  // Ages in seconds, and the bucket each belongs in (upper bounds inclusive,
  // as Prometheus' le).
  struct Aged {
    int64_t age;
    size_t bucket;
  };
  const std::vector<Aged> outputs = {
      {0, 0},        {3600, 0},      {3601, 1},      {6 * kHour, 1},     {2 * kDay, 3},
      {4 * kDay, 4}, {10 * kDay, 6}, {30 * kDay, 7}, {30 * kDay + 1, 8}, {400 * kDay, 8},
  };
  std::array<uint64_t, kAgeBuckets.size() + 1> want{};
  double want_sum = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string id = Id(0x20 + static_cast<int>(i % 3), i + 1);
    WriteAged(OutputPath(id), "data", start, outputs[i].age);
    ++want[outputs[i].bucket];
    want_sum += static_cast<double>(outputs[i].age);
  }
  // Actions count too.
  const std::string action = Id(0x30, 1);
  WriteAged(ActionPath(action), GoEntry(action, Id(0x20, 1), 4), start, 5 * kDay);
  ++want[4];  // exactly 432000: le="432000"
  want_sum += 5 * kDay;
  const std::string action2 = Id(0x30, 2);
  WriteAged(ActionPath(action2), GoEntry(action2, Id(0x20, 2), 4), start, 6 * kDay);
  ++want[5];
  want_sum += 6 * kDay;
  // A future mtime (clock skew, a copied cache) counts as age 0.
  const std::string future = Id(0x31, 1);
  WriteAged(OutputPath(future), "data", start, -kHour);
  ++want[0];
  // Other files have no age here, however old.
  WriteAged("README", "readme", start, 100 * kDay);
  WriteAged("20/notes.txt", "notes", start, 100 * kDay);
  WriteAged("fuzz/x/corpus", "corpus", start, 100 * kDay);

  const auto run = RunCensus(root_, CacheKind::kBuild, start);
  EXPECT_EQ(run.census.age_counts, want);
  EXPECT_DOUBLE_EQ(run.census.age_sum_seconds, want_sum);
  uint64_t counted = 0;
  for (uint64_t n : run.census.age_counts) counted += n;
  EXPECT_EQ(counted, run.census.entries[kAction] + run.census.entries[kOutput]);
  EXPECT_EQ(counted, outputs.size() + 3);
}

TEST_F(EntryCensusTest, SizesByBucketPerType) {
  // Sizes and the bucket each belongs in (upper bounds inclusive).
  struct Sized {
    size_t size;
    size_t bucket;
  };
  const std::vector<Sized> outputs = {{0, 0},    {256, 0},   {257, 1},    {1024, 1},
                                      {1025, 2}, {70000, 5}, {262144, 5}, {4 * 1048576 + 1, 8}};
  std::array<uint64_t, kSizeBuckets.size() + 1> want_outputs{};
  for (size_t i = 0; i < outputs.size(); ++i) {
    WriteOutput(Id(0x50 + static_cast<int>(i % 4), i + 1), outputs[i].size);
    ++want_outputs[outputs[i].bucket];
  }
  const std::string action = Id(0x60, 1);
  WriteAction(action, Id(0x50, 1), 0);
  // Other files are not entries: no size is counted for them.
  Write("README", std::string(5000, 'r'));
  Write("60/notes.txt", std::string(300, 'n'));

  const auto census = RunCensus(root_, CacheKind::kBuild, WholeSecondNow()).census;
  EXPECT_EQ(census.sizes.counts[kOutput], want_outputs);
  std::array<uint64_t, kSizeBuckets.size() + 1> want_actions{};
  want_actions[0] = 1;  // an action entry is far below 256 bytes
  EXPECT_EQ(census.sizes.counts[kAction], want_actions);
}

TEST_F(EntryCensusTest, FractionalAgesAreSummedInSeconds) {
  const int64_t start = WholeSecondNow();
  const std::string a = Id(0x40, 1), b = Id(0x40, 2);
  SetMtime(WriteOutput(a, 1), start - 1'500'000'000);  // 1.5 s
  SetMtime(WriteOutput(b, 1), start - 250'000'000);    // 0.25 s
  const auto run = RunCensus(root_, CacheKind::kBuild, start);
  EXPECT_DOUBLE_EQ(run.census.age_sum_seconds, 1.75);
  EXPECT_EQ(run.census.age_counts[0], 2u);
}

TEST_F(EntryCensusTest, TrimmableAsTheGoCommandsTrimDecides) {
  const int64_t start = WholeSecondNow();
  constexpr int64_t kCutoff = buildcache::kTrimCutoffSeconds;
  ASSERT_EQ(kCutoff, 5 * kDay + kHour);
  uint64_t want_entries = 0, want_bytes = 0;
  const auto trimmable = [&](const std::string& path) {
    ++want_entries;
    want_bytes = want_bytes + std::filesystem::file_size(path);
  };

  const std::string old_output = Id(0x20, 1), old_action = Id(0x20, 2);
  trimmable(WriteAged(OutputPath(old_output), std::string(100, 'o'), start, kCutoff + 60));
  trimmable(
      WriteAged(ActionPath(old_action), GoEntry(old_action, old_output, 100), start, kCutoff + 60));
  // Used 2 minutes later: survives.
  WriteAged(OutputPath(Id(0x20, 3)), std::string(50, 'o'), start, kCutoff - 60);
  // Exactly at the cutoff: ModTime().Before(cutoff) is false.
  WriteAged(OutputPath(Id(0x20, 4)), std::string(7, 'o'), start, kCutoff);
  // One nanosecond past it.
  const std::string just_past = WriteOutput(Id(0x20, 5), 9);
  SetMtime(just_past, start - kCutoff * kNs - 1);
  trimmable(just_past);
  // In the future: survives.
  WriteAged(OutputPath(Id(0x20, 6)), "f", start, -kDay);
  // trimSubdir removes any old name ending in -a or -d in a shard directory,
  // entry or not: these are type other, and trimmable.
  trimmable(WriteAged("20/stray-a", std::string(11, 's'), start, 6 * kDay));
  trimmable(WriteAged("20/" + Id(0x21, 7) + "-d", std::string(13, 'w'), start, 6 * kDay));
  // Not considered by the trim: other names, files outside shard directories.
  WriteAged("20/notes.txt", "notes", start, 6 * kDay);
  WriteAged("20/" + Id(0x20, 8) + "-b", "b", start, 6 * kDay);
  WriteAged(Id(0x20, 9) + "-d", "at the root", start, 6 * kDay);
  WriteAged("README", "readme", start, 6 * kDay);
  WriteAged("fuzz/x-d", "fuzz", start, 6 * kDay);
  WriteAged("AB/" + Id(0xab, 10) + "-a", "uppercase shard", start, 6 * kDay);
  WriteAged("20/sub/" + Id(0x20, 11) + "-d", "below a shard", start, 6 * kDay);

  const auto run = RunCensus(root_, CacheKind::kBuild, start);
  EXPECT_EQ(run.census.trimmable_entries, want_entries);
  EXPECT_EQ(run.census.trimmable_entries, 5u);
  EXPECT_EQ(run.census.trimmable_bytes, want_bytes);
  EXPECT_EQ(run.census.trimmable_bytes, 100u + 175 + 9 + 11 + 13);
  // stray-a and the misplaced output are other, not entries.
  EXPECT_EQ(run.census.entries[kAction], 1u);
  EXPECT_EQ(run.census.entries[kOutput], 5u);
}

TEST_F(EntryCensusTest, ModCacheOnlyCountsBytes) {
  const std::string mod = tmp_.MakeDir("pkg/mod");
  const int64_t start = WholeSecondNow();
  const std::string id = Id(0xab, 1);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"cache/download/golang.org/x/text/@v/v0.3.0.zip", std::string(1000, 'z')},
      {"cache/download/golang.org/x/text/@v/v0.3.0.mod", "module golang.org/x/text\n"},
      {"golang.org/x/text@v0.3.0/go.mod", "module golang.org/x/text\n"},
      // Named like build cache entries, in a directory named like a shard.
      {"ab/" + id + "-a", GoEntry(id, Id(0xab, 2), 3)},
      {"ab/" + Id(0xab, 2) + "-d", "out"},
  };
  uint64_t bytes = 0;
  for (const auto& [rel, content] : files) {
    const auto slash = rel.rfind('/');
    tmp_.MakeDir("pkg/mod/" + rel.substr(0, slash));
    SetMtime(tmp_.WriteFile("pkg/mod/" + rel, content), start - 30 * kDay);
    bytes += content.size();
  }

  ActionIndex index;
  const auto run = RunCensus(mod, CacheKind::kMod, start, index);
  const CacheCensus& c = run.census;
  EXPECT_EQ(c.entries[kAction], 0u);
  EXPECT_EQ(c.entries[kOutput], 0u);
  EXPECT_EQ(c.entries[kOther], files.size());
  EXPECT_EQ(c.bytes[kAction], 0u);
  EXPECT_EQ(c.bytes[kOutput], 0u);
  EXPECT_EQ(c.bytes[kOther], bytes);
  EXPECT_EQ(c.allocated_bytes, AllocatedBytes(mod));
  EXPECT_EQ(c.shards_present.count(), 0u);
  EXPECT_EQ(c.shard_entries, (std::array<uint32_t, 256>{}));
  EXPECT_EQ(c.shard_dir_bytes, 0u);
  EXPECT_EQ(c.age_counts, (std::array<uint64_t, kAgeBuckets.size() + 1>{}));
  EXPECT_EQ(c.age_sum_seconds, 0);
  EXPECT_EQ(c.trimmable_entries, 0u);
  EXPECT_EQ(c.trimmable_bytes, 0u);
  EXPECT_EQ(c.corrupt + c.action_without_output + c.output_without_action + c.size_mismatch, 0u);
  EXPECT_EQ(run.actions_read, 0u);
  EXPECT_TRUE(index.empty());
}

TEST_F(EntryCensusTest, IncrementalIndexRereadsOnlyChangedActions) {
  const int64_t base = WholeSecondNow() - kDay;
  std::vector<std::string> actions, outputs, paths;
  for (int i = 0; i < 3; ++i) {
    outputs.push_back(Id(0x50 * i, 0x100 + i));
    actions.push_back(Id(0x50 * i + 1, 0x200 + i));
    WriteOutput(outputs[i], 10 + i);
    paths.push_back(WriteAction(actions[i], outputs[i], 10 + i));
    SetMtime(paths[i], base + i * kNs);
  }
  const int64_t start = WholeSecondNow();
  ActionIndex index;

  const auto first = RunCensus(root_, CacheKind::kBuild, start, index);
  EXPECT_EQ(first.actions_read, 3u);
  EXPECT_EQ(index.size(), 3u);
  EXPECT_EQ(first.census.corrupt, 0u);
  EXPECT_EQ(first.census.size_mismatch, 0u);
  EXPECT_EQ(first.census.output_without_action, 0u);
  const ActionIndex first_index = index;

  // Nothing changed: nothing is read, the census and index are the same.
  const auto second = RunCensus(root_, CacheKind::kBuild, start, index);
  EXPECT_EQ(second.actions_read, 0u);
  ExpectSameCensus(second.census, first.census);
  EXPECT_TRUE(SameIndex(index, first_index));

  // A change to the inode alone (a chmod, which may make the entry
  // unreadable) has it read again, though its mtime and contents are as
  // they were.
  ASSERT_EQ(chmod(paths[1].c_str(), 0600), 0);
  const auto chmodded = RunCensus(root_, CacheKind::kBuild, start, index);
  EXPECT_EQ(chmodded.actions_read, 1u);
  EXPECT_EQ(chmodded.census.corrupt, 0u);

  // So is an action rewritten in place with its mtime restored: its ctime
  // tells. It is corrupt now.
  {
    std::ofstream out(paths[1], std::ios::binary | std::ios::trunc);
    out << "not an entry any more";
  }
  SetMtime(paths[1], base + 1 * kNs);
  const auto reread = RunCensus(root_, CacheKind::kBuild, start, index);
  EXPECT_EQ(reread.actions_read, 1u);
  EXPECT_EQ(reread.census.corrupt, 1u);
  EXPECT_EQ(reread.census.bytes[kAction], 2u * 175 + 21);
  EXPECT_EQ(reread.census.output_without_action, 1u);  // outputs[1] lost its action
  ASSERT_EQ(index.size(), 3u);

  // Nothing changed since: nothing is read.
  EXPECT_EQ(RunCensus(root_, CacheKind::kBuild, start, index).actions_read, 0u);

  // A new action is read, a removed one leaves the index, the rest are not
  // read.
  const std::string added = Id(0x90, 0x300);
  WriteAction(added, outputs[2], 12);
  ASSERT_EQ(unlink(paths[0].c_str()), 0);
  const auto changed = RunCensus(root_, CacheKind::kBuild, start, index);
  EXPECT_EQ(changed.actions_read, 1u);
  EXPECT_EQ(changed.census.entries[kAction], 3u);
  EXPECT_EQ(changed.census.output_without_action, 2u);  // outputs[0] and outputs[1]
  ASSERT_EQ(index.size(), 3u);
  for (const auto& entry : index) EXPECT_NE(entry.key, buildcache::IdKey(actions[0]));

  // With two visitors (two threads) the index works the same: touching two
  // actions in different shards reads exactly those two.
  SetMtime(paths[2], base + 10 * kNs);
  SetMtime(root_ + "/" + ActionPath(added), base + 11 * kNs);
  const auto two = RunCensus(root_, CacheKind::kBuild, start, index, 2);
  EXPECT_EQ(two.actions_read, 2u);
  const auto again = RunCensus(root_, CacheKind::kBuild, start, index, 2);
  EXPECT_EQ(again.actions_read, 0u);
  ExpectSameCensus(again.census, two.census);
}

TEST_F(EntryCensusTest, ThreadsGiveTheSameCensusAsOne) {
  const int64_t start = WholeSecondNow();
  // 64 shards (every fourth) with a mix of healthy, broken and old entries.
  for (int s = 0; s < 256; s += 4) {
    const std::string out = Id(s, 1), action = Id(s, 2), lonely = Id(s, 3);
    const int64_t age = (s * 7919) % (40 * kDay);
    WriteAged(OutputPath(out), std::string(static_cast<size_t>(s % 50), 'o'), start, age);
    WriteAged(ActionPath(action), GoEntry(action, out, s % 50 + (s % 3 == 0 ? 1 : 0)), start, age);
    if (s % 5 == 0) WriteAged(OutputPath(lonely), "lonely", start, age + kDay);
    if (s % 7 == 0) WriteAged(ActionPath(Id(s, 4)), "corrupt", start, age);
    if (s % 11 == 0) WriteAged(ActionPath(Id(s, 5)), GoEntry(Id(s, 5), Id(s, 6), 1), start, age);
    if (s % 13 == 0) WriteAged(Shard(out) + "/stray-a", "stray", start, 6 * kDay);
  }
  // An output referenced across shards.
  WriteAged(ActionPath(Id(0x01, 7)), GoEntry(Id(0x01, 7), Id(0x04, 1), 4), start, 0);
  WriteAged("README", "readme", start, 0);
  WriteAged("trim.txt", "1700000000", start, 0);
  WriteAged("fuzz/x/y", "corpus", start, 0);

  ActionIndex index1, index2, index4;
  const auto one = RunCensus(root_, CacheKind::kBuild, start, index1, 1);
  const auto two = RunCensus(root_, CacheKind::kBuild, start, index2, 2);
  const auto four = RunCensus(root_, CacheKind::kBuild, start, index4, 4);
  // The census is not trivial.
  EXPECT_EQ(one.census.shards_present.count(), 65u);
  EXPECT_GT(one.census.corrupt, 0u);
  EXPECT_GT(one.census.size_mismatch, 0u);
  EXPECT_GT(one.census.action_without_output, 0u);
  EXPECT_GT(one.census.output_without_action, 0u);
  EXPECT_GT(one.census.trimmable_entries, 0u);
  EXPECT_EQ(one.census.entries[kOther], 3u + 5);  // root files and stray-a in 0, 52, 104, 156, 208

  {
    SCOPED_TRACE("2 visitors");
    ExpectSameCensus(two.census, one.census);
    EXPECT_EQ(two.actions_read, one.actions_read);
    EXPECT_TRUE(SameIndex(index2, index1));
  }
  {
    SCOPED_TRACE("4 visitors");
    ExpectSameCensus(four.census, one.census);
    EXPECT_EQ(four.actions_read, one.actions_read);
    EXPECT_TRUE(SameIndex(index4, index1));
  }
  EXPECT_EQ(one.walk.inodes, two.walk.inodes);
  EXPECT_EQ(one.walk.inodes, four.walk.inodes);
}

TEST_F(EntryCensusTest, DirectVisitorCalls) {
  // Driven without a walk: outputs need no file, only their status.
  const int64_t start = 1'000'000 * kNs;
  const ActionIndex none;
  CensusVisitor visitor(CacheKind::kBuild, start, none);
  EXPECT_TRUE(visitor.wants_file_status());
  struct stat dir {};
  dir.st_mode = S_IFDIR | 0755;
  dir.st_size = 4096;
  visitor.OnDirectory("0a", 1, dir);
  visitor.OnDirectory("0b", 2, dir);    // fuzz/0b: not a shard
  visitor.OnDirectory("fuzz", 1, dir);  // not a shard
  struct stat file {};
  file.st_mode = S_IFREG | 0644;
  file.st_size = 100;
  file.st_blocks = 8;
  file.st_mtim = {static_cast<time_t>(start / kNs - 2 * kDay), 0};
  visitor.OnFile(-1, "0a", Id(0x0a, 1) + "-d", 2, &file);
  visitor.OnFile(-1, "0b", Id(0x0b, 1) + "-d", 3, &file);     // fuzz/0b/...: other
  file.st_mtim = {static_cast<time_t>(start / kNs + 10), 0};  // future
  visitor.OnFile(-1, "0a", Id(0x0a, 2) + "-d", 2, &file);
  EXPECT_EQ(visitor.actions_read(), 0u);

  std::vector<CensusVisitor> visitors = {visitor};
  ActionIndex index;
  const CacheCensus c = FinishCensus(visitors, index);
  EXPECT_EQ(c.entries[kOutput], 2u);
  EXPECT_EQ(c.entries[kOther], 1u);
  EXPECT_EQ(c.bytes[kOutput], 200u);
  EXPECT_EQ(c.allocated_bytes, 3u * 8 * 512);
  EXPECT_EQ(c.shards_present.count(), 1u);
  EXPECT_TRUE(c.shards_present[0x0a]);
  EXPECT_EQ(c.shard_dir_bytes, 4096u);
  EXPECT_EQ(c.shard_entries[0x0a], 2u);
  EXPECT_EQ(c.shard_entries[0x0b], 0u);
  EXPECT_EQ(c.age_counts[3], 1u);  // 2 days: le="172800"
  EXPECT_EQ(c.age_counts[0], 1u);  // future: age 0
  EXPECT_DOUBLE_EQ(c.age_sum_seconds, 2.0 * kDay);
  EXPECT_EQ(c.output_without_action, 2u);
  EXPECT_TRUE(index.empty());
}

// An action-named FIFO in a shard directory (a stray, or a hostile CI job
// that owns its GOCACHE) must not hang the scan: opening a FIFO for reading
// blocks until a writer appears. Bounded: if the scan blocks, the test opens
// the FIFO for writing itself to release it.
TEST_F(EntryCensusTest, ActionNamedFifoDoesNotBlockTheScan) {
  const std::string id = Id(0x20, 1);
  tmp_.MakeDir("go-build/20");
  const std::string fifo = root_ + "/" + ActionPath(id);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0) << std::strerror(errno);
  WriteOutput(Id(0x20, 2), 5);

  auto done = std::make_shared<std::promise<CensusRun>>();
  auto result = done->get_future();
  std::thread scan(
      [root = root_, done] { done->set_value(RunCensus(root, CacheKind::kBuild, 0)); });
  const bool finished =
      result.wait_for(std::chrono::milliseconds(500)) == std::future_status::ready;
  EXPECT_TRUE(finished) << "the census blocked opening the FIFO " << fifo;
  // Release a blocked open (a writer that comes and goes), bounded.
  for (int i = 0;
       i < 100 && result.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready;
       ++i) {
    const int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) close(fd);
  }
  if (result.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    scan.detach();  // still blocked: leave it rather than hang the test binary
    FAIL() << "the census is still blocked on " << fifo;
  }
  scan.join();
  const CensusRun run = result.get();
  EXPECT_TRUE(run.walk.root_readable);
  EXPECT_EQ(run.census.entries[kOutput], 1u);
}

}  // namespace
}  // namespace gocache
