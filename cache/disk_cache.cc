#include "cache/disk_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include "base/file_time.h"
#include "base/write_all.h"

namespace gocache {
namespace {

using buildcache::Id;

// The go command creates its directories 0777 and its files 0666, both
// before the umask.
constexpr mode_t kDirMode = 0777;
constexpr mode_t kFileMode = 0666;

// Marks an entry used as the go command's DiskCache.used does: its mtime set
// to now unless already within the last hour (to spare the disk writes).
// `st` is the entry's, just read.
void MarkUsed(const std::string& path, const struct stat& st, int64_t now_ns) {
  if (now_ns - MtimeNs(st) < buildcache::kMtimeIntervalSeconds * kNanosPerSecond) return;
  utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
}

// A name in the entry's own shard that no other writer uses and that neither
// the go command's trim (it takes only "-a" and "-d") nor a census takes for
// an entry.
std::string TemporaryName(const std::string& path) {
  static std::atomic<uint64_t> sequence{0};
  const size_t slash = path.rfind('/');
  char suffix[64];
  std::snprintf(suffix, sizeof suffix, ".tmp-%d-%llu", static_cast<int>(getpid()),
                static_cast<unsigned long long>(sequence.fetch_add(1)));
  return path.substr(0, slash + 1) + "." + path.substr(slash + 1) + suffix;
}

// Records `now_unix` in trim.txt as the go command does (lockedfile.Write:
// under an exclusive lock, then truncated and written).
bool WriteTrimTime(const std::string& dir, int64_t now_unix, std::string& error) {
  const std::string path = dir + "/trim.txt";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, kFileMode);
  if (fd < 0) {
    error = DescribeErrno(errno, path);
    return false;
  }
  const std::string text = std::to_string(now_unix);
  const bool ok = flock(fd, LOCK_EX) == 0 && ftruncate(fd, 0) == 0 && WriteAll(fd, text);
  if (!ok) error = DescribeErrno(errno, path);
  close(fd);
  return ok;
}

}  // namespace

std::optional<DiskCache> DiskCache::Open(const std::string& dir, std::string& error) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    error = DescribeErrno(errno, dir);
    return std::nullopt;
  }
  if (!S_ISDIR(st.st_mode)) {
    error = dir + ": not a directory";
    return std::nullopt;
  }
  for (int shard = 0; shard < 256; ++shard) {
    const std::string path = dir + "/" + buildcache::ShardName(shard);
    if (mkdir(path.c_str(), kDirMode) != 0 && errno != EEXIST) {
      error = DescribeErrno(errno, path);
      return std::nullopt;
    }
  }
  return DiskCache(dir);
}

GetResult DiskCache::Get(const Id& action) const {
  GetResult result;
  const std::string action_path = buildcache::EntryPath(dir_, action, 'a');
  const int fd = open(action_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      result.miss = MissReason::kNoEntry;
    } else {
      result.error = DescribeErrno(errno, action_path);
    }
    return result;
  }
  // One byte more than an entry, to tell a file that is too long. A get is
  // a few system calls, each counted: the size from fstat ends the reading
  // without a read that returns 0, and its mtime says whether to mark it.
  char buf[buildcache::kActionEntrySize + 1];
  struct stat action_st;
  if (fstat(fd, &action_st) != 0) {
    result.error = DescribeErrno(errno, action_path);
    close(fd);
    return result;
  }
  const size_t want =
      std::min(sizeof buf, static_cast<size_t>(std::max<off_t>(action_st.st_size, 0)));
  size_t got = 0;
  for (ssize_t n; got < want && (n = read(fd, buf + got, want - got)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      result.error = DescribeErrno(errno, action_path);
      close(fd);
      return result;
    }
    got += static_cast<size_t>(n);
  }
  close(fd);
  const std::string hex = buildcache::HexId(action);
  const auto entry = buildcache::ParseActionEntry(std::string_view(buf, got), hex);
  if (!entry) {
    result.miss = MissReason::kCorrupt;
    return result;
  }
  std::string output_path = buildcache::EntryPath(dir_, entry->output_id, 'd');
  struct stat st;
  if (stat(output_path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    result.miss = MissReason::kOutputMissing;
    return result;
  }
  if (st.st_size != entry->output_size) {
    result.miss = MissReason::kSizeMismatch;
    return result;
  }
  const int64_t now = NowNs();
  MarkUsed(action_path, action_st, now);
  MarkUsed(output_path, st, now);
  result.hit =
      CacheHit{entry->output_id, entry->output_size, entry->time_ns, std::move(output_path)};
  return result;
}

bool DiskCache::WriteAndRename(const std::string& path, std::string_view content,
                               std::string& error) const {
  const std::string temporary = TemporaryName(path);
  const int fd =
      open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kFileMode);
  if (fd < 0) {
    error = DescribeErrno(errno, temporary);
    return false;
  }
  bool ok = WriteAll(fd, content);
  int err = errno;
  if (close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (ok && rename(temporary.c_str(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    error = DescribeErrno(err, path);
    unlink(temporary.c_str());
  }
  return ok;
}

PutResult DiskCache::Put(const Id& action, const Id& output, std::string_view body) const {
  PutResult result;
  std::string output_path = buildcache::EntryPath(dir_, output, 'd');
  // An output is named by the hash of its content: one present with the
  // right size is this one (the go command writes the last byte last).
  struct stat st;
  const bool present = lstat(output_path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                       static_cast<uint64_t>(st.st_size) == body.size();
  if (present) {
    MarkUsed(output_path, st, NowNs());
  } else if (!WriteAndRename(output_path, body, result.error)) {
    return result;
  }
  const std::string entry =
      buildcache::FormatActionEntry(action, output, static_cast<int64_t>(body.size()), NowNs());
  if (!WriteAndRename(buildcache::EntryPath(dir_, action, 'a'), entry, result.error)) {
    if (!present) unlink(output_path.c_str());  // no output without the entry naming it
    return result;
  }
  result.output_path = std::move(output_path);
  return result;
}

std::optional<TrimResult> DiskCache::TrimIfDue(std::string& error) const {
  const int64_t now_unix = NowNs() / kNanosPerSecond;
  if (!buildcache::TrimDue(buildcache::ReadTrimTime(dir_), now_unix)) return std::nullopt;
  // Recorded first: helpers that close at the same moment see it and leave
  // the trim to this one.
  if (!WriteTrimTime(dir_, now_unix, error)) return std::nullopt;
  TrimBounds bounds;
  bounds.max_age = std::chrono::seconds(buildcache::kTrimCutoffSeconds);
  return TrimCache(dir_, bounds, TrimOptions{}, error);
}

}  // namespace gocache
