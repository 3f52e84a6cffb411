// How check and trim print their results: sizes and ratios for people, and
// JSON through RapidJSON's writer.
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cache/cache_trim.h"

namespace gocache::report {

// "512 B", "1.5 KiB", "2.0 GiB".
std::string Bytes(uint64_t n);
// "86.1%".
std::string Percent(double ratio);

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void Key(JsonWriter& w, std::string_view key);
// A string value: an array element, or after its key.
void Element(JsonWriter& w, std::string_view value);
void String(JsonWriter& w, std::string_view key, std::string_view value);
void Uint(JsonWriter& w, std::string_view key, uint64_t value);
void Double(JsonWriter& w, std::string_view key, double value);
// null when none.
void Ratio(JsonWriter& w, std::string_view key, std::optional<double> value);
void Bool(JsonWriter& w, std::string_view key, bool value);

// The statvfs figures of a usage, as members of the open object.
void Filesystem(JsonWriter& w, const CacheUsage& usage);

}  // namespace gocache::report
