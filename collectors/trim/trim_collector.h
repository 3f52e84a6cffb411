// trim collector: opt-in automatic trimming. When a build cache's filesystem
// crosses --trim.auto-inode-usage, or its entries --trim.auto-bytes, the
// AutoTrimService it starts (cache/auto_trim.h, on a worker of its own) trims
// the cache (least recently used first, as `gocache_exporter trim` does) down
// to a target below the trigger, at most once per --trim.min-interval; the
// collector itself only reports what the trims did. Without those flags it
// does not run, and the exporter stays read-only.
#pragma once

#include "collectors/collector.h"

namespace gocache::trim {

CollectorInfo Info();

}  // namespace gocache::trim
