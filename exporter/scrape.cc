#include "exporter/scrape.h"

#include "base/version.h"
#include "collectors/metric_family.h"

namespace gocache {

using prometheus::MetricType;

namespace {

constexpr FamilyDecl kBuildInfo = {
    "gocache_exporter_build_info",
    "A metric with a constant '1' value labeled by version, revision and compiler "
    "of the running gocache_exporter.",
    MetricType::Gauge};

// Each collector's last update, by the `collector` label; in exposition order.
enum CollectorFamily { kDuration, kSuccess, kLastSuccess, kCollectorFamilyCount };

constexpr std::array<FamilyDecl, kCollectorFamilyCount> kCollectorFamilies = {{
    {"gocache_scrape_collector_duration_seconds", "How long the collector's last update took.",
     MetricType::Gauge},
    {"gocache_scrape_collector_success", "1 if the collector's last update succeeded, else 0.",
     MetricType::Gauge},
    {"gocache_collector_last_success_timestamp_seconds",
     "Unix time of the collector's last successful update: how old its data is.",
     MetricType::Gauge},
}};
static_assert(Complete(kCollectorFamilies));

}  // namespace

Scraper::Scraper(std::vector<std::shared_ptr<CollectorRunner>> runners,
                 std::chrono::milliseconds timeout)
    : runners_(std::move(runners)), timeout_(timeout) {}

std::vector<prometheus::MetricFamily> Scraper::Collect() const {
  const auto deadline = CollectorRunner::Clock::now() + timeout_;
  std::vector<uint64_t> tickets;
  tickets.reserve(runners_.size());
  for (const auto& runner : runners_) tickets.push_back(runner->BeginScrape());
  std::vector<std::shared_ptr<const CollectorSnapshot>> snapshots;
  for (size_t i = 0; i < runners_.size(); ++i) {
    snapshots.push_back(runners_[i]->AwaitScrape(tickets[i], deadline));
  }
  return Render(snapshots);
}

std::vector<prometheus::MetricFamily> Scraper::CollectLatest() const {
  std::vector<std::shared_ptr<const CollectorSnapshot>> snapshots;
  for (const auto& runner : runners_) snapshots.push_back(runner->AwaitScrape(0, {}));
  return Render(snapshots);
}

std::vector<prometheus::MetricFamily> Scraper::Render(
    const std::vector<std::shared_ptr<const CollectorSnapshot>>& snapshots) const {
  std::vector<prometheus::MetricFamily> out;
  auto build_info = MakeFamily(kBuildInfo);
  AddSample(build_info, {{"compiler", kCompiler}, {"revision", kRevision}, {"version", kVersion}},
            1);
  out.push_back(std::move(build_info));

  auto f = MakeFamilies(kCollectorFamilies);
  for (size_t i = 0; i < runners_.size(); ++i) {
    const auto& snapshot = snapshots[i];
    if (!snapshot) continue;  // a background collector before its first update
    out.insert(out.end(), snapshot->families.begin(), snapshot->families.end());
    const Labels labels = {{"collector", runners_[i]->name()}};
    AddSample(f[kDuration], labels, snapshot->duration_seconds);
    AddSample(f[kSuccess], labels, snapshot->success ? 1 : 0);
    if (snapshot->last_success_unix)
      AddSample(f[kLastSuccess], labels, *snapshot->last_success_unix);
  }
  AppendNonEmpty(out, std::move(f));
  return out;
}

}  // namespace gocache
