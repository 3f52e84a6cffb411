#include "commands/report_format.h"

#include <cstdio>
#include <iterator>

namespace gocache::report {

std::string Bytes(uint64_t n) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(n);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return text;
}

std::string Percent(double ratio) {
  char text[16];
  std::snprintf(text, sizeof text, "%.1f%%", ratio * 100);
  return text;
}

void Key(JsonWriter& w, std::string_view key) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
}

void Element(JsonWriter& w, std::string_view value) {
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void String(JsonWriter& w, std::string_view key, std::string_view value) {
  Key(w, key);
  Element(w, value);
}

void Uint(JsonWriter& w, std::string_view key, uint64_t value) {
  Key(w, key);
  w.Uint64(value);
}

void Double(JsonWriter& w, std::string_view key, double value) {
  Key(w, key);
  w.Double(value);
}

void Ratio(JsonWriter& w, std::string_view key, std::optional<double> value) {
  Key(w, key);
  value ? w.Double(*value) : w.Null();
}

void Bool(JsonWriter& w, std::string_view key, bool value) {
  Key(w, key);
  w.Bool(value);
}

void Filesystem(JsonWriter& w, const CacheUsage& usage) {
  Uint(w, "files", usage.files);
  Uint(w, "files_free", usage.files_free);
  Ratio(w, "inode_usage_ratio", usage.inode_usage());
  Uint(w, "avail_bytes", usage.avail_bytes);
}

}  // namespace gocache::report
