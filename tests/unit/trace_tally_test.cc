#include "collectors/trace/trace_tally.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/unit/fixtures.h"

namespace gocache::trace {
namespace {

using prometheus::MetricType;
using testing_util::FindFamily;
using testing_util::LabelMap;

size_t Index(std::string_view mode) {
  for (size_t i = 0; i < kModes.size(); ++i) {
    if (kModes[i] == mode) return i;
  }
  ADD_FAILURE() << "no mode " << mode;
  return kOtherMode;
}

TEST(TraceModeTest, ModeIndexOfEveryKnownMode) {
  for (size_t i = 0; i < kOtherMode; ++i) EXPECT_EQ(ModeIndex(kModes[i]), i) << kModes[i];
  EXPECT_EQ(kModes[kOtherMode], "other");
  EXPECT_EQ(ModeIndex("other"), kOtherMode);
}

TEST(TraceModeTest, ModeIndexOfAnythingElseIsOther) {
  for (const char* mode : {"", "Build", "build ", " build", "buildx", "build fmt", "lin", "links",
                           "go", "test", "built-in", "frobnicate"}) {
    EXPECT_EQ(ModeIndex(mode), kOtherMode) << '"' << mode << '"';
  }
}

TEST(TraceModeTest, DescriptionStartsWithItsMode) {
  const std::map<std::string, std::string> want = {
      {"build fmt", "build"},
      {"build", "build"},
      {"build example.com/m/internal/x", "build"},
      {"link example.com/m", "link"},
      {"test run example.com/x", "test run"},
      {"vet fmt", "vet"},
      // The go command's other modes, however they begin.
      {"built-in package unsafe", "other"},
      {"build-install x", "other"},
      {"link-install example.com/m", "other"},
      {"go build", "other"},
      {"go build -buildmode=shared std", "other"},
      {"go install (tools) x", "other"},
      {"test print (nop) example.com/x", "other"},
      {"test print example.com/x", "other"},
      {"preprocess PGO profile /tmp/default.pgo", "other"},
      {"write coverage meta-data file x", "other"},
      {"gccgo stdlib", "other"},
      {"nop", "other"},
  };
  for (const auto& [description, mode] : want) {
    EXPECT_EQ(kModes[ModeIndexOfDescription(description)], mode) << '"' << description << '"';
  }
}

TEST(TraceModeTest, DescriptionOfNoModeIsOther) {
  for (const char* description :
       {"", "buildx", "buildx fmt", "Build fmt", " build fmt", "built-in", "go", "test",
        "test runner x", "linker x", "other", "other x", "go build-x"}) {
    EXPECT_EQ(ModeIndexOfDescription(description), kOtherMode) << '"' << description << '"';
  }
}

TEST(TraceModeTest, FormatNames) {
  EXPECT_EQ(FormatName(TraceFormat::kActionGraph), "actiongraph");
  EXPECT_EQ(FormatName(TraceFormat::kChrome), "chrome");
  EXPECT_EQ(FormatName(TraceFormat::kUnknown), "unknown");
}

TEST(LatencyHistogramTest, BucketsAreUpperInclusive) {
  const auto& bounds = kLatencyBuckets;
  ASSERT_EQ(bounds.size() + 1, LatencyHistogram{}.counts.size());
  EXPECT_EQ(bounds.front(), 0.0001);
  EXPECT_EQ(bounds.back(), 60.0);

  LatencyHistogram h;
  h.Observe(0.0001);
  EXPECT_EQ(h.counts[0], 1u);
  h.Observe(0.00010001);
  EXPECT_EQ(h.counts[1], 1u);
  h.Observe(0);
  EXPECT_EQ(h.counts[0], 2u);
  h.Observe(60);
  EXPECT_EQ(h.counts[10], 1u);
  h.Observe(61);
  EXPECT_EQ(h.counts[11], 1u);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_DOUBLE_EQ(h.sum, 0.0001 + 0.00010001 + 60 + 61);

  // Every bound lands in its own bucket, and just above it in the next.
  for (size_t i = 0; i < bounds.size(); ++i) {
    LatencyHistogram one;
    one.Observe(bounds[i]);
    EXPECT_EQ(one.counts[i], 1u) << bounds[i];
    LatencyHistogram above;
    above.Observe(bounds[i] * 1.0001);
    EXPECT_EQ(above.counts[i + 1], 1u) << bounds[i];
  }
}

TEST(LatencyHistogramTest, MergeAdds) {
  LatencyHistogram a, b;
  a.Observe(0.001);
  a.Observe(2);
  b.Observe(0.001);
  b.Observe(100);
  a.Merge(b);
  EXPECT_EQ(a.count(), 4u);
  EXPECT_EQ(a.counts[2], 2u);   // (0.0005, 0.001]
  EXPECT_EQ(a.counts[9], 1u);   // (1, 5]
  EXPECT_EQ(a.counts[11], 1u);  // past 60
  EXPECT_DOUBLE_EQ(a.sum, 0.002 + 2 + 100);
  EXPECT_EQ(b.count(), 2u);  // untouched
}

TEST(TraceTallyTest, AddActionSplitsHitsAndMisses) {
  TraceTally t;
  const size_t build = Index("build");
  t.AddAction(build, false, 0.002, 0);
  t.AddAction(build, true, 1.5, 1.2);
  t.AddAction(build, true, 0.5, 0.7);  // command longer than the action: write clamped at 0
  const ModeTally& m = t.modes[build];
  EXPECT_EQ(m.hits, 1u);
  EXPECT_EQ(m.misses, 2u);
  EXPECT_EQ(m.cache_read.count(), 1u);
  EXPECT_DOUBLE_EQ(m.cache_read.sum, 0.002);
  EXPECT_EQ(m.cache_write.count(), 2u);
  EXPECT_NEAR(m.cache_write.sum, 0.3, 1e-12);
  EXPECT_EQ(m.cache_write.counts[0], 1u);  // the clamped 0
  EXPECT_EQ(m.duration_miss.count(), 2u);
  EXPECT_DOUBLE_EQ(m.duration_miss.sum, 2.0);
  EXPECT_EQ(m.duration_unknown.count(), 0u);

  t.AddSpan(build, 0.25);
  EXPECT_EQ(m.duration_unknown.count(), 1u);
  EXPECT_EQ(m.hits + m.misses, 3u);  // spans are neither
}

TEST(TraceTallyTest, MergeAddsEverything) {
  TraceTally a, b;
  a.AddAction(Index("link"), true, 1, 0.5);
  a.CountFile(TraceFormat::kActionGraph, true);
  b.AddAction(Index("link"), false, 0.01, 0);
  b.AddAction(kOtherMode, false, 0.01, 0);
  b.AddSpan(Index("vet"), 0.1);
  b.CountFile(TraceFormat::kActionGraph, true);
  b.CountFile(TraceFormat::kChrome, false);
  b.CountFile(TraceFormat::kUnknown, false);
  a.Merge(b);
  const ModeTally& link = a.modes[Index("link")];
  EXPECT_EQ(link.hits, 1u);
  EXPECT_EQ(link.misses, 1u);
  EXPECT_EQ(link.cache_read.count(), 1u);
  EXPECT_EQ(link.cache_write.count(), 1u);
  EXPECT_EQ(link.duration_miss.count(), 1u);
  EXPECT_EQ(a.modes[kOtherMode].hits, 1u);
  EXPECT_EQ(a.modes[Index("vet")].duration_unknown.count(), 1u);
  EXPECT_EQ(a.files[static_cast<size_t>(TraceFormat::kActionGraph)][0], 2u);
  EXPECT_EQ(a.files[static_cast<size_t>(TraceFormat::kActionGraph)][1], 0u);
  EXPECT_EQ(a.files[static_cast<size_t>(TraceFormat::kChrome)][1], 1u);
  EXPECT_EQ(a.files[static_cast<size_t>(TraceFormat::kUnknown)][1], 1u);
}

// The samples of a family as "label=value,..." -> the sample.
std::map<std::string, const prometheus::ClientMetric*> ByLabels(
    const prometheus::MetricFamily& family) {
  std::map<std::string, const prometheus::ClientMetric*> out;
  for (const auto& metric : family.metric) {
    std::string key;
    for (const auto& [name, value] : LabelMap(metric)) {
      if (!key.empty()) key += ',';
      key += name + "=" + value;
    }
    EXPECT_TRUE(out.emplace(key, &metric).second) << family.name << ": duplicate " << key;
  }
  return out;
}

TEST(TraceRenderTest, EmptyTallyHasTheFiveFileSeriesOnly) {
  const auto families = Render(TraceTally{});
  ASSERT_EQ(families.size(), 1u);
  const prometheus::MetricFamily& files = families[0];
  EXPECT_EQ(files.name, "gocache_trace_files_total");
  EXPECT_EQ(files.type, MetricType::Counter);
  EXPECT_FALSE(files.help.empty());
  const auto samples = ByLabels(files);
  std::vector<std::string> keys;
  for (const auto& [key, metric] : samples) {
    keys.push_back(key);
    EXPECT_EQ(metric->counter.value, 0.0) << key;
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "format=actiongraph,result=error",
                      "format=actiongraph,result=ok",
                      "format=chrome,result=error",
                      "format=chrome,result=ok",
                      "format=unknown,result=error",
                  }));
}

TEST(TraceRenderTest, FamiliesTypesLabelsAndCumulativeBuckets) {
  TraceTally t;
  const size_t build = Index("build");
  t.AddAction(build, false, 0.0001, 0);      // bucket 0
  t.AddAction(build, false, 0.0003, 0);      // bucket 1
  t.AddAction(build, false, 100, 0);         // +Inf
  t.AddAction(build, true, 2, 1.5);          // write 0.5: bucket 7; duration bucket 9
  t.AddAction(kOtherMode, false, 0.001, 0);  // counted, but no latency
  t.AddAction(kOtherMode, true, 0.5, 0.1);
  t.AddSpan(kOtherMode, 0.2);
  t.AddSpan(Index("test run"), 0.25);
  t.CountFile(TraceFormat::kActionGraph, true);
  t.CountFile(TraceFormat::kActionGraph, true);
  t.CountFile(TraceFormat::kChrome, true);
  t.CountFile(TraceFormat::kUnknown, false);
  const auto families = Render(t);

  std::vector<std::string> names;
  for (const auto& family : families) names.push_back(family.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "gocache_trace_files_total",
                       "gocache_trace_actions_total",
                       "gocache_trace_cache_read_seconds",
                       "gocache_trace_cache_write_seconds",
                       "gocache_trace_action_duration_seconds",
                   }));

  const auto* files = FindFamily(families, "gocache_trace_files_total");
  ASSERT_NE(files, nullptr);
  const auto file_samples = ByLabels(*files);
  ASSERT_EQ(file_samples.size(), 5u);
  EXPECT_EQ(file_samples.at("format=actiongraph,result=ok")->counter.value, 2);
  EXPECT_EQ(file_samples.at("format=actiongraph,result=error")->counter.value, 0);
  EXPECT_EQ(file_samples.at("format=chrome,result=ok")->counter.value, 1);
  EXPECT_EQ(file_samples.at("format=unknown,result=error")->counter.value, 1);

  const auto* actions = FindFamily(families, "gocache_trace_actions_total");
  ASSERT_NE(actions, nullptr);
  EXPECT_EQ(actions->type, MetricType::Counter);
  const auto action_samples = ByLabels(*actions);
  // A mode seen has both series, even with no misses; modes not seen have none.
  ASSERT_EQ(action_samples.size(), 4u);
  EXPECT_EQ(action_samples.at("mode=build,result=hit")->counter.value, 3);
  EXPECT_EQ(action_samples.at("mode=build,result=miss")->counter.value, 1);
  EXPECT_EQ(action_samples.at("mode=other,result=hit")->counter.value, 1);
  EXPECT_EQ(action_samples.at("mode=other,result=miss")->counter.value, 1);

  // Latency for the modes that use the cache only.
  const auto* read = FindFamily(families, "gocache_trace_cache_read_seconds");
  ASSERT_NE(read, nullptr);
  EXPECT_EQ(read->type, MetricType::Histogram);
  const auto read_samples = ByLabels(*read);
  ASSERT_EQ(read_samples.size(), 1u);
  const auto& build_read = read_samples.at("mode=build")->histogram;
  EXPECT_EQ(build_read.sample_count, 3u);
  EXPECT_DOUBLE_EQ(build_read.sample_sum, 0.0001 + 0.0003 + 100);
  ASSERT_EQ(build_read.bucket.size(), kLatencyBuckets.size());
  const std::vector<uint64_t> want_cumulative = {1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
  for (size_t i = 0; i < build_read.bucket.size(); ++i) {
    EXPECT_EQ(build_read.bucket[i].upper_bound, kLatencyBuckets[i]);
    EXPECT_EQ(build_read.bucket[i].cumulative_count, want_cumulative[i])
        << "le " << kLatencyBuckets[i];
  }

  const auto* write = FindFamily(families, "gocache_trace_cache_write_seconds");
  ASSERT_NE(write, nullptr);
  EXPECT_EQ(write->type, MetricType::Histogram);
  const auto write_samples = ByLabels(*write);
  ASSERT_EQ(write_samples.size(), 1u);
  const auto& build_write = write_samples.at("mode=build")->histogram;
  EXPECT_EQ(build_write.sample_count, 1u);
  EXPECT_DOUBLE_EQ(build_write.sample_sum, 0.5);
  EXPECT_EQ(build_write.bucket[6].cumulative_count, 0u);  // le 0.1
  EXPECT_EQ(build_write.bucket[7].cumulative_count, 1u);  // le 0.5
  EXPECT_EQ(build_write.bucket.back().cumulative_count, 1u);

  // Misses and Chrome spans; a hit's duration is its cache read, not repeated.
  const auto* duration = FindFamily(families, "gocache_trace_action_duration_seconds");
  ASSERT_NE(duration, nullptr);
  EXPECT_EQ(duration->type, MetricType::Histogram);
  const auto duration_samples = ByLabels(*duration);
  std::vector<std::string> keys;
  for (const auto& [key, metric] : duration_samples) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "mode=build,result=miss",
                      "mode=test run,result=unknown",
                  }));
  const auto& build_miss = duration_samples.at("mode=build,result=miss")->histogram;
  EXPECT_EQ(build_miss.sample_count, 1u);
  EXPECT_EQ(build_miss.bucket[8].cumulative_count, 0u);  // le 1
  EXPECT_EQ(build_miss.bucket[9].cumulative_count, 1u);  // le 5
  const auto& test_run = duration_samples.at("mode=test run,result=unknown")->histogram;
  EXPECT_EQ(test_run.sample_count, 1u);
  EXPECT_DOUBLE_EQ(test_run.sample_sum, 0.25);
  EXPECT_EQ(test_run.bucket[6].cumulative_count, 0u);  // le 0.1
  EXPECT_EQ(test_run.bucket[7].cumulative_count, 1u);  // le 0.5
  for (const auto& family : families) EXPECT_FALSE(family.help.empty()) << family.name;
}

}  // namespace
}  // namespace gocache::trace
