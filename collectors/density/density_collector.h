// density collector: how a build cache is laid out and what state its entries
// are in (types, shard spread, block slack, directory bloat, broken entries,
// ages, what the go command's next trim removes), rendered from the shared
// background scan. For module caches, only their bytes.
#pragma once

#include <optional>

#include "cache/entry_census.h"
#include "collectors/collector.h"

namespace gocache::density {

CollectorInfo Info();

// Entry counts over the shard directories present.
struct ShardSpread {
  double shards, min, max, mean, stddev;
  std::optional<double> imbalance;  // stddev / mean; none when mean is 0
};
std::optional<ShardSpread> SpreadOf(const CacheCensus& census);

// 1 - apparent / allocated; none when nothing is allocated.
std::optional<double> SlackRatio(uint64_t apparent, uint64_t allocated);

}  // namespace gocache::density
