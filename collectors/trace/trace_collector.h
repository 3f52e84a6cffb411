// trace collector: cache hits, misses and read and write latency of real
// builds, from the go command's own traces (-debug-actiongraph, and
// -debug-trace) that CI jobs drop into spool directories.
#pragma once

#include "collectors/collector.h"

namespace gocache::trace {

CollectorInfo Info();

}  // namespace gocache::trace
