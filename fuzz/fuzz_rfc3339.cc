// Fuzzes gocache::trace::ParseRfc3339 against a second reading of the same
// layout written differently: a cursor over the text, and std::chrono's
// calendar for the arithmetic. Both must accept the same texts and give the
// same nanoseconds.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "collectors/trace/trace_parser.h"
#include "fuzz/fuzz_check.h"

namespace {

class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}
  bool done() const { return at_ == text_.size(); }
  // Exactly `count` decimal digits.
  std::optional<int> Digits(size_t count) {
    int value = 0;
    for (size_t i = 0; i < count; ++i) {
      if (done() || text_[at_] < '0' || text_[at_] > '9') return std::nullopt;
      value = value * 10 + (text_[at_++] - '0');
    }
    return value;
  }
  // One of `choices`, which it returns; '\0' when the next character is none.
  char OneOf(std::string_view choices) {
    if (done() || choices.find(text_[at_]) == std::string_view::npos) return '\0';
    return text_[at_++];
  }

 private:
  std::string_view text_;
  size_t at_ = 0;
};

// "2006-01-02T15:04:05[.fraction](Z|+07:00)", years 1970 to 2200, a date
// of the Gregorian calendar (as Go's time.Parse checks it), a second of up
// to 60, offsets of up to 23:59.
std::optional<int64_t> Reference(std::string_view text) {
  using namespace std::chrono;
  Cursor c(text);
  const auto y = c.Digits(4);
  if (!y || !c.OneOf("-")) return std::nullopt;
  const auto mo = c.Digits(2);
  if (!mo || !c.OneOf("-")) return std::nullopt;
  const auto d = c.Digits(2);
  if (!d || !c.OneOf("Tt")) return std::nullopt;
  const auto h = c.Digits(2);
  if (!h || !c.OneOf(":")) return std::nullopt;
  const auto mi = c.Digits(2);
  if (!mi || !c.OneOf(":")) return std::nullopt;
  const auto s = c.Digits(2);
  if (!s) return std::nullopt;
  if (*y < 1970 || *y > 2200 || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 || *mi > 59 ||
      *s > 60) {
    return std::nullopt;
  }
  int64_t fraction = 0;
  if (c.OneOf(".")) {
    int digits = 0;
    while (const auto digit = c.Digits(1)) {
      if (digits++ < 9) fraction = fraction * 10 + *digit;
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 9; ++digits) fraction *= 10;
  }
  seconds offset{0};
  if (c.OneOf("Zz")) {
  } else if (const char sign = c.OneOf("+-")) {
    const auto oh = c.Digits(2);
    if (!oh || !c.OneOf(":")) return std::nullopt;
    const auto om = c.Digits(2);
    if (!om || *oh > 23 || *om > 59) return std::nullopt;
    offset = hours(*oh) + minutes(*om);
    if (sign == '-') offset = -offset;
  } else {
    return std::nullopt;
  }
  if (!c.done()) return std::nullopt;
  const year_month_day date{year{*y}, month{static_cast<unsigned>(*mo)},
                            day{static_cast<unsigned>(*d)}};
  if (!date.ok()) return std::nullopt;  // 31 April, 29 February 2026
  const auto local = sys_days(date) + hours(*h) + minutes(*mi) + seconds(*s);
  return duration_cast<nanoseconds>((local - offset).time_since_epoch()).count() + fraction;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gocache::fuzz::Guarded([&] {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto got = gocache::trace::ParseRfc3339(text);
    const auto want = Reference(text);
    if (got != want) {
      std::fprintf(stderr, "fuzz: ParseRfc3339(\"%.*s\") = %s%lld, the reference says %s%lld\n",
                   static_cast<int>(size), text.data(), got ? "" : "none ",
                   static_cast<long long>(got.value_or(0)), want ? "" : "none ",
                   static_cast<long long>(want.value_or(0)));
      std::abort();
    }
  });
}
