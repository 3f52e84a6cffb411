#include "collectors/common/scan_service.h"

namespace gocache {

ScanService::ScanService(std::vector<CacheDir> caches, std::chrono::milliseconds interval)
    : interval_(interval), shared_(std::make_shared<Shared>()) {
  shared_->caches = std::move(caches);
}

ScanService::~ScanService() { Stop(std::chrono::seconds(1)); }

void ScanService::ScanAll(Shared& shared, const std::function<bool()>& stop) {
  for (const auto& cache : shared.caches) {
    if (stop()) return;
    auto result = std::make_shared<const ScanResult>(ScanTree(cache.path, nullptr, stop));
    if (stop()) return;  // an interrupted scan is incomplete: keep the previous one
    std::lock_guard lock(shared.mu);
    shared.latest[cache.path] = std::move(result);
  }
}

void ScanService::Start() {
  if (worker_) return;
  worker_ = std::make_unique<Worker>(
      [shared = shared_, interval = interval_](const Worker::Control& control) {
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
  ScanAll(*shared_, [] { return false; });
}

std::shared_ptr<const ScanResult> ScanService::Latest(const std::string& path) const {
  std::lock_guard lock(shared_->mu);
  const auto it = shared_->latest.find(path);
  return it == shared_->latest.end() ? nullptr : it->second;
}

}  // namespace gocache
