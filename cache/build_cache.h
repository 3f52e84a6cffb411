// The go command's build cache format (cmd/go/internal/cache), as far as a
// monitor and a trimmer need it. Shared by the scanner, the density collector
// and the trim command.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gocache::buildcache {

constexpr size_t kHexIdSize = 64;
// "v1 <64 hex action ID> <64 hex output ID> <size:20> <time ns:20>\n"
constexpr size_t kActionEntrySize = 3 + kHexIdSize + 1 + kHexIdSize + 1 + 20 + 1 + 20 + 1;
static_assert(kActionEntrySize == 175);

// The go command records a use in an entry's mtime only when the mtime is
// older than this (cache.go: mtimeInterval): an entry used within the last
// N seconds has an mtime within the last N + kMtimeIntervalSeconds.
constexpr int64_t kMtimeIntervalSeconds = 3600;

// The go command trims entries unused for 5 days (cache.go: trimLimit +
// mtimeInterval).
constexpr int64_t kTrimCutoffSeconds = 5 * 24 * 3600 + kMtimeIntervalSeconds;

// Whether an entry last used (mtime) at `mtime_ns` is past the go command's
// trim cutoff at `now_ns`: its next trim would remove it.
inline bool Trimmable(int64_t mtime_ns, int64_t now_ns) {
  return mtime_ns < now_ns - kTrimCutoffSeconds * 1'000'000'000;
}

// The go command trims at most once a day (cache.go: trimInterval), going by
// the unix time trim.txt records.
constexpr int64_t kTrimIntervalSeconds = 24 * 3600;

// Whether the go command would trim now: trim.txt is missing or unreadable
// (`last_trim_unix` none), at least a day old, or more than an hour ahead.
inline bool TrimDue(std::optional<int64_t> last_trim_unix, int64_t now_unix) {
  if (!last_trim_unix) return true;
  const int64_t since = now_unix - *last_trim_unix;
  return !(since < kTrimIntervalSeconds && since > -kMtimeIntervalSeconds);
}

// An action or output ID: 32 bytes, 64 hex digits in file names and entries.
using Id = std::array<uint8_t, kHexIdSize / 2>;

// 64 hex digits as an ID, either case (encoding/hex accepts both); none for
// anything else.
std::optional<Id> DecodeHexId(std::string_view hex);

// The ID as the go command writes it: 64 lowercase hex digits.
std::string HexId(const Id& id);

enum class EntryType { kAction, kOutput, kOther };

// The shard index (0-255) of a shard directory name "00".."ff", or -1.
int ShardIndex(std::string_view name);
// The name of shard directory `shard` (0-255): "00".."ff".
std::string ShardName(int shard);

// Classifies a file in a shard directory: an action "<64 hex>-a" or an output
// "<64 hex>-d" whose first byte is the shard (where the go command looks for
// it); anything else is other.
EntryType Classify(int shard, std::string_view name);

// Whether the go command's trim would consider the file (trimSubdir: names
// ending in -a or -d inside a shard directory).
inline bool TrimConsiders(std::string_view name) {
  return name.ends_with("-a") || name.ends_with("-d");
}

// The first 8 bytes of a hex ID as a number: a compact key (collisions need
// 2^32 entries to become likely).
uint64_t IdKey(std::string_view hex);

struct ActionEntry {
  Id output_id;
  uint64_t output_key;  // IdKey of output_id
  int64_t output_size;
  int64_t time_ns;
};

// Parses the bytes of an action entry file exactly as the go command's
// (*DiskCache).get does, or none where the go command would treat it as a
// miss. `content` is what a read of up to kActionEntrySize + 1 bytes
// returned; `file_id` is the 64 hex digits of the file's name.
std::optional<ActionEntry> ParseActionEntry(std::string_view content, std::string_view file_id);

// The action entry the go command writes (putIndexEntry): `action` produced
// `output`, `size` bytes, at `time_ns`.
std::string FormatActionEntry(const Id& action, const Id& output, int64_t size, int64_t time_ns);

// The path of an entry below the cache directory `dir`, as the go command
// names it (fileName): "<dir>/<first byte, 2 hex>/<64 hex>-<suffix>", where
// suffix is 'a' (action) or 'd' (output).
std::string EntryPath(const std::string& dir, const Id& id, char suffix);

// trim.txt as the go command reads it: strings.TrimSpace, then
// strconv.ParseInt(s, 10, 64).
std::optional<int64_t> ParseTrimTime(std::string_view content);

// The time in `cache_dir`/trim.txt, read without changing its atime; none
// when it is missing or does not parse.
std::optional<int64_t> ReadTrimTime(const std::string& cache_dir);

}  // namespace gocache::buildcache
