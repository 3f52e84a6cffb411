#include "cache/build_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <limits>

#include "cache/cache_scanner.h"

namespace gocache::buildcache {
namespace {

int LowerHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// encoding/hex accepts either case.
int AnyHexValue(char c) {
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return LowerHexValue(c);
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (LowerHexValue(c) < 0) return false;
  }
  return true;
}

// strconv.ParseInt(s, 10, 64): optional sign, at least one digit, no
// overflow; nothing else.
std::optional<int64_t> ParseInt64(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  uint64_t value = 0;
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (limit - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (negative) {
    return value == (uint64_t{1} << 63) ? std::numeric_limits<int64_t>::min()
                                        : -static_cast<int64_t>(value);
  }
  return static_cast<int64_t>(value);
}

// The size and time fields: right-aligned in 20 characters, leading spaces
// skipped (only spaces, as the go command's loop does).
std::optional<int64_t> ParsePaddedField(std::string_view field) {
  size_t i = 0;
  while (i < field.size() && field[i] == ' ') ++i;
  return ParseInt64(field.substr(i));
}

}  // namespace

int ShardIndex(std::string_view name) {
  if (name.size() != 2) return -1;
  const int hi = LowerHexValue(name[0]), lo = LowerHexValue(name[1]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string ShardName(int shard) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return {kDigits[(shard >> 4) & 15], kDigits[shard & 15]};
}

EntryType Classify(int shard, std::string_view name) {
  if (name.size() != kHexIdSize + 2 || name[kHexIdSize] != '-') return EntryType::kOther;
  const char suffix = name[kHexIdSize + 1];
  if (suffix != 'a' && suffix != 'd') return EntryType::kOther;
  if (!IsLowerHex(name.substr(0, kHexIdSize)) || ShardIndex(name.substr(0, 2)) != shard) {
    return EntryType::kOther;
  }
  return suffix == 'a' ? EntryType::kAction : EntryType::kOutput;
}

std::optional<Id> DecodeHexId(std::string_view hex) {
  if (hex.size() != kHexIdSize) return std::nullopt;
  Id id;
  for (size_t i = 0; i < id.size(); ++i) {
    const int hi = AnyHexValue(hex[2 * i]), lo = AnyHexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    id[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return id;
}

std::string HexId(const Id& id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(kHexIdSize);
  for (uint8_t b : id) {
    hex += kDigits[b >> 4];
    hex += kDigits[b & 15];
  }
  return hex;
}

uint64_t IdKey(std::string_view hex) {
  uint64_t key = 0;
  for (size_t i = 0; i < 16 && i < hex.size(); ++i) {
    key = key << 4 | static_cast<uint64_t>(AnyHexValue(hex[i]) & 0xf);
  }
  return key;
}

std::optional<ActionEntry> ParseActionEntry(std::string_view entry, std::string_view file_id) {
  if (entry.size() != kActionEntrySize) return std::nullopt;  // empty, incomplete or too long
  constexpr size_t kOutputAt = 3 + kHexIdSize + 1;
  constexpr size_t kSizeAt = kOutputAt + kHexIdSize + 1;
  constexpr size_t kTimeAt = kSizeAt + 20 + 1;
  if (entry[0] != 'v' || entry[1] != '1' || entry[2] != ' ' || entry[kOutputAt - 1] != ' ' ||
      entry[kSizeAt - 1] != ' ' || entry[kTimeAt - 1] != ' ' ||
      entry[kActionEntrySize - 1] != '\n') {
    return std::nullopt;  // invalid header
  }
  const std::string_view id = entry.substr(3, kHexIdSize);
  const std::string_view output = entry.substr(kOutputAt, kHexIdSize);
  if (file_id.size() != kHexIdSize) return std::nullopt;
  for (size_t i = 0; i < kHexIdSize; ++i) {
    const int got = AnyHexValue(id[i]);
    if (got < 0 || got != AnyHexValue(file_id[i])) return std::nullopt;  // decode / mismatched ID
    if (AnyHexValue(output[i]) < 0) return std::nullopt;                 // decoding output ID
  }
  const auto size = ParsePaddedField(entry.substr(kSizeAt, 20));
  if (!size || *size < 0) return std::nullopt;
  const auto time = ParsePaddedField(entry.substr(kTimeAt, 20));
  if (!time || *time < 0) return std::nullopt;
  return ActionEntry{*DecodeHexId(output), IdKey(output), *size, *time};
}

std::string FormatActionEntry(const Id& action, const Id& output, int64_t size, int64_t time_ns) {
  // " <size:20> <time:20>\n"; a negative value can take 20 digits and a sign.
  char fields[2 * 22 + 2];
  std::snprintf(fields, sizeof fields, " %20lld %20lld\n", static_cast<long long>(size),
                static_cast<long long>(time_ns));
  return "v1 " + HexId(action) + " " + HexId(output) + fields;
}

std::string EntryPath(const std::string& dir, const Id& id, char suffix) {
  std::string hex = HexId(id);
  std::string path = dir;
  path += '/';
  path.append(hex, 0, 2);
  path += '/';
  path += hex;
  path += '-';
  path += suffix;
  return path;
}

std::optional<int64_t> ParseTrimTime(std::string_view content) {
  // strings.TrimSpace trims Unicode white space; trim.txt is ASCII, so the
  // ASCII set is what matters.
  constexpr std::string_view kSpace = " \t\n\v\f\r";
  const size_t first = content.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return std::nullopt;
  const size_t last = content.find_last_not_of(kSpace);
  return ParseInt64(content.substr(first, last - first + 1));
}

// trim.txt is a decimal number; a file longer than this is taken as
// unparsable rather than read whole.
constexpr size_t kTrimFileMax = 4096;

std::optional<int64_t> ReadTrimTime(const std::string& cache) {
  bool noatime = true;
  const int fd = OpenNoAtime(AT_FDCWD, (cache + "/trim.txt").c_str(),
                             O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, noatime);
  if (fd < 0) return std::nullopt;
  char buf[kTrimFileMax + 1];
  size_t got = 0;
  for (ssize_t n; got < sizeof buf && (n = read(fd, buf + got, sizeof buf - got)) > 0;) {
    got += static_cast<size_t>(n);
  }
  close(fd);
  if (got > kTrimFileMax) return std::nullopt;
  return ParseTrimTime(std::string_view(buf, got));
}

}  // namespace gocache::buildcache
