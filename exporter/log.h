// Structured logging in the two formats Prometheus exporters use: logfmt
// (the default) and JSON, one record per line on stderr.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace gocache::log {

enum class Level { kDebug, kInfo, kWarn, kError };
enum class Format { kLogfmt, kJson };

using Field = std::pair<std::string_view, std::string_view>;
using Fields = std::initializer_list<Field>;

// Parses "debug", "info", "warn" or "error"; false for anything else.
bool ParseLevel(std::string_view text, Level& level);
// Parses "logfmt" or "json"; false for anything else.
bool ParseFormat(std::string_view text, Format& format);

void Configure(Level level, Format format);

// Renders one record without the trailing newline; exposed for tests.
std::string Render(Format format, std::string_view timestamp, Level level, std::string_view msg,
                   Fields fields);

void Write(Level level, std::string_view msg, Fields fields = {});
inline void Debug(std::string_view msg, Fields fields = {}) { Write(Level::kDebug, msg, fields); }
inline void Info(std::string_view msg, Fields fields = {}) { Write(Level::kInfo, msg, fields); }
inline void Warn(std::string_view msg, Fields fields = {}) { Write(Level::kWarn, msg, fields); }
inline void Error(std::string_view msg, Fields fields = {}) { Write(Level::kError, msg, fields); }

}  // namespace gocache::log
