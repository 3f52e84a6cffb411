// Times of files and of the clock as nanoseconds since the epoch: the unit
// the go command's cache entries record and compare.
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>

namespace gocache {

inline constexpr int64_t kNanosPerSecond = 1'000'000'000;

inline int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * kNanosPerSecond + st.st_mtim.tv_nsec;
}

inline int64_t CtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_ctim.tv_sec) * kNanosPerSecond + st.st_ctim.tv_nsec;
}

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "<what>: <error>", where `err` is an errno value saved before `what` was
// built (building a string may change errno).
inline std::string DescribeErrno(int err, const std::string& what) {
  return what + ": " + std::strerror(err);
}

}  // namespace gocache
