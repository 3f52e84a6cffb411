#include "collectors/inode/inode_collector.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/flags.h"
#include "cache/scan_service.h"
#include "tests/unit/fixtures.h"

namespace gocache::inode {
namespace {

using testing_util::FindFamily;
using testing_util::LabelMap;
using testing_util::TempDir;

TEST(InodeShareRatioTest, Values) {
  EXPECT_EQ(InodeShareRatio(10, 1000, 900), 0.1);
  EXPECT_EQ(InodeShareRatio(100, 1000, 900), 1.0);
  EXPECT_EQ(InodeShareRatio(0, 1000, 900), 0.0);
  EXPECT_EQ(InodeShareRatio(25, 200, 100), 0.25);
  // No used inode: nothing to take a share of.
  EXPECT_EQ(InodeShareRatio(5, 1000, 1000), std::nullopt);
  EXPECT_EQ(InodeShareRatio(5, 0, 0), std::nullopt);
  EXPECT_EQ(InodeShareRatio(5, 100, 200), std::nullopt);
}

TEST(InodeInfoTest, Registration) {
  const auto info = Info();
  EXPECT_EQ(info.name, "inode");
  EXPECT_TRUE(info.enabled_by_default);
  EXPECT_EQ(info.scan_depth, ScanDepth::kCount);
  const auto configured = info.configure(testing_util::NoFlags());
  ASSERT_TRUE(std::holds_alternative<ConfiguredCollector>(configured));
  EXPECT_TRUE(std::get<ConfiguredCollector>(configured).schedule.at_scrape());
  EXPECT_TRUE(std::get<ConfiguredCollector>(configured).make);
}

// The filesystem type name mountinfo uses, for the magic numbers statfs
// reports; "" when not one of these.
std::string FsTypeName(const std::string& path) {
  struct statfs fs;
  if (statfs(path.c_str(), &fs) != 0) return "";
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0xEF53:
      return "ext4";  // ext2/3/4 share it; modern kernels mount them all as ext4
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    case 0x794C7630:
      return "overlay";
    default:
      return "";
  }
}

const prometheus::ClientMetric* FindSample(const prometheus::MetricFamily* family,
                                           const std::string& path) {
  if (family == nullptr) return nullptr;
  for (const auto& metric : family->metric) {
    if (LabelMap(metric)["path"] == path) return &metric;
  }
  return nullptr;
}

class InodeCollectorTest : public ::testing::Test {
 protected:
  CollectResult Collect(bool scan_first) {
    scans_ = std::make_shared<ScanService>(caches_, std::chrono::minutes(5), ScanDepth::kCount);
    if (scan_first) scans_->ScanAllNow();
    const CollectorContext context{caches_, scans_};
    auto collector = testing_util::Make(Info(), context);
    EXPECT_NE(collector, nullptr);
    if (!collector) return {};
    return collector->Update();
  }

  TempDir tmp_;
  std::vector<CacheDir> caches_;
  std::shared_ptr<ScanService> scans_;
};

TEST_F(InodeCollectorTest, ReportsFilesystemAndTree) {
  const std::string build = tmp_.MakeDir("go-build");
  // 2 shards with 3 entries each, README and trim.txt: 10 entries.
  for (const char* shard : {"00", "ff"}) {
    tmp_.MakeDir(std::string("go-build/") + shard);
    for (int i = 0; i < 3; ++i) {
      tmp_.WriteFile(std::string("go-build/") + shard + "/e" + std::to_string(i) + "-a", "x");
    }
  }
  tmp_.WriteFile("go-build/README", "readme");
  tmp_.WriteFile("go-build/trim.txt", "1700000000");
  caches_ = {{build, CacheKind::kBuild}};

  struct statvfs before;
  ASSERT_EQ(statvfs(build.c_str(), &before), 0);
  const auto result = Collect(/*scan_first=*/true);
  struct statvfs after;
  ASSERT_EQ(statvfs(build.c_str(), &after), 0);

  EXPECT_TRUE(result.errors.empty()) << result.errors.front();
  for (const char* name : {"gocache_filesystem_files", "gocache_filesystem_files_free",
                           "gocache_filesystem_size_bytes", "gocache_filesystem_free_bytes",
                           "gocache_filesystem_avail_bytes", "gocache_filesystem_readonly",
                           "gocache_dir_inodes", "gocache_dir_inode_share_ratio"}) {
    const auto* family = FindFamily(result.families, name);
    ASSERT_NE(family, nullptr) << name;
    EXPECT_EQ(family->type, prometheus::MetricType::Gauge) << name;
    EXPECT_FALSE(family->help.empty()) << name;
    EXPECT_EQ(family->metric.size(), 1u) << name;
  }
  const auto* usage = FindFamily(result.families, "gocache_filesystem_inode_usage_ratio");
  EXPECT_EQ(usage != nullptr, before.f_files > 0);

  const auto* files = FindSample(FindFamily(result.families, "gocache_filesystem_files"), build);
  ASSERT_NE(files, nullptr);
  const double f_files = files->gauge.value;
  EXPECT_TRUE(f_files == static_cast<double>(before.f_files) ||
              f_files == static_cast<double>(after.f_files))
      << f_files << " vs " << before.f_files;
  EXPECT_GT(f_files, 0);

  const auto labels = LabelMap(*files);
  ASSERT_EQ(labels.size(), 4u);
  EXPECT_EQ(labels.at("path"), build);
  EXPECT_EQ(labels.at("kind"), "build");
  const std::string mountpoint = labels.at("mountpoint");
  ASSERT_FALSE(mountpoint.empty());
  // The mount point is a path prefix of the cache and on the same device.
  EXPECT_TRUE(mountpoint == "/" || build == mountpoint || build.starts_with(mountpoint + "/"))
      << mountpoint << " does not hold " << build;
  struct stat mount_status, build_status;
  ASSERT_EQ(stat(mountpoint.c_str(), &mount_status), 0);
  ASSERT_EQ(stat(build.c_str(), &build_status), 0);
  EXPECT_EQ(mount_status.st_dev, build_status.st_dev);
  EXPECT_FALSE(labels.at("fstype").empty());
  if (const std::string fstype = FsTypeName(build); !fstype.empty()) {
    EXPECT_EQ(labels.at("fstype"), fstype);
  }

  const auto* free_files =
      FindSample(FindFamily(result.families, "gocache_filesystem_files_free"), build);
  ASSERT_NE(free_files, nullptr);
  EXPECT_LE(free_files->gauge.value, f_files);
  const auto* size =
      FindSample(FindFamily(result.families, "gocache_filesystem_size_bytes"), build);
  ASSERT_NE(size, nullptr);
  EXPECT_EQ(size->gauge.value,
            static_cast<double>(before.f_blocks) * static_cast<double>(before.f_frsize));
  const auto* readonly =
      FindSample(FindFamily(result.families, "gocache_filesystem_readonly"), build);
  ASSERT_NE(readonly, nullptr);
  EXPECT_EQ(readonly->gauge.value, 0);  // we just wrote there

  const auto* dir_inodes = FindSample(FindFamily(result.families, "gocache_dir_inodes"), build);
  ASSERT_NE(dir_inodes, nullptr);
  EXPECT_EQ(dir_inodes->gauge.value, 11);
  const auto dir_labels = LabelMap(*dir_inodes);
  EXPECT_EQ(dir_labels.size(), 2u);
  EXPECT_EQ(dir_labels.at("kind"), "build");

  const auto* share =
      FindSample(FindFamily(result.families, "gocache_dir_inode_share_ratio"), build);
  ASSERT_NE(share, nullptr);
  EXPECT_GT(share->gauge.value, 0);
  EXPECT_LE(share->gauge.value, 1);
  const double used = static_cast<double>(before.f_files - before.f_ffree);
  EXPECT_NEAR(share->gauge.value, 11 / used, 11 / used * 0.01);
}

// A cache directory that does not exist yet (a runner that has not built)
// is a state, reported as gocache_cache_present 0, not a failure.
TEST_F(InodeCollectorTest, MissingDirectoryIsAbsentNotAFailure) {
  const std::string mod = tmp_.MakeDir("pkg/mod");
  tmp_.MakeDir("pkg/mod/cache/download");
  const std::string missing = tmp_ / "not-created-yet";
  caches_ = {{missing, CacheKind::kBuild}, {mod, CacheKind::kMod}};

  const auto result = Collect(/*scan_first=*/true);
  EXPECT_TRUE(result.errors.empty()) << result.errors.front();
  const auto* present = FindFamily(result.families, "gocache_cache_present");
  ASSERT_NE(present, nullptr);
  ASSERT_NE(FindSample(present, missing), nullptr);
  EXPECT_EQ(FindSample(present, missing)->gauge.value, 0);
  EXPECT_EQ(LabelMap(*FindSample(present, missing)).at("kind"), "build");
  ASSERT_NE(FindSample(present, mod), nullptr);
  EXPECT_EQ(FindSample(present, mod)->gauge.value, 1);
  for (const auto& family : result.families) {
    if (family.name == "gocache_cache_present") continue;
    EXPECT_EQ(FindSample(&family, missing), nullptr) << family.name;
  }
  const auto* files = FindSample(FindFamily(result.families, "gocache_filesystem_files"), mod);
  ASSERT_NE(files, nullptr);
  EXPECT_EQ(LabelMap(*files).at("kind"), "mod");
  const auto* dir_inodes = FindSample(FindFamily(result.families, "gocache_dir_inodes"), mod);
  ASSERT_NE(dir_inodes, nullptr);
  EXPECT_EQ(dir_inodes->gauge.value, 3);  // mod, cache, download
}

// What keeps an existing path from being read is still a failure.
TEST_F(InodeCollectorTest, PathThatIsNotADirectoryFails) {
  const std::string file = tmp_.WriteFile("go-build", "not a cache");
  const std::string below_file = tmp_ / "go-build/inside";
  caches_ = {{file, CacheKind::kBuild}, {below_file, CacheKind::kBuild}};
  const auto result = Collect(/*scan_first=*/true);
  ASSERT_EQ(result.errors.size(), 2u);
  EXPECT_NE(result.errors[0].find(file + ": not a directory"), std::string::npos)
      << result.errors[0];
  EXPECT_NE(result.errors[1].find(std::strerror(ENOTDIR)), std::string::npos) << result.errors[1];
  const auto* present = FindFamily(result.families, "gocache_cache_present");
  ASSERT_NE(present, nullptr);
  EXPECT_EQ(FindSample(present, file)->gauge.value, 0);
  EXPECT_EQ(FindSample(present, below_file), nullptr);
  EXPECT_EQ(FindFamily(result.families, "gocache_filesystem_files"), nullptr);
}

TEST_F(InodeCollectorTest, BeforeFirstScanNoTreeSeries) {
  const std::string build = tmp_.MakeDir("go-build");
  tmp_.WriteFile("go-build/README", "x");
  caches_ = {{build, CacheKind::kBuild}};

  const auto result = Collect(/*scan_first=*/false);
  EXPECT_TRUE(result.errors.empty()) << result.errors.front();
  EXPECT_NE(FindSample(FindFamily(result.families, "gocache_filesystem_files"), build), nullptr);
  EXPECT_EQ(FindFamily(result.families, "gocache_dir_inodes"), nullptr);
  EXPECT_EQ(FindFamily(result.families, "gocache_dir_inode_share_ratio"), nullptr);
}

TEST_F(InodeCollectorTest, ScanErrorsFailTheUpdateButKeepSeries) {
  // A tree deeper than the scanner goes: one entry it cannot read.
  std::string rel = "go-build";
  for (int i = 0; i < 140; ++i) rel += "/d";
  tmp_.MakeDir(rel);
  const std::string build = tmp_ / "go-build";
  caches_ = {{build, CacheKind::kBuild}};

  const auto result = Collect(/*scan_first=*/true);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].find(build), std::string::npos) << result.errors[0];
  EXPECT_NE(FindSample(FindFamily(result.families, "gocache_dir_inodes"), build), nullptr);
  EXPECT_NE(FindSample(FindFamily(result.families, "gocache_filesystem_files"), build), nullptr);
}

}  // namespace
}  // namespace gocache::inode
