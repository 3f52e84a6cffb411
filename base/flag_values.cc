#include "base/flag_values.h"

#include <arpa/inet.h>

#include <cstdint>
#include <cstdlib>

namespace gocache {

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  if (text == "0") return std::chrono::milliseconds(0);
  int64_t total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    int64_t number = 0;
    const size_t digits_start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      number = number * 10 + (text[i] - '0');
      if (number > 1'000'000'000) return std::nullopt;
      ++i;
    }
    if (i == digits_start) return std::nullopt;
    const size_t unit_start = i;
    while (i < text.size() && (text[i] < '0' || text[i] > '9')) ++i;
    const std::string_view unit = text.substr(unit_start, i - unit_start);
    int64_t unit_ms;
    if (unit == "ms") {
      unit_ms = 1;
    } else if (unit == "s") {
      unit_ms = 1000;
    } else if (unit == "m") {
      unit_ms = 60 * 1000;
    } else if (unit == "h") {
      unit_ms = 3600 * 1000;
    } else if (unit == "d") {
      unit_ms = 24 * 3600 * 1000;
    } else if (unit == "w") {
      unit_ms = 7 * 24 * 3600 * 1000LL;
    } else {
      return std::nullopt;
    }
    total_ms += number * unit_ms;
    if (total_ms > int64_t{1} << 50) return std::nullopt;
  }
  return std::chrono::milliseconds(total_ms);
}

std::optional<std::chrono::milliseconds> ParseDurationFlag(std::string_view flag,
                                                           std::string_view text,
                                                           std::string& error) {
  const auto duration = ParseDuration(text);
  if (!duration) {
    error = "--" + std::string(flag) + " '" + std::string(text) +
            "': want a duration such as 0s, 30m or 1h";
  }
  return duration;
}

std::optional<std::chrono::milliseconds> ParsePositiveDurationFlag(std::string_view flag,
                                                                   std::string_view text,
                                                                   std::string& error) {
  const auto duration = ParseDuration(text);
  if (!duration || duration->count() == 0) {
    error = "--" + std::string(flag) + " '" + std::string(text) +
            "': want a positive duration such as 30s, 5m or 1h";
    return std::nullopt;
  }
  return duration;
}

std::optional<uint64_t> ParseSize(std::string_view text) {
  size_t digits = 0;
  uint64_t number = 0;
  constexpr uint64_t kMax = uint64_t{1} << 63;
  for (; digits < text.size() && text[digits] >= '0' && text[digits] <= '9'; ++digits) {
    const auto digit = static_cast<uint64_t>(text[digits] - '0');
    if (number > (kMax - digit) / 10) return std::nullopt;
    number = number * 10 + digit;
  }
  if (digits == 0) return std::nullopt;
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {
      {"", 1},
      {"B", 1},
      {"kB", 1000},
      {"KB", 1000},
      {"MB", 1000'000},
      {"GB", 1000'000'000},
      {"TB", 1000'000'000'000},
      {"KiB", 1 << 10},
      {"MiB", 1 << 20},
      {"GiB", uint64_t{1} << 30},
      {"TiB", uint64_t{1} << 40},
  };
  const std::string_view unit = text.substr(digits);
  for (const auto& [name, factor] : kUnits) {
    if (unit != name) continue;
    if (number > kMax / factor) return std::nullopt;
    return number * factor;
  }
  return std::nullopt;
}

std::optional<uint64_t> ParsePositiveSizeFlag(std::string_view flag, std::string_view text,
                                              std::string& error) {
  const auto size = ParseSize(text);
  if (!size || *size == 0) {
    error = "--" + std::string(flag) + " '" + std::string(text) +
            "': want a positive size such as 256MiB, 500MB or 1048576";
    return std::nullopt;
  }
  return size;
}

std::optional<double> ParseRatioFlag(std::string_view flag, std::string_view text, bool one_allowed,
                                     std::string& error) {
  const std::string copy(text);
  char* end = nullptr;
  const double r = std::strtod(copy.c_str(), &end);
  if (copy.empty() || *end != '\0' || !(r > 0 && (one_allowed ? r <= 1 : r < 1))) {
    error = "--" + std::string(flag) + " '" + copy + "': want a ratio above 0 and " +
            (one_allowed ? "at most 1" : "below 1") + ", such as 0.9";
    return std::nullopt;
  }
  return r;
}

std::optional<std::string> ListenAddressToCivetPorts(std::string_view address, std::string& error) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    error = "want [host]:port, such as :9959 or 127.0.0.1:9959";
    return std::nullopt;
  }
  std::string host(address.substr(0, colon));
  const std::string_view port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos ||
      std::stoi(std::string(port)) > 65535) {
    error = "port must be a number from 0 to 65535";
    return std::nullopt;
  }
  if (host.empty()) return std::string(port);
  if (host == "localhost") host = "127.0.0.1";
  unsigned char buf[16];
  if (host.front() == '[' && host.back() == ']') {
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) != 1) {
      error = "invalid IPv6 address " + host;
      return std::nullopt;
    }
  } else if (inet_pton(AF_INET, host.c_str(), buf) != 1) {
    error = "host must be an IP address (IPv6 in brackets) or localhost";
    return std::nullopt;
  }
  return host + ":" + std::string(port);
}

}  // namespace gocache
