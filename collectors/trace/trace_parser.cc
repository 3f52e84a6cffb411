#include "collectors/trace/trace_parser.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <cmath>
#include <unordered_map>
#include <vector>

namespace gocache::trace {
namespace {

constexpr std::string_view kActionSpan = "Executing action (";
// Open action spans of a Chrome trace, over all threads: the go command
// nests none, so a trace with more is hostile or not the go command's.
constexpr size_t kMaxOpenSpans = 1 << 16;

bool Digits(std::string_view text, size_t at, size_t count, int& value) {
  if (at + count > text.size()) return false;
  value = 0;
  for (size_t i = at; i < at + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    value = value * 10 + (text[i] - '0');
  }
  return true;
}

// Days from 1970-01-01 to a date of the proleptic Gregorian calendar, counted
// in 400-year eras that start on March 1st so that leap days fall at the end.
int64_t DaysSinceEpoch(int year, int month, int day) {
  const int64_t y = year - (month <= 2 ? 1 : 0);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t year_of_era = y - era * 400;
  const int64_t month_from_march = month > 2 ? month - 3 : month + 9;
  const int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

}  // namespace

std::optional<int64_t> ParseRfc3339(std::string_view t) {
  int year, month, day, hour, minute, second;
  if (!Digits(t, 0, 4, year) || t.size() < 20 || t[4] != '-' || !Digits(t, 5, 2, month) ||
      t[7] != '-' || !Digits(t, 8, 2, day) || (t[10] != 'T' && t[10] != 't') ||
      !Digits(t, 11, 2, hour) || t[13] != ':' || !Digits(t, 14, 2, minute) || t[16] != ':' ||
      !Digits(t, 17, 2, second)) {
    return std::nullopt;
  }
  // Go's zero time, and anything no build ran at: the bounds also keep the
  // difference of two times within int64 nanoseconds.
  if (year < 1970 || year > 2200) return std::nullopt;
  static constexpr int kDaysInMonth[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDaysInMonth[month - 1] || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
  if (month == 2 && day == 29 && !leap) return std::nullopt;
  size_t at = 19;
  int64_t nanos = 0;
  if (at < t.size() && t[at] == '.') {
    ++at;
    int digits = 0;
    while (at < t.size() && t[at] >= '0' && t[at] <= '9') {
      if (digits < 9) nanos = nanos * 10 + (t[at] - '0');
      ++digits;
      ++at;
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 9; ++digits) nanos *= 10;
  }
  int64_t offset_seconds = 0;
  if (at + 1 == t.size() && (t[at] == 'Z' || t[at] == 'z')) {
    at += 1;
  } else if (at + 6 == t.size() && (t[at] == '+' || t[at] == '-') && t[at + 3] == ':') {
    int oh, om;
    if (!Digits(t, at + 1, 2, oh) || !Digits(t, at + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_seconds = (t[at] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
    at += 6;
  } else {
    return std::nullopt;
  }
  const int64_t seconds = DaysSinceEpoch(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                          second - offset_seconds;
  return seconds * 1'000'000'000 + nanos;
}

namespace {

// The fields of one array element the parser needs; the rest are skipped.
enum class Field {
  kOther,
  kMode,
  kActionID,
  kCmd,
  kCmdReal,
  kTimeStart,
  kTimeDone,
  kName,
  kPh,
  kTs,
  kDur,
  kPid,
  kTid
};

// The modes whose actions the go command keys in the cache by an ActionID
// (cmd/go/internal/work: useCache).
bool UsesActionID(std::string_view mode) {
  for (const std::string_view m :
       {"build", "link", "preprocess PGO profile", "go build -buildmode=shared"}) {
    if (mode == m) return true;
  }
  return false;
}

Field FieldOf(std::string_view key) {
  // Action graph keys are capitalized, trace event keys are not.
  switch (key.size()) {
    case 2:
      if (key == "ph") return Field::kPh;
      if (key == "ts") return Field::kTs;
      break;
    case 3:
      if (key == "Cmd") return Field::kCmd;
      if (key == "dur") return Field::kDur;
      if (key == "pid") return Field::kPid;
      if (key == "tid") return Field::kTid;
      break;
    case 4:
      if (key == "Mode") return Field::kMode;
      if (key == "name") return Field::kName;
      break;
    case 7:
      if (key == "CmdReal") return Field::kCmdReal;
      break;
    case 8:
      if (key == "TimeDone") return Field::kTimeDone;
      if (key == "ActionID") return Field::kActionID;
      break;
    case 9:
      if (key == "TimeStart") return Field::kTimeStart;
      break;
  }
  return Field::kOther;
}

struct Element {
  bool has_mode = false;
  size_t mode = kOtherMode;
  bool mode_uses_action_id = false;
  bool has_action_id = false;
  bool cmd_array = false;
  size_t cmd_count = 0;
  double cmd_real_ns = 0;
  std::optional<int64_t> time_start, time_done;

  bool has_ph = false;
  char ph = 0;
  bool is_action_span = false;  // name is "Executing action (...)"
  std::optional<double> ts, dur;
  int64_t pid = 0, tid = 0;
};

// RapidJSON SAX handler. Depth 1 is the root array, 2 an element, 3 and
// deeper the values inside an element's fields.
class Handler {
 public:
  explicit Handler(TraceTally& tally) : tally_(tally) {}

  TraceFormat format() const { return format_; }
  const std::string& error() const { return error_; }
  size_t elements() const { return elements_; }

  bool StartArray() {
    if (depth_ == 0) return Enter();
    if (depth_ == 1) return Fail("element " + std::to_string(elements_) + " is not an object");
    if (depth_ == 2) {
      if (field_ == Field::kCmd) {
        element_.cmd_array = true;
      } else if (field_ != Field::kOther) {
        return WrongType();
      }
    }
    return Enter();
  }
  bool EndArray(rapidjson::SizeType) {
    --depth_;
    if (depth_ == 0 && elements_ == 0) return Fail("an empty array: no actions or trace events");
    return true;
  }
  bool StartObject() {
    if (depth_ == 0) return Fail("not a JSON array");
    if (depth_ == 1) element_ = Element{};
    if (depth_ == 2 && field_ != Field::kOther) return WrongType();
    return Enter();
  }
  bool EndObject(rapidjson::SizeType) {
    --depth_;
    if (depth_ == 1) {
      ++elements_;
      return FinishElement();
    }
    return true;
  }
  bool Key(const char* text, rapidjson::SizeType length, bool) {
    if (depth_ == 2) field_ = FieldOf({text, length});
    return true;
  }

  bool String(const char* text, rapidjson::SizeType length, bool) {
    const std::string_view s(text, length);
    if (depth_ == 3 && field_ == Field::kCmd) {
      ++element_.cmd_count;
      return true;
    }
    if (!InElement()) return Scalar();
    switch (field_) {
      case Field::kMode:
        element_.has_mode = true;
        element_.mode = ModeIndex(s);
        element_.mode_uses_action_id = UsesActionID(s);
        return true;
      case Field::kTimeStart:
      case Field::kTimeDone: {
        // Go's zero time marks an action that never ran; any other time must parse.
        const auto time = ParseRfc3339(s);
        if (!time && s != "0001-01-01T00:00:00Z") return WrongType();
        (field_ == Field::kTimeStart ? element_.time_start : element_.time_done) = time;
        return true;
      }
      case Field::kActionID:
        element_.has_action_id = !s.empty();
        return true;
      case Field::kName:
        if (s.substr(0, kActionSpan.size()) == kActionSpan && s.back() == ')') {
          element_.is_action_span = true;
          element_.mode = ModeIndexOfDescription(
              s.substr(kActionSpan.size(), s.size() - kActionSpan.size() - 1));
        }
        return true;
      case Field::kPh:
        if (length != 1) return WrongType();
        element_.has_ph = true;
        element_.ph = text[0];
        return true;
      case Field::kOther:
        return true;
      default:
        return WrongType();
    }
  }
  bool Null() {
    if (InElement() && field_ != Field::kOther && field_ != Field::kCmd) return WrongType();
    return InElement() || depth_ > 2 || Scalar();
  }
  bool Bool(bool) { return Other(); }
  bool Int(int v) { return Number(v); }
  bool Uint(unsigned v) { return Number(v); }
  bool Int64(int64_t v) { return Number(static_cast<double>(v)); }
  bool Uint64(uint64_t v) { return Number(static_cast<double>(v)); }
  bool Double(double v) { return Number(v); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return Other(); }

 private:
  bool InElement() const { return depth_ == 2; }
  bool Enter() {
    if (++depth_ > kMaxDepth) return Fail("nested deeper than " + std::to_string(kMaxDepth));
    return true;
  }
  bool Fail(std::string message) {
    error_ = std::move(message);
    return false;
  }
  bool WrongType() {
    return Fail("element " + std::to_string(elements_) + ": a field has a value of the wrong type");
  }
  // A value that is not inside an element: the root itself, or an element.
  bool Scalar() {
    if (depth_ == 0) return Fail("not a JSON array");
    if (depth_ == 1) return Fail("element " + std::to_string(elements_) + " is not an object");
    return true;
  }
  bool Other() {
    if (InElement() && field_ != Field::kOther) return WrongType();
    return InElement() || depth_ > 2 || Scalar();
  }
  bool Number(double v) {
    if (!InElement()) return Scalar();
    switch (field_) {
      case Field::kCmdReal:
        element_.cmd_real_ns = v;
        return true;
      case Field::kTs:
        element_.ts = v;
        return true;
      case Field::kDur:
        element_.dur = v;
        return true;
      case Field::kPid:
      case Field::kTid:
        // Thread ids only key the open spans: out-of-range values are folded.
        (field_ == Field::kPid ? element_.pid : element_.tid) =
            std::isfinite(v) && std::fabs(v) < 1e15 ? static_cast<int64_t>(v) : -1;
        return true;
      case Field::kOther:
        return true;
      default:
        return WrongType();
    }
  }

  bool FinishElement() {
    const Element& e = element_;
    if (format_ == TraceFormat::kUnknown) {
      if (e.has_ph) {
        format_ = TraceFormat::kChrome;
      } else if (e.has_mode) {
        format_ = TraceFormat::kActionGraph;
      } else {
        return Fail("the first element is neither an action (no Mode) nor a trace event (no ph)");
      }
    }
    return format_ == TraceFormat::kActionGraph ? FinishAction() : FinishEvent();
  }

  bool FinishAction() {
    const Element& e = element_;
    if (!e.has_mode) return Fail("element " + std::to_string(elements_ - 1) + " has no Mode");
    // An action the go command never ran (it stopped at an error, or wrote
    // the graph before running anything) has no times: nothing to count.
    if (!e.time_start || !e.time_done || *e.time_done < *e.time_start) return true;
    // A compile or link looks its result up in the cache first, under its
    // ActionID; one without an ActionID that ran nothing was skipped because
    // a dependency failed: neither a hit nor a miss.
    if (e.cmd_count == 0 && !e.has_action_id && e.mode_uses_action_id) return true;
    const double seconds = static_cast<double>(*e.time_done - *e.time_start) / 1e9;
    const double command_seconds = std::isfinite(e.cmd_real_ns) ? e.cmd_real_ns / 1e9 : 0;
    tally_.AddAction(e.mode, e.cmd_count > 0, seconds, command_seconds);
    return true;
  }

  bool FinishEvent() {
    const Element& e = element_;
    if (!e.has_ph) return Fail("element " + std::to_string(elements_ - 1) + " has no ph");
    if (!e.is_action_span) return true;
    if (!e.ts || !std::isfinite(*e.ts)) {
      return Fail("element " + std::to_string(elements_ - 1) + " has no ts");
    }
    const auto thread = std::make_pair(e.pid, e.tid);
    switch (e.ph) {
      case 'B': {
        if (open_spans_ == kMaxOpenSpans) return Fail("too many action spans left open");
        open_[thread].push_back({*e.ts, e.mode});
        ++open_spans_;
        return true;
      }
      case 'E': {
        // An end without a beginning is ignored, as trace viewers do.
        const auto it = open_.find(thread);
        if (it == open_.end()) return true;
        const OpenSpan begin = it->second.back();
        it->second.pop_back();
        --open_spans_;
        if (it->second.empty()) open_.erase(it);
        if (*e.ts >= begin.ts) tally_.AddSpan(begin.mode, (*e.ts - begin.ts) / 1e6);
        return true;
      }
      case 'X':
        if (e.dur && std::isfinite(*e.dur) && *e.dur >= 0) tally_.AddSpan(e.mode, *e.dur / 1e6);
        return true;
      default:
        return true;
    }
  }

  struct OpenSpan {
    double ts;
    size_t mode;
  };
  struct ThreadHash {
    size_t operator()(const std::pair<int64_t, int64_t>& t) const {
      return std::hash<uint64_t>()(static_cast<uint64_t>(t.first) * 1000003u ^
                                   static_cast<uint64_t>(t.second));
    }
  };

  TraceTally& tally_;
  TraceFormat format_ = TraceFormat::kUnknown;
  int depth_ = 0;
  size_t elements_ = 0;
  Field field_ = Field::kOther;
  Element element_;
  std::unordered_map<std::pair<int64_t, int64_t>, std::vector<OpenSpan>, ThreadHash> open_;
  size_t open_spans_ = 0;
  std::string error_;
};

}  // namespace

ParseOutcome ParseTrace(TraceStream& stream, TraceTally& tally) {
  Handler handler(tally);
  rapidjson::Reader reader;
  const rapidjson::ParseResult result =
      reader.Parse<rapidjson::kParseIterativeFlag>(stream, handler);
  ParseOutcome outcome{handler.format(), ""};
  if (!stream.error().empty()) {
    // The stream's reason beats the reader's "unexpected end" it caused.
    outcome.error = stream.error();
  } else if (!handler.error().empty()) {
    outcome.error = handler.error();
  } else if (result.IsError()) {
    outcome.error = std::string("invalid JSON at byte ") + std::to_string(result.Offset()) + ": " +
                    rapidjson::GetParseError_En(result.Code());
  }
  return outcome;
}

ParseOutcome ParseTraceBytes(std::string_view bytes, uint64_t max_bytes, TraceTally& tally) {
  MemoryInput input(bytes);
  TraceStream stream(input, max_bytes);
  return ParseTrace(stream, tally);
}

}  // namespace gocache::trace
