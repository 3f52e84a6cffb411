#include "collectors/stale/go_list_parser.h"

#include <array>

namespace gocache::stale {
namespace {

// The reasons the go command gives (cmd/go/internal/work: buildid.go,
// build.go, exec.go; "missing or invalid package binary" from older
// releases), before any ':'.
constexpr std::array<std::string_view, 7> kReasons = {
    "stale dependency",
    "build ID mismatch",
    "not installed but available in build cache",
    "missing or invalid package binary",
    "build -a flag in use",
    "build -o flag in use",
    "binary-only packages are no longer supported",
};

// A line longer than this is not go list's: the parser stops there rather
// than hold it.
constexpr size_t kMaxLineBytes = 64 << 10;

}  // namespace

std::string_view NormalizeReason(std::string_view reason) {
  const std::string_view head = reason.substr(0, reason.find(':'));
  for (const auto known : kReasons) {
    if (head == known) return known;
  }
  return "other";
}

bool ListParser::Feed(std::string_view chunk) {
  while (error_.empty() && !chunk.empty()) {
    const size_t eol = chunk.find('\n');
    if (eol == std::string_view::npos) {
      partial_.append(chunk);
      // Checked here too so that a line without its end is never held whole.
      if (partial_.size() > kMaxLineBytes) TooLong(line_number_ + 1);
      break;
    }
    if (partial_.empty()) {
      Line(chunk.substr(0, eol));
    } else {
      partial_.append(chunk.substr(0, eol));
      Line(partial_);
      partial_.clear();
    }
    chunk.remove_prefix(eol + 1);
  }
  return error_.empty();
}

bool ListParser::Finish() {
  if (error_.empty() && !partial_.empty()) Line(partial_);
  partial_.clear();
  return error_.empty();
}

void ListParser::TooLong(size_t line_number) {
  error_ = "go list output line " + std::to_string(line_number) + " is too long";
}

bool ListParser::Line(std::string_view line) {
  ++line_number_;
  // The same bound whichever way the output was split into chunks.
  if (line.size() > kMaxLineBytes) {
    TooLong(line_number_);
    return false;
  }
  if (line.empty()) return true;
  const size_t tab1 = line.find('\t');
  const size_t tab2 = tab1 == std::string_view::npos ? tab1 : line.find('\t', tab1 + 1);
  const std::string_view stale =
      tab2 == std::string_view::npos ? "" : line.substr(tab1 + 1, tab2 - tab1 - 1);
  if (tab1 == 0 || (stale != "true" && stale != "false")) {
    error_ = "unexpected go list output at line " + std::to_string(line_number_);
    return false;
  }
  const std::string_view rest = line.substr(tab2 + 1);
  const size_t tab3 = rest.find('\t');
  const std::string_view reason = rest.substr(0, tab3);
  const std::string_view import_path = line.substr(0, tab1);
  if (tab3 != std::string_view::npos && rest.substr(tab3 + 1) == "error" &&
      import_path.find("...") != std::string_view::npos) {
    error_ = "go list could not load the pattern " + std::string(import_path);
    return false;
  }
  ++summary_.packages;
  if (stale == "true") ++summary_.stale_by_reason[std::string(NormalizeReason(reason))];
  return true;
}

std::optional<ListSummary> ParseListOutput(std::string_view output, std::string& error) {
  ListParser parser;
  if (!parser.Feed(output) || !parser.Finish()) {
    error = parser.error();
    return std::nullopt;
  }
  return parser.summary();
}

}  // namespace gocache::stale
