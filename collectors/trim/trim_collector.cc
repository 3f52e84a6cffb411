#include "collectors/trim/trim_collector.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>

#include "base/flags.h"
#include "base/log.h"
#include "cache/cache_trim.h"
#include "collectors/metric_family.h"

namespace gocache::trim {
namespace {

using prometheus::MetricType;
using Clock = std::chrono::system_clock;

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

struct Config {
  std::optional<double> trigger_inode_usage;
  std::optional<uint64_t> trigger_bytes;
  double target_fraction = 0.9;
  std::chrono::milliseconds min_interval{0};
  std::chrono::seconds keep_recent = kDefaultKeepRecent;
};

// The label value of a bound in gocache_trim_unreachable_total.
const char* BoundLabel(TrimBound bound) { return bound == TrimBound::kBytes ? "bytes" : "inodes"; }

// "entry bytes 1234" or "inode usage 0.0861", for the log.
std::string Amount(TrimBound bound, double value) {
  char text[48];
  if (bound == TrimBound::kBytes) {
    std::snprintf(text, sizeof text, "entry bytes %.0f", value);
  } else {
    std::snprintf(text, sizeof text, "inode usage %.4g", value);
  }
  return text;
}

struct CacheTrims {
  uint64_t runs = 0, entries = 0, bytes = 0;
  std::map<TrimBound, uint64_t> unreachable;  // runs that found the bound out of reach
  // The last run's bounds out of reach: the collector fails until a run
  // meets them or the trigger no longer holds.
  std::vector<std::string> unreachable_errors;
  std::optional<Clock::time_point> last_run;
};

double Unix(Clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

class TrimCollector : public Collector {
 public:
  TrimCollector(Config config, std::vector<std::string> caches,
                std::shared_ptr<const ScanService> scans)
      : config_(config), caches_(std::move(caches)), scans_(std::move(scans)) {}

  CollectResult Update() override {
    CollectResult result;
    for (const auto& dir : caches_) Check(dir, result.errors);
    auto f = MakeFamilies(kFamilies);
    for (const auto& dir : caches_) {
      const CacheTrims& t = trims_[dir];
      AddSample(f[kRuns], {{"path", dir}}, static_cast<double>(t.runs));
      AddSample(f[kEntries], {{"path", dir}}, static_cast<double>(t.entries));
      AddSample(f[kBytes], {{"path", dir}}, static_cast<double>(t.bytes));
      if (t.last_run) AddSample(f[kLastRun], {{"path", dir}}, Unix(*t.last_run));
      for (const TrimBound bound : {TrimBound::kBytes, TrimBound::kInodeUsage}) {
        const auto it = t.unreachable.find(bound);
        AddSample(f[kUnreachable], {{"path", dir}, {"bound", BoundLabel(bound)}},
                  static_cast<double>(it == t.unreachable.end() ? 0 : it->second));
      }
    }
    AppendNonEmpty(result.families, std::move(f));
    return result;
  }

 private:
  void Check(const std::string& dir, std::vector<std::string>& errors) {
    struct stat st;
    if (stat(dir.c_str(), &st) != 0 && errno == ENOENT) {
      trims_[dir].unreachable_errors.clear();
      return;  // no cache yet (a fresh runner): nothing to trim, nothing wrong
    }
    std::string error;
    const auto usage = MeasureCache(dir, false, error);
    if (!usage) {
      errors.push_back("cannot read " + error);
      return;
    }
    TrimBounds target;
    std::string why;
    const auto ratio = usage->inode_usage();
    if (config_.trigger_inode_usage && ratio && *ratio >= *config_.trigger_inode_usage) {
      target.max_inode_usage = *config_.trigger_inode_usage * config_.target_fraction;
      why = "inode usage " + std::to_string(*ratio);
    }
    if (config_.trigger_bytes) {
      // The entry bytes come from the background scan: listing a cache at
      // every check would cost what the scan already pays.
      const auto scan = scans_->Latest(dir);
      if (scan && scan->census) {
        const auto& c = *scan->census;
        const uint64_t entry_bytes = c.bytes[0] + c.bytes[1];  // actions and outputs
        if (entry_bytes >= *config_.trigger_bytes) {
          target.max_bytes = static_cast<uint64_t>(static_cast<double>(*config_.trigger_bytes) *
                                                   config_.target_fraction);
          why +=
              (why.empty() ? "" : ", ") + std::string("entry bytes ") + std::to_string(entry_bytes);
        }
      }
    }
    CacheTrims& t = trims_[dir];
    if (!target.any()) {
      t.unreachable_errors.clear();
      return;
    }
    const auto now = Clock::now();
    if (t.last_run && now - *t.last_run < config_.min_interval) {
      errors.insert(errors.end(), t.unreachable_errors.begin(), t.unreachable_errors.end());
      return;
    }
    log::Info("trimming cache", {{"path", dir}, {"trigger", why}});
    target.keep_recent = config_.keep_recent;
    const auto trimmed = TrimCache(dir, target, {}, error);
    t.last_run = Clock::now();
    ++t.runs;
    t.unreachable_errors.clear();
    if (!trimmed) {
      errors.push_back("trim of " + dir + ": cannot read " + error);
      return;
    }
    t.entries += trimmed->entries();
    t.bytes += trimmed->bytes;
    for (const auto& e : trimmed->errors) errors.push_back("trim of " + dir + ": " + e);
    for (const auto& u : trimmed->unreachable) {
      ++t.unreachable[u.bound];
      t.unreachable_errors.push_back(
          "trim of " + dir + ": target " + Amount(u.bound, u.limit) +
          " cannot be reached: removing every entry unused for --trim.keep-recent would leave " +
          Amount(u.bound, u.floor) + "; removed nothing for it");
    }
    errors.insert(errors.end(), t.unreachable_errors.begin(), t.unreachable_errors.end());
    log::Info("trimmed cache", {{"path", dir},
                                {"entries", trimmed->entries()},
                                {"bytes", trimmed->bytes},
                                {"bounds_met", trimmed->bounds_met}});
    scans_->RequestScan();  // the density metrics should see the trim
  }

  const Config config_;
  const std::vector<std::string> caches_;
  const std::shared_ptr<const ScanService> scans_;
  std::map<std::string, CacheTrims> trims_;
};

Configured Configure(const cxxopts::ParseResult& flags) {
  FlagReader read(flags);
  Config config;
  config.trigger_inode_usage = read.OptionalRatio("trim.auto-inode-usage", true);
  config.trigger_bytes = read.OptionalPositiveSize("trim.auto-bytes");
  config.target_fraction = read.Ratio("trim.target-fraction", false);
  config.min_interval = read.PositiveDuration("trim.min-interval");
  config.keep_recent =
      std::chrono::duration_cast<std::chrono::seconds>(read.Duration("trim.keep-recent"));
  const auto check_interval = read.PositiveDuration("trim.check-interval");
  if (!read.ok()) return read.error();
  ConfiguredCollector configured{Schedule::Every(check_interval), nullptr};
  if (config.trigger_inode_usage || config.trigger_bytes) {  // else read-only: nothing to do
    configured.make = [config](const CollectorContext& context) -> std::unique_ptr<Collector> {
      std::vector<std::string> caches;
      for (const auto& cache : context.caches) {
        if (cache.kind == CacheKind::kBuild) caches.push_back(cache.path);
      }
      return std::make_unique<TrimCollector>(config, std::move(caches), context.scans);
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
          [](cxxopts::Options& options) {
            // clang-format off
            options.add_options("trim collector (opt-in: without a trigger the exporter never writes)")
                ("trim.auto-inode-usage", "Trim a build cache when its filesystem's inode usage "
                 "reaches this ratio.", cxxopts::value<std::string>())
                ("trim.auto-bytes", "Trim a build cache when its entries hold this many bytes "
                 "(from the background scan).", cxxopts::value<std::string>())
                ("trim.target-fraction", "Trim down to this fraction of the trigger.",
                 cxxopts::value<std::string>()->default_value("0.9"))
                ("trim.keep-recent", "Never remove an entry used within this long for a bound "
                 "(0s: any entry).", cxxopts::value<std::string>()->default_value("1h"))
                ("trim.min-interval", "Shortest pause between two trims of one cache.",
                 cxxopts::value<std::string>()->default_value("10m"))
                ("trim.check-interval", "How often the triggers are checked.",
                 cxxopts::value<std::string>()->default_value("30s"));
            // clang-format on
          },
      .configure = Configure,
      // The byte trigger reads the entry bytes of the background scan.
      .scan_depth = ScanDepth::kCensus,
  };
}

}  // namespace gocache::trim
