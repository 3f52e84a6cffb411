#include "collectors/density/density_collector.h"

#include <cmath>

#include "cache/scan_service.h"
#include "collectors/metric_family.h"

namespace gocache::density {

std::optional<ShardSpread> SpreadOf(const CacheCensus& census) {
  const size_t n = census.shards_present.count();
  if (n == 0) return std::nullopt;
  ShardSpread spread{static_cast<double>(n), 1e300, 0, 0, 0, std::nullopt};
  double sum = 0;
  for (size_t s = 0; s < 256; ++s) {
    if (!census.shards_present[s]) continue;
    const double count = census.shard_entries[s];
    spread.min = std::min(spread.min, count);
    spread.max = std::max(spread.max, count);
    sum += count;
  }
  spread.mean = sum / static_cast<double>(n);
  double squares = 0;
  for (size_t s = 0; s < 256; ++s) {
    if (!census.shards_present[s]) continue;
    const double d = census.shard_entries[s] - spread.mean;
    squares += d * d;
  }
  spread.stddev = std::sqrt(squares / static_cast<double>(n));
  if (spread.mean > 0) spread.imbalance = spread.stddev / spread.mean;
  return spread;
}

std::optional<double> SlackRatio(uint64_t apparent, uint64_t allocated) {
  if (allocated == 0) return std::nullopt;
  return 1.0 - static_cast<double>(apparent) / static_cast<double>(allocated);
}

namespace {

using prometheus::MetricType;

constexpr const char* kTypeNames[] = {"action", "output", "other"};

// Family indexes, in exposition order.
enum Family {
  kEntries,
  kEntryBytes,
  kEntrySize,
  kAllocated,
  kSlack,
  kShards,
  kShardMin,
  kShardMax,
  kShardMean,
  kShardStddev,
  kShardImbalance,
  kShardDirBytes,
  kOrphans,
  kCorrupt,
  kAge,
  kTrimmableEntries,
  kTrimmableBytes,
  kLastTrim,
  kScanDuration,
  kScanErrors,
  kScanMode,
  kScanDrift,
  kFamilyCount
};

constexpr std::array<FamilyDecl, kFamilyCount> kFamilies = {{
    {"gocache_entries",
     "Files in the cache by type: action (<64 hex>-a), output (<64 hex>-d), other.",
     MetricType::Gauge},
    {"gocache_entry_bytes", "Apparent size (st_size) of the cache's files by type.",
     MetricType::Gauge},
    {"gocache_entry_size_bytes",
     "Actions and outputs by apparent size (st_size): the size distribution of the entries.",
     MetricType::Histogram},
    {"gocache_allocated_bytes", "Allocated size (st_blocks * 512) of the cache's files.",
     MetricType::Gauge},
    {"gocache_slack_ratio",
     "1 - apparent / allocated bytes: space lost to block rounding of small files.",
     MetricType::Gauge},
    {"gocache_shards", "Shard directories present (a healthy cache has 256: 00 to ff).",
     MetricType::Gauge},
    {"gocache_shard_entries_min", "Fewest entries in a shard directory.", MetricType::Gauge},
    {"gocache_shard_entries_max", "Most entries in a shard directory.", MetricType::Gauge},
    {"gocache_shard_entries_mean", "Mean entries per shard directory.", MetricType::Gauge},
    {"gocache_shard_entries_stddev", "Standard deviation of the entries per shard directory.",
     MetricType::Gauge},
    {"gocache_shard_imbalance_ratio", "Standard deviation over mean of entries per shard.",
     MetricType::Gauge},
    {"gocache_shard_dir_bytes",
     "st_size summed over the shard directories (grows with churn, never shrinks on ext4).",
     MetricType::Gauge},
    {"gocache_orphan_entries",
     "Broken pairs: action_without_output, output_without_action, size_mismatch (the go "
     "command treats the action as a miss).",
     MetricType::Gauge},
    {"gocache_corrupt_entries",
     "Action entries that do not parse as the go command's entry format.", MetricType::Gauge},
    {"gocache_entry_age_seconds",
     "Actions and outputs by time since last use (mtime), at the scan's start.",
     MetricType::Histogram},
    {"gocache_trimmable_entries",
     "Entries unused for longer than the go command's trim limit (5 days + 1 hour): what "
     "its next trim deletes.",
     MetricType::Gauge},
    {"gocache_trimmable_bytes", "Bytes of the trimmable entries.", MetricType::Gauge},
    {"gocache_last_trim_timestamp_seconds",
     "Unix time of the go command's last trim, from trim.txt.", MetricType::Gauge},
    {"gocache_scan_duration_seconds", "Wall time of the last complete scan.", MetricType::Gauge},
    {"gocache_scan_errors_total", "Files or directories the scans could not read.",
     MetricType::Counter},
    {"gocache_scan_mode",
     "1 for the way the census follows the cache: events (inotify) or walk (a walk every "
     "--scan.interval).",
     MetricType::Gauge},
    {"gocache_scan_drift_total",
     "Entries a verifying walk found different from the census kept by events (stays 0).",
     MetricType::Counter},
}};
static_assert(Complete(kFamilies));

void RenderBuildCache(const std::string& path, const ScanSnapshot& scan, const CacheCensus& c,
                      std::vector<prometheus::MetricFamily>& f) {
  const auto d = [](uint64_t v) { return static_cast<double>(v); };
  const Labels labels = {{"path", path}};
  const auto with = [&path](const char* name, const char* value) {
    return Labels{{"path", path}, {name, value}};
  };
  for (size_t t = 0; t < 3; ++t) {
    AddSample(f[kEntries], with("type", kTypeNames[t]), d(c.entries[t]));
    AddSample(f[kEntryBytes], with("type", kTypeNames[t]), d(c.bytes[t]));
  }
  for (size_t t = 0; t < c.sizes.counts.size(); ++t) {  // actions and outputs
    AddHistogram(f[kEntrySize], with("type", kTypeNames[t]), kSizeBuckets, c.sizes.counts[t],
                 d(c.bytes[t]));
  }
  AddSample(f[kAllocated], labels, d(c.allocated_bytes));
  const uint64_t apparent = c.bytes[0] + c.bytes[1] + c.bytes[2];
  if (auto slack = SlackRatio(apparent, c.allocated_bytes)) AddSample(f[kSlack], labels, *slack);
  AddSample(f[kShards], labels, d(c.shards_present.count()));
  if (auto spread = SpreadOf(c)) {
    AddSample(f[kShardMin], labels, spread->min);
    AddSample(f[kShardMax], labels, spread->max);
    AddSample(f[kShardMean], labels, spread->mean);
    AddSample(f[kShardStddev], labels, spread->stddev);
    if (spread->imbalance) AddSample(f[kShardImbalance], labels, *spread->imbalance);
  }
  AddSample(f[kShardDirBytes], labels, d(c.shard_dir_bytes));
  AddSample(f[kOrphans], with("type", "action_without_output"), d(c.action_without_output));
  AddSample(f[kOrphans], with("type", "output_without_action"), d(c.output_without_action));
  AddSample(f[kOrphans], with("type", "size_mismatch"), d(c.size_mismatch));
  AddSample(f[kCorrupt], labels, d(c.corrupt));
  AddHistogram(f[kAge], labels, kAgeBuckets, c.age_counts, c.age_sum_seconds);
  AddSample(f[kTrimmableEntries], labels, d(c.trimmable_entries));
  AddSample(f[kTrimmableBytes], labels, d(c.trimmable_bytes));
  if (c.last_trim_unix) AddSample(f[kLastTrim], labels, static_cast<double>(*c.last_trim_unix));
  AddSample(f[kScanDuration], labels, scan.walk.duration_seconds);
  AddSample(f[kScanErrors], labels, d(scan.errors_total));
}

class DensityCollector final : public Collector {
 public:
  explicit DensityCollector(const CollectorContext& context)
      : caches_(context.caches), scans_(context.scans) {}

  CollectResult Update() override {
    CollectResult result;
    auto families = MakeFamilies(kFamilies);
    for (const auto& cache : caches_) {
      const auto scan = scans_->Latest(cache.path);
      if (!scan) continue;  // the first scan has not finished yet
      if (auto problem = ScanProblem(cache.path, *scan); !problem.empty()) {
        result.errors.push_back(std::move(problem));
      }
      if (!scan->census) continue;
      for (const ScanMode mode : {ScanMode::kEvents, ScanMode::kWalk}) {
        AddSample(families[kScanMode], {{"path", cache.path}, {"mode", ScanModeLabel(mode)}},
                  scan->mode == mode ? 1 : 0);
      }
      AddSample(families[kScanDrift], {{"path", cache.path}},
                static_cast<double>(scan->drift_total));
      if (cache.kind == CacheKind::kBuild) {
        RenderBuildCache(cache.path, *scan, *scan->census, families);
      } else {
        AddSample(families[kEntryBytes], {{"path", cache.path}, {"type", "other"}},
                  static_cast<double>(scan->census->bytes[2]));
      }
    }
    AppendNonEmpty(result.families, std::move(families));
    return result;
  }

 private:
  const std::vector<CacheDir> caches_;
  const std::shared_ptr<const ScanService> scans_;
};

}  // namespace

CollectorInfo Info() {
  return CollectorInfo{
      .name = "density",
      .help = "entry types, shard spread, slack, broken and trimmable entries of each build cache",
      .enabled_by_default = true,
      .add_flags = nullptr,
      // No flags of its own: it renders the latest background scan.
      .configure = [](const ParsedFlags&) -> Configured {
        return ConfiguredCollector{
            Schedule::AtScrape(),
            [](const CollectorContext& context) -> std::unique_ptr<Collector> {
              return std::make_unique<DensityCollector>(context);
            }};
      },
      .scan_depth = ScanDepth::kCensus,
  };
}

}  // namespace gocache::density
