// stale collector: which packages the next build of a module would rebuild,
// and why, per build target, from `go list`'s Stale and StaleReason. The
// go command runs in the background, where it cannot touch the cache's
// mtimes (see README: "The stale collector").
#pragma once

#include "collectors/collector.h"

namespace gocache::stale {

CollectorInfo Info();

}  // namespace gocache::stale
