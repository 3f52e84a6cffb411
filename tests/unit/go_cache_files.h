// Files of the go command's build cache, made by hand for unit tests: IDs,
// action entries in the go command's format, and mtimes to the nanosecond.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace gocache::testing_util {

constexpr int64_t kNs = 1'000'000'000;

// A 64 hex digit ID whose first byte is `shard` (so it belongs in that shard
// directory) and whose next 7 bytes are `n`: distinct n give distinct
// IdKeys. `tail` fills the rest.
inline std::string Id(int shard, uint64_t n, unsigned tail = 0xc0de) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%02x%014" PRIx64 "%048x", shard, n & 0xffffffffffffff, tail);
  return std::string(buf, 64);
}

inline std::string Shard(const std::string& id) { return id.substr(0, 2); }

// An action entry as the go command writes it.
inline std::string GoEntry(const std::string& id, const std::string& out, int64_t size,
                           int64_t time_ns = 1'700'000'000'000'000'000) {
  char buf[256];
  const int n = std::snprintf(buf, sizeof buf, "v1 %s %s %20" PRId64 " %20" PRId64 "\n", id.c_str(),
                              out.c_str(), size, time_ns);
  EXPECT_EQ(n, 175);
  return std::string(buf, static_cast<size_t>(n));
}

inline void SetMtime(const std::string& path, int64_t mtime_ns) {
  const struct timespec ts = {static_cast<time_t>(mtime_ns / kNs),
                              static_cast<long>(mtime_ns % kNs)};
  const struct timespec times[2] = {ts, ts};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0)
      << path << ": " << std::strerror(errno);
}

inline int64_t MtimeNs(const std::string& path) {
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * kNs + st.st_mtim.tv_nsec;
}

inline int64_t CtimeNs(const std::string& path) {
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return static_cast<int64_t>(st.st_ctim.tv_sec) * kNs + st.st_ctim.tv_nsec;
}

}  // namespace gocache::testing_util
