#include "collectors/trace/spool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/fixtures.h"

namespace gocache::trace {
namespace {

using namespace std::chrono_literals;
using testing_util::TempDir;

constexpr auto kHour = std::chrono::milliseconds(1h);

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Sets a file's mtime (not following a symbolic link) to `age` ago.
void MakeOld(const std::string& path, std::chrono::seconds age = 2h) {
  struct timespec times[2];
  ASSERT_EQ(clock_gettime(CLOCK_REALTIME, &times[0]), 0);
  times[0].tv_sec -= static_cast<time_t>(age.count());
  times[1] = times[0];
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

const SpoolFile* Named(const std::vector<SpoolFile>& files, const std::string& name) {
  for (const auto& file : files) {
    if (file.name == name) return &file;
  }
  return nullptr;
}

// Scans until `name` is offered, at most 50 times 20 ms apart.
std::vector<SpoolFile> ScanFor(Spool& spool, const std::string& name,
                               std::vector<std::string>& problems) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto files = spool.Scan(problems);
    if (Named(files, name) != nullptr) return files;
    std::this_thread::sleep_for(20ms);
  }
  return {};
}

std::string ReadAll(int fd) {
  std::string content;
  char buffer[256];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) content.append(buffer, n);
  return content;
}

TEST(SpoolNameTest, IsCandidateName) {
  for (const char* name : {"trace.json", "a", "x.json.gz", "x.done.json", "done", "error", "tmp",
                           "x.DONE", "x.tmp.gz", "x.errors", "x done", "x.json~"}) {
    EXPECT_TRUE(IsCandidateName(name)) << '"' << name << '"';
  }
  for (const char* name : {"", ".", "..", ".hidden", ".x.json", "x.done", "x.error", "x.tmp",
                           ".done", ".tmp", "x.json.done", "x.json.error", "a.b.tmp"}) {
    EXPECT_FALSE(IsCandidateName(name)) << '"' << name << '"';
  }
}

TEST(SpoolTest, ClosedFileIsFoundAtOnceDespiteTheSettleTime) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  Spool spool({dir}, kHour, OnDone::kRename);
  ASSERT_TRUE(spool.watching());
  std::vector<std::string> problems;
  // A fresh file there before the spool was watched waits for the settle time.
  tmp.WriteFile("spool/before.json", "[]");
  EXPECT_TRUE(spool.Scan(problems).empty());
  EXPECT_TRUE(problems.empty()) << problems.front();

  // Ignored names are never offered, closed or not.
  tmp.WriteFile("spool/x.tmp", "[]");
  tmp.WriteFile("spool/.hidden", "[]");
  tmp.WriteFile("spool/old.done", "[]");
  tmp.WriteFile("spool/trace.json", "[1]");
  const auto files = ScanFor(spool, "trace.json", problems);
  EXPECT_TRUE(problems.empty()) << problems.front();
  ASSERT_EQ(files.size(), 1u) << (files.empty() ? "nothing" : files[0].name);
  const SpoolFile& file = files[0];
  EXPECT_EQ(file.name, "trace.json");
  EXPECT_EQ(file.spool, 0u);
  EXPECT_EQ(spool.dir(file), dir);
  EXPECT_TRUE(S_ISREG(file.st.st_mode));
  EXPECT_EQ(file.st.st_size, 3);

  const int fd = spool.Open(file);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadAll(fd), "[1]");
  close(fd);

  // The close was reported once: unhandled, it now waits for the settle time.
  EXPECT_TRUE(spool.Scan(problems).empty());
}

TEST(SpoolTest, FileMovedInIsFoundAtOnce) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  tmp.MakeDir("outside");
  Spool spool({dir}, kHour, OnDone::kRename);
  ASSERT_TRUE(spool.watching());
  std::vector<std::string> problems;
  EXPECT_TRUE(spool.Scan(problems).empty());

  // Written elsewhere, then renamed into the spool.
  tmp.WriteFile("outside/moved.json", "[2]");
  ASSERT_EQ(std::rename((tmp / "outside/moved.json").c_str(), (dir + "/moved.json").c_str()), 0);
  auto files = ScanFor(spool, "moved.json", problems);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "moved.json");

  // A writer's temporary file renamed into place within the spool.
  tmp.WriteFile("spool/in-place.json.tmp", "[3]");
  EXPECT_TRUE(spool.Scan(problems).empty());
  ASSERT_EQ(std::rename((dir + "/in-place.json.tmp").c_str(), (dir + "/in-place.json").c_str()), 0);
  files = ScanFor(spool, "in-place.json", problems);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "in-place.json");
  EXPECT_TRUE(problems.empty()) << problems.front();
}

TEST(SpoolTest, FileStillOpenForWritingIsNotOpened) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  {
    // Leases need a filesystem that has them (not NFS) and owning the file.
    const int probe = open(tmp.WriteFile("probe").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(probe, 0);
    const bool leases = fcntl(probe, F_SETLEASE, F_RDLCK) == 0;
    close(probe);
    // Local filesystems have them; the tests' temporary directory must be one.
    ASSERT_TRUE(leases) << "no read leases on " << tmp.path();
  }
  Spool spool({dir}, kHour, OnDone::kRename);
  ASSERT_TRUE(spool.watching());
  std::vector<std::string> problems;
  EXPECT_TRUE(spool.Scan(problems).empty());

  // Two writers: one closes (which inotify reports), one still writes.
  const std::string path = dir + "/busy.json";
  const int writer = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(writer, 0);
  ASSERT_EQ(write(writer, "[", 1), 1);
  const int other = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(other, 0);
  close(other);

  const auto files = ScanFor(spool, "busy.json", problems);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(spool.Open(files[0]), -1) << "opened while another descriptor writes to it";

  close(writer);
  const int fd = spool.Open(files[0]);
  EXPECT_GE(fd, 0) << "not opened once the writer closed it";
  if (fd >= 0) {
    EXPECT_EQ(ReadAll(fd), "[");
    close(fd);
  }
}

TEST(SpoolTest, SettledFileIsFoundByTheRescan) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  // Written before the spool is watched: no inotify event will tell.
  const std::string path = tmp.WriteFile("spool/quiet.json", "[]");
  Spool spool({dir}, kHour, OnDone::kRename);
  std::vector<std::string> problems;
  EXPECT_TRUE(spool.Scan(problems).empty());

  MakeOld(path, 59min);  // not yet
  EXPECT_TRUE(spool.Scan(problems).empty());

  MakeOld(path, 2h);
  const auto files = spool.Scan(problems);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "quiet.json");
  EXPECT_TRUE(problems.empty()) << problems.front();
  // Until handled it is offered on every rescan.
  EXPECT_EQ(spool.Scan(problems).size(), 1u);
}

TEST(SpoolTest, UnhandledFileIsOfferedAgainOnceSettled) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  Spool spool({dir}, std::chrono::milliseconds(30), OnDone::kRename);
  std::vector<std::string> problems;
  EXPECT_TRUE(spool.Scan(problems).empty());
  // A file whose close inotify reported, offered once, then settling on its own.
  tmp.WriteFile("spool/a.json", "[]");
  ASSERT_EQ(ScanFor(spool, "a.json", problems).size(), 1u);
  bool found = false;
  for (int attempt = 0; attempt < 50 && !found; ++attempt) {
    std::this_thread::sleep_for(20ms);
    found = Named(spool.Scan(problems), "a.json") != nullptr;
  }
  EXPECT_TRUE(found);
}

TEST(SpoolTest, FinishRenamesOrDeletes) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  for (const char* name : {"used.json", "bad.json"})
    MakeOld(tmp.WriteFile("spool/" + std::string(name), "[]"));
  std::vector<std::string> problems;
  {
    Spool spool({dir}, kHour, OnDone::kRename);
    const auto files = spool.Scan(problems);
    ASSERT_EQ(files.size(), 2u);
    const SpoolFile* used = Named(files, "used.json");
    const SpoolFile* bad = Named(files, "bad.json");
    ASSERT_TRUE(used && bad);
    EXPECT_TRUE(spool.Finish(*used, true, problems));
    EXPECT_TRUE(spool.Finish(*bad, false, problems));
    EXPECT_TRUE(problems.empty()) << problems.front();
    EXPECT_TRUE(Exists(dir + "/used.json.done"));
    EXPECT_TRUE(Exists(dir + "/bad.json.error"));
    EXPECT_FALSE(Exists(dir + "/used.json"));
    EXPECT_FALSE(Exists(dir + "/bad.json"));
    EXPECT_TRUE(spool.Scan(problems).empty());
    // Already gone (another reader took it): false, but no problem.
    EXPECT_FALSE(spool.Finish(*used, true, problems));
    EXPECT_TRUE(problems.empty()) << problems.front();
  }
  // A new Spool (a restart) does not offer handled files either.
  {
    Spool spool({dir}, kHour, OnDone::kRename);
    EXPECT_TRUE(spool.Scan(problems).empty());
  }
  for (const char* name : {"used2.json", "bad2.json"})
    MakeOld(tmp.WriteFile("spool/" + std::string(name), "[]"));
  {
    Spool spool({dir}, kHour, OnDone::kDelete);
    const auto files = spool.Scan(problems);
    ASSERT_EQ(files.size(), 2u);
    const SpoolFile* used = Named(files, "used2.json");
    const SpoolFile* bad = Named(files, "bad2.json");
    ASSERT_TRUE(used && bad);
    EXPECT_TRUE(spool.Finish(*used, true, problems));
    EXPECT_TRUE(spool.Finish(*bad, false, problems));  // bad files are kept to look at
    EXPECT_TRUE(problems.empty()) << problems.front();
    EXPECT_FALSE(Exists(dir + "/used2.json"));
    EXPECT_FALSE(Exists(dir + "/used2.json.done"));
    EXPECT_TRUE(Exists(dir + "/bad2.json.error"));
    EXPECT_FALSE(spool.Finish(*used, true, problems));
    EXPECT_TRUE(problems.empty()) << problems.front();
  }
}

TEST(SpoolTest, SymbolicLinkIsOfferedButNeverFollowed) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  const std::string target = tmp.WriteFile("secret.json", "[]");
  const std::string link = dir + "/link.json";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  MakeOld(link);
  Spool spool({dir}, kHour, OnDone::kRename);
  std::vector<std::string> problems;
  const auto files = spool.Scan(problems);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "link.json");
  EXPECT_TRUE(S_ISLNK(files[0].st.st_mode));
  EXPECT_EQ(spool.Open(files[0]), -1);
  // Finishing it renames the link, not what it points to.
  EXPECT_TRUE(spool.Finish(files[0], false, problems));
  EXPECT_TRUE(Exists(dir + "/link.json.error"));
  EXPECT_TRUE(Exists(target));
}

TEST(SpoolTest, SubdirectoryIsNotOffered) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  MakeOld(tmp.MakeDir("spool/sub"));
  MakeOld(tmp.WriteFile("spool/file.json", "[]"));
  Spool spool({dir}, kHour, OnDone::kRename);
  std::vector<std::string> problems;
  const auto files = spool.Scan(problems);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].name, "file.json");
  EXPECT_TRUE(problems.empty()) << problems.front();
}

TEST(SpoolTest, ReplacedFileIsNotOpened) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  MakeOld(tmp.WriteFile("spool/t.json", "[]"));
  Spool spool({dir}, kHour, OnDone::kRename);
  std::vector<std::string> problems;
  const auto files = spool.Scan(problems);
  ASSERT_EQ(files.size(), 1u);
  // Replaced by another file (another inode) after the scan.
  tmp.WriteFile("spool/t.json.new", "[1]");
  ASSERT_EQ(std::rename((dir + "/t.json.new").c_str(), (dir + "/t.json").c_str()), 0);
  EXPECT_EQ(spool.Open(files[0]), -1);
  ASSERT_EQ(unlink((dir + "/t.json").c_str()), 0);
  EXPECT_EQ(spool.Open(files[0]), -1);
}

TEST(SpoolTest, MissingSpoolIsAProblemUntilItExists) {
  TempDir tmp;
  const std::string dir = tmp / "spool";
  Spool spool({dir}, kHour, OnDone::kRename);
  std::vector<std::string> problems;
  EXPECT_TRUE(spool.Scan(problems).empty());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find(dir), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("No such file"), std::string::npos) << problems[0];

  tmp.MakeDir("spool");
  problems.clear();
  EXPECT_TRUE(spool.Scan(problems).empty());
  EXPECT_TRUE(problems.empty()) << problems[0];
  tmp.WriteFile("spool/late.json", "[]");
  const auto files = ScanFor(spool, "late.json", problems);
  EXPECT_TRUE(problems.empty()) << problems.front();
  ASSERT_EQ(files.size(), 1u);
  const int fd = spool.Open(files[0]);
  EXPECT_GE(fd, 0);
  if (fd >= 0) close(fd);
  EXPECT_TRUE(spool.Finish(files[0], true, problems));
}

TEST(SpoolTest, SpoolMadeAnewIsWatchedAgain) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  Spool spool({dir}, kHour, OnDone::kRename);
  ASSERT_TRUE(spool.watching());
  std::vector<std::string> problems;
  EXPECT_TRUE(spool.Scan(problems).empty());
  std::filesystem::remove_all(dir);
  tmp.MakeDir("spool");
  EXPECT_TRUE(spool.Scan(problems).empty());
  tmp.WriteFile("spool/again.json", "[]");
  EXPECT_EQ(ScanFor(spool, "again.json", problems).size(), 1u);
  EXPECT_TRUE(problems.empty()) << problems.front();
}

TEST(SpoolTest, SeveralSpools) {
  TempDir tmp;
  const std::string a = tmp.MakeDir("a");
  const std::string b = tmp.MakeDir("b");
  MakeOld(tmp.WriteFile("a/1.json", "[]"));
  MakeOld(tmp.WriteFile("b/2.json", "[]"));
  Spool spool({a, tmp / "missing", b}, kHour, OnDone::kRename);
  std::vector<std::string> problems;
  const auto files = spool.Scan(problems);
  ASSERT_EQ(files.size(), 2u);
  ASSERT_EQ(problems.size(), 1u);  // the missing one, which stops no other
  const SpoolFile* one = Named(files, "1.json");
  const SpoolFile* two = Named(files, "2.json");
  ASSERT_TRUE(one && two);
  EXPECT_EQ(spool.dir(*one), a);
  EXPECT_EQ(spool.dir(*two), b);
  EXPECT_TRUE(spool.Finish(*two, true, problems));
  EXPECT_TRUE(Exists(b + "/2.json.done"));
  EXPECT_FALSE(Exists(a + "/2.json.done"));
}

// Renaming fails, even for root, when the target name is a directory
// (EISDIR); deleting fails when the name became a directory.
TEST(SpoolTest, FileThatCannotBeRenamedIsAProblemAndNotOfferedAgainUntilItChanges) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  const std::string path = tmp.WriteFile("spool/stuck.json", "[]");
  MakeOld(path);
  tmp.MakeDir("spool/stuck.json.done");
  Spool spool({dir}, kHour, OnDone::kRename);
  std::vector<std::string> problems;
  auto files = spool.Scan(problems);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_FALSE(spool.Finish(files[0], true, problems));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("cannot rename"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find(dir + "/stuck.json"), std::string::npos) << problems[0];
  EXPECT_TRUE(Exists(path));

  // Not offered again, and reported on every scan while it is there.
  for (int scan = 0; scan < 2; ++scan) {
    problems.clear();
    EXPECT_TRUE(spool.Scan(problems).empty());
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].find("stuck.json"), std::string::npos) << problems[0];
  }

  // Changed, it is offered again (and can be finished once the way is clear).
  {
    const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "\n", 1), 1);
    close(fd);
  }
  MakeOld(path);
  problems.clear();
  files = spool.Scan(problems);
  EXPECT_TRUE(problems.empty()) << problems.front();
  ASSERT_EQ(files.size(), 1u);
  ASSERT_EQ(rmdir((dir + "/stuck.json.done").c_str()), 0);
  EXPECT_TRUE(spool.Finish(files[0], true, problems));
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_TRUE(Exists(dir + "/stuck.json.done"));
  problems.clear();
  EXPECT_TRUE(spool.Scan(problems).empty());
  EXPECT_TRUE(problems.empty()) << problems.front();
}

// The name no longer holds the file that was read (here a directory took
// its place): it is not finished, not counted, and nothing is removed.
TEST(SpoolTest, FileReplacedBeforeItIsDeletedIsLeftAlone) {
  TempDir tmp;
  const std::string dir = tmp.MakeDir("spool");
  MakeOld(tmp.WriteFile("spool/gone.json", "[]"));
  Spool spool({dir}, kHour, OnDone::kDelete);
  std::vector<std::string> problems;
  const auto files = spool.Scan(problems);
  ASSERT_EQ(files.size(), 1u);
  ASSERT_EQ(unlink((dir + "/gone.json").c_str()), 0);
  tmp.MakeDir("spool/gone.json");
  EXPECT_FALSE(spool.Finish(files[0], true, problems));
  EXPECT_TRUE(problems.empty()) << problems.front();
  struct stat st;
  ASSERT_EQ(lstat((dir + "/gone.json").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

}  // namespace
}  // namespace gocache::trace
