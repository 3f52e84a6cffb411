#include "base/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

namespace gocache::log {
namespace {

constexpr std::array<std::string_view, 4> kLevelNames = {"debug", "info", "warn", "error"};

Format g_format = Format::kLogfmt;

std::shared_ptr<spdlog::logger>& Logger() {
  // stderr_sink_mt writes whole lines under a mutex, so records from the
  // HTTP threads and the background workers never interleave.
  static auto logger = [] {
    auto l = std::make_shared<spdlog::logger>("gocache",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%v");
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return logger;
}

spdlog::level::level_enum ToSpdlog(Level level) {
  switch (level) {
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

bool NeedsQuoting(std::string_view value) {
  if (value.empty()) return true;
  for (unsigned char c : value) {
    if (c <= ' ' || c == '=' || c == '"' || c == 0x7f) return true;
  }
  return false;
}

void AppendEscaped(std::string& out, std::string_view value) {
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

void AppendLogfmt(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out += ' ';
  out += key;
  out += '=';
  if (NeedsQuoting(value)) {
    out += '"';
    AppendEscaped(out, value);
    out += '"';
  } else {
    out += value;
  }
}

void AppendJson(std::string& out, std::string_view key, const Value& value) {
  out += out.size() == 1 ? "\"" : ",\"";
  AppendEscaped(out, key);
  out += "\":";
  if (value.bare()) {
    out += value.text();
    return;
  }
  out += '"';
  AppendEscaped(out, value.text());
  out += '"';
}

std::string Now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(millis));
  return buf;
}

}  // namespace

bool ParseLevel(std::string_view text, Level& level) {
  for (size_t i = 0; i < kLevelNames.size(); ++i) {
    if (text == kLevelNames[i]) {
      level = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

bool ParseFormat(std::string_view text, Format& format) {
  if (text == "logfmt") {
    format = Format::kLogfmt;
  } else if (text == "json") {
    format = Format::kJson;
  } else {
    return false;
  }
  return true;
}

void Configure(Level level, Format format) {
  g_format = format;
  Logger()->set_level(ToSpdlog(level));
}

std::string Render(Format format, std::string_view timestamp, Level level, std::string_view msg,
                   Fields fields) {
  std::string out;
  out.reserve(128);
  const auto level_name = kLevelNames[static_cast<size_t>(level)];
  if (format == Format::kJson) {
    out += '{';
    AppendJson(out, "ts", timestamp);
    AppendJson(out, "level", level_name);
    AppendJson(out, "msg", msg);
    for (const auto& [key, value] : fields) AppendJson(out, key, value);
    out += '}';
  } else {
    AppendLogfmt(out, "ts", timestamp);
    AppendLogfmt(out, "level", level_name);
    AppendLogfmt(out, "msg", msg);
    for (const auto& [key, value] : fields) AppendLogfmt(out, key, value.text());
  }
  return out;
}

void Write(Level level, std::string_view msg, Fields fields) {
  auto& logger = Logger();
  const auto spd_level = ToSpdlog(level);
  if (!logger->should_log(spd_level)) return;
  logger->log(spd_level, "{}", Render(g_format, Now(), level, msg, fields));
}

}  // namespace gocache::log
