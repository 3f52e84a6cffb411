// Every collector the exporter knows, in exposition order.
#pragma once

#include <vector>

#include "collectors/collector.h"

namespace gocache {

const std::vector<CollectorInfo>& AllCollectors();

}  // namespace gocache
