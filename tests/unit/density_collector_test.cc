#include "collectors/density/density_collector.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/file_time.h"
#include "base/flags.h"
#include "cache/scan_service.h"
#include "tests/unit/fixtures.h"

namespace gocache::density {
namespace {

using testing_util::FindFamily;
using testing_util::LabelMap;
using testing_util::TempDir;

constexpr int64_t kNs = 1'000'000'000;
constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 24 * kHour;

TEST(SpreadOfTest, NoShards) {
  CacheCensus census;
  census.shard_entries[3] = 10;  // counts of shards not present are ignored
  EXPECT_FALSE(SpreadOf(census).has_value());
}

TEST(SpreadOfTest, KnownCounts) {
  CacheCensus census;
  for (int s : {0x00, 0x10, 0x80, 0xff}) census.shards_present.set(s);
  census.shard_entries[0x00] = 2;
  census.shard_entries[0x10] = 4;
  census.shard_entries[0x80] = 4;
  census.shard_entries[0xff] = 6;
  census.shard_entries[0x42] = 1000;  // not present: ignored
  const auto spread = SpreadOf(census);
  ASSERT_TRUE(spread.has_value());
  EXPECT_EQ(spread->shards, 4);
  EXPECT_EQ(spread->min, 2);
  EXPECT_EQ(spread->max, 6);
  EXPECT_DOUBLE_EQ(spread->mean, 4);
  // Population standard deviation: sqrt((4 + 0 + 0 + 4) / 4).
  EXPECT_DOUBLE_EQ(spread->stddev, std::sqrt(2.0));
  ASSERT_TRUE(spread->imbalance.has_value());
  EXPECT_DOUBLE_EQ(*spread->imbalance, std::sqrt(2.0) / 4);
}

TEST(SpreadOfTest, EmptyShardsCount) {
  CacheCensus census;
  census.shards_present.set(1);
  census.shards_present.set(2);
  census.shard_entries[2] = 10;
  const auto spread = SpreadOf(census);
  ASSERT_TRUE(spread.has_value());
  EXPECT_EQ(spread->shards, 2);
  EXPECT_EQ(spread->min, 0);
  EXPECT_EQ(spread->max, 10);
  EXPECT_DOUBLE_EQ(spread->mean, 5);
  EXPECT_DOUBLE_EQ(spread->stddev, 5);
  EXPECT_EQ(spread->imbalance, 1.0);
}

TEST(SpreadOfTest, EvenAndEmpty) {
  CacheCensus even;
  for (int s = 0; s < 256; ++s) {
    even.shards_present.set(s);
    even.shard_entries[s] = 7;
  }
  const auto spread = SpreadOf(even);
  ASSERT_TRUE(spread.has_value());
  EXPECT_EQ(spread->shards, 256);
  EXPECT_EQ(spread->min, 7);
  EXPECT_EQ(spread->max, 7);
  EXPECT_DOUBLE_EQ(spread->mean, 7);
  EXPECT_EQ(spread->stddev, 0);
  EXPECT_EQ(spread->imbalance, 0.0);

  // Shards present but empty: mean 0, no imbalance.
  CacheCensus empty;
  empty.shards_present.set(5);
  empty.shards_present.set(6);
  const auto zero = SpreadOf(empty);
  ASSERT_TRUE(zero.has_value());
  EXPECT_EQ(zero->shards, 2);
  EXPECT_EQ(zero->min, 0);
  EXPECT_EQ(zero->max, 0);
  EXPECT_EQ(zero->mean, 0);
  EXPECT_EQ(zero->stddev, 0);
  EXPECT_FALSE(zero->imbalance.has_value());
}

TEST(SlackRatioTest, Values) {
  EXPECT_EQ(SlackRatio(0, 0), std::nullopt);
  EXPECT_EQ(SlackRatio(1000, 0), std::nullopt);
  const auto slack = SlackRatio(1000, 4096);
  ASSERT_TRUE(slack.has_value());
  EXPECT_DOUBLE_EQ(*slack, 1 - 1000.0 / 4096);
  EXPECT_EQ(SlackRatio(4096, 4096), 0.0);
  EXPECT_EQ(SlackRatio(0, 4096), 1.0);
  EXPECT_EQ(SlackRatio(2048, 4096), 0.5);
  // Sparse files: more apparent than allocated.
  EXPECT_EQ(SlackRatio(8192, 4096), -1.0);
}

TEST(DensityInfoTest, Registration) {
  const auto info = Info();
  EXPECT_EQ(info.name, "density");
  EXPECT_TRUE(info.enabled_by_default);
  EXPECT_EQ(info.scan_depth, ScanDepth::kCensus);
  EXPECT_FALSE(info.help.empty());
  const auto configured = info.configure(testing_util::NoFlags());
  ASSERT_TRUE(std::holds_alternative<ConfiguredCollector>(configured));
  EXPECT_TRUE(std::get<ConfiguredCollector>(configured).schedule.at_scrape());
  EXPECT_TRUE(std::get<ConfiguredCollector>(configured).make);
}

using testing_util::GoEntry;

std::string Id(int shard, uint64_t n) { return testing_util::Id(shard, n, 0xbeef); }

void SetAge(const std::string& path, int64_t age_seconds) {
  const int64_t mtime = NowNs() - age_seconds * kNs;
  const struct timespec ts = {static_cast<time_t>(mtime / kNs), static_cast<long>(mtime % kNs)};
  const struct timespec times[2] = {ts, ts};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0)
      << path << ": " << std::strerror(errno);
}

// The sample of `family` with exactly these labels, or null.
const prometheus::ClientMetric* FindSample(const std::vector<prometheus::MetricFamily>& families,
                                           const std::string& name,
                                           const std::map<std::string, std::string>& labels) {
  const auto* family = FindFamily(families, name);
  if (family == nullptr) return nullptr;
  for (const auto& metric : family->metric) {
    if (LabelMap(metric) == labels) return &metric;
  }
  return nullptr;
}

std::optional<double> Gauge(const std::vector<prometheus::MetricFamily>& families,
                            const std::string& name,
                            const std::map<std::string, std::string>& labels) {
  const auto* sample = FindSample(families, name, labels);
  if (sample == nullptr) return std::nullopt;
  return sample->gauge.value;
}

// Whether any family has a sample for `path`.
bool HasPath(const std::vector<prometheus::MetricFamily>& families, const std::string& path) {
  for (const auto& family : families) {
    for (const auto& metric : family.metric) {
      if (LabelMap(metric)["path"] == path) return true;
    }
  }
  return false;
}

class DensityCollectorTest : public ::testing::Test {
 protected:
  CollectResult Collect(bool scan_first = true) {
    scans_ = std::make_shared<ScanService>(caches_, std::chrono::minutes(5), ScanDepth::kCensus);
    if (scan_first) scans_->ScanAllNow();
    const CollectorContext context{caches_, scans_};
    auto collector = testing_util::Make(Info(), context);
    EXPECT_NE(collector, nullptr);
    if (!collector) return {};
    return collector->Update();
  }

  // Writes below the temp dir, creating the directory, with an age.
  std::string Write(const std::string& rel, const std::string& content, int64_t age_seconds) {
    const auto slash = rel.rfind('/');
    if (slash != std::string::npos) tmp_.MakeDir(rel.substr(0, slash));
    const std::string path = tmp_.WriteFile(rel, content);
    SetAge(path, age_seconds);
    return path;
  }

  // A build cache with:
  //   00: a1 -> o1 (2 h old)
  //   7f: a2 -> (missing output) (3 days), o2 without action (10 days)
  //   ff: a3 -> o3 with another size (40 days), a4 corrupt (30 min)
  //   README, trim.txt
  std::string MakeBuildCache(const std::string& name, const char* trim) {
    const std::string root = tmp_.MakeDir(name);
    const std::string o1 = Id(0x00, 1), o2 = Id(0x7f, 2), o3 = Id(0xff, 3);
    const std::string a1 = Id(0x00, 11), a2 = Id(0x7f, 12), a3 = Id(0xff, 13), a4 = Id(0xff, 14);
    const auto at = [&name](const std::string& id, const char* suffix) {
      return name + "/" + id.substr(0, 2) + "/" + id + suffix;
    };
    Write(at(o1, "-d"), std::string(100, 'o'), 2 * kHour);
    Write(at(a1, "-a"), GoEntry(a1, o1, 100), 2 * kHour);
    Write(at(a2, "-a"), GoEntry(a2, Id(0x10, 99), 5), 3 * kDay);
    Write(at(o2, "-d"), std::string(20, 'o'), 10 * kDay);
    Write(at(o3, "-d"), std::string(30, 'o'), 40 * kDay);
    Write(at(a3, "-a"), GoEntry(a3, o3, 31), 40 * kDay);
    Write(at(a4, "-a"), "v1 corrupt\n", kHour / 2);
    Write(name + "/README", "This directory holds cached build artifacts.\n", 0);
    if (trim != nullptr) Write(name + "/trim.txt", trim, 0);
    return root;
  }

  TempDir tmp_;
  std::vector<CacheDir> caches_;
  std::shared_ptr<ScanService> scans_;
};

TEST_F(DensityCollectorTest, BuildAndModCache) {
  const std::string build = MakeBuildCache("go-build", "1700000000\n");
  const std::string mod = tmp_.MakeDir("pkg/mod");
  Write("pkg/mod/cache/download/example.com/m/@v/v1.0.0.zip", std::string(1000, 'z'), kDay);
  Write("pkg/mod/cache/download/example.com/m/@v/v1.0.0.mod", "module example.com/m\n", kDay);
  // Named like build cache entries: still only bytes of type other.
  Write("pkg/mod/ab/" + Id(0xab, 1) + "-d", "xyz", 30 * kDay);
  caches_ = {{build, CacheKind::kBuild}, {mod, CacheKind::kMod}};

  const auto result = Collect();
  EXPECT_TRUE(result.errors.empty()) << result.errors.front();
  const auto& f = result.families;
  const auto b = [&build](std::map<std::string, std::string> extra = {}) {
    extra["path"] = build;
    return extra;
  };

  // Every family is documented and typed; the age and size histograms are
  // histograms, scan errors a counter, the rest gauges.
  for (const auto& family : f) {
    EXPECT_FALSE(family.help.empty()) << family.name;
    EXPECT_FALSE(family.metric.empty()) << family.name;
    const bool histogram =
        family.name == "gocache_entry_age_seconds" || family.name == "gocache_entry_size_bytes";
    const auto want = histogram                         ? prometheus::MetricType::Histogram
                      : family.name.ends_with("_total") ? prometheus::MetricType::Counter
                                                        : prometheus::MetricType::Gauge;
    EXPECT_EQ(family.type, want) << family.name;
  }

  EXPECT_EQ(Gauge(f, "gocache_entries", b({{"type", "action"}})), 4);
  EXPECT_EQ(Gauge(f, "gocache_entries", b({{"type", "output"}})), 3);
  EXPECT_EQ(Gauge(f, "gocache_entries", b({{"type", "other"}})), 2);  // README, trim.txt
  EXPECT_EQ(Gauge(f, "gocache_entry_bytes", b({{"type", "action"}})), 3 * 175 + 11);
  EXPECT_EQ(Gauge(f, "gocache_entry_bytes", b({{"type", "output"}})), 150);
  EXPECT_EQ(Gauge(f, "gocache_orphan_entries", b({{"type", "action_without_output"}})), 1);
  EXPECT_EQ(Gauge(f, "gocache_orphan_entries", b({{"type", "output_without_action"}})), 1);
  EXPECT_EQ(Gauge(f, "gocache_orphan_entries", b({{"type", "size_mismatch"}})), 1);
  EXPECT_EQ(FindFamily(f, "gocache_orphan_entries")->metric.size(), 3u);
  EXPECT_EQ(Gauge(f, "gocache_corrupt_entries", b()), 1);
  EXPECT_EQ(Gauge(f, "gocache_shards", b()), 3);
  EXPECT_EQ(Gauge(f, "gocache_shard_entries_min", b()), 2);
  EXPECT_EQ(Gauge(f, "gocache_shard_entries_max", b()), 3);
  ASSERT_TRUE(Gauge(f, "gocache_shard_entries_mean", b()).has_value());
  EXPECT_DOUBLE_EQ(*Gauge(f, "gocache_shard_entries_mean", b()), 7.0 / 3);
  EXPECT_TRUE(Gauge(f, "gocache_shard_entries_stddev", b()).has_value());
  EXPECT_TRUE(Gauge(f, "gocache_shard_imbalance_ratio", b()).has_value());
  EXPECT_GT(Gauge(f, "gocache_shard_dir_bytes", b()).value_or(0), 0);
  // o2 (10 days), a3 and o3 (40 days); not a2 (3 days).
  EXPECT_EQ(Gauge(f, "gocache_trimmable_entries", b()), 3);
  EXPECT_EQ(Gauge(f, "gocache_trimmable_bytes", b()), 20 + 30 + 175);
  EXPECT_EQ(Gauge(f, "gocache_last_trim_timestamp_seconds", b()), 1700000000);
  const auto allocated = Gauge(f, "gocache_allocated_bytes", b());
  ASSERT_TRUE(allocated.has_value());
  EXPECT_GT(*allocated, 0);
  const auto slack = Gauge(f, "gocache_slack_ratio", b());
  ASSERT_TRUE(slack.has_value());
  EXPECT_GT(*slack, 0);  // small files in 4 KiB blocks
  EXPECT_LT(*slack, 1);
  EXPECT_TRUE(Gauge(f, "gocache_scan_duration_seconds", b()).has_value());
  const auto* errors = FindSample(f, "gocache_scan_errors_total", b());
  ASSERT_NE(errors, nullptr);
  EXPECT_EQ(errors->counter.value, 0);
  // Walked (this service follows nothing by events), so nothing to drift.
  EXPECT_EQ(Gauge(f, "gocache_scan_mode", b({{"mode", "walk"}})), 1);
  EXPECT_EQ(Gauge(f, "gocache_scan_mode", b({{"mode", "events"}})), 0);
  const auto* drift = FindSample(f, "gocache_scan_drift_total", b());
  ASSERT_NE(drift, nullptr);
  EXPECT_EQ(drift->counter.value, 0);

  // The age histogram: cumulative buckets at kAgeBuckets, ending with the
  // count of actions and outputs.
  const auto* age = FindSample(f, "gocache_entry_age_seconds", b());
  ASSERT_NE(age, nullptr);
  const auto& buckets = age->histogram.bucket;
  ASSERT_EQ(buckets.size(), kAgeBuckets.size());
  const std::vector<uint64_t> want_cumulative = {1, 3, 3, 3, 4, 4, 5, 5};
  for (size_t i = 0; i < buckets.size(); ++i) {
    EXPECT_EQ(buckets[i].upper_bound, kAgeBuckets[i]) << i;
    EXPECT_EQ(buckets[i].cumulative_count, want_cumulative[i]) << "le=" << kAgeBuckets[i];
    if (i > 0) {
      EXPECT_GE(buckets[i].cumulative_count, buckets[i - 1].cumulative_count);
    }
  }
  EXPECT_EQ(age->histogram.sample_count, 7u);
  const double want_sum = kHour / 2 + 2 * 2 * kHour + 3 * kDay + 10 * kDay + 2 * 40 * kDay;
  EXPECT_NEAR(age->histogram.sample_sum, want_sum, 7 * 60.0);  // a minute each for the test

  // Sizes: every action and output is under 256 bytes; sums and counts are
  // the entry bytes and entries.
  for (const char* type : {"action", "output"}) {
    const auto* sizes = FindSample(f, "gocache_entry_size_bytes", b({{"type", type}}));
    ASSERT_NE(sizes, nullptr) << type;
    ASSERT_EQ(sizes->histogram.bucket.size(), kSizeBuckets.size());
    EXPECT_EQ(sizes->histogram.bucket[0].upper_bound, 256);
    EXPECT_EQ(sizes->histogram.bucket[0].cumulative_count, sizes->histogram.sample_count);
    EXPECT_EQ(sizes->histogram.sample_count, Gauge(f, "gocache_entries", b({{"type", type}})));
    EXPECT_EQ(sizes->histogram.sample_sum, Gauge(f, "gocache_entry_bytes", b({{"type", type}})));
  }

  // The module cache: its bytes and how it is scanned, nothing else.
  EXPECT_EQ(Gauge(f, "gocache_entry_bytes", {{"path", mod}, {"type", "other"}}), 1000 + 21 + 3);
  EXPECT_EQ(Gauge(f, "gocache_scan_mode", {{"path", mod}, {"mode", "walk"}}), 1);
  for (const auto& family : f) {
    for (const auto& metric : family.metric) {
      const auto labels = LabelMap(metric);
      if (labels.at("path") != mod) continue;
      if (family.name == "gocache_scan_mode" || family.name == "gocache_scan_drift_total") continue;
      EXPECT_EQ(family.name, "gocache_entry_bytes");
      EXPECT_EQ(labels.at("type"), "other") << family.name;
    }
  }
}

TEST_F(DensityCollectorTest, LastTrimOnlyFromAParsableTrimTxt) {
  const std::string valid = MakeBuildCache("valid", " 1712345678 \n");
  const std::string missing = MakeBuildCache("missing", nullptr);
  const std::string garbage = MakeBuildCache("garbage", "yesterday\n");
  const std::string empty = MakeBuildCache("empty", "");
  const std::string fraction = MakeBuildCache("fraction", "1712345678.5");
  caches_ = {{valid, CacheKind::kBuild},
             {missing, CacheKind::kBuild},
             {garbage, CacheKind::kBuild},
             {empty, CacheKind::kBuild},
             {fraction, CacheKind::kBuild}};
  const auto result = Collect();
  EXPECT_TRUE(result.errors.empty()) << result.errors.front();
  const auto* family = FindFamily(result.families, "gocache_last_trim_timestamp_seconds");
  ASSERT_NE(family, nullptr);
  ASSERT_EQ(family->metric.size(), 1u);
  EXPECT_EQ(LabelMap(family->metric[0]).at("path"), valid);
  EXPECT_EQ(family->metric[0].gauge.value, 1712345678);
  // The caches without a trim time still report the rest.
  for (const auto& path : {missing, garbage, empty, fraction}) {
    EXPECT_EQ(Gauge(result.families, "gocache_entries", {{"path", path}, {"type", "action"}}), 4)
        << path;
  }
}

// A cache that does not exist yet is no failure: it has no series until it
// appears (the inode collector reports gocache_cache_present 0).
TEST_F(DensityCollectorTest, MissingCacheDirIsNoErrorOthersStillReport) {
  const std::string missing = tmp_ / "not-created-yet";
  const std::string build = MakeBuildCache("go-build", "1700000000");
  caches_ = {{missing, CacheKind::kBuild}, {build, CacheKind::kBuild}};
  const auto result = Collect();
  EXPECT_TRUE(result.errors.empty()) << result.errors.front();
  EXPECT_FALSE(HasPath(result.families, missing));
  EXPECT_EQ(Gauge(result.families, "gocache_entries", {{"path", build}, {"type", "action"}}), 4);
}

TEST_F(DensityCollectorTest, MissingModCacheDir) {
  const std::string missing = tmp_ / "pkg/mod";
  caches_ = {{missing, CacheKind::kMod}};
  const auto result = Collect();
  EXPECT_TRUE(result.errors.empty()) << result.errors.front();
  EXPECT_TRUE(result.families.empty());
}

// A path that is a file is a failure.
TEST_F(DensityCollectorTest, CachePathThatIsAFileFails) {
  const std::string file = tmp_.WriteFile("go-build", "not a cache");
  caches_ = {{file, CacheKind::kBuild}};
  const auto result = Collect();
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].find(std::strerror(ENOTDIR)), std::string::npos) << result.errors[0];
  EXPECT_TRUE(result.families.empty());
}

TEST_F(DensityCollectorTest, BeforeTheFirstScanNothing) {
  caches_ = {{MakeBuildCache("go-build", "1700000000"), CacheKind::kBuild}};
  const auto result = Collect(/*scan_first=*/false);
  EXPECT_TRUE(result.errors.empty());
  EXPECT_TRUE(result.families.empty());
}

TEST_F(DensityCollectorTest, EmptyBuildCache) {
  const std::string build = tmp_.MakeDir("go-build");
  caches_ = {{build, CacheKind::kBuild}};
  const auto result = Collect();
  EXPECT_TRUE(result.errors.empty()) << result.errors.front();
  const auto& f = result.families;
  EXPECT_EQ(Gauge(f, "gocache_entries", {{"path", build}, {"type", "action"}}), 0);
  EXPECT_EQ(Gauge(f, "gocache_shards", {{"path", build}}), 0);
  // Nothing allocated, no shard: no ratio to report.
  EXPECT_EQ(FindFamily(f, "gocache_slack_ratio"), nullptr);
  EXPECT_EQ(FindFamily(f, "gocache_shard_entries_mean"), nullptr);
  EXPECT_EQ(FindFamily(f, "gocache_shard_imbalance_ratio"), nullptr);
  EXPECT_EQ(FindFamily(f, "gocache_last_trim_timestamp_seconds"), nullptr);
  const auto* age = FindSample(f, "gocache_entry_age_seconds", {{"path", build}});
  ASSERT_NE(age, nullptr);
  EXPECT_EQ(age->histogram.sample_count, 0u);
}

}  // namespace
}  // namespace gocache::density
