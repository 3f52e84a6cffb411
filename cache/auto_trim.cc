#include "cache/auto_trim.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include "base/log.h"

namespace gocache {
namespace {

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

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

AutoTrimService::AutoTrimService(AutoTrimConfig config, std::vector<std::string> caches,
                                 std::shared_ptr<const ScanService> scans)
    : shared_(std::make_shared<Shared>()) {
  shared_->config = config;
  shared_->caches = std::move(caches);
  shared_->scans = std::move(scans);
  for (const auto& dir : shared_->caches) shared_->counters[dir];
}

AutoTrimService::~AutoTrimService() { Stop(std::chrono::seconds(1)); }

void AutoTrimService::Start() {
  if (worker_) return;
  auto shared = shared_;
  worker_ = std::make_unique<Worker>([shared](const Worker::Control& control) {
    do {
      CheckAll(*shared);
    } while (control.Sleep(shared->config.check_interval));
  });
}

void AutoTrimService::Stop(std::chrono::milliseconds grace) {
  if (worker_) worker_->Stop(grace);
  worker_.reset();
}

void AutoTrimService::CheckNow() { CheckAll(*shared_); }

std::vector<std::pair<std::string, AutoTrimCounters>> AutoTrimService::Counters() const {
  std::vector<std::pair<std::string, AutoTrimCounters>> out;
  std::lock_guard lock(shared_->mu);
  for (const auto& dir : shared_->caches) out.emplace_back(dir, shared_->counters.at(dir));
  return out;
}

void AutoTrimService::CheckAll(Shared& shared) {
  for (const auto& dir : shared.caches) CheckOne(shared, dir);
}

void AutoTrimService::CheckOne(Shared& shared, const std::string& dir) {
  const AutoTrimConfig& config = shared.config;
  std::vector<std::string> problems;
  std::vector<std::string>& unreachable = shared.unreachable[dir];
  // Publishes what this check found; `trimmed` adds a run's removals.
  const auto publish = [&](const TrimResult* trimmed) {
    std::lock_guard lock(shared.mu);
    AutoTrimCounters& c = shared.counters[dir];
    if (trimmed) {
      ++c.runs;
      c.entries += trimmed->entries();
      c.bytes += trimmed->bytes;
      for (const auto& u : trimmed->unreachable) ++c.unreachable[u.bound];
    }
    c.problems = std::move(problems);
  };

  struct stat st;
  if (stat(dir.c_str(), &st) != 0 && errno == ENOENT) {
    unreachable.clear();
    return publish(nullptr);  // no cache yet (a fresh runner): nothing to trim, nothing wrong
  }
  std::string error;
  const auto usage = MeasureCache(dir, false, error);
  if (!usage) {
    problems.push_back("cannot read " + error);
    return publish(nullptr);
  }
  TrimBounds target;
  std::string why;
  const auto ratio = usage->inode_usage();
  if (config.trigger_inode_usage && ratio && *ratio >= *config.trigger_inode_usage) {
    target.max_inode_usage = *config.trigger_inode_usage * config.target_fraction;
    why = "inode usage " + std::to_string(*ratio);
  }
  if (config.trigger_bytes) {
    // The entry bytes come from the background scan: listing a cache at
    // every check would cost what the scan already pays.
    const auto scan = shared.scans->Latest(dir);
    if (scan && scan->census) {
      const auto& c = *scan->census;
      const uint64_t entry_bytes = c.bytes[0] + c.bytes[1];  // actions and outputs
      if (entry_bytes >= *config.trigger_bytes) {
        target.max_bytes = static_cast<uint64_t>(static_cast<double>(*config.trigger_bytes) *
                                                 config.target_fraction);
        why +=
            (why.empty() ? "" : ", ") + std::string("entry bytes ") + std::to_string(entry_bytes);
      }
    }
  }
  if (!target.any()) {
    unreachable.clear();
    return publish(nullptr);
  }
  const auto now = std::chrono::steady_clock::now();
  const auto last = shared.last_run.find(dir);
  if (last != shared.last_run.end() && now - last->second < config.min_interval) {
    problems = unreachable;
    return publish(nullptr);
  }
  log::Info("trimming cache", {{"path", dir}, {"trigger", why}});
  target.keep_recent = config.keep_recent;
  const auto trimmed = TrimCache(dir, target, {}, error);
  shared.last_run[dir] = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(shared.mu);
    shared.counters[dir].last_run_unix = UnixNow();
  }
  unreachable.clear();
  if (!trimmed) {
    problems.push_back("trim of " + dir + ": cannot read " + error);
    TrimResult none;
    return publish(&none);
  }
  for (const auto& e : trimmed->errors) problems.push_back("trim of " + dir + ": " + e);
  for (const auto& u : trimmed->unreachable) {
    unreachable.push_back(
        "trim of " + dir + ": target " + Amount(u.bound, u.limit) +
        " cannot be reached: removing every entry unused for --trim.keep-recent would leave " +
        Amount(u.bound, u.floor) + "; removed nothing for it");
  }
  problems.insert(problems.end(), unreachable.begin(), unreachable.end());
  log::Info("trimmed cache", {{"path", dir},
                              {"entries", trimmed->entries()},
                              {"bytes", trimmed->bytes},
                              {"bounds_met", trimmed->bounds_met}});
  publish(&*trimmed);
  shared.scans->RequestScan();  // the density metrics should see the trim
}

}  // namespace gocache
