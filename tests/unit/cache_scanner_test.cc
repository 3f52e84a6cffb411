#include "cache/cache_scanner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/fixtures.h"

namespace gocache {
namespace {

using testing_util::TempDir;

const std::function<bool()> kNeverStop = [] { return false; };

std::string Hex64(char c) { return std::string(64, c); }

// Counts like `find PATH | wc -l`: the root and every entry below it, without
// following symbolic links.
uint64_t FindCount(const std::string& root) {
  uint64_t count = 1;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    ++count;
  }
  return count;
}

// A cache-like tree with every kind of entry:
//   README trim.txt fifo link-to-big dangling
//   ab/<hex>-a ab/<hex>-d cd/<hex>-a fuzz/x/y empty-dir/
// 14 entries below the root (15 with it), 6 directories with the root.
struct Tree {
  explicit Tree(const TempDir& tmp) {
    root = tmp.MakeDir("cache");
    tmp.WriteFile("cache/README", "This directory holds cached build artifacts.\n");
    tmp.WriteFile("cache/trim.txt", "1700000000\n");
    tmp.MakeDir("cache/ab");
    tmp.WriteFile("cache/ab/" + Hex64('a') + "-a", std::string(175, 'x'));
    tmp.WriteFile("cache/ab/" + Hex64('b') + "-d", "0123456789");
    tmp.MakeDir("cache/cd");
    tmp.WriteFile("cache/cd/" + Hex64('c') + "-a", std::string(175, 'y'));
    tmp.MakeDir("cache/fuzz/x");
    tmp.WriteFile("cache/fuzz/x/y", "corpus");
    tmp.MakeDir("cache/empty-dir");
    EXPECT_EQ(mkfifo((tmp / "cache/fifo").c_str(), 0644), 0) << std::strerror(errno);
    // A big directory outside the tree, reachable only through a symlink.
    big = tmp.MakeDir("big");
    for (int i = 0; i < 50; ++i) tmp.WriteFile("big/f" + std::to_string(i), "z");
    EXPECT_EQ(symlink(big.c_str(), (tmp / "cache/link-to-big").c_str()), 0);
    EXPECT_EQ(symlink((tmp / "nowhere").c_str(), (tmp / "cache/dangling").c_str()), 0);
  }
  std::string root;
  std::string big;
  static constexpr uint64_t kInodes = 15;
  static constexpr uint64_t kDirectories = 6;
};

struct FileCall {
  std::string parent;
  int depth;
  bool has_status;
  mode_t mode;
  off_t size;
  bool fd_matches;  // fstatat(dir_fd, name) finds the same inode
};

class RecordingVisitor : public ScanVisitor {
 public:
  explicit RecordingVisitor(bool want_status) : want_status_(want_status) {}
  bool wants_file_status() const override { return want_status_; }
  void OnFile(int dir_fd, std::string_view parent, std::string_view name, int depth,
              const struct stat* status) override {
    struct stat own;
    const bool found = fstatat(dir_fd, std::string(name).c_str(), &own, AT_SYMLINK_NOFOLLOW) == 0;
    files[std::string(name)] = FileCall{
        .parent = std::string(parent),
        .depth = depth,
        .has_status = status != nullptr,
        .mode = status ? status->st_mode : 0,
        .size = status ? status->st_size : -1,
        .fd_matches = found && (!status || own.st_ino == status->st_ino),
    };
  }
  void OnDirectory(std::string_view name, int depth, const struct stat& status) override {
    directories[std::string(name)] = depth;
    EXPECT_TRUE(S_ISDIR(status.st_mode)) << name;
  }
  std::map<std::string, FileCall> files;
  std::map<std::string, int> directories;

 private:
  bool want_status_;
};

TEST(ScanTreeTest, CountsLikeFind) {
  TempDir tmp;
  Tree tree(tmp);
  ASSERT_EQ(FindCount(tree.root), Tree::kInodes);  // the fixture itself is as intended

  const auto result = ScanTree(tree.root, nullptr, kNeverStop);
  EXPECT_TRUE(result.root_readable);
  EXPECT_TRUE(result.root_error.empty()) << result.root_error;
  EXPECT_EQ(result.inodes, Tree::kInodes);
  EXPECT_EQ(result.inodes, FindCount(tree.root));
  EXPECT_EQ(result.directories, Tree::kDirectories);
  EXPECT_EQ(result.errors, 0u) << result.first_error;
  EXPECT_TRUE(result.first_error.empty());
  EXPECT_GE(result.duration_seconds, 0);
  EXPECT_GT(result.started_unix, 1.6e9);
}

// Another cache inside this one (a GOMODCACHE below the GOCACHE directory)
// is left to its own scan: neither counted nor visited, however reached.
TEST(ScanTreeTest, ExcludedDirectoriesAreNeitherCountedNorEntered) {
  TempDir tmp;
  Tree tree(tmp);
  const std::string mod = tmp.MakeDir("cache/pkg/mod/cache/download");
  tmp.WriteFile("cache/pkg/mod/cache/download/x.zip", "zip");
  tmp.WriteFile("cache/pkg/mod/go.mod", "module m");
  const std::string nested = tmp / "cache/pkg/mod";
  const uint64_t mod_inodes = FindCount(nested);
  ASSERT_EQ(mod_inodes, 5u);
  // find ROOT -path NESTED -prune -o -print: the tree with pkg/ but not pkg/mod.
  const uint64_t want = FindCount(tree.root) - mod_inodes;
  ASSERT_EQ(want, Tree::kInodes + 1);

  for (const size_t threads : {size_t{1}, size_t{3}}) {
    SCOPED_TRACE(threads);
    std::vector<RecordingVisitor> visitors(threads, RecordingVisitor(false));
    std::vector<ScanVisitor*> pointers;
    for (auto& v : visitors) pointers.push_back(&v);
    const auto result = ScanTree(tree.root, pointers, kNeverStop, {nested});
    EXPECT_EQ(result.inodes, want);
    EXPECT_EQ(result.directories, Tree::kDirectories + 1);
    EXPECT_EQ(result.errors, 0u) << result.first_error;
    for (const auto& v : visitors) {
      EXPECT_EQ(v.directories.count("mod"), 0u);
      EXPECT_EQ(v.files.count("x.zip") + v.files.count("go.mod"), 0u);
    }
    // Named through a symbolic link, it is the same directory.
    const std::string link = tmp / "mod-link";
    std::filesystem::remove(link);
    std::filesystem::create_directory_symlink(nested, link);
    EXPECT_EQ(ScanTree(tree.root, pointers, kNeverStop, {link}).inodes, want);
  }
  // A path that does not exist excludes nothing.
  EXPECT_EQ(
      ScanTree(tree.root, std::vector<ScanVisitor*>{nullptr}, kNeverStop, {tmp / "cache/not-there"})
          .inodes,
      FindCount(tree.root));
}

TEST(ScanTreeTest, EmptyRootCountsItself) {
  TempDir tmp;
  const auto result = ScanTree(tmp.MakeDir("empty"), nullptr, kNeverStop);
  EXPECT_TRUE(result.root_readable);
  EXPECT_EQ(result.inodes, 1u);
  EXPECT_EQ(result.directories, 1u);
  EXPECT_EQ(result.errors, 0u);
}

TEST(ScanTreeTest, SymlinkToDirectoryCountedNotFollowed) {
  TempDir tmp;
  Tree tree(tmp);
  RecordingVisitor visitor(/*want_status=*/true);
  const auto result = ScanTree(tree.root, &visitor, kNeverStop);
  // 50 files behind the link would make it 65.
  EXPECT_EQ(result.inodes, Tree::kInodes);
  EXPECT_EQ(visitor.directories.count("link-to-big"), 0u);
  ASSERT_EQ(visitor.files.count("link-to-big"), 1u);
  EXPECT_TRUE(S_ISLNK(visitor.files["link-to-big"].mode));
  EXPECT_EQ(visitor.files.count("f0"), 0u);
  ASSERT_EQ(visitor.files.count("dangling"), 1u);
  EXPECT_TRUE(S_ISLNK(visitor.files["dangling"].mode));
}

TEST(ScanTreeTest, RootGivenAsSymlinkIsOpened) {
  // The root itself is opened as given (a configured path may be a link);
  // only links below it are not followed.
  TempDir tmp;
  Tree tree(tmp);
  ASSERT_EQ(symlink(tree.root.c_str(), (tmp / "cache-link").c_str()), 0);
  const auto result = ScanTree(tmp / "cache-link", nullptr, kNeverStop);
  EXPECT_TRUE(result.root_readable);
  EXPECT_EQ(result.inodes, Tree::kInodes);
}

TEST(ScanTreeTest, MissingRoot) {
  TempDir tmp;
  const std::string missing = tmp / "no-such-cache";
  RecordingVisitor visitor(true);
  const auto result = ScanTree(missing, &visitor, kNeverStop);
  EXPECT_FALSE(result.root_readable);
  EXPECT_NE(result.root_error.find(missing), std::string::npos) << result.root_error;
  EXPECT_NE(result.root_error.find(std::strerror(ENOENT)), std::string::npos) << result.root_error;
  EXPECT_EQ(result.inodes, 0u);
  EXPECT_EQ(result.directories, 0u);
  EXPECT_TRUE(visitor.files.empty());
}

TEST(ScanTreeTest, RootIsAFile) {
  TempDir tmp;
  const std::string file = tmp.WriteFile("file", "x");
  const auto result = ScanTree(file, nullptr, kNeverStop);
  EXPECT_FALSE(result.root_readable);
  EXPECT_NE(result.root_error.find(file), std::string::npos) << result.root_error;
  EXPECT_NE(result.root_error.find(std::strerror(ENOTDIR)), std::string::npos) << result.root_error;
  EXPECT_EQ(result.inodes, 0u);
}

TEST(ScanTreeTest, StopBeforeFirstDirectory) {
  TempDir tmp;
  Tree tree(tmp);
  RecordingVisitor visitor(false);
  int polls = 0;
  const std::function<bool()> stop = [&polls] {
    ++polls;
    return true;
  };
  const auto result = ScanTree(tree.root, &visitor, stop);
  EXPECT_TRUE(result.root_readable);
  EXPECT_EQ(result.inodes, 1u);
  EXPECT_EQ(result.directories, 1u);
  EXPECT_EQ(polls, 1);
  EXPECT_TRUE(visitor.files.empty());
  EXPECT_TRUE(visitor.directories.empty());
}

TEST(ScanTreeTest, StopPartWay) {
  TempDir tmp;
  Tree tree(tmp);
  int polls = 0;
  const std::function<bool()> stop = [&polls] { return ++polls >= 3; };
  const auto result = ScanTree(tree.root, nullptr, stop);
  EXPECT_TRUE(result.root_readable);
  EXPECT_EQ(polls, 3);  // not polled again once it said stop
  // Two directory reads at most: the root up to its first subdirectory, and
  // that subdirectory. The root's other subdirectories hold entries that were
  // never reached.
  EXPECT_GE(result.inodes, 2u);
  EXPECT_LT(result.inodes, Tree::kInodes);
}

TEST(ScanTreeTest, VisitorSeesEveryNonDirectoryWithStatus) {
  TempDir tmp;
  Tree tree(tmp);
  RecordingVisitor visitor(/*want_status=*/true);
  const auto result = ScanTree(tree.root, &visitor, kNeverStop);
  ASSERT_TRUE(result.root_readable);

  const std::set<std::string> want_files = {"README",          "trim.txt",        "fifo",
                                            "link-to-big",     "dangling",        Hex64('a') + "-a",
                                            Hex64('b') + "-d", Hex64('c') + "-a", "y"};
  std::set<std::string> got_files;
  for (const auto& [name, call] : visitor.files) got_files.insert(name);
  EXPECT_EQ(got_files, want_files);
  EXPECT_EQ(result.inodes, 1 + visitor.files.size() + visitor.directories.size());

  for (const auto& [name, call] : visitor.files) {
    EXPECT_TRUE(call.has_status) << name;
    EXPECT_TRUE(call.fd_matches) << name << ": dir_fd is not the parent directory";
  }
  const auto& action = visitor.files[Hex64('a') + "-a"];
  EXPECT_EQ(action.parent, "ab");
  EXPECT_EQ(action.depth, 2);
  EXPECT_TRUE(S_ISREG(action.mode));
  EXPECT_EQ(action.size, 175);
  const auto& output = visitor.files[Hex64('b') + "-d"];
  EXPECT_EQ(output.parent, "ab");
  EXPECT_EQ(output.depth, 2);
  EXPECT_EQ(output.size, 10);
  EXPECT_EQ(visitor.files[Hex64('c') + "-a"].parent, "cd");
  EXPECT_EQ(visitor.files["README"].parent, "");
  EXPECT_EQ(visitor.files["README"].depth, 1);
  EXPECT_TRUE(S_ISFIFO(visitor.files["fifo"].mode));
  EXPECT_EQ(visitor.files["fifo"].depth, 1);
  EXPECT_EQ(visitor.files["y"].parent, "x");
  EXPECT_EQ(visitor.files["y"].depth, 3);

  const std::map<std::string, int> want_dirs = {
      {"ab", 1}, {"cd", 1}, {"fuzz", 1}, {"x", 2}, {"empty-dir", 1}};
  EXPECT_EQ(visitor.directories, want_dirs);
}

TEST(ScanTreeTest, VisitorWithoutStatusGetsNull) {
  TempDir tmp;
  Tree tree(tmp);
  RecordingVisitor visitor(/*want_status=*/false);
  const auto result = ScanTree(tree.root, &visitor, kNeverStop);
  EXPECT_EQ(result.inodes, Tree::kInodes);
  ASSERT_EQ(visitor.files.size(), 9u);
  // ext4, xfs, btrfs and tmpfs all report d_type, so no fstatat is needed.
  EXPECT_FALSE(visitor.files["README"].has_status);
  EXPECT_FALSE(visitor.files[Hex64('a') + "-a"].has_status);
  EXPECT_EQ(visitor.files[Hex64('a') + "-a"].parent, "ab");
  EXPECT_EQ(visitor.files[Hex64('a') + "-a"].depth, 2);
  EXPECT_TRUE(visitor.files["README"].fd_matches);
}

// Deletes, when it sees the first file of directory "v", that file's sibling:
// listed by readdir but gone by the time the scanner looks at it.
class VanishingVisitor : public ScanVisitor {
 public:
  bool wants_file_status() const override { return true; }
  void OnFile(int dir_fd, std::string_view parent, std::string_view name, int,
              const struct stat*) override {
    ++files;
    if (parent != "v" || removed) return;
    removed = true;
    const char* sibling = name == "f1" ? "f2" : "f1";
    EXPECT_EQ(unlinkat(dir_fd, sibling, 0), 0) << std::strerror(errno);
  }
  void OnDirectory(std::string_view name, int, const struct stat&) override {
    if (name == "gone") {
      EXPECT_EQ(rmdir(gone_path.c_str()), 0) << std::strerror(errno);
    }
  }
  std::string gone_path;
  bool removed = false;
  int files = 0;
};

TEST(ScanTreeTest, EntriesThatVanishAreNotErrors) {
  TempDir tmp;
  const std::string root = tmp.MakeDir("cache");
  tmp.MakeDir("cache/v");
  tmp.WriteFile("cache/v/f1", "1");
  tmp.WriteFile("cache/v/f2", "2");
  VanishingVisitor visitor;
  visitor.gone_path = tmp.MakeDir("cache/gone");
  const auto result = ScanTree(root, &visitor, kNeverStop);
  EXPECT_TRUE(visitor.removed);
  EXPECT_EQ(result.errors, 0u) << result.first_error;
  // root, v, one of f1/f2, and gone (listed before it vanished).
  EXPECT_EQ(result.inodes, 4u);
  EXPECT_EQ(visitor.files, 1);
}

TEST(ScanTreeTest, TooDeepTreeCountsAnError) {
  TempDir tmp;
  std::string rel = "deep";
  for (int i = 0; i < 140; ++i) rel += "/d";
  tmp.MakeDir(rel);
  const auto result = ScanTree(tmp / "deep", nullptr, kNeverStop);
  EXPECT_TRUE(result.root_readable);
  EXPECT_EQ(result.errors, 1u);
  EXPECT_NE(result.first_error.find(std::strerror(ELOOP)), std::string::npos) << result.first_error;
  EXPECT_EQ(result.directories, result.inodes);  // only directories in there
  EXPECT_LT(result.inodes, 141u);                // the bottom was not reached
  EXPECT_GE(result.inodes, 100u);
}

// A tree with a directory nobody but root may open.
struct LockedTree {
  explicit LockedTree(const TempDir& tmp) {
    root = tmp.MakeDir("cache");
    EXPECT_EQ(chmod(tmp.path().c_str(), 0755), 0);  // mkdtemp made it 0700
    tmp.MakeDir("cache/ab");
    tmp.WriteFile("cache/ab/file", "1");
    locked = tmp.MakeDir("cache/locked");
    tmp.WriteFile("cache/locked/a", "1");
    tmp.WriteFile("cache/locked/b", "2");
    tmp.MakeDir("cache/locked/sub");
    EXPECT_EQ(chmod(locked.c_str(), 0), 0);
  }
  std::string root;
  std::string locked;
};

// Runs a scan on a thread of its own whose filesystem uid is `fsuid`: the
// kernel keeps credentials per thread, and a non-zero fsuid drops the
// CAP_DAC_* capabilities of that thread only. Returns false if the switch did
// not take effect.
bool ScanAsFsuid(uid_t fsuid, const std::string& root, ScanResult& result) {
  bool switched = false;
  std::thread thread([&] {
    syscall(SYS_setfsuid, fsuid);
    switched = static_cast<uid_t>(syscall(SYS_setfsuid, -1)) == fsuid;
    if (switched) result = ScanTree(root, nullptr, kNeverStop);
    syscall(SYS_setfsuid, 0);
  });
  thread.join();
  return switched;
}

void ExpectLockedDirectoryError(const ScanResult& result) {
  EXPECT_TRUE(result.root_readable) << result.root_error;
  EXPECT_EQ(result.errors, 1u);
  EXPECT_NE(result.first_error.find("locked"), std::string::npos) << result.first_error;
  EXPECT_NE(result.first_error.find(std::strerror(EACCES)), std::string::npos)
      << result.first_error;
  // root, ab, ab/file and locked itself (listed, not entered).
  EXPECT_EQ(result.inodes, 4u);
  EXPECT_EQ(result.directories, 3u);
}

TEST(ScanTreeTest, UnreadableSubdirectoryCountsAnError) {
  TempDir tmp;
  LockedTree tree(tmp);
  if (geteuid() != 0) {
    ExpectLockedDirectoryError(ScanTree(tree.root, nullptr, kNeverStop));
    return;
  }
  // Root reads through mode 000: everything is counted, nothing fails.
  const auto as_root = ScanTree(tree.root, nullptr, kNeverStop);
  EXPECT_EQ(as_root.errors, 0u) << as_root.first_error;
  EXPECT_EQ(as_root.inodes, 7u);
  EXPECT_EQ(as_root.directories, 4u);

  // As an unprivileged user (on this thread only), the directory cannot be
  // opened and counts as one error. (Where uid 65534 is not mapped, as in
  // some user namespaces, the switch fails and only the above is checked.)
  ScanResult as_nobody;
  if (ScanAsFsuid(65534, tree.root, as_nobody)) ExpectLockedDirectoryError(as_nobody);
}

// The multi-threaded walk: what one visitor saw, and on which threads.
class CollectingVisitor : public ScanVisitor {
 public:
  bool wants_file_status() const override { return true; }
  void OnFile(int, std::string_view parent, std::string_view name, int depth,
              const struct stat* status) override {
    files.push_back(std::string(parent) + "/" + std::string(name));
    if (depth == 1) root_files.push_back(std::string(name));
    if (status == nullptr) ++without_status;
    threads.insert(std::this_thread::get_id());
  }
  void OnDirectory(std::string_view name, int, const struct stat&) override {
    directories.push_back(std::string(name));
    threads.insert(std::this_thread::get_id());
  }
  std::vector<std::string> files;  // "parent/name"
  std::vector<std::string> root_files;
  std::vector<std::string> directories;
  std::set<std::thread::id> threads;
  int without_status = 0;
};

// A build-cache-like tree: 256 shard directories of one file each, README
// and trim.txt at the root, and fuzz/x/y. Built once for the suite (creating
// files is slow on some filesystems).
struct ShardedTree {
  explicit ShardedTree(const TempDir& tmp) {
    root = tmp.MakeDir("cache");
    char shard[8];
    for (int s = 0; s < 256; ++s) {
      std::snprintf(shard, sizeof shard, "%02x", s);
      tmp.MakeDir(std::string("cache/") + shard);
      const std::string name = std::string(shard) + Hex64('0').substr(2) + "-d";
      tmp.WriteFile(std::string("cache/") + shard + "/" + name, "e");
      files.insert(std::string(shard) + "/" + name);
    }
    tmp.WriteFile("cache/README", "readme");
    tmp.WriteFile("cache/trim.txt", "1700000000");
    tmp.MakeDir("cache/fuzz/x");
    tmp.WriteFile("cache/fuzz/x/y", "corpus");
    files.insert({"/README", "/trim.txt", "x/y"});
  }
  std::string root;
  std::set<std::string> files;
  static constexpr uint64_t kInodes = 1 + 256 + 256 + 2 + 3;
  static constexpr uint64_t kDirectories = 1 + 256 + 2;
};

class ScanTreeThreadsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir;
    tree_ = new ShardedTree(*tmp_);
  }
  static void TearDownTestSuite() {
    delete tree_;
    delete tmp_;
    tree_ = nullptr;
    tmp_ = nullptr;
  }
  static TempDir* tmp_;
  static ShardedTree* tree_;
};
TempDir* ScanTreeThreadsTest::tmp_ = nullptr;
ShardedTree* ScanTreeThreadsTest::tree_ = nullptr;

TEST_F(ScanTreeThreadsTest, SameCountsAndEveryFileOnce) {
  const ShardedTree& tree = *tree_;
  ASSERT_EQ(FindCount(tree.root), ShardedTree::kInodes);
  const auto single = ScanTree(tree.root, nullptr, kNeverStop);
  ASSERT_EQ(single.inodes, ShardedTree::kInodes);

  for (size_t n : {2u, 4u}) {
    SCOPED_TRACE(std::to_string(n) + " visitors");
    std::vector<CollectingVisitor> visitors(n);
    std::vector<ScanVisitor*> pointers;
    for (auto& v : visitors) pointers.push_back(&v);
    const auto result = ScanTree(tree.root, pointers, kNeverStop);
    EXPECT_TRUE(result.root_readable);
    EXPECT_EQ(result.inodes, single.inodes);
    EXPECT_EQ(result.directories, single.directories);
    EXPECT_EQ(result.directories, ShardedTree::kDirectories);
    EXPECT_EQ(result.errors, 0u) << result.first_error;

    std::map<std::string, int> seen_files, seen_dirs;
    for (size_t i = 0; i < n; ++i) {
      for (const auto& file : visitors[i].files) ++seen_files[file];
      for (const auto& dir : visitors[i].directories) ++seen_dirs[dir];
      EXPECT_EQ(visitors[i].without_status, 0) << "visitor " << i;
      // Each visitor is called from one thread only, its own.
      EXPECT_LE(visitors[i].threads.size(), 1u) << "visitor " << i;
      for (size_t j = 0; j < i; ++j) {
        for (const auto& id : visitors[i].threads) {
          EXPECT_EQ(visitors[j].threads.count(id), 0u) << "visitors " << j << " and " << i;
        }
      }
    }
    std::set<std::string> got;
    for (const auto& [file, times] : seen_files) {
      EXPECT_EQ(times, 1) << file;
      got.insert(file);
    }
    EXPECT_EQ(got, tree.files);
    EXPECT_EQ(seen_dirs.size(), 256u + 2);  // the shards, fuzz and x
    for (const auto& [dir, times] : seen_dirs) EXPECT_EQ(times, 1) << dir;
    EXPECT_EQ(1 + seen_files.size() + seen_dirs.size(), result.inodes);

    // The root's own entries go to visitor 0.
    const std::vector<std::string> want_root = {"README", "trim.txt"};
    auto root_files = visitors[0].root_files;
    std::sort(root_files.begin(), root_files.end());
    EXPECT_EQ(root_files, want_root);
    for (size_t i = 1; i < n; ++i) EXPECT_TRUE(visitors[i].root_files.empty()) << i;
  }
}

TEST_F(ScanTreeThreadsTest, NullVisitorsOnlyCount) {
  const ShardedTree& tree = *tree_;
  const auto counted = ScanTree(tree.root, std::vector<ScanVisitor*>(4, nullptr), kNeverStop);
  EXPECT_EQ(counted.inodes, ShardedTree::kInodes);
  EXPECT_EQ(counted.directories, ShardedTree::kDirectories);
  const auto none = ScanTree(tree.root, std::vector<ScanVisitor*>{}, kNeverStop);
  EXPECT_EQ(none.inodes, ShardedTree::kInodes);

  // A visitor next to a null one sees the root's entries and only part of
  // the rest, never more than all of it.
  CollectingVisitor visitor;
  const auto mixed = ScanTree(tree.root, {&visitor, nullptr}, kNeverStop);
  EXPECT_EQ(mixed.inodes, ShardedTree::kInodes);
  EXPECT_EQ(visitor.root_files.size(), 2u);
  EXPECT_LE(visitor.files.size(), tree.files.size());
  const std::set<std::string> distinct(visitor.files.begin(), visitor.files.end());
  EXPECT_EQ(distinct.size(), visitor.files.size());
}

TEST_F(ScanTreeThreadsTest, StopBeforeFirstDirectory) {
  const ShardedTree& tree = *tree_;
  std::vector<CollectingVisitor> visitors(4);
  std::vector<ScanVisitor*> pointers;
  for (auto& v : visitors) pointers.push_back(&v);
  std::atomic<int> polls{0};
  const std::function<bool()> stop = [&polls] {
    ++polls;
    return true;
  };
  const auto result = ScanTree(tree.root, pointers, stop);
  EXPECT_TRUE(result.root_readable);
  EXPECT_EQ(result.inodes, 1u);
  EXPECT_GE(polls.load(), 1);
  for (const auto& v : visitors) {
    EXPECT_TRUE(v.files.empty());
    EXPECT_TRUE(v.directories.empty());
  }
}

TEST_F(ScanTreeThreadsTest, StopPartWayCountsLess) {
  const ShardedTree& tree = *tree_;
  std::atomic<int> polls{0};
  const std::function<bool()> stop = [&polls] { return ++polls > 20; };
  const auto result = ScanTree(tree.root, std::vector<ScanVisitor*>(2, nullptr), stop);
  EXPECT_TRUE(result.root_readable);
  EXPECT_GT(result.inodes, 1u);
  EXPECT_LT(result.inodes, ShardedTree::kInodes);
}

}  // namespace
}  // namespace gocache
