// stale collector: which packages the next build of a module would rebuild,
// and why, per build target, from `go list`'s Stale and StaleReason. The
// go command runs in the background, where it cannot touch the cache's
// mtimes (see README: "The stale collector").
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "exporter/collector.h"

namespace gocache::stale {

CollectorInfo Info();

// StaleReason up to its first ':', when it is one the go command gives;
// "other" for anything else.
std::string_view NormalizeReason(std::string_view reason);

// What one `go list` printed: packages listed, and stale ones by normalized
// reason. None when a line is not "<import path>\t<true|false>\t<reason>".
struct ListSummary {
  size_t packages = 0;
  std::map<std::string, size_t> stale_by_reason;
};
std::optional<ListSummary> ParseListOutput(std::string_view output, std::string& error);

}  // namespace gocache::stale
