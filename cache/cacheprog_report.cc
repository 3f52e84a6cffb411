#include "cache/cacheprog_report.h"

#include <charconv>
#include <vector>

namespace gocache::cacheprog_report {
namespace {

// "v1 <event> <pid> <lost> [fields of the event] <path>": the path last, as
// the rest of the line, so that it may hold spaces.
constexpr std::string_view kVersion = "v1";
constexpr std::array<std::string_view, 5> kEventNames = {"start", "stop", "request", "evict",
                                                         "gocache"};

// Fields after "<event> <pid> <lost>" and before the path.
size_t FieldCount(Event event) {
  switch (event) {
    case Event::kRequest:
      return 5;  // command result reason bytes duration_ns
    case Event::kEviction:
      return 3;  // reason entries bytes
    default:
      return 0;
  }
}

template <size_t N>
std::optional<size_t> Find(std::string_view word, const std::array<std::string_view, N>& names) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == word) return i;
  }
  return std::nullopt;
}

template <typename T>
bool ParseNumber(std::string_view word, T& value) {
  const auto [end, error] = std::from_chars(word.data(), word.data() + word.size(), value);
  return error == std::errc() && end == word.data() + word.size() && !word.empty();
}

}  // namespace

std::string Encode(const Report& r) {
  std::string out(kVersion);
  out += ' ';
  out += Name(r.event, kEventNames);
  out += ' ' + std::to_string(r.pid) + ' ' + std::to_string(r.lost);
  if (r.event == Event::kRequest) {
    out += ' ';
    out += Name(r.command, kCommandNames);
    out += ' ';
    out += Name(r.result, kResultNames);
    out += ' ';
    out += Name(r.miss, kMissReasonNames);
    out += ' ' + std::to_string(r.bytes) + ' ' + std::to_string(r.duration_ns);
  } else if (r.event == Event::kEviction) {
    out += ' ';
    out += Name(r.eviction, kEvictionReasonNames);
    out += ' ' + std::to_string(r.entries) + ' ' + std::to_string(r.bytes);
  }
  out += ' ' + r.path;
  return out;
}

std::optional<Report> Decode(std::string_view line) {
  if (line.size() > kMaxLine) return std::nullopt;
  std::vector<std::string_view> words;
  const auto next_word = [&line]() -> std::optional<std::string_view> {
    const size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0) return std::nullopt;
    const std::string_view word = line.substr(0, space);
    line.remove_prefix(space + 1);
    return word;
  };
  Report r;
  const auto version = next_word();
  const auto event = next_word();
  if (!version || *version != kVersion || !event) return std::nullopt;
  const auto event_index = Find(*event, kEventNames);
  if (!event_index) return std::nullopt;
  r.event = static_cast<Event>(*event_index);
  const auto pid = next_word();
  const auto lost = next_word();
  if (!pid || !lost || !ParseNumber(*pid, r.pid) || r.pid <= 0 || !ParseNumber(*lost, r.lost)) {
    return std::nullopt;
  }
  for (size_t i = 0; i < FieldCount(r.event); ++i) {
    const auto word = next_word();
    if (!word) return std::nullopt;
    words.push_back(*word);
  }
  if (r.event == Event::kRequest) {
    const auto command = Find(words[0], kCommandNames);
    const auto result = Find(words[1], kResultNames);
    const auto miss = Find(words[2], kMissReasonNames);
    if (!command || !result || !miss || !ParseNumber(words[3], r.bytes) ||
        !ParseNumber(words[4], r.duration_ns)) {
      return std::nullopt;
    }
    r.command = static_cast<Command>(*command);
    r.result = static_cast<Result>(*result);
    r.miss = static_cast<MissReason>(*miss);
    // A get hits, misses or fails; a put succeeds or fails. A reason belongs
    // to a get's miss, and a get's miss has one.
    const bool result_fits = r.command == Command::kGet
                                 ? r.result != Result::kOk
                                 : r.result == Result::kOk || r.result == Result::kError;
    const bool get_miss = r.command == Command::kGet && r.result == Result::kMiss;
    if (!result_fits || get_miss != (r.miss != MissReason::kNone)) return std::nullopt;
  } else if (r.event == Event::kEviction) {
    const auto reason = Find(words[0], kEvictionReasonNames);
    if (!reason || !ParseNumber(words[1], r.entries) || !ParseNumber(words[2], r.bytes)) {
      return std::nullopt;
    }
    r.eviction = static_cast<EvictionReason>(*reason);
  }
  // The rest is the path: absolute (or "wrap:<helper>" for the helper's
  // own), one line, no NUL.
  const bool wrap_allowed = r.event != Event::kGoCache;
  if (!(line.starts_with('/') || (wrap_allowed && line.starts_with(kWrapPrefix))) ||
      line.find_first_of(std::string_view("\n\0", 2)) != std::string_view::npos) {
    return std::nullopt;
  }
  r.path = std::string(line);
  return r;
}

}  // namespace gocache::cacheprog_report
