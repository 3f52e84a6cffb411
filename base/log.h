// Structured logging in the two formats Prometheus exporters use: logfmt
// (the default) and JSON, one record per line on stderr.
#pragma once

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace gocache::log {

enum class Level { kDebug, kInfo, kWarn, kError };
enum class Format { kLogfmt, kJson };

// A field's value: text, or a number or boolean, which JSON writes bare
// ("ports":9959, "tls":false) and logfmt as it reads.
class Value {
 public:
  Value(std::string_view text) : text_(text) {}
  Value(const char* text) : text_(text) {}
  Value(const std::string& text) : text_(text) {}
  Value(bool b) : text_(b ? "true" : "false"), bare_(true) {}
  template <typename T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char>)
      Value(T number)
      : bare_(true) {
    const auto end = std::to_chars(number_, number_ + sizeof number_, number).ptr;
    number_size_ = static_cast<uint8_t>(end - number_);
  }

  std::string_view text() const {
    return number_size_ > 0 ? std::string_view(number_, number_size_) : text_;
  }
  bool bare() const { return bare_; }

 private:
  std::string_view text_;
  char number_[32];  // a number's digits, kept here so that copies stay valid
  uint8_t number_size_ = 0;
  bool bare_ = false;
};

using Field = std::pair<std::string_view, Value>;
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
