#include "exporter/collector_runner.h"

#include <condition_variable>
#include <exception>
#include <mutex>

#include "base/log.h"

namespace gocache {

struct CollectorRunner::Shared {
  Shared(std::string name, std::unique_ptr<Collector> collector,
         std::chrono::milliseconds scrape_timeout)
      : name(std::move(name)), collector(std::move(collector)), scrape_timeout(scrape_timeout) {}

  const std::string name;
  const std::unique_ptr<Collector> collector;
  const std::chrono::milliseconds scrape_timeout;

  std::mutex mu;
  std::condition_variable updated;
  std::shared_ptr<const CollectorSnapshot> latest;
  uint64_t generation = 0;  // completed updates
  bool pending = false;     // an update was asked for and has not completed
  Clock::time_point pending_since;
  bool timeout_logged = false;
  std::optional<double> last_success_unix;
  std::vector<std::string> last_errors;  // to log a failure once, not at every update
};

namespace {

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

CollectorRunner::CollectorRunner(std::string name, std::unique_ptr<Collector> collector,
                                 Schedule schedule, std::chrono::milliseconds scrape_timeout)
    : schedule_(schedule),
      shared_(std::make_shared<Shared>(std::move(name), std::move(collector), scrape_timeout)) {}

CollectorRunner::~CollectorRunner() { Stop(std::chrono::seconds(1)); }

const std::string& CollectorRunner::name() const { return shared_->name; }

void CollectorRunner::RunUpdate(Shared& shared) {
  const auto start = Clock::now();
  CollectResult result;
  try {
    result = shared.collector->Update();
  } catch (const std::exception& e) {
    result.errors.push_back(e.what());
  } catch (...) {
    result.errors.push_back("unknown exception");
  }
  auto snapshot = std::make_shared<CollectorSnapshot>();
  snapshot->families = std::move(result.families);
  snapshot->success = result.errors.empty();
  snapshot->duration_seconds = std::chrono::duration<double>(Clock::now() - start).count();

  std::lock_guard lock(shared.mu);
  if (snapshot->success) shared.last_success_unix = UnixNow();
  snapshot->last_success_unix = shared.last_success_unix;
  if (result.errors != shared.last_errors) {
    for (const auto& error : result.errors) {
      log::Warn("collector failed", {{"collector", shared.name}, {"err", error}});
    }
    if (result.errors.empty()) log::Info("collector recovered", {{"collector", shared.name}});
    shared.last_errors = std::move(result.errors);
  }
  shared.latest = std::move(snapshot);
  ++shared.generation;
  shared.pending = false;
  shared.timeout_logged = false;
  shared.updated.notify_all();
}

void CollectorRunner::Start() {
  if (worker_) return;
  shared_->collector->Start();
  auto shared = shared_;
  if (schedule_.at_scrape()) {
    worker_ = std::make_unique<Worker>([shared](const Worker::Control& control) {
      for (;;) {
        bool pending;
        {
          std::lock_guard lock(shared->mu);
          pending = shared->pending;
        }
        if (pending) {
          RunUpdate(*shared);
        } else if (!control.Sleep(std::chrono::hours(1))) {
          return;
        }
      }
    });
  } else {
    worker_ = std::make_unique<Worker>(
        [shared, interval = schedule_.interval](const Worker::Control& control) {
          do {
            RunUpdate(*shared);
          } while (control.Sleep(interval));
        });
  }
}

void CollectorRunner::RunOnce() { RunUpdate(*shared_); }

void CollectorRunner::Stop(std::chrono::milliseconds grace) {
  if (!worker_) return;
  shared_->collector->Stop(grace);
  worker_->Stop(grace);
  // The HTTP server still serves scrapes while the exporter shuts down, and
  // BeginScrape wakes the worker under the lock: let go of it under the
  // lock too, and free it outside.
  std::unique_ptr<Worker> stopped;
  {
    std::lock_guard lock(shared_->mu);
    stopped = std::move(worker_);
  }
}

uint64_t CollectorRunner::BeginScrape() {
  std::lock_guard lock(shared_->mu);
  if (!schedule_.at_scrape()) return shared_->generation;
  if (!shared_->pending) {
    shared_->pending = true;
    shared_->pending_since = Clock::now();
    if (worker_) worker_->Wake();
  }
  return shared_->generation + 1;
}

std::shared_ptr<const CollectorSnapshot> CollectorRunner::AwaitScrape(uint64_t ticket,
                                                                      Clock::time_point deadline) {
  std::unique_lock lock(shared_->mu);
  if (!schedule_.at_scrape()) return shared_->latest;

  // An update that has run past the timeout already is not waited for again
  // by later scrapes: they answer at once.
  const auto limit = std::min(deadline, shared_->pending_since + shared_->scrape_timeout);
  if (shared_->updated.wait_until(lock, limit, [&] { return shared_->generation >= ticket; })) {
    return shared_->latest;
  }
  const double waited =
      std::chrono::duration<double>(Clock::now() - shared_->pending_since).count();
  if (!shared_->timeout_logged) {
    shared_->timeout_logged = true;
    log::Warn("collector timed out; scrape answered without it",
              {{"collector", shared_->name},
               {"timeout", std::to_string(shared_->scrape_timeout.count()) + "ms"}});
  }
  auto timed_out = std::make_shared<CollectorSnapshot>();
  timed_out->success = false;
  timed_out->duration_seconds = waited;
  timed_out->last_success_unix = shared_->last_success_unix;
  return timed_out;
}

}  // namespace gocache
