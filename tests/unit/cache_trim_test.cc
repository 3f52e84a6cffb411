#include "cache/cache_trim.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cache/build_cache.h"
#include "tests/unit/fixtures.h"

namespace gocache {
namespace {

using ::testing::HasSubstr;
using testing_util::GoEntry;
using testing_util::Id;
using testing_util::kNs;
using testing_util::MtimeNs;
using testing_util::SetMtime;
using testing_util::Shard;
using testing_util::TempDir;

constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 24 * kHour;
constexpr uint64_t kActionSize = buildcache::kActionEntrySize;  // 175

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ActionRel(const std::string& id) { return Shard(id) + "/" + id + "-a"; }
std::string OutputRel(const std::string& id) { return Shard(id) + "/" + id + "-d"; }

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every file, directory and link below `root` (links not followed): type,
// size, mtime, content or link target.
struct FileState {
  char type;
  uint64_t size;
  int64_t mtime_ns;
  std::string data;
  bool operator==(const FileState&) const = default;
};
std::map<std::string, FileState> Snapshot(const std::string& root) {
  std::map<std::string, FileState> files;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string path = it->path().string();
    struct stat st;
    EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
    FileState f{'?', static_cast<uint64_t>(st.st_size),
                static_cast<int64_t>(st.st_mtim.tv_sec) * kNs + st.st_mtim.tv_nsec, ""};
    if (S_ISREG(st.st_mode)) {
      f.type = 'f';
      f.data = ReadAll(path);
    } else if (S_ISLNK(st.st_mode)) {
      f.type = 'l';
      f.data = std::filesystem::read_symlink(path).string();
    } else if (S_ISDIR(st.st_mode)) {
      f.type = 'd';
      f.size = 0;  // a directory's size changes as entries go
      f.mtime_ns = 0;
    }
    files[path.substr(root.size())] = f;
  }
  EXPECT_FALSE(ec) << ec.message();
  return files;
}

// The (action, output) pairs, as paths relative to `root`, of every action
// that the go command would read as valid and whose output is a regular file.
std::vector<std::pair<std::string, std::string>> LivePairs(const std::string& root) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (int shard = 0; shard < 256; ++shard) {
    char name[3];
    std::snprintf(name, sizeof name, "%02x", shard);
    const std::string dir = root + "/" + name;
    struct stat st;
    if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const std::string file = entry.path().filename().string();
      if (buildcache::Classify(shard, file) != buildcache::EntryType::kAction) continue;
      const std::string content = ReadAll(entry.path().string());
      if (!buildcache::ParseActionEntry(content, std::string_view(file).substr(0, 64))) continue;
      // The go command decodes the hex in either case and looks for "%x".
      std::string out = content.substr(3 + 64 + 1, 64);
      for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lstat((root + "/" + OutputRel(out)).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      pairs.push_back({std::string(name) + "/" + file, OutputRel(out)});
    }
  }
  std::sort(pairs.begin(), pairs.end());
  return pairs;
}

// No action that had its output before a trim is left without it.
void ExpectActionsKeepOutputs(const std::string& root,
                              const std::vector<std::pair<std::string, std::string>>& before) {
  for (const auto& [action, output] : before) {
    if (Exists(root + "/" + action)) {
      EXPECT_TRUE(Exists(root + "/" + output)) << action << " survived without " << output;
    }
  }
}

// What the trim removes together, in the order it should remove them.
struct Unit {
  std::vector<std::string> files;  // relative to the cache root
  uint64_t actions = 0, outputs = 0, bytes = 0;
  int64_t mtime_ns = 0;  // of the action, or the orphan output
  std::string id;        // the same entry's: the order among equal mtimes
};

// A synthetic build cache in `root`; every entry gets an explicit mtime.
class Cache {
 public:
  explicit Cache(std::string root) : root_(std::move(root)) {
    std::filesystem::create_directories(root_);
  }

  const std::string& root() const { return root_; }
  std::string operator/(const std::string& rel) const { return root_ + "/" + rel; }

  // Writes `rel` below the root (creating its directory) with an mtime.
  std::string Put(const std::string& rel, const std::string& content, int64_t mtime_ns) {
    const std::string path = *this / rel;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    {
      std::ofstream out(path, std::ios::binary);
      out << content;
      EXPECT_TRUE(out.good()) << path;
    }
    SetMtime(path, mtime_ns);
    return rel;
  }
  std::string PutAction(const std::string& id, const std::string& out, int64_t mtime_ns,
                        int64_t size = 0) {
    return Put(ActionRel(id), GoEntry(id, out, size), mtime_ns);
  }
  std::string PutOutput(const std::string& id, size_t size, int64_t mtime_ns) {
    return Put(OutputRel(id), std::string(size, 'o'), mtime_ns);
  }

  // An action and its own output, one unit. The output's mtime is older than
  // the action's: a paired output is removed with its action, never by its
  // own mtime.
  void Pair(const std::string& action, const std::string& output, size_t size, int64_t mtime_ns) {
    const auto o = PutOutput(output, size, mtime_ns - 1000 * kNs);
    const auto a = PutAction(action, output, mtime_ns, static_cast<int64_t>(size));
    Add({{a, o}, 1, 1, kActionSize + size, mtime_ns, action});
  }
  // An output that no action names, a unit of its own.
  void Orphan(const std::string& output, size_t size, int64_t mtime_ns) {
    Add({{PutOutput(output, size, mtime_ns)}, 0, 1, size, mtime_ns, output});
  }
  // An action the go command would read as a miss: removed alone.
  void Corrupt(const std::string& action, const std::string& content, int64_t mtime_ns) {
    Add({{Put(ActionRel(action), content, mtime_ns)}, 1, 0, content.size(), mtime_ns, action});
  }
  // Two actions naming one output: the older goes alone, the output with the
  // newer one.
  void Shared(const std::string& older, const std::string& newer, const std::string& output,
              size_t size, int64_t older_mtime_ns, int64_t newer_mtime_ns) {
    const auto o = PutOutput(output, size, older_mtime_ns - 1000 * kNs);
    const auto a1 = PutAction(older, output, older_mtime_ns, static_cast<int64_t>(size));
    const auto a2 = PutAction(newer, output, newer_mtime_ns, static_cast<int64_t>(size));
    Add({{a1}, 1, 0, kActionSize, older_mtime_ns, older});
    Add({{a2, o}, 1, 1, kActionSize + size, newer_mtime_ns, newer});
  }

  // Least recently used first, ties in ID order.
  const std::vector<Unit>& units() const { return units_; }
  uint64_t entries() const {
    uint64_t n = 0;
    for (const auto& u : units_) n += u.files.size();
    return n;
  }
  uint64_t bytes() const { return BytesOf(units_.size()); }
  // The bytes of the first k units.
  uint64_t BytesOf(size_t k) const {
    uint64_t n = 0;
    for (size_t i = 0; i < k; ++i) n += units_[i].bytes;
    return n;
  }

  // Exactly the first k units are gone, the others all there.
  void ExpectFirstRemoved(size_t k) const {
    for (size_t i = 0; i < units_.size(); ++i) {
      for (const auto& f : units_[i].files) {
        EXPECT_EQ(Exists(*this / f), i >= k) << "unit " << i << " " << f << " with " << k << " of "
                                             << units_.size() << " units removed";
      }
    }
  }
  // A trim of a fresh cache that removed the first k units.
  void ExpectResult(const TrimResult& r, size_t k) const { ExpectResult(r, 0, k); }
  // A trim that removed units [first, last), units before `first` gone
  // already.
  void ExpectResult(const TrimResult& r, size_t first, size_t last) const {
    uint64_t actions = 0, outputs = 0, gone = 0;
    for (size_t i = 0; i < first; ++i) gone += units_[i].files.size();
    for (size_t i = first; i < last; ++i) {
      actions += units_[i].actions;
      outputs += units_[i].outputs;
    }
    const uint64_t bytes = BytesOf(last) - BytesOf(first);
    EXPECT_EQ(r.actions, actions) << "units " << first << ".." << last;
    EXPECT_EQ(r.outputs, outputs) << "units " << first << ".." << last;
    EXPECT_EQ(r.bytes, bytes) << "units " << first << ".." << last;
    EXPECT_EQ(r.skipped, 0u);
    EXPECT_TRUE(r.errors.empty()) << r.errors.front();
    EXPECT_EQ(r.before.entries, entries() - gone);
    EXPECT_EQ(r.before.bytes, this->bytes() - BytesOf(first));
    EXPECT_EQ(r.after.entries, entries() - gone - actions - outputs);
    EXPECT_EQ(r.after.bytes, this->bytes() - BytesOf(last));
  }

 private:
  void Add(Unit unit) {
    units_.push_back(std::move(unit));
    std::stable_sort(units_.begin(), units_.end(), [](const Unit& a, const Unit& b) {
      return std::tie(a.mtime_ns, a.id) < std::tie(b.mtime_ns, b.id);
    });
  }

  std::string root_;
  std::vector<Unit> units_;
};

TrimResult Trim(const std::string& root, const TrimBounds& bounds,
                const TrimOptions& options = {}) {
  std::string error;
  const auto r = TrimCache(root, bounds, options, error);
  EXPECT_TRUE(r.has_value()) << error;
  return r.value_or(TrimResult{});
}

// Bounds that may take entries of any age. Most tests here are about the
// order of removal among entries used minutes ago; keep_recent has its own.
TrimBounds AnyAge() {
  TrimBounds b;
  b.keep_recent = std::chrono::seconds(0);
  return b;
}

TrimBounds MaxBytes(uint64_t n) {
  TrimBounds b = AnyAge();
  b.max_bytes = n;
  return b;
}

struct FsCounts {
  uint64_t files, files_free;
  bool operator==(const FsCounts&) const = default;
};
FsCounts StatFs(const std::string& path) {
  struct statvfs fs;
  EXPECT_EQ(statvfs(path.c_str(), &fs), 0) << path;
  return {fs.f_files, fs.f_ffree};
}

class CacheTrimTest : public ::testing::Test {
 protected:
  // A mtime in the past, with distinct nanoseconds.
  int64_t Ago(int64_t seconds, int64_t ns = 0) const { return now_ - seconds * kNs + ns; }

  // Eight pairs in shards spread over the cache, oldest first, sizes all
  // different.
  void EightPairs(Cache& cache) const {
    for (int i = 0; i < 8; ++i) {
      const int shard = (i * 37 + 5) % 256;
      cache.Pair(Id(shard, 0x100 + i), Id((shard + 128) % 256, 0x200 + i), 100 * (i + 1) + i,
                 Ago(kHour - 10 * i, 100 + i));
    }
  }

  // Units of every kind, oldest first: orphans, a corrupt action, shared
  // outputs, two units with the same mtime (removed in ID order).
  void MixedUnits(Cache& cache) const {
    cache.Orphan(Id(0x30, 1), 50, Ago(9000));
    cache.Pair(Id(0x31, 2), Id(0x32, 3), 400, Ago(8000));
    cache.Corrupt(Id(0x33, 4), "not an action entry\n", Ago(7000));
    // Corrupt: the ID inside is another's, so the output it names stays an
    // orphan (younger than everything, so last).
    cache.Corrupt(Id(0x34, 5), GoEntry(Id(0x34, 6), Id(0x35, 7), 7), Ago(6000));
    cache.Shared(Id(0x36, 8), Id(0x37, 9), Id(0x38, 10), 300, Ago(5000), Ago(3000));
    cache.Orphan(Id(0x39, 12), 90, Ago(4000, 1));  // the same mtime: ID order
    cache.Orphan(Id(0x39, 11), 70, Ago(4000, 1));
    // Corrupt: too short, as an interrupted write leaves it.
    cache.Corrupt(Id(0x3a, 13), GoEntry(Id(0x3a, 13), Id(0x3b, 14), 1).substr(0, 100), Ago(2000));
    cache.Orphan(Id(0x35, 7), 7, Ago(1000));
  }

  TempDir tmp_;
  const int64_t now_ = NowNs();
};

// --- 1. LRU order under --max-bytes ---

TEST_F(CacheTrimTest, MaxBytesRemovesExactlyTheOldestPairs) {
  for (const size_t k : {0, 1, 3, 7, 8}) {
    // A bound met exactly by removing k pairs, and one byte below it
    // (which takes one pair more).
    for (const uint64_t below : {uint64_t{0}, uint64_t{1}}) {
      if (k == 8 && below == 1) continue;  // no bound below 0 bytes
      SCOPED_TRACE(::testing::Message() << "k=" << k << " below=" << below);
      Cache cache(tmp_ / ("c" + std::to_string(k) + "_" + std::to_string(below)));
      EightPairs(cache);
      const uint64_t bound = cache.bytes() - cache.BytesOf(k) - below;
      const auto pairs = LivePairs(cache.root());
      ASSERT_EQ(pairs.size(), 8u);

      const TrimResult r = Trim(cache.root(), MaxBytes(bound));
      const size_t removed = k + below;
      cache.ExpectResult(r, removed);
      cache.ExpectFirstRemoved(removed);
      EXPECT_LE(r.after.bytes, bound);
      if (removed > 0) {  // one pair fewer would not do
        EXPECT_GT(cache.bytes() - cache.BytesOf(removed - 1), bound);
      }
      EXPECT_TRUE(r.bounds_met);
      EXPECT_EQ(r.before.trimmable, 0u);  // an hour old at most
      ExpectActionsKeepOutputs(cache.root(), pairs);
      // Shard directories stay, even when emptied.
      for (const auto& u : cache.units()) EXPECT_TRUE(Exists(cache / Shard(u.files[0])));
    }
  }
}

// Tightening the bound step by step: one pair more each time, oldest first.
TEST_F(CacheTrimTest, MaxBytesTightenedStepByStep) {
  Cache cache(tmp_ / "go-build");
  EightPairs(cache);
  const auto pairs = LivePairs(cache.root());
  for (size_t k = 1; k <= 8; ++k) {
    SCOPED_TRACE(k);
    const TrimResult r = Trim(cache.root(), MaxBytes(cache.bytes() - cache.BytesOf(k)));
    cache.ExpectResult(r, k - 1, k);
    cache.ExpectFirstRemoved(k);
    EXPECT_TRUE(r.bounds_met);
    ExpectActionsKeepOutputs(cache.root(), pairs);
  }
}

TEST_F(CacheTrimTest, MaxBytesOrdersEveryKindOfUnitByMtime) {
  Cache cache(tmp_ / "go-build");
  MixedUnits(cache);
  ASSERT_EQ(cache.units().size(), 10u);
  const auto pairs = LivePairs(cache.root());
  ASSERT_EQ(pairs.size(), 3u);
  for (size_t k = 1; k <= 10; ++k) {
    SCOPED_TRACE(k);
    const TrimResult r = Trim(cache.root(), MaxBytes(cache.bytes() - cache.BytesOf(k)));
    cache.ExpectResult(r, k - 1, k);
    cache.ExpectFirstRemoved(k);
    EXPECT_TRUE(r.bounds_met);
    ExpectActionsKeepOutputs(cache.root(), pairs);
  }
}

TEST_F(CacheTrimTest, MaxBytesRemovesSeveralUnitsOfEveryKindAtOnce) {
  for (const size_t k : {7, 10}) {
    SCOPED_TRACE(k);
    Cache cache(tmp_ / ("c" + std::to_string(k)));
    MixedUnits(cache);
    const auto pairs = LivePairs(cache.root());
    const TrimResult r = Trim(cache.root(), MaxBytes(cache.bytes() - cache.BytesOf(k)));
    cache.ExpectResult(r, k);
    cache.ExpectFirstRemoved(k);
    EXPECT_TRUE(r.bounds_met);
    ExpectActionsKeepOutputs(cache.root(), pairs);
  }
}

TEST_F(CacheTrimTest, MaxBytesAboveTheCacheRemovesNothing) {
  Cache cache(tmp_ / "go-build");
  EightPairs(cache);
  const auto before = Snapshot(cache.root());
  const TrimResult r = Trim(cache.root(), MaxBytes(cache.bytes()));
  cache.ExpectResult(r, 0);
  EXPECT_TRUE(r.bounds_met);
  EXPECT_EQ(Snapshot(cache.root()), before);
}

// --- 2. Shared outputs ---

TEST_F(CacheTrimTest, SharedOutputStaysWhileAnActionNamesIt) {
  Cache cache(tmp_ / "go-build");
  const std::string older = Id(0x01, 1), newer = Id(0x02, 2), output = Id(0x03, 3);
  cache.Shared(older, newer, output, 1000, Ago(300), Ago(200));
  cache.Pair(Id(0x04, 4), Id(0x05, 5), 10, Ago(100));
  const auto pairs = LivePairs(cache.root());
  ASSERT_EQ(pairs.size(), 3u);
  const uint64_t total = cache.bytes();
  ASSERT_EQ(total, 3 * kActionSize + 1000 + 10);

  // The older action alone: its output is still the newer one's.
  TrimResult r = Trim(cache.root(), MaxBytes(total - kActionSize));
  EXPECT_EQ(r.actions, 1u);
  EXPECT_EQ(r.outputs, 0u);
  EXPECT_EQ(r.bytes, kActionSize);
  EXPECT_FALSE(Exists(cache / ActionRel(older)));
  EXPECT_TRUE(Exists(cache / ActionRel(newer)));
  EXPECT_TRUE(Exists(cache / OutputRel(output)));
  ExpectActionsKeepOutputs(cache.root(), pairs);

  // Then the newer one, and the output with it.
  r = Trim(cache.root(), MaxBytes(total - kActionSize - 1));
  EXPECT_EQ(r.actions, 1u);
  EXPECT_EQ(r.outputs, 1u);
  EXPECT_EQ(r.bytes, kActionSize + 1000);
  EXPECT_EQ(r.before.entries, 4u);
  EXPECT_EQ(r.after.entries, 2u);
  EXPECT_FALSE(Exists(cache / ActionRel(newer)));
  EXPECT_FALSE(Exists(cache / OutputRel(output)));
  EXPECT_TRUE(Exists(cache / ActionRel(Id(0x04, 4))));
  EXPECT_TRUE(Exists(cache / OutputRel(Id(0x05, 5))));
  ExpectActionsKeepOutputs(cache.root(), pairs);
}

TEST_F(CacheTrimTest, SharedOutputGoesWithTheLastActionInOneTrim) {
  Cache cache(tmp_ / "go-build");
  const std::string older = Id(0x01, 1), newer = Id(0x02, 2), output = Id(0x03, 3);
  cache.Shared(older, newer, output, 1000, Ago(300), Ago(200));
  cache.Pair(Id(0x04, 4), Id(0x05, 5), 10, Ago(100));
  const auto pairs = LivePairs(cache.root());
  const TrimResult r = Trim(cache.root(), MaxBytes(cache.bytes() - cache.BytesOf(2)));
  cache.ExpectResult(r, 2);
  cache.ExpectFirstRemoved(2);
  EXPECT_EQ(r.actions, 2u);
  EXPECT_EQ(r.outputs, 1u);
  ExpectActionsKeepOutputs(cache.root(), pairs);
}

// Three actions naming one output: it goes with the last of them.
TEST_F(CacheTrimTest, OutputOfThreeActionsGoesWithTheLast) {
  Cache cache(tmp_ / "go-build");
  const std::string output = Id(0x03, 3);
  const std::string a = Id(0xa0, 1), b = Id(0xb0, 2), c = Id(0xc0, 3);
  cache.PutOutput(output, 500, Ago(1000));
  cache.PutAction(a, output, Ago(300));
  cache.PutAction(b, output, Ago(200));
  cache.PutAction(c, output, Ago(100));
  const auto pairs = LivePairs(cache.root());
  ASSERT_EQ(pairs.size(), 3u);
  const uint64_t total = 3 * kActionSize + 500;
  for (uint64_t n = 1; n <= 3; ++n) {
    const TrimResult r = Trim(cache.root(), MaxBytes(total - n * kActionSize));
    EXPECT_EQ(r.actions, 1u) << n;
    EXPECT_EQ(r.outputs, n == 3 ? 1u : 0u) << n;
    ExpectActionsKeepOutputs(cache.root(), pairs);
  }
  EXPECT_FALSE(Exists(cache / OutputRel(output)));
}

// --- 3. Orphans and corrupt actions ---

TEST_F(CacheTrimTest, OrphansAndCorruptActionsAreUnitsOfTheirOwn) {
  Cache cache(tmp_ / "go-build");
  // An orphan older than the pair; a corrupt action naming the pair's output
  // (it references nothing); an orphan younger than the pair.
  const std::string action = Id(0x10, 1), output = Id(0x11, 2);
  cache.Orphan(Id(0x12, 3), 20, Ago(500));
  cache.Corrupt(Id(0x13, 4), GoEntry(Id(0x13, 4), output, 10).replace(0, 2, "v2"), Ago(400));
  cache.Pair(action, output, 10, Ago(300));
  cache.Orphan(Id(0x14, 5), 30, Ago(200));

  TrimResult r = Trim(cache.root(), MaxBytes(cache.bytes() - 1));
  cache.ExpectResult(r, 1);
  cache.ExpectFirstRemoved(1);
  EXPECT_EQ(r.actions, 0u);
  EXPECT_EQ(r.outputs, 1u);

  // The corrupt action alone: the output it names stays with its action.
  r = Trim(cache.root(), MaxBytes(cache.bytes() - cache.BytesOf(1) - 1));
  EXPECT_EQ(r.actions, 1u);
  EXPECT_EQ(r.outputs, 0u);
  EXPECT_EQ(r.bytes, kActionSize);
  cache.ExpectFirstRemoved(2);

  r = Trim(cache.root(), MaxBytes(0));
  EXPECT_EQ(r.actions, 1u);
  EXPECT_EQ(r.outputs, 2u);
  EXPECT_EQ(r.bytes, kActionSize + 10 + 30);
  EXPECT_EQ(r.after.entries, 0u);
  EXPECT_EQ(r.after.bytes, 0u);
  EXPECT_TRUE(r.bounds_met);
  cache.ExpectFirstRemoved(4);
}

TEST_F(CacheTrimTest, ActionNamingAMissingOutputGoesAlone) {
  Cache cache(tmp_ / "go-build");
  cache.PutAction(Id(0x20, 1), Id(0x21, 2), Ago(300));  // Id(0x21, 2)-d never existed
  cache.Orphan(Id(0x22, 3), 5, Ago(200));
  const TrimResult r = Trim(cache.root(), MaxBytes(5));
  EXPECT_EQ(r.actions, 1u);
  EXPECT_EQ(r.outputs, 0u);
  EXPECT_EQ(r.bytes, kActionSize);
  EXPECT_FALSE(Exists(cache / ActionRel(Id(0x20, 1))));
  EXPECT_TRUE(Exists(cache / OutputRel(Id(0x22, 3))));
}

// An action may name its output in uppercase hex: the go command's
// hex.Decode takes either case, so the pair must stay linked. (A bug this
// test found.)
TEST_F(CacheTrimTest, UppercaseOutputIdInActionStillReferencesTheOutput) {
  Cache cache(tmp_ / "go-build");
  const std::string action = Id(0x40, 1), output = Id(0x41, 2);
  std::string upper = output;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_NE(upper, output);
  ASSERT_TRUE(buildcache::ParseActionEntry(GoEntry(action, upper, 9), action).has_value());
  cache.PutOutput(output, 9, Ago(900));
  cache.Put(ActionRel(action), GoEntry(action, upper, 9), Ago(100));
  cache.Pair(Id(0x42, 3), Id(0x43, 4), 9, Ago(500));
  const auto pairs = LivePairs(cache.root());
  ASSERT_EQ(pairs.size(), 2u);

  // One unit must go: the older pair, not the newer action's output.
  const TrimResult r = Trim(cache.root(), MaxBytes(2 * kActionSize + 18 - 1));
  EXPECT_TRUE(Exists(cache / OutputRel(output)));
  EXPECT_TRUE(Exists(cache / ActionRel(action)));
  EXPECT_FALSE(Exists(cache / ActionRel(Id(0x42, 3))));
  EXPECT_EQ(r.actions, 1u);
  EXPECT_EQ(r.outputs, 1u);
  ExpectActionsKeepOutputs(cache.root(), pairs);
}

// --- 4. max_age ---

TEST_F(CacheTrimTest, MaxAgeRemovesOlderEntriesAlone) {
  Cache cache(tmp_ / "go-build");
  cache.Pair(Id(0x50, 1), Id(0x51, 1), 100, Ago(10 * kDay));
  cache.Corrupt(Id(0x52, 2), "x", Ago(5 * kDay));
  cache.Pair(Id(0x53, 3), Id(0x54, 3), 200, Ago(3 * kDay));
  cache.Orphan(Id(0x55, 4), 300, Ago(2 * kDay));
  cache.Pair(Id(0x56, 5), Id(0x57, 5), 400, Ago(kDay + 60));  // just over a day
  // Younger than a day: stay.
  cache.Pair(Id(0x58, 6), Id(0x59, 6), 500, Ago(kDay - 60));
  cache.Orphan(Id(0x5a, 7), 600, Ago(2 * kHour));
  cache.Pair(Id(0x5b, 8), Id(0x5c, 8), 700, Ago(60));
  const auto pairs = LivePairs(cache.root());

  TrimBounds age;
  age.max_age = std::chrono::seconds(kDay);
  const TrimResult r = Trim(cache.root(), age);
  cache.ExpectResult(r, 5);
  cache.ExpectFirstRemoved(5);
  EXPECT_TRUE(r.bounds_met);
  // Older than the go command's 5 days + 1 hour: the 10-day pair.
  EXPECT_EQ(r.before.trimmable, 2u);
  ExpectActionsKeepOutputs(cache.root(), pairs);

  // A second trim finds nothing more.
  const TrimResult again = Trim(cache.root(), age);
  EXPECT_EQ(again.entries(), 0u);
  EXPECT_TRUE(again.bounds_met);
}

TEST_F(CacheTrimTest, MaxAgeKeepsAnOldOutputAYoungActionNames) {
  Cache cache(tmp_ / "go-build");
  cache.Shared(Id(0x60, 1), Id(0x61, 2), Id(0x62, 3), 50, Ago(30 * kDay), Ago(kHour));
  TrimBounds age;
  age.max_age = std::chrono::seconds(kDay);
  const TrimResult r = Trim(cache.root(), age);
  cache.ExpectResult(r, 1);
  cache.ExpectFirstRemoved(1);
  EXPECT_TRUE(Exists(cache / OutputRel(Id(0x62, 3))));  // 30 days and 1000 s old, but named
}

TEST_F(CacheTrimTest, MaxAgeAndMaxBytesTogether) {
  // The age bound takes the two oldest; the bytes bound one more.
  Cache aged(tmp_ / "aged");
  aged.Pair(Id(0x70, 1), Id(0x71, 1), 10, Ago(20 * kDay));
  aged.Pair(Id(0x72, 2), Id(0x73, 2), 20, Ago(19 * kDay));
  aged.Pair(Id(0x74, 3), Id(0x75, 3), 30, Ago(kHour));
  aged.Pair(Id(0x76, 4), Id(0x77, 4), 40, Ago(60));
  TrimBounds both = AnyAge();
  both.max_age = std::chrono::seconds(kDay);
  both.max_bytes = aged.bytes() - aged.BytesOf(3);
  TrimResult r = Trim(aged.root(), both);
  aged.ExpectResult(r, 3);
  aged.ExpectFirstRemoved(3);
  EXPECT_TRUE(r.bounds_met);
  // A loose bytes bound and nothing a day old: nothing goes.
  Cache cache(tmp_ / "go-build");
  EightPairs(cache);
  both.max_bytes = cache.bytes() * 10;
  r = Trim(cache.root(), both);
  cache.ExpectResult(r, 0);
}

// --- 5. max_inode_usage ---

TEST_F(CacheTrimTest, InodeUsageBoundOfOneRemovesNothing) {
  Cache cache(tmp_ / "go-build");
  MixedUnits(cache);
  const auto before = Snapshot(cache.root());
  TrimBounds inodes = AnyAge();
  inodes.max_inode_usage = 1.0;
  const TrimResult r = Trim(cache.root(), inodes);
  cache.ExpectResult(r, 0);
  EXPECT_TRUE(r.bounds_met);
  EXPECT_EQ(Snapshot(cache.root()), before);
}

TEST_F(CacheTrimTest, UsageBeforeIsTheFilesystemsStatvfs) {
  Cache cache(tmp_ / "go-build");
  EightPairs(cache);
  TrimBounds inodes = AnyAge();
  inodes.max_inode_usage = 1.0;
  // Others create files on this filesystem too: compare once statvfs
  // around the trim agree.
  bool compared = false;
  for (int attempt = 0; attempt < 50 && !compared; ++attempt) {
    const FsCounts s1 = StatFs(cache.root());
    const TrimResult r = Trim(cache.root(), inodes);
    const FsCounts s2 = StatFs(cache.root());
    EXPECT_EQ(r.before.files, s1.files);
    if (!(s1 == s2)) continue;
    compared = true;
    EXPECT_EQ(r.before.files_free, s1.files_free);
    EXPECT_EQ(r.after.files, s1.files);
    EXPECT_EQ(r.after.files_free, s1.files_free);
    if (s1.files > 0) {
      EXPECT_DOUBLE_EQ(*r.before.inode_usage(), static_cast<double>(s1.files - s1.files_free) /
                                                    static_cast<double>(s1.files));
    }
  }
  if (!compared) {
    // A busy filesystem: the trim's reading lies between the two around it,
    // give or take what others did meanwhile.
    const FsCounts s1 = StatFs(cache.root());
    const TrimResult r = Trim(cache.root(), inodes);
    const FsCounts s2 = StatFs(cache.root());
    constexpr uint64_t kSlack = 1000;
    EXPECT_EQ(r.before.files, s1.files);
    EXPECT_GE(r.before.files_free + kSlack, std::min(s1.files_free, s2.files_free));
    EXPECT_LE(r.before.files_free, std::max(s1.files_free, s2.files_free) + kSlack);
  }
}

// The filesystem's other files hold more inodes than a bound of 0 allows:
// no removal could meet it, so nothing goes for it (it used to empty the
// cache and still fail).
TEST_F(CacheTrimTest, InodeUsageBoundOutOfReachRemovesNothing) {
  Cache cache(tmp_ / "go-build");
  MixedUnits(cache);
  ASSERT_NE(StatFs(cache.root()).files, 0u) << "the tests need a filesystem with an inode table";
  const auto before = Snapshot(cache.root());
  TrimBounds inodes = AnyAge();
  inodes.max_inode_usage = 0.0;
  const TrimResult r = Trim(cache.root(), inodes);
  cache.ExpectResult(r, 0);
  EXPECT_EQ(Snapshot(cache.root()), before);
  EXPECT_FALSE(r.bounds_met);
  ASSERT_EQ(r.unreachable.size(), 1u);
  EXPECT_EQ(r.unreachable[0].bound, TrimBound::kInodeUsage);
  EXPECT_EQ(r.unreachable[0].limit, 0.0);
  // The floor: the usage it read, less one inode per entry.
  EXPECT_DOUBLE_EQ(r.unreachable[0].floor,
                   static_cast<double>(r.before.used_files() - cache.entries()) /
                       static_cast<double>(r.before.files));
}

// A bound one inode short of reach removes nothing; at the floor itself,
// every unit goes and the bound holds.
TEST_F(CacheTrimTest, InodeUsageBoundAtTheFloorIsReached) {
  Cache cache(tmp_ / "go-build");
  EightPairs(cache);
  for (const bool reachable : {false, true}) {
    SCOPED_TRACE(reachable);
    TrimOptions dry;
    dry.dry_run = true;  // the filesystem's usage stays put between the two runs
    const TrimResult probe = Trim(cache.root(), AnyAge(), dry);
    const double floor = static_cast<double>(probe.before.used_files() - 16) /
                         static_cast<double>(probe.before.files);
    TrimBounds inodes = AnyAge();
    inodes.max_inode_usage = reachable ? floor
                                       : static_cast<double>(probe.before.used_files() - 17) /
                                             static_cast<double>(probe.before.files);
    const TrimResult r = Trim(cache.root(), inodes, dry);
    if (r.before.used_files() != probe.before.used_files()) continue;  // others were busy
    cache.ExpectResult(r, reachable ? 8 : 0);
    EXPECT_EQ(r.unreachable.empty(), reachable);
    EXPECT_EQ(r.bounds_met, reachable);
  }
}

// --- 5b. keep_recent ---

// Entries used within keep_recent stay whatever the byte bound says; an
// entry's mtime trails its last use by up to the go command's mtime
// interval, so the cutoff is keep_recent plus that hour.
TEST_F(CacheTrimTest, RecentlyUsedEntriesStayForAByteBound) {
  Cache cache(tmp_ / "go-build");
  const int64_t hour = buildcache::kMtimeIntervalSeconds;
  cache.Pair(Id(0x10, 1), Id(0x11, 1), 100, Ago(3 * kDay));
  cache.Pair(Id(0x12, 2), Id(0x13, 2), 200, Ago(2 * hour + 120));  // used 1h2m ago at the latest
  cache.Pair(Id(0x14, 3), Id(0x15, 3), 300, Ago(2 * hour - 120));  // maybe 58 min ago: kept
  cache.Pair(Id(0x16, 4), Id(0x17, 4), 400, Ago(60));
  TrimBounds bytes;
  ASSERT_EQ(bytes.keep_recent, kDefaultKeepRecent);
  ASSERT_EQ(kDefaultKeepRecent, std::chrono::seconds(hour));
  // Reachable: removing the two older pairs meets it.
  bytes.max_bytes = cache.bytes() - cache.BytesOf(2);
  TrimOptions dry;
  dry.dry_run = true;
  TrimResult r = Trim(cache.root(), bytes, dry);
  cache.ExpectResult(r, 2);
  EXPECT_TRUE(r.unreachable.empty());
  EXPECT_TRUE(r.bounds_met);
  // One byte less would take a recent pair: out of reach, so nothing goes,
  // not even the old pairs.
  bytes.max_bytes = cache.bytes() - cache.BytesOf(2) - 1;
  r = Trim(cache.root(), bytes);
  cache.ExpectResult(r, 0);
  cache.ExpectFirstRemoved(0);
  EXPECT_FALSE(r.bounds_met);
  ASSERT_EQ(r.unreachable.size(), 1u);
  EXPECT_EQ(r.unreachable[0].bound, TrimBound::kBytes);
  EXPECT_EQ(r.unreachable[0].limit, static_cast<double>(*bytes.max_bytes));
  EXPECT_EQ(r.unreachable[0].floor, static_cast<double>(cache.bytes() - cache.BytesOf(2)));
  // The age bound is explicit: it takes what it names, recent or not, while
  // the unreachable byte bound still takes nothing more.
  bytes.max_age = std::chrono::seconds(2 * hour);
  r = Trim(cache.root(), bytes);
  cache.ExpectResult(r, 2);
  cache.ExpectFirstRemoved(2);
  EXPECT_FALSE(r.bounds_met);
  // keep_recent zero: any entry may go, and one recent pair does.
  bytes.max_age.reset();
  bytes.keep_recent = std::chrono::seconds(0);
  r = Trim(cache.root(), bytes);
  cache.ExpectResult(r, 2, 3);
  cache.ExpectFirstRemoved(3);
  EXPECT_TRUE(r.unreachable.empty());
  EXPECT_TRUE(r.bounds_met);
}

// One bound out of reach does not stop the other from being met.
TEST_F(CacheTrimTest, AReachableBoundIsMetBesideAnUnreachableOne) {
  Cache cache(tmp_ / "go-build");
  EightPairs(cache);
  TrimBounds both = AnyAge();
  both.max_bytes = cache.bytes() - cache.BytesOf(3);
  both.max_inode_usage = 0.0;
  const TrimResult r = Trim(cache.root(), both);
  cache.ExpectResult(r, 3);
  cache.ExpectFirstRemoved(3);
  EXPECT_FALSE(r.bounds_met);
  ASSERT_EQ(r.unreachable.size(), 1u);
  EXPECT_EQ(r.unreachable[0].bound, TrimBound::kInodeUsage);
}

// The plan counts one inode per removed file from the usage it read: with a
// bound a few inodes below that usage, exactly enough pairs go (computed here
// from result.before, as others change the filesystem's usage meanwhile).
TEST_F(CacheTrimTest, InodeUsageBoundRemovesEnoughPairs) {
  Cache cache(tmp_ / "go-build");
  EightPairs(cache);
  const FsCounts fs = StatFs(cache.root());
  ASSERT_NE(fs.files, 0u) << "the tests need a filesystem with an inode table";
  for (const uint64_t below : {uint64_t{3}, uint64_t{6}}) {
    SCOPED_TRACE(below);
    TrimBounds inodes = AnyAge();
    inodes.max_inode_usage = (static_cast<double>(fs.files - fs.files_free - below) + 0.5) /
                             static_cast<double>(fs.files);
    TrimOptions dry;
    dry.dry_run = true;
    const TrimResult r = Trim(cache.root(), inodes, dry);
    const uint64_t used = r.before.files - r.before.files_free;
    size_t k = 0;
    while (k < 8 && static_cast<double>(used - 2 * k) / static_cast<double>(r.before.files) >
                        *inodes.max_inode_usage) {
      ++k;
    }
    cache.ExpectResult(r, k);
    EXPECT_EQ(r.after.files_free, r.before.files_free + 2 * k);
    EXPECT_EQ(r.bounds_met,
              k < 8 || static_cast<double>(used - 16) / static_cast<double>(r.before.files) <=
                           *inodes.max_inode_usage);
  }
}

// --- 6. Dry run ---

TEST_F(CacheTrimTest, DryRunChangesNothingAndPredictsTheRealRun) {
  for (const bool age : {false, true}) {
    SCOPED_TRACE(age ? "max_age" : "max_bytes");
    Cache cache(tmp_ / (age ? "age" : "bytes"));
    MixedUnits(cache);
    cache.Put("trim.txt", "1700000000", Ago(3 * kDay));  // in the snapshots too
    TrimBounds bounds = AnyAge();
    if (age) {
      bounds.max_age = std::chrono::seconds(4500);  // the five oldest units
    } else {
      bounds.max_bytes = cache.bytes() / 2;
    }
    const auto before = Snapshot(cache.root());
    TrimOptions dry;
    dry.dry_run = true;
    const TrimResult d = Trim(cache.root(), bounds, dry);
    EXPECT_EQ(Snapshot(cache.root()), before);
    EXPECT_GT(d.entries(), 0u);
    EXPECT_TRUE(d.bounds_met);
    EXPECT_EQ(d.after.files_free, d.before.files_free + d.entries());
    EXPECT_EQ(d.after.files, d.before.files);

    const TrimResult r = Trim(cache.root(), bounds);
    EXPECT_EQ(r.actions, d.actions);
    EXPECT_EQ(r.outputs, d.outputs);
    EXPECT_EQ(r.bytes, d.bytes);
    EXPECT_EQ(r.after.entries, d.after.entries);
    EXPECT_EQ(r.after.bytes, d.after.bytes);
    EXPECT_TRUE(r.bounds_met);
    size_t k = 0;
    while (k < cache.units().size() && cache.BytesOf(k) < r.bytes) ++k;
    cache.ExpectResult(r, k);
    cache.ExpectFirstRemoved(k);
    EXPECT_EQ(k, 5u);
  }
}

// --- 7. Safety ---

TEST_F(CacheTrimTest, RemovesOnlyRegularEntryFilesInShards) {
  Cache cache(tmp_ / "go-build");
  const int64_t old = Ago(30 * kDay);
  cache.Pair(Id(0x00, 1), Id(0x00, 2), 40, old);
  cache.Orphan(Id(0xff, 3), 50, old);
  cache.Corrupt(Id(0x7f, 4), "junk", old);

  // A link named like an output, to a file outside the cache.
  const std::string victim = tmp_.WriteFile("victim", "keep me");
  SetMtime(victim, old);
  const std::string link_id = Id(0x00, 0x50);
  ASSERT_EQ(symlink(victim.c_str(), (cache / OutputRel(link_id)).c_str()), 0);
  // An action naming the link: an action alone.
  const std::string names_link = Id(0x00, 0x51);
  cache.PutAction(names_link, link_id, old);
  // Not entries: junk, another suffix, uppercase hex, the wrong shard, a
  // directory named like an output, a FIFO named like an action.
  const std::string upper = "00" + std::string(62, 'A');
  const std::vector<std::string> others = {
      cache.Put("00/junk", "junk", old),
      cache.Put("00/" + Id(0x00, 0x52) + "-x", "x", old),
      cache.Put("00/" + upper + "-d", "upper", old),
      cache.Put("00/" + upper + "-a", GoEntry(upper, Id(0x00, 2), 40), old),
      cache.Put("00/" + Id(0x01, 0x53) + "-d", "wrong shard", old),
      cache.Put("00/" + Id(0x00, 0x54) + "-d/inside", "in a directory", old),
      cache.Put("README", "This directory holds cached build artifacts.\n", old),
      cache.Put("trim.txt", "1700000000", old),
      cache.Put("fuzz/" + Id(0x00, 0x55) + "-a", GoEntry(Id(0x00, 0x55), Id(0x00, 0x56), 1), old),
      cache.Put("fuzz/00/" + Id(0x00, 0x57) + "-d", "fuzz", old),
      cache.Put("AB/" + Id(0xab, 0x58) + "-d", "uppercase shard", old),
      cache.Put("01", "a file where a shard would be", old),
  };
  ASSERT_EQ(mkfifo((cache / ActionRel(Id(0x00, 0x59))).c_str(), 0600), 0);
  SetMtime(cache / ActionRel(Id(0x00, 0x59)), old);
  // A shard that links to a directory outside the cache.
  const std::string outside = tmp_.MakeDir("outside/ab");
  const std::string out_action = Id(0xab, 0x60), out_output = Id(0xab, 0x61);
  tmp_.WriteFile("outside/ab/" + out_action + "-a", GoEntry(out_action, out_output, 3));
  tmp_.WriteFile("outside/ab/" + out_output + "-d", "out");
  SetMtime(tmp_ / ("outside/ab/" + out_action + "-a"), old);
  SetMtime(tmp_ / ("outside/ab/" + out_output + "-d"), old);
  ASSERT_EQ(symlink(outside.c_str(), (cache / "ab").c_str()), 0);

  const auto before = Snapshot(cache.root());
  const auto outside_before = Snapshot(tmp_ / "outside");
  const int64_t trim_mtime = MtimeNs(cache / "trim.txt");

  TrimBounds all;
  all.max_bytes = 0;
  all.max_age = std::chrono::seconds(0);
  const TrimResult r = Trim(cache.root(), all);
  EXPECT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_EQ(r.actions, 3u);  // the pair's, the corrupt one, the one naming the link
  EXPECT_EQ(r.outputs, 2u);
  EXPECT_EQ(r.bytes, kActionSize + 40 + 50 + 4 + kActionSize);
  EXPECT_EQ(r.before.entries, 5u);
  EXPECT_EQ(r.after.entries, 0u);
  EXPECT_TRUE(r.bounds_met);
  cache.ExpectFirstRemoved(cache.units().size());
  EXPECT_FALSE(Exists(cache / ActionRel(names_link)));

  // Everything else exactly as it was.
  auto after = Snapshot(cache.root());
  auto expected = before;
  for (const auto& u : cache.units()) {
    for (const auto& f : u.files) expected.erase("/" + f);
  }
  expected.erase("/" + ActionRel(names_link));
  EXPECT_EQ(after, expected);
  for (const auto& rel : others) EXPECT_TRUE(after.count("/" + rel)) << rel;
  EXPECT_TRUE(after.count("/" + OutputRel(link_id)));
  EXPECT_TRUE(after.count("/" + ActionRel(Id(0x00, 0x59))));
  EXPECT_EQ(ReadAll(victim), "keep me");
  EXPECT_EQ(MtimeNs(victim), old);
  EXPECT_EQ(Snapshot(tmp_ / "outside"), outside_before);
  EXPECT_EQ(ReadAll(cache / "trim.txt"), "1700000000");
  EXPECT_EQ(MtimeNs(cache / "trim.txt"), trim_mtime);
}

// --- 8. Entries used after the listing ---

TEST_F(CacheTrimTest, ProgressReportsEachListedShard) {
  Cache cache(tmp_ / "go-build");
  EightPairs(cache);
  std::set<std::string> shards;
  for (const auto& u : cache.units()) {
    for (const auto& f : u.files) shards.insert(f.substr(0, 2));
  }
  std::vector<uint64_t> expected;
  for (const auto& s : shards) expected.push_back(std::stoul(s, nullptr, 16) + 1);

  std::vector<uint64_t> listed;
  int removing = 0;
  TrimOptions options;
  options.progress = [&](const TrimProgress& p) {
    if (std::string(p.phase) == "listing") {
      EXPECT_EQ(p.total, 256u);
      listed.push_back(p.done);
    } else {
      EXPECT_STREQ(p.phase, "removing");
      ++removing;
    }
  };
  const TrimResult r = Trim(cache.root(), MaxBytes(0), options);
  cache.ExpectResult(r, 8);
  EXPECT_EQ(listed, expected);  // after each shard present, in order
  EXPECT_EQ(removing, 0);       // every 4096 removals
}

// 4097 units. On tmpfs when there is one: making that many files on a disk
// filesystem that concurrent builds keep busy can take seconds.
TEST_F(CacheTrimTest, ProgressReportsEvery4096Removals) {
  std::string base = tmp_.path();
  char shm[] = "/dev/shm/gocache_trim_test_XXXXXX";
  struct statfs fs;
  const bool tmpfs = statfs("/dev/shm", &fs) == 0 && fs.f_type == TMPFS_MAGIC &&
                     access("/dev/shm", W_OK) == 0 && mkdtemp(shm) != nullptr;
  if (tmpfs) base = shm;
  const std::unique_ptr<const char, void (*)(const char*)> cleanup(
      tmpfs ? shm : nullptr, [](const char* dir) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      });
  Cache cache(base + "/go-build");
  for (int shard = 0; shard < 16; ++shard) {
    ASSERT_EQ(mkdir((cache / Shard(Id(shard, 0))).c_str(), 0755), 0);
  }
  for (int i = 0; i < 4097; ++i) {
    const std::string path = cache / OutputRel(Id(i % 16, static_cast<uint64_t>(i)));
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    ASSERT_EQ(write(fd, "o", 1), 1);
    close(fd);
  }
  std::vector<std::pair<uint64_t, uint64_t>> removing;
  TrimOptions options;
  options.progress = [&](const TrimProgress& p) {
    if (std::string(p.phase) == "removing") removing.push_back({p.done, p.total});
  };
  const TrimResult r = Trim(cache.root(), MaxBytes(0), options);
  EXPECT_EQ(r.outputs, 4097u);
  EXPECT_EQ(r.bytes, 4097u);
  EXPECT_EQ(removing, (std::vector<std::pair<uint64_t, uint64_t>>{{4096, 4097}}));
}

TEST_F(CacheTrimTest, EntryUsedAfterListingIsLeftAlone) {
  for (const bool touch_output : {false, true}) {
    SCOPED_TRACE(touch_output ? "output touched" : "action touched");
    Cache cache(tmp_ / (touch_output ? "output" : "action"));
    const std::string used_action = Id(0x20, 1), used_output = Id(0x21, 2);
    cache.Pair(Id(0x10, 3), Id(0x11, 4), 10, Ago(500));
    cache.Pair(used_action, used_output, 20, Ago(400));
    cache.Pair(Id(0x30, 5), Id(0x31, 6), 30, Ago(300));
    const std::string touched = touch_output ? OutputRel(used_output) : ActionRel(used_action);
    const int shard = std::stoi(touched.substr(0, 2), nullptr, 16);
    int touches = 0;
    TrimOptions options;
    options.progress = [&](const TrimProgress& p) {
      // Once the shard is listed, before any removal: a build uses the entry.
      if (std::string(p.phase) == "listing" && p.done == static_cast<uint64_t>(shard) + 1) {
        SetMtime(cache / touched, NowNs());
        ++touches;
      }
    };
    const auto pairs = LivePairs(cache.root());
    const TrimResult r = Trim(cache.root(), MaxBytes(0), options);
    EXPECT_EQ(touches, 1);
    EXPECT_EQ(r.skipped, 1u);
    EXPECT_TRUE(r.errors.empty());
    EXPECT_FALSE(r.bounds_met);
    EXPECT_TRUE(Exists(cache / touched));
    if (touch_output) {
      // The action went; its output, in use, stays.
      EXPECT_EQ(r.actions, 3u);
      EXPECT_EQ(r.outputs, 2u);
      EXPECT_EQ(r.bytes, 3 * kActionSize + 10 + 30);
      EXPECT_FALSE(Exists(cache / ActionRel(used_action)));
    } else {
      // The action stays, and so does its output.
      EXPECT_EQ(r.actions, 2u);
      EXPECT_EQ(r.outputs, 2u);
      EXPECT_EQ(r.bytes, 2 * kActionSize + 10 + 30);
      EXPECT_TRUE(Exists(cache / OutputRel(used_output)));
    }
    EXPECT_EQ(r.after.entries, 6u - r.entries());
    ExpectActionsKeepOutputs(cache.root(), pairs);
  }
}

TEST_F(CacheTrimTest, EntryReplacedAfterListingIsLeftAlone) {
  Cache cache(tmp_ / "go-build");
  const std::string action = Id(0x20, 1), output = Id(0x21, 2);
  cache.Pair(action, output, 20, Ago(400));
  TrimOptions options;
  options.progress = [&](const TrimProgress& p) {
    // After the output's shard: the action replaced by a link, same mtime.
    if (std::string(p.phase) == "listing" && p.done == 0x21 + 1) {
      const std::string path = cache / ActionRel(action);
      const int64_t mtime = MtimeNs(path);
      ASSERT_EQ(unlink(path.c_str()), 0);
      ASSERT_EQ(symlink("/dev/null", path.c_str()), 0);
      SetMtime(path, mtime);
    }
  };
  const TrimResult r = Trim(cache.root(), MaxBytes(0), options);
  EXPECT_EQ(r.skipped, 1u);
  EXPECT_EQ(r.entries(), 0u);
  EXPECT_TRUE(Exists(cache / ActionRel(action)));
  EXPECT_TRUE(Exists(cache / OutputRel(output)));
}

// The older action of a shared output is planned to go alone and the newer
// one to take the output; if a build uses the older action meanwhile, it
// stays, and so must the output it names. (A bug this test found.)
TEST_F(CacheTrimTest, SharedOutputStaysWhenItsOlderActionIsUsedDuringTheTrim) {
  Cache cache(tmp_ / "go-build");
  const std::string older = Id(0x10, 1), newer = Id(0x20, 2), output = Id(0x30, 3);
  cache.Shared(older, newer, output, 100, Ago(300), Ago(200));
  const auto pairs = LivePairs(cache.root());
  ASSERT_EQ(pairs.size(), 2u);
  TrimOptions options;
  options.progress = [&](const TrimProgress& p) {
    if (std::string(p.phase) == "listing" && p.done == 0x10 + 1) {
      SetMtime(cache / ActionRel(older), NowNs());
    }
  };
  const TrimResult r = Trim(cache.root(), MaxBytes(0), options);
  EXPECT_EQ(r.skipped, 1u);
  EXPECT_TRUE(Exists(cache / ActionRel(older)));
  EXPECT_FALSE(Exists(cache / ActionRel(newer)));
  EXPECT_TRUE(Exists(cache / OutputRel(output)));
  EXPECT_EQ(r.actions, 1u);
  EXPECT_EQ(r.outputs, 0u);
  ExpectActionsKeepOutputs(cache.root(), pairs);
}

// --- 9. stop ---

TEST_F(CacheTrimTest, StopEndsTheTrimBetweenUnits) {
  for (const int stop_at : {1, 3, 9}) {
    SCOPED_TRACE(stop_at);
    Cache cache(tmp_ / ("c" + std::to_string(stop_at)));
    EightPairs(cache);
    int calls = 0;
    TrimOptions options;
    options.stop = [&] { return ++calls == stop_at; };
    const TrimResult r = Trim(cache.root(), MaxBytes(0), options);
    const size_t removed = std::min(stop_at - 1, 8);
    cache.ExpectResult(r, removed);
    cache.ExpectFirstRemoved(removed);
    EXPECT_EQ(calls, std::min(stop_at, 8));
    EXPECT_EQ(r.bounds_met, removed == 8);
  }
}

TEST_F(CacheTrimTest, StopIsNotAskedWhenNothingIsToGo) {
  Cache cache(tmp_ / "go-build");
  EightPairs(cache);
  int calls = 0;
  TrimOptions options;
  options.stop = [&] { return ++calls > 0; };
  const TrimResult r = Trim(cache.root(), MaxBytes(cache.bytes()), options);
  cache.ExpectResult(r, 0);
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(r.bounds_met);
}

// A trim stopped early leaves entries older than max_age: the age bound
// does not hold. (A bug this test found.)
TEST_F(CacheTrimTest, StoppedAgeTrimDoesNotMeetItsBound) {
  Cache cache(tmp_ / "go-build");
  cache.Pair(Id(0x10, 1), Id(0x11, 1), 10, Ago(10 * kDay));
  cache.Pair(Id(0x12, 2), Id(0x13, 2), 10, Ago(9 * kDay));
  TrimBounds age;
  age.max_age = std::chrono::seconds(kDay);
  TrimOptions options;
  options.stop = [] { return true; };
  const TrimResult r = Trim(cache.root(), age, options);
  cache.ExpectResult(r, 0);
  cache.ExpectFirstRemoved(0);
  EXPECT_FALSE(r.bounds_met);
}

// --- 10. MeasureCache ---

TEST_F(CacheTrimTest, MeasureCacheCountsEntriesBytesAndTrimmable) {
  Cache cache(tmp_ / "go-build");
  const int64_t cutoff = buildcache::kTrimCutoffSeconds;
  cache.Pair(Id(0x01, 1), Id(0x02, 1), 11, Ago(30 * kDay));         // both trimmable
  cache.Pair(Id(0x03, 2), Id(0x04, 2), 13, Ago(cutoff + 10 * 60));  // both
  // Action young, its output (1000 s older) past the cutoff: one.
  cache.Pair(Id(0x05, 3), Id(0x06, 3), 17, Ago(cutoff - 500));
  cache.Pair(Id(0x07, 4), Id(0x08, 4), 19, Ago(cutoff - 10 * 60 - 1000));  // neither
  cache.Orphan(Id(0x09, 5), 23, Ago(6 * kDay));                            // trimmable
  cache.Orphan(Id(0x0a, 6), 29, Ago(60));
  cache.Corrupt(Id(0x0b, 7), "bad", Ago(7 * kDay));  // trimmable
  cache.Put("README", "not an entry", Ago(30 * kDay));
  cache.Put("0c/junk", "not an entry", Ago(30 * kDay));
  const uint64_t bytes = 4 * kActionSize + 11 + 13 + 17 + 19 + 23 + 29 + 3;
  ASSERT_EQ(cache.bytes(), bytes);

  std::string error;
  const auto counted = MeasureCache(cache.root(), true, error);
  ASSERT_TRUE(counted.has_value()) << error;
  EXPECT_EQ(counted->entries, 11u);
  EXPECT_EQ(counted->bytes, bytes);
  EXPECT_EQ(counted->trimmable, 7u);
  EXPECT_EQ(counted->files, StatFs(cache.root()).files);

  const auto quick = MeasureCache(cache.root(), false, error);
  ASSERT_TRUE(quick.has_value()) << error;
  EXPECT_EQ(quick->entries, 0u);
  EXPECT_EQ(quick->bytes, 0u);
  EXPECT_EQ(quick->trimmable, 0u);
  EXPECT_EQ(quick->files, StatFs(cache.root()).files);
  EXPECT_GT(quick->avail_bytes, 0u);

  // TrimCache's `before` is the same measurement.
  TrimBounds none;
  const TrimResult r = Trim(cache.root(), none);
  EXPECT_EQ(r.before.entries, 11u);
  EXPECT_EQ(r.before.bytes, bytes);
  EXPECT_EQ(r.before.trimmable, 7u);
  EXPECT_EQ(r.entries(), 0u);
  EXPECT_TRUE(r.bounds_met);
}

TEST_F(CacheTrimTest, MeasureCacheFilesFreeIsStatvfs) {
  Cache cache(tmp_ / "go-build");
  bool compared = false;
  for (int attempt = 0; attempt < 50 && !compared; ++attempt) {
    const FsCounts s1 = StatFs(cache.root());
    std::string error;
    const auto usage = MeasureCache(cache.root(), false, error);
    const FsCounts s2 = StatFs(cache.root());
    ASSERT_TRUE(usage.has_value()) << error;
    if (!(s1 == s2)) continue;
    compared = true;
    EXPECT_EQ(usage->files, s1.files);
    EXPECT_EQ(usage->files_free, s1.files_free);
  }
  if (!compared) {
    // A busy filesystem: the reading lies between the two around it, give
    // or take what others did meanwhile.
    const FsCounts s1 = StatFs(cache.root());
    std::string error;
    const auto usage = MeasureCache(cache.root(), false, error);
    const FsCounts s2 = StatFs(cache.root());
    ASSERT_TRUE(usage.has_value()) << error;
    constexpr uint64_t kSlack = 1000;
    EXPECT_EQ(usage->files, s1.files);
    EXPECT_GE(usage->files_free + kSlack, std::min(s1.files_free, s2.files_free));
    EXPECT_LE(usage->files_free, std::max(s1.files_free, s2.files_free) + kSlack);
  }
}

TEST_F(CacheTrimTest, MeasureCacheOfAnEmptyCache) {
  Cache cache(tmp_ / "go-build");
  std::string error;
  const auto usage = MeasureCache(cache.root(), true, error);
  ASSERT_TRUE(usage.has_value()) << error;
  EXPECT_EQ(usage->entries, 0u);
  EXPECT_EQ(usage->bytes, 0u);
  EXPECT_EQ(usage->trimmable, 0u);
}

TEST_F(CacheTrimTest, MissingCacheDirectoryOrAFile) {
  const std::string missing = tmp_ / "no-such-cache";
  std::string error;
  EXPECT_FALSE(MeasureCache(missing, true, error).has_value());
  EXPECT_THAT(error, HasSubstr(missing));
  error.clear();
  EXPECT_FALSE(MeasureCache(missing, false, error).has_value());
  EXPECT_THAT(error, HasSubstr(missing));
  error.clear();
  EXPECT_FALSE(TrimCache(missing, MaxBytes(0), {}, error).has_value());
  EXPECT_THAT(error, HasSubstr(missing));

  // A file, not a directory.
  const std::string file = tmp_.WriteFile("a-file", "x");
  error.clear();
  EXPECT_FALSE(MeasureCache(file, true, error).has_value());
  EXPECT_THAT(error, HasSubstr(file));
}

}  // namespace
}  // namespace gocache
