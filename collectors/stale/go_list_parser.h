// Reads what `go list -f kListTemplate` prints: packages listed, and the
// stale ones by normalized StaleReason. Shared by the stale collector and its
// fuzz target; knows nothing of running go list.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace gocache::stale {

// The fourth field marks packages go list could not load: for a pattern
// (an import path with "..."), the list itself is incomplete.
inline constexpr const char* kListTemplate =
    "{{.ImportPath}}\t{{.Stale}}\t{{.StaleReason}}\t{{if .Error}}error{{end}}";

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
