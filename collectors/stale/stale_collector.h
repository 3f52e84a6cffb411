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

// Reads go list's output as it arrives: each complete line is counted at
// once, so the output is never held whole.
class ListParser {
 public:
  // False at the first line that is not one (error() says which).
  bool Feed(std::string_view chunk);
  // Counts a last line without a newline.
  bool Finish();
  const ListSummary& summary() const { return summary_; }
  const std::string& error() const { return error_; }

 private:
  bool Line(std::string_view line);
  void TooLong(size_t line_number);

  std::string partial_;  // an incomplete last line
  size_t line_number_ = 0;
  ListSummary summary_;
  std::string error_;
};

std::optional<ListSummary> ParseListOutput(std::string_view output, std::string& error);

}  // namespace gocache::stale
