// What one look at a whole cache found, published for the collectors as an
// immutable snapshot.
#pragma once

#include <cstdint>
#include <optional>

#include "cache/cache_scanner.h"
#include "cache/entry_census.h"

namespace gocache {

// How the census follows a cache.
enum class ScanMode {
  kWalk,    // a walk of the whole tree every interval
  kEvents,  // inotify events on its directories, a verifying walk now and then
};

inline const char* ScanModeLabel(ScanMode mode) {
  return mode == ScanMode::kEvents ? "events" : "walk";
}

struct ScanSnapshot {
  ScanResult walk;                    // under events: the last walk's times, the index's counts
  std::optional<CacheCensus> census;  // with ScanDepth::kCensus and a readable root
  uint64_t errors_total = 0;          // unreadable entries over every scan so far
  ScanMode mode = ScanMode::kWalk;
  // Names a verifying walk found different from what events had kept.
  uint64_t drift_total = 0;
};

}  // namespace gocache
