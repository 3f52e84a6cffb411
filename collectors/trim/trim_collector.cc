#include "collectors/trim/trim_collector.h"

#include <atomic>
#include <chrono>
#include <memory>

#include "base/flags.h"
#include "cache/auto_trim.h"
#include "collectors/metric_family.h"

namespace gocache::trim {
namespace {

using prometheus::MetricType;

// Family indexes, in exposition order.
enum Family { kRuns, kEntries, kBytes, kLastRun, kUnreachable, kFamilyCount };

constexpr std::array<FamilyDecl, kFamilyCount> kFamilies = {{
    {"gocache_trim_runs_total", "Automatic trims run (--trim.auto-inode-usage, --trim.auto-bytes).",
     MetricType::Counter},
    {"gocache_trim_removed_entries_total", "Entries (actions and outputs) automatic trims removed.",
     MetricType::Counter},
    {"gocache_trim_removed_bytes_total", "Bytes of the entries automatic trims removed.",
     MetricType::Counter},
    {"gocache_trim_last_run_timestamp_seconds",
     "Unix time the last automatic trim ended; absent before the first.", MetricType::Gauge},
    {"gocache_trim_unreachable_total",
     "Automatic trims that removed nothing for a bound (bytes, inodes) because removing every "
     "entry unused for --trim.keep-recent would not meet it.",
     MetricType::Counter},
}};
static_assert(Complete(kFamilies));

// The label value of a bound in gocache_trim_unreachable_total.
const char* BoundLabel(TrimBound bound) { return bound == TrimBound::kBytes ? "bytes" : "inodes"; }

// Reports what the automatic trims did; the AutoTrimService it starts does
// the deleting, on a worker of its own.
class TrimCollector : public Collector {
 public:
  explicit TrimCollector(std::shared_ptr<AutoTrimService> trims) : trims_(std::move(trims)) {}

  void Start() override {
    started_ = true;
    trims_->Start();
  }
  void Stop(std::chrono::milliseconds grace) override { trims_->Stop(grace); }

  CollectResult Update() override {
    CollectResult result;
    if (!started_) trims_->CheckNow();  // --once: one check, here
    auto f = MakeFamilies(kFamilies);
    for (const auto& [dir, t] : trims_->Counters()) {
      AddSample(f[kRuns], {{"path", dir}}, static_cast<double>(t.runs));
      AddSample(f[kEntries], {{"path", dir}}, static_cast<double>(t.entries));
      AddSample(f[kBytes], {{"path", dir}}, static_cast<double>(t.bytes));
      if (t.last_run_unix) AddSample(f[kLastRun], {{"path", dir}}, *t.last_run_unix);
      for (const TrimBound bound : {TrimBound::kBytes, TrimBound::kInodeUsage}) {
        const auto it = t.unreachable.find(bound);
        AddSample(f[kUnreachable], {{"path", dir}, {"bound", BoundLabel(bound)}},
                  static_cast<double>(it == t.unreachable.end() ? 0 : it->second));
      }
      result.errors.insert(result.errors.end(), t.problems.begin(), t.problems.end());
    }
    AppendNonEmpty(result.families, std::move(f));
    return result;
  }

 private:
  const std::shared_ptr<AutoTrimService> trims_;
  std::atomic<bool> started_{false};
};

Configured Configure(const ParsedFlags& flags) {
  FlagReader read(flags);
  AutoTrimConfig config;
  config.trigger_inode_usage = read.OptionalRatio("trim.auto-inode-usage", true);
  config.trigger_bytes = read.OptionalPositiveSize("trim.auto-bytes");
  config.target_fraction = read.Ratio("trim.target-fraction", false);
  config.min_interval = read.PositiveDuration("trim.min-interval");
  config.keep_recent =
      std::chrono::duration_cast<std::chrono::seconds>(read.Duration("trim.keep-recent"));
  config.check_interval = read.PositiveDuration("trim.check-interval");
  if (!read.ok()) return read.error();
  // It renders the service's counters: cheap, at every scrape.
  ConfiguredCollector configured{Schedule::AtScrape(), nullptr};
  if (config.any_trigger()) {  // else read-only: nothing to do
    configured.make = [config](const CollectorContext& context) -> std::unique_ptr<Collector> {
      std::vector<std::string> caches;
      for (const auto& cache : context.caches) {
        if (cache.kind == CacheKind::kBuild) caches.push_back(cache.path);
      }
      return std::make_unique<TrimCollector>(
          std::make_shared<AutoTrimService>(config, std::move(caches), context.scans));
    };
  }
  return configured;
}

}  // namespace

CollectorInfo Info() {
  return CollectorInfo{
      .name = "trim",
      .help =
          "automatic LRU trims of the build caches (needs --trim.auto-inode-usage or "
          "--trim.auto-bytes)",
      .enabled_by_default = true,
      .add_flags =
          [](FlagSet& options) {
            options.Group("trim collector (opt-in: without a trigger the exporter never writes)")
                .Value("trim.auto-inode-usage",
                       "Trim a build cache when its filesystem's inode usage reaches this ratio.")
                .Value("trim.auto-bytes",
                       "Trim a build cache when its entries hold this many bytes (from the "
                       "background scan).")
                .Value("trim.target-fraction", "Trim down to this fraction of the trigger.", "0.9")
                .Value("trim.keep-recent",
                       "Never remove an entry used within this long for a bound (0s: any entry).",
                       "1h")
                .Value("trim.min-interval", "Shortest pause between two trims of one cache.", "10m")
                .Value("trim.check-interval", "How often the triggers are checked.", "30s");
          },
      .configure = Configure,
      // The byte trigger reads the entry bytes of the background scan.
      .scan_depth = ScanDepth::kCensus,
  };
}

}  // namespace gocache::trim
