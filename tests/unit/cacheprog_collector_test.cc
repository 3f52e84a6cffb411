#include "collectors/cacheprog/cacheprog_collector.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <thread>

#include "cache/cacheprog_report.h"
#include "commands/cacheprog/reporter.h"
#include "fixtures.h"

namespace gocache::cacheprog {
namespace {

namespace report = cacheprog_report;
using helper::Reporter;
using testing_util::FindFamily;
using testing_util::LabelMap;
using testing_util::TempDir;

std::unique_ptr<Collector> MakeListening(const std::string& socket,
                                         const std::vector<CacheDir>& caches = {}) {
  const CollectorInfo info = Info();
  FlagSet options("test", "");
  info.add_flags(options);
  const std::string flag = "--cacheprog.socket=" + socket;
  const char* argv[] = {"test", flag.c_str()};
  std::string error;
  const auto parsed = options.Parse(2, argv, error);
  if (!parsed) return nullptr;
  const auto configured = info.configure(*parsed);
  const auto* collector = std::get_if<ConfiguredCollector>(&configured);
  if (!collector || !collector->make) return nullptr;
  return collector->make(CollectorContext{caches, nullptr});
}

// The value of the sample of `name` whose labels include `want`; -1 if none.
double Sample(const CollectResult& result, const std::string& name,
              const std::map<std::string, std::string>& want = {}) {
  const auto* family = FindFamily(result.families, name);
  if (!family) return -1;
  for (const auto& metric : family->metric) {
    const auto labels = LabelMap(metric);
    bool match = true;
    for (const auto& [k, v] : want) match = match && labels.count(k) && labels.at(k) == v;
    if (!match) continue;
    if (family->type == prometheus::MetricType::Histogram) {
      return static_cast<double>(metric.histogram.sample_count);
    }
    return family->type == prometheus::MetricType::Gauge ? metric.gauge.value
                                                         : metric.counter.value;
  }
  return -1;
}

// Updates until `done` holds, at most 5 s.
CollectResult UpdateUntil(Collector& collector,
                          const std::function<bool(const CollectResult&)>& done) {
  CollectResult result;
  for (int i = 0; i < 250; ++i) {
    result = collector.Update();
    if (done(result)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return result;
}

// Connects as a helper would and writes `text`.
void SendRaw(const std::string& socket, const std::string& text) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket.data(), socket.size());
  ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
}

report::Report Request(report::Command command, report::Result result, report::MissReason miss,
                       uint64_t bytes, uint64_t duration_ns) {
  return report::Report{.event = report::Event::kRequest,
                        .command = command,
                        .result = result,
                        .miss = miss,
                        .bytes = bytes,
                        .duration_ns = duration_ns};
}

TEST(CacheprogCollectorTest, CountsWhatTheHelpersReport) {
  TempDir dir;
  const std::string socket = dir / "cacheprog.sock";
  auto collector = MakeListening(socket);
  ASSERT_NE(collector, nullptr);
  collector->Start();
  auto helper = std::make_unique<Reporter>(socket, "/srv/cache");
  helper->Send(report::Report{.event = report::Event::kStart});
  helper->Send(Request(report::Command::kGet, report::Result::kHit, report::MissReason::kNone, 1000,
                       90'000));
  helper->Send(Request(report::Command::kGet, report::Result::kMiss,
                       report::MissReason::kOutputMissing, 0, 20'000));
  helper->Send(Request(report::Command::kPut, report::Result::kOk, report::MissReason::kNone, 5000,
                       2'000'000));
  helper->Send(report::Report{.event = report::Event::kEviction,
                              .bytes = 777,
                              .eviction = report::EvictionReason::kAge,
                              .entries = 3});
  EXPECT_EQ(helper->lost(), 0u);
  // Not a helper's: a relative path; then a report that says 5 were lost
  // before it, and half a line when the connection closes (not counted).
  SendRaw(socket, "v1 start 1 0 not-a-path\n");
  SendRaw(socket, "v1 request 1 5 put ok - 10 10 /srv/cache\nv1 request 1 0 get");

  const std::map<std::string, std::string> cache = {{"path", "/srv/cache"}};
  // The helper's reports come in a batch, within 100 ms.
  const auto result = UpdateUntil(*collector, [](const CollectResult& r) {
    return Sample(r, "gocache_cacheprog_reports_invalid_total") == 1 &&
           Sample(r, "gocache_cacheprog_reports_lost_total") == 5 &&
           Sample(r, "gocache_cacheprog_evictions_total", {{"reason", "age"}}) == 3;
  });
  EXPECT_TRUE(result.errors.empty());
  const auto labels = [&](std::map<std::string, std::string> more) {
    more.insert(cache.begin(), cache.end());
    return more;
  };
  EXPECT_EQ(Sample(result, "gocache_cacheprog_requests_total",
                   labels({{"command", "get"}, {"result", "hit"}})),
            1);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_requests_total",
                   labels({{"command", "get"}, {"result", "miss"}})),
            1);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_requests_total",
                   labels({{"command", "get"}, {"result", "error"}})),
            0);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_requests_total",
                   labels({{"command", "put"}, {"result", "ok"}})),
            2);
  EXPECT_EQ(
      Sample(result, "gocache_cacheprog_get_misses_total", labels({{"reason", "output_missing"}})),
      1);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_get_misses_total", labels({{"reason", "no_entry"}})),
            0);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_bytes_total", labels({{"command", "get"}})), 1000);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_bytes_total", labels({{"command", "put"}})), 5010);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_evictions_total", labels({{"reason", "age"}})), 3);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_evicted_bytes_total", labels({{"reason", "age"}})),
            777);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_processes_started_total", cache), 1);
  // Its connection is open.
  EXPECT_EQ(Sample(result, "gocache_cacheprog_processes", cache), 1);

  // The get hit's 90 µs in the bucket up to 100 µs, not the one to 50 µs.
  const auto* durations = FindFamily(result.families, "gocache_cacheprog_request_duration_seconds");
  ASSERT_NE(durations, nullptr);
  bool found = false;
  for (const auto& metric : durations->metric) {
    const auto l = LabelMap(metric);
    if (l.at("command") != "get" || l.at("result") != "hit") continue;
    found = true;
    EXPECT_EQ(metric.histogram.sample_count, 1u);
    EXPECT_NEAR(metric.histogram.sample_sum, 0.00009, 1e-12);
    ASSERT_GE(metric.histogram.bucket.size(), 2u);
    EXPECT_EQ(metric.histogram.bucket[0].upper_bound, 0.00005);
    EXPECT_EQ(metric.histogram.bucket[0].cumulative_count, 0u);
    EXPECT_EQ(metric.histogram.bucket[1].cumulative_count, 1u);
  }
  EXPECT_TRUE(found);

  helper->Send(report::Report{.event = report::Event::kStop});
  helper.reset();
  const auto stopped = UpdateUntil(*collector, [&](const CollectResult& r) {
    return Sample(r, "gocache_cacheprog_processes", cache) == 0;
  });
  EXPECT_EQ(Sample(stopped, "gocache_cacheprog_processes", cache), 0);

  collector->Stop(std::chrono::milliseconds(1000));
  EXPECT_FALSE(std::filesystem::exists(socket)) << "the socket is removed at stop";
}

TEST(CacheprogCollectorTest, MarksTheWatchedCachesTheHelpersGoCommandsHave) {
  TempDir dir;
  dir.MakeDir("go-build");
  dir.MakeDir("other");
  std::filesystem::create_directory_symlink(dir / "go-build", dir / "link");
  const std::string socket = dir / "cacheprog.sock";
  auto collector = MakeListening(socket, {{dir / "go-build", CacheKind::kBuild},
                                          {dir / "other", CacheKind::kBuild},
                                          {dir / "mod", CacheKind::kMod}});
  ASSERT_NE(collector, nullptr);
  collector->Start();
  const auto configured = [&](const CollectResult& r, const std::string& path) {
    return Sample(r, "gocache_cacheprog_configured", {{"path", path}});
  };
  auto result = collector->Update();
  EXPECT_EQ(configured(result, dir / "go-build"), 0);
  EXPECT_EQ(configured(result, dir / "other"), 0);
  EXPECT_EQ(configured(result, dir / "mod"), -1) << "build caches only";

  // The helper's go command names the watched cache through a symlink.
  Reporter helper(socket, "/srv/helper-cache");
  helper.Send(report::Report{.event = report::Event::kStart});
  helper.Send(report::Report{.event = report::Event::kGoCache, .path = dir / "link"});
  // A GOCACHE before any start is not a helper's.
  SendRaw(socket, "v1 gocache 1 0 " + (dir / "other") + "\n");
  result = UpdateUntil(*collector, [&](const CollectResult& r) {
    return configured(r, dir / "go-build") == 1 &&
           Sample(r, "gocache_cacheprog_reports_invalid_total") == 1;
  });
  EXPECT_EQ(configured(result, dir / "go-build"), 1);
  EXPECT_EQ(configured(result, dir / "other"), 0);
  EXPECT_EQ(Sample(result, "gocache_cacheprog_reports_invalid_total"), 1);
  EXPECT_EQ(
      Sample(result, "gocache_cacheprog_processes_started_total", {{"path", "/srv/helper-cache"}}),
      1);
  collector->Stop(std::chrono::milliseconds(1000));
}

TEST(CacheprogCollectorTest, ASocketItCannotBindFailsUntilItCan) {
  TempDir dir;
  const std::string socket = dir / "run/cacheprog.sock";
  auto collector = MakeListening(socket);
  ASSERT_NE(collector, nullptr);
  collector->Start();
  auto result = collector->Update();
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_NE(result.errors[0].find("bind " + socket), std::string::npos) << result.errors[0];

  dir.MakeDir("run");
  result = collector->Update();
  EXPECT_TRUE(result.errors.empty());
  EXPECT_EQ(Sample(result, "gocache_cacheprog_reports_invalid_total"), 0);
  collector->Stop(std::chrono::milliseconds(1000));
}

TEST(CacheprogCollectorTest, AReporterWithNoExporterCountsWhatItLost) {
  TempDir dir;
  Reporter helper(dir / "nobody-listens.sock", "/srv/cache");
  helper.Send(report::Report{.event = report::Event::kStart});
  helper.Send(report::Report{.event = report::Event::kStop});
  EXPECT_EQ(helper.lost(), 2u);
  Reporter silent("", "/srv/cache");
  silent.Send(report::Report{.event = report::Event::kStart});
  EXPECT_EQ(silent.lost(), 0u);
}

}  // namespace
}  // namespace gocache::cacheprog
