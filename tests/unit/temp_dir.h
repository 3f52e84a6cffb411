// A temporary directory for one test, removed with everything in it (even
// entries a test made unreadable) when the test ends.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

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

}  // namespace gocache::testing_util
