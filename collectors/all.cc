#include "collectors/all.h"

#include "collectors/cacheprog/cacheprog_collector.h"
#include "collectors/density/density_collector.h"
#include "collectors/inode/inode_collector.h"
#include "collectors/stale/stale_collector.h"
#include "collectors/trace/trace_collector.h"
#include "collectors/trim/trim_collector.h"

namespace gocache {

const std::vector<CollectorInfo>& AllCollectors() {
  // Adding a collector: one line here, the rest in its own folder.
  // clang-format off
  static const std::vector<CollectorInfo> all = {
      inode::Info(),
      density::Info(),
      stale::Info(),
      trace::Info(),
      cacheprog::Info(),
      trim::Info(),
  };
  // clang-format on
  return all;
}

}  // namespace gocache
