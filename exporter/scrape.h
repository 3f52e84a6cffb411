// What one scrape renders: every enabled collector's latest snapshot, plus
// the exporter's own series (build info, and per collector its duration,
// success and last success time).
#pragma once

#include <prometheus/collectable.h>

#include <chrono>
#include <memory>
#include <vector>

#include "exporter/collector_runner.h"

namespace gocache {

class Scraper : public prometheus::Collectable {
 public:
  Scraper(std::vector<std::shared_ptr<CollectorRunner>> runners, std::chrono::milliseconds timeout);

  // A scrape: scrape-time collectors update now, bounded by the timeout.
  std::vector<prometheus::MetricFamily> Collect() const override;
  // The snapshots as they are, without asking for updates (for --once).
  std::vector<prometheus::MetricFamily> CollectLatest() const;

 private:
  std::vector<prometheus::MetricFamily> Render(
      const std::vector<std::shared_ptr<const CollectorSnapshot>>& snapshots) const;

  std::vector<std::shared_ptr<CollectorRunner>> runners_;
  std::chrono::milliseconds timeout_;
};

}  // namespace gocache
