// What a GOCACHEPROG helper (`gocache_exporter cacheprog`) tells a running
// exporter, one line per event on a unix stream socket: a helper started (and
// which GOCACHE its go command has) or stopped, a request answered, entries
// evicted. Both sides use this one definition of the line; every value that
// becomes a label is one of a fixed set, so a line from anyone else cannot
// make series without bound.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cache/disk_cache.h"

namespace gocache::cacheprog_report {

using gocache::kMissReasonNames;
using gocache::MissReason;

// Where both sides look when not told (--cacheprog.socket): the exporter's
// runtime directory (the systemd unit's RuntimeDirectory=).
inline constexpr const char* kDefaultSocket = "/run/gocache_exporter/cacheprog.sock";

// kGoCache names, in place of the helper's path, the GOCACHE of the go
// command that started the helper: a cache it does not write entries to.
enum class Event { kStart, kStop, kRequest, kEviction, kGoCache };
enum class Command { kGet, kPut };
enum class Result { kHit, kMiss, kOk, kError };
enum class EvictionReason { kBytes, kInodes, kAge };

inline constexpr std::array<std::string_view, 2> kCommandNames = {"get", "put"};
inline constexpr std::array<std::string_view, 4> kResultNames = {"hit", "miss", "ok", "error"};
inline constexpr std::array<std::string_view, 3> kEvictionReasonNames = {"bytes", "inodes", "age"};

template <typename E, size_t N>
std::string_view Name(E value, const std::array<std::string_view, N>& names) {
  return names[static_cast<size_t>(value)];
}

// The path of a helper run with --wrap: "wrap:<the wrapped helper's name>".
inline constexpr std::string_view kWrapPrefix = "wrap:";

struct Report {
  Event event = Event::kStart;
  int64_t pid = 0;
  // Reports this helper could not deliver since its last delivered one.
  uint64_t lost = 0;
  // The helper's cache directory, absolute, or kWrapPrefix + name; for
  // kGoCache the go command's GOCACHE, absolute.
  std::string path = {};
  // kRequest
  Command command = Command::kGet;
  Result result = Result::kOk;
  MissReason miss = MissReason::kNone;
  uint64_t bytes = 0;  // kRequest: output bytes; kEviction: bytes removed
  uint64_t duration_ns = 0;
  // kEviction
  EvictionReason eviction = EvictionReason::kAge;
  uint64_t entries = 0;
};

// Longest line either side handles (a path is at most PATH_MAX).
inline constexpr size_t kMaxLine = 4096 + 256;

std::string Encode(const Report& report);

// The report a line (without its newline) holds, or none for anything
// malformed.
std::optional<Report> Decode(std::string_view line);

}  // namespace gocache::cacheprog_report
