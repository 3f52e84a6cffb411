// Parses the go command's traces: the action graph of -debug-actiongraph (a
// JSON array of actions) and the Chrome trace of -debug-trace (a JSON array
// of trace events). The format is told from the content: the first element
// of an action graph has "Mode", a trace event has "ph".
//
// The parse is a single streaming pass (RapidJSON's SAX reader in its
// iterative mode, so a deeply nested hostile file cannot exhaust the stack)
// with nesting bounded to kMaxDepth; memory does not grow with the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "collectors/trace/trace_stream.h"
#include "collectors/trace/trace_tally.h"

namespace gocache::trace {

constexpr int kMaxDepth = 32;

struct ParseOutcome {
  TraceFormat format = TraceFormat::kUnknown;  // as far as it could be told
  std::string error;                           // empty when the file parsed
  bool ok() const { return error.empty(); }
};

// Adds what the trace holds to `tally`: the caller passes an empty tally and
// merges it only when the outcome is ok, so a bad file counts nothing.
ParseOutcome ParseTrace(TraceStream& stream, TraceTally& tally);

// The same over bytes in memory (tests, fuzzing, the benchmark).
ParseOutcome ParseTraceBytes(std::string_view bytes, uint64_t max_bytes, TraceTally& tally);

// Nanoseconds since the Unix epoch of an RFC 3339 time as Go writes it
// ("2026-11-27T07:37:43.906886864Z", or with a "+01:00" offset). None when
// malformed, or for Go's zero time (year 1), which marks a time never set.
std::optional<int64_t> ParseRfc3339(std::string_view text);

}  // namespace gocache::trace
