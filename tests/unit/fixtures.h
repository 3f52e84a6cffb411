// What the unit tests share: a temporary directory per test, files of the go
// command's build cache made by hand (IDs, action entries, mtimes to the
// nanosecond), and collectors made and their families looked up.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <prometheus/metric_family.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "base/flags.h"
#include "collectors/collector.h"

namespace gocache::testing_util {

class TempDir {
 public:
  TempDir() {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base += '/';
    std::string templ = base + "gocache_test_XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << templ << " failed";
    }
    // Canonical, so that tests may compare it with what the code resolves.
    std::error_code ec;
    const auto canonical = std::filesystem::canonical(templ, ec);
    path_ = ec ? templ : canonical.string();
  }
  ~TempDir() {
    std::error_code ec;
    // Make everything writable and searchable again, then remove it.
    for (auto it = std::filesystem::recursive_directory_iterator(
             path_, std::filesystem::directory_options::skip_permission_denied, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) chmod(it->path().c_str(), 0755);
    }
    chmod(path_.c_str(), 0755);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

  // Creates a directory (and its parents) below the temp dir.
  std::string MakeDir(const std::string& rel) const {
    const std::string p = *this / rel;
    std::error_code ec;
    std::filesystem::create_directories(p, ec);
    EXPECT_FALSE(ec) << "mkdir " << p << ": " << ec.message();
    return p;
  }

  // Writes a file below the temp dir.
  std::string WriteFile(const std::string& rel, const std::string& content = "") const {
    const std::string p = *this / rel;
    std::ofstream out(p, std::ios::binary);
    out << content;
    EXPECT_TRUE(out.good()) << "write " << p;
    return p;
  }

 private:
  std::string path_;
};

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

// A parse of no flags at all.
inline ParsedFlags NoFlags() { return ParsedFlags::Empty(); }

// The collector `info` registers, configured without flags and made; null
// when that fails.
inline std::unique_ptr<Collector> Make(const CollectorInfo& info, const CollectorContext& context) {
  const auto configured = info.configure(NoFlags());
  const auto* collector = std::get_if<ConfiguredCollector>(&configured);
  if (!collector || !collector->make) return nullptr;
  return collector->make(context);
}

inline const prometheus::MetricFamily* FindFamily(
    const std::vector<prometheus::MetricFamily>& families, const std::string& name) {
  for (const auto& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

inline std::map<std::string, std::string> LabelMap(const prometheus::ClientMetric& metric) {
  std::map<std::string, std::string> labels;
  for (const auto& label : metric.label) labels[label.name] = label.value;
  return labels;
}

}  // namespace gocache::testing_util
