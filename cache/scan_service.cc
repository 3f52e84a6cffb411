#include "cache/scan_service.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include "base/file_time.h"
#include "base/log.h"
#include "cache/census_watch.h"

namespace gocache {
namespace {

constexpr int kScanNice = 10;
// Changes are gathered for this long, then looked at and published together.
constexpr auto kEventTick = std::chrono::seconds(1);
// How long the events thread waits in poll: bounds how late it sees a stop.
constexpr int kPollMillis = 500;

}  // namespace

std::string ScanProblem(const std::string& path, const ScanSnapshot& scan) {
  // A cache that does not exist (yet) is a state: gocache_cache_present.
  if (scan.walk.root_errno == ENOENT) return "";
  if (!scan.walk.root_readable) return "scan " + scan.walk.root_error;
  if (scan.walk.errors == 0) return "";
  return "scan " + path + ": " + std::to_string(scan.walk.errors) +
         " entries could not be read, first " + scan.walk.first_error;
}

ScanService::ScanService(std::vector<CacheDir> caches, std::chrono::milliseconds interval,
                         ScanDepth depth, int threads, EventOptions events)
    : interval_(interval), events_(events), shared_(std::make_shared<Shared>()) {
  shared_->depth = depth;
  shared_->threads = std::max(1, threads);
  for (auto& cache : caches) {
    shared_->walked.push_back(true);
    shared_->caches.push_back({std::move(cache), {}, 0});
  }
}

void ScanService::Shared::Publish(const std::string& path,
                                  std::shared_ptr<const ScanSnapshot> snapshot) {
  std::lock_guard lock(mu);
  latest[path] = std::move(snapshot);
}

ScanService::~ScanService() { Stop(std::chrono::seconds(1)); }

std::shared_ptr<ScanSnapshot> ScanService::ScanOne(CacheState& state, ScanDepth depth, int threads,
                                                   const std::function<bool()>& stop) {
  auto snapshot = std::make_shared<ScanSnapshot>();
  const std::string& path = state.cache.path;
  if (depth != ScanDepth::kCensus) {
    snapshot->walk =
        ScanTree(path, std::vector<ScanVisitor*>(threads, nullptr), stop, state.cache.nested);
  } else {
    std::vector<CensusVisitor> visitors;
    visitors.reserve(threads);
    const int64_t start_ns = NowNs();
    // Room for what the previous scan found, and a little growth.
    const auto share = [threads](size_t total) { return total / threads + total / 64 + 64; };
    for (int i = 0; i < threads; ++i) {
      visitors.emplace_back(state.cache.kind, start_ns, state.index);
      visitors.back().Reserve(share(state.index.size()), share(state.outputs));
    }
    std::vector<ScanVisitor*> pointers;
    for (auto& v : visitors) pointers.push_back(&v);
    snapshot->walk = ScanTree(path, pointers, stop, state.cache.nested);
    for (const auto& v : visitors) {
      snapshot->walk.errors += v.read_errors();
      if (snapshot->walk.first_error.empty()) snapshot->walk.first_error = v.first_read_error();
    }
    ActionIndex().swap(state.index);  // the walk is done with it: free it before the next grows
    state.outputs = 0;
    if (snapshot->walk.root_readable) {
      snapshot->census = FinishCensus(visitors, state.index);
      state.outputs =
          snapshot->census->entries[static_cast<size_t>(buildcache::EntryType::kOutput)];
      if (state.cache.kind == CacheKind::kBuild) {
        snapshot->census->last_trim_unix = buildcache::ReadTrimTime(path);
      }
    }
  }
  state.errors_total += snapshot->walk.errors;
  snapshot->errors_total = state.errors_total;
  return snapshot;
}

void ScanService::ScanAll(Shared& shared, const std::function<bool()>& stop, bool all) {
  for (size_t i = 0; i < shared.caches.size(); ++i) {
    if (stop()) return;
    if (!all) {
      std::lock_guard lock(shared.mu);
      if (!shared.walked[i]) continue;
    }
    CacheState& state = shared.caches[i];
    auto snapshot = ScanOne(state, shared.depth, shared.threads, stop);
    if (stop()) return;  // an interrupted scan is incomplete: keep the previous one
    shared.Publish(state.cache.path, std::move(snapshot));
  }
}

void ScanService::FollowEvents(Shared& shared, const EventOptions& options,
                               const Worker::Control& control) {
  std::vector<size_t> followed;
  {
    std::lock_guard lock(shared.mu);
    for (size_t i = 0; i < shared.caches.size(); ++i) {
      if (!shared.walked[i]) followed.push_back(i);
    }
  }
  const std::function<bool()> stop = [&control] { return control.stop_requested(); };
  // Back to walks on the interval: once walked here at once, then by the
  // walking thread.
  const auto walk_instead = [&](size_t i, const std::string& why) {
    CacheState& state = shared.caches[i];
    log::Warn("cannot follow the cache by events: walking it every --scan.interval",
              {{"path", state.cache.path}, {"reason", why}});
    auto snapshot = ScanOne(state, shared.depth, shared.threads, stop);
    if (!stop()) shared.Publish(state.cache.path, std::move(snapshot));
    std::lock_guard lock(shared.mu);
    shared.walked[i] = true;
  };
  std::string error;
  auto census = EventCensus::Open(error);
  if (!census) {
    for (size_t i : followed) walk_instead(i, error);
    return;
  }
  std::map<std::string, size_t> index_of;
  for (size_t i : followed) {
    census->Follow(shared.caches[i].cache);
    index_of[shared.caches[i].cache.path] = i;
  }
  const std::function<void()> drain = [&census] { census->Drain(); };
  const auto walk = [&](bool verify) {
    std::vector<std::string> lost;
    for (auto& watch : census->caches()) {
      if (stop()) return;
      if (!verify && !watch->needs_walk()) continue;
      if (watch->TakeLost()) {
        log::Info("events were lost (the inotify queue overflowed): walking the cache again",
                  {{"path", watch->cache().path}});
      }
      const uint64_t drift_before = watch->drift_total();
      const auto result = watch->Walk(verify, drain);
      if (const uint64_t drift = watch->drift_total() - drift_before; verify && drift > 0) {
        // Changes events did not report (a write through a hard link from
        // outside the cache): the walk's view now stands.
        log::Warn("the verifying walk found entries the events had missed: corrected",
                  {{"path", watch->cache().path}, {"drift", drift}});
      } else if (verify) {
        log::Debug("verified the census", {{"path", watch->cache().path}, {"drift", drift}});
      }
      if (result == CensusWatch::WalkResult::kNoWatches) {
        lost.push_back(watch->cache().path);
        walk_instead(index_of[watch->cache().path], watch->watch_error());
        continue;
      }
      if (!stop()) shared.Publish(watch->cache().path, watch->Snapshot(NowNs()));
    }
    for (const auto& path : lost) census->Unfollow(path);
  };
  walk(false);
  using Clock = std::chrono::steady_clock;
  auto next_tick = Clock::now() + kEventTick;
  auto next_verify = Clock::now() + options.verify_interval;
  while (!stop()) {
    pollfd p{census->fd(), POLLIN, 0};
    poll(&p, 1, kPollMillis);
    census->Drain();
    const auto now = Clock::now();
    if (now >= next_verify) {
      walk(true);
      next_verify = Clock::now() + options.verify_interval;
    }
    if (now < next_tick) continue;
    next_tick = now + kEventTick;
    walk(false);  // those whose events were lost, or whose root is missing
    for (auto& watch : census->caches()) {
      const int64_t now_ns = NowNs();
      if (!watch->needs_walk() && watch->Tick(now_ns)) {
        shared.Publish(watch->cache().path, watch->Snapshot(now_ns));
      }
    }
  }
}

void ScanService::Start() {
  if (worker_ || shared_->depth == ScanDepth::kNone) return;
  bool any_events = false;
  for (size_t i = 0; i < shared_->caches.size(); ++i) {
    const CacheDir& cache = shared_->caches[i].cache;
    if (!events_.enabled || shared_->depth != ScanDepth::kCensus) break;
    std::string why_not = cache.kind == CacheKind::kBuild
                              ? EventsUnsupportedReason(cache.path)
                              : "a module cache's tree is too deep to watch";
    if (why_not.empty()) {
      shared_->walked[i] = false;
      any_events = true;
      log::Info("following the cache by events", {{"path", cache.path}});
    } else {
      log::Info("walking the cache every --scan.interval",
                {{"path", cache.path}, {"reason", why_not}});
    }
  }
  if (any_events) {
    events_worker_ = std::make_unique<Worker>(
        [shared = shared_, options = events_](const Worker::Control& control) {
          setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kScanNice);
          FollowEvents(*shared, options, control);
        });
  }
  worker_ = std::make_unique<Worker>(
      [shared = shared_, interval = interval_](const Worker::Control& control) {
        // Scans yield the CPU to scrapes and to the builds they watch; the
        // walk's helper threads inherit this.
        setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kScanNice);
        const std::function<bool()> stop = [&control] { return control.stop_requested(); };
        do {
          ScanAll(*shared, stop, false);
        } while (control.Sleep(interval));
      });
}

void ScanService::Stop(std::chrono::milliseconds grace) {
  if (events_worker_) events_worker_->Stop(grace);
  events_worker_.reset();
  if (worker_) worker_->Stop(grace);
  worker_.reset();
}

void ScanService::ScanAllNow() {
  if (shared_->depth == ScanDepth::kNone) return;
  ScanAll(
      *shared_, [] { return false; }, true);
}

void ScanService::RequestScan() const {
  if (worker_) worker_->Wake();
}

std::shared_ptr<const ScanSnapshot> ScanService::Latest(const std::string& path) const {
  std::lock_guard lock(shared_->mu);
  const auto it = shared_->latest.find(path);
  return it == shared_->latest.end() ? nullptr : it->second;
}

}  // namespace gocache
