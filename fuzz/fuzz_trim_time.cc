// Fuzzes gocache::buildcache::ParseTrimTime, the reading of a build cache's
// trim.txt, against a second reading written with std::from_chars:
// strings.TrimSpace (ASCII white space, all that trim.txt holds), then
// strconv.ParseInt(s, 10, 64).
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string_view>
#include <system_error>

#include "cache/build_cache.h"
#include "fuzz/fuzz_check.h"

namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

std::optional<int64_t> Reference(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  std::string_view digits = text;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  if (digits.empty() || digits[0] < '0' || digits[0] > '9') return std::nullopt;
  if (text[0] == '+') text.remove_prefix(1);  // from_chars takes a '-' but not a '+'
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gocache::fuzz::Guarded([&] {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto got = gocache::buildcache::ParseTrimTime(text);
    const auto want = Reference(text);
    if (got != want) {
      std::fprintf(stderr, "fuzz: ParseTrimTime = %s%lld, the reference says %s%lld\n",
                   got ? "" : "none ", static_cast<long long>(got.value_or(0)), want ? "" : "none ",
                   static_cast<long long>(want.value_or(0)));
      std::abort();
    }
  });
}
