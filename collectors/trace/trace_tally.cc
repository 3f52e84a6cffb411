#include "collectors/trace/trace_tally.h"

#include <algorithm>
#include <string>

#include "collectors/metric_family.h"

namespace gocache::trace {

using prometheus::MetricType;

size_t ModeIndex(std::string_view mode) {
  for (size_t i = 0; i < kOtherMode; ++i) {
    if (kModes[i] == mode) return i;
  }
  return kOtherMode;
}

size_t ModeIndexOfDescription(std::string_view description) {
  size_t best = kOtherMode;
  for (size_t i = 0; i < kOtherMode; ++i) {
    const std::string_view mode = kModes[i];
    if (description.substr(0, mode.size()) != mode) continue;
    if (description.size() > mode.size() && description[mode.size()] != ' ') continue;
    if (best == kOtherMode || mode.size() > kModes[best].size()) best = i;
  }
  return best;
}

std::string_view FormatName(TraceFormat format) {
  switch (format) {
    case TraceFormat::kActionGraph:
      return "actiongraph";
    case TraceFormat::kChrome:
      return "chrome";
    case TraceFormat::kUnknown:
      break;
  }
  return "unknown";
}

void LatencyHistogram::Observe(double seconds) {
  const auto& bounds = kLatencyBuckets;
  // Prometheus buckets are upper-inclusive.
  const size_t bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
  ++counts[bucket];
  sum += seconds;
}

uint64_t LatencyHistogram::count() const {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  return total;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  sum += other.sum;
}

void ModeTally::Merge(const ModeTally& other) {
  hits += other.hits;
  misses += other.misses;
  cache_read.Merge(other.cache_read);
  cache_write.Merge(other.cache_write);
  duration_miss.Merge(other.duration_miss);
  duration_unknown.Merge(other.duration_unknown);
}

void TraceTally::AddAction(size_t mode, bool ran_command, double seconds, double command_seconds) {
  ModeTally& m = modes[mode];
  if (ran_command) {
    ++m.misses;
    m.cache_write.Observe(std::max(0.0, seconds - command_seconds));
    m.duration_miss.Observe(seconds);
  } else {
    ++m.hits;
    m.cache_read.Observe(seconds);
  }
}

void TraceTally::AddSpan(size_t mode, double seconds) {
  modes[mode].duration_unknown.Observe(seconds);
}

void TraceTally::CountFile(TraceFormat format, bool ok) {
  ++files[static_cast<size_t>(format)][ok ? 0 : 1];
}

void TraceTally::Merge(const TraceTally& other) {
  for (size_t i = 0; i < modes.size(); ++i) modes[i].Merge(other.modes[i]);
  for (size_t f = 0; f < files.size(); ++f) {
    for (size_t r = 0; r < files[f].size(); ++r) files[f][r] += other.files[f][r];
  }
}

namespace {

// Family indexes, in exposition order.
enum Family { kFiles, kActions, kRead, kWrite, kDuration, kFamilyCount };

constexpr std::array<FamilyDecl, kFamilyCount> kFamilies = {{
    {"gocache_trace_files_total", "Trace files ingested from the spool, by format and result.",
     MetricType::Counter},
    {"gocache_trace_actions_total",
     "Actions in ingested action graphs: hit ran no command (served from "
     "the cache), miss ran one.",
     MetricType::Counter},
    {"gocache_trace_cache_read_seconds", "Durations of actions served from the cache.",
     MetricType::Histogram},
    {"gocache_trace_cache_write_seconds",
     "Time of actions that ran a command spent outside the command, "
     "dominated by writing the result to the cache.",
     MetricType::Histogram},
    {"gocache_trace_action_duration_seconds",
     "Whole durations of actions that ran a command (miss), and of Chrome trace actions "
     "(unknown); a hit's is its cache read.",
     MetricType::Histogram},
}};
static_assert(Complete(kFamilies));

void AddLatency(prometheus::MetricFamily& family, Labels labels, const LatencyHistogram& h) {
  if (h.count() == 0) return;
  AddHistogram(family, std::move(labels), kLatencyBuckets, h.counts, h.sum);
}

}  // namespace

std::vector<prometheus::MetricFamily> Render(const TraceTally& tally) {
  auto families = MakeFamilies(kFamilies);

  // Every possible file series from the start, so that an alert on the
  // error rate sees its first error as an increase.
  for (size_t f = 0; f < tally.files.size(); ++f) {
    const auto format = static_cast<TraceFormat>(f);
    for (size_t r = 0; r < 2; ++r) {
      const bool ok = r == 0;
      if (ok && format == TraceFormat::kUnknown) continue;  // a file we could read has a format
      AddSample(families[kFiles],
                {{"format", std::string(FormatName(format))}, {"result", ok ? "ok" : "error"}},
                static_cast<double>(tally.files[f][r]));
    }
  }
  for (size_t i = 0; i < tally.modes.size(); ++i) {
    const ModeTally& m = tally.modes[i];
    const std::string mode(kModes[i]);
    // A mode once seen keeps both of its action series, so rate() sees a 0
    // before the first miss rather than a new series.
    if (m.hits + m.misses > 0) {
      AddSample(families[kActions], {{"mode", mode}, {"result", "hit"}},
                static_cast<double>(m.hits));
      AddSample(families[kActions], {{"mode", mode}, {"result", "miss"}},
                static_cast<double>(m.misses));
    }
    // Other modes never read or write the cache: their latency is not
    // cache latency, and would only add series.
    if (i == kOtherMode) continue;
    AddLatency(families[kRead], {{"mode", mode}}, m.cache_read);
    AddLatency(families[kWrite], {{"mode", mode}}, m.cache_write);
    AddLatency(families[kDuration], {{"mode", mode}, {"result", "miss"}}, m.duration_miss);
    AddLatency(families[kDuration], {{"mode", mode}, {"result", "unknown"}}, m.duration_unknown);
  }
  std::vector<prometheus::MetricFamily> out;
  AppendNonEmpty(out, std::move(families));
  return out;
}

}  // namespace gocache::trace
