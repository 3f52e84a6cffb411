// Runs one collector on its schedule and keeps its latest snapshot.
//
// Every collector gets its own worker thread. A scrape-time collector's worker
// runs an update when a scrape asks for one; the scrape waits for it only
// until the scrape timeout, so a collector stuck in a system call costs the
// scrape a bounded wait and reports success 0, while its worker stays stuck
// alone. A background collector's worker updates every interval and the
// scrape renders its latest snapshot without waiting.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "base/worker.h"
#include "collectors/collector.h"

namespace gocache {

// The immutable outcome of one update, as scrapes render it.
struct CollectorSnapshot {
  std::vector<prometheus::MetricFamily> families;
  bool success = false;
  double duration_seconds = 0;
  // Unix time of the latest successful update, if any.
  std::optional<double> last_success_unix;
};

class CollectorRunner {
 public:
  using Clock = std::chrono::steady_clock;

  CollectorRunner(std::string name, std::unique_ptr<Collector> collector, Schedule schedule,
                  std::chrono::milliseconds scrape_timeout);
  ~CollectorRunner();

  const std::string& name() const;
  const Schedule& schedule() const { return schedule_; }

  // Starts the worker thread.
  void Start();
  // Runs one update on the calling thread and keeps its snapshot (for --once).
  void RunOnce();
  void Stop(std::chrono::milliseconds grace);

  // Scrape side, in two steps so that one scrape starts every scrape-time
  // collector before it waits for any: BeginScrape() returns a ticket,
  // AwaitScrape() the snapshot to render, or nullptr when there is none yet.
  uint64_t BeginScrape();
  std::shared_ptr<const CollectorSnapshot> AwaitScrape(uint64_t ticket, Clock::time_point deadline);

 private:
  struct Shared;
  static void RunUpdate(Shared& shared);

  const Schedule schedule_;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Worker> worker_;
};

}  // namespace gocache
