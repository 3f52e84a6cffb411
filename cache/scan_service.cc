#include "cache/scan_service.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include "base/file_time.h"

namespace gocache {
namespace {

constexpr int kScanNice = 10;

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
                         ScanDepth depth, int threads)
    : interval_(interval), shared_(std::make_shared<Shared>()) {
  shared_->depth = depth;
  shared_->threads = std::max(1, threads);
  for (auto& cache : caches) shared_->caches.push_back({std::move(cache), {}, 0});
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

void ScanService::ScanAll(Shared& shared, const std::function<bool()>& stop) {
  for (auto& state : shared.caches) {
    if (stop()) return;
    auto snapshot = ScanOne(state, shared.depth, shared.threads, stop);
    if (stop()) return;  // an interrupted scan is incomplete: keep the previous one
    std::lock_guard lock(shared.mu);
    shared.latest[state.cache.path] = std::move(snapshot);
  }
}

void ScanService::Start() {
  if (worker_ || shared_->depth == ScanDepth::kNone) return;
  worker_ = std::make_unique<Worker>(
      [shared = shared_, interval = interval_](const Worker::Control& control) {
        // Scans yield the CPU to scrapes and to the builds they watch; the
        // walk's helper threads inherit this.
        setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kScanNice);
        const std::function<bool()> stop = [&control] { return control.stop_requested(); };
        do {
          ScanAll(*shared, stop);
        } while (control.Sleep(interval));
      });
}

void ScanService::Stop(std::chrono::milliseconds grace) {
  if (worker_) worker_->Stop(grace);
  worker_.reset();
}

void ScanService::ScanAllNow() {
  if (shared_->depth == ScanDepth::kNone) return;
  ScanAll(*shared_, [] { return false; });
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
