#include "collectors/trace/trace_parser.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/trace/trace_stream.h"
#include "collectors/trace/trace_tally.h"

namespace gocache::trace {
namespace {

constexpr uint64_t kNoLimit = uint64_t{1} << 40;

// --- Helpers -----------------------------------------------------------------

// Gzip-compresses `data` as one gzip member (a gzip header and trailer, not
// zlib's, which compress2 would write).
std::string Gzip(std::string_view data) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// A time as Go's time.Time marshals to JSON (RFC 3339 with nanoseconds,
// trailing zeros of the fraction dropped) at second `second` (0-59) and
// `nanos` of 2026-11-27T07:37.
std::string At(int second, int64_t nanos = 0) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "2026-11-27T07:37:%02d", second);
  std::string s = buffer;
  if (nanos != 0) {
    std::snprintf(buffer, sizeof buffer, ".%09lld", static_cast<long long>(nanos));
    std::string fraction = buffer;
    while (fraction.back() == '0') fraction.pop_back();
    s += fraction;
  }
  return s + "Z";
}

constexpr std::string_view kZeroTime = "0001-01-01T00:00:00Z";

// One action as cmd/go writes it with -debug-actiongraph (indented with tabs,
// the fields of work.actionJSON). An empty `start` or `done` leaves that
// field out; `cmd` is the JSON of the Cmd field; a zero `cmd_real_ns` leaves
// CmdReal out (it is omitempty).
std::string Action(int id, std::string_view mode, std::string_view start, std::string_view done,
                   std::string_view cmd = "null", int64_t cmd_real_ns = 0) {
  std::string s = "\t{\n\t\t\"ID\": " + std::to_string(id) + ",\n\t\t\"Mode\": \"" +
                  std::string(mode) + "\",\n\t\t\"Package\": \"example.com/m/p" +
                  std::to_string(id) + "\",\n\t\t\"Deps\": [\n\t\t\t" + std::to_string(id + 1) +
                  ",\n\t\t\t" + std::to_string(id + 2) +
                  "\n\t\t],\n\t\t\"Objdir\": \"/tmp/go-build1/b001/\",\n\t\t\"Priority\": 3,\n"
                  "\t\t\"NeedBuild\": true,\n\t\t\"ActionID\": \"X7XYx_GFiMH9WkjFmIYc\",\n"
                  "\t\t\"TimeReady\": \"" +
                  At(1, 5) + "\",\n";
  if (!start.empty()) s += "\t\t\"TimeStart\": \"" + std::string(start) + "\",\n";
  if (!done.empty()) s += "\t\t\"TimeDone\": \"" + std::string(done) + "\",\n";
  s += "\t\t\"Cmd\": " + std::string(cmd);
  if (cmd_real_ns != 0) {
    s += ",\n\t\t\"CmdReal\": " + std::to_string(cmd_real_ns) +
         ",\n\t\t\"CmdUser\": " + std::to_string(cmd_real_ns / 2) + ",\n\t\t\"CmdSys\": 1000";
  }
  return s + "\n\t}";
}

std::string Array(const std::vector<std::string>& elements) {
  std::string s = "[\n";
  for (size_t i = 0; i < elements.size(); ++i) {
    if (i > 0) s += ",\n";
    s += elements[i];
  }
  return s + "\n]\n";
}

// A Chrome trace event as cmd/go writes it with -debug-trace.
std::string Event(std::string_view name, char ph, std::string_view ts, int tid, int pid = 0) {
  return "{\"name\":\"" + std::string(name) + "\",\"ph\":\"" + std::string(1, ph) +
         "\",\"ts\":" + std::string(ts) + ",\"pid\":" + std::to_string(pid) +
         ",\"tid\":" + std::to_string(tid) + "}";
}

// A trace as cmd/go writes it: one event a line, commas leading.
std::string ChromeTrace(const std::vector<std::string>& events) {
  std::string s = "[";
  for (size_t i = 0; i < events.size(); ++i) s += (i == 0 ? "\n" : "\n,") + events[i];
  return s + "\n]\n";
}

ModeTally& Mode(TraceTally& tally, std::string_view mode) {
  const size_t index = ModeIndex(mode);
  EXPECT_TRUE(index != kOtherMode || mode == "other") << mode;
  return tally.modes[index];
}

bool IsEmpty(const LatencyHistogram& h) { return h.count() == 0 && h.sum == 0; }

bool IsEmpty(const TraceTally& tally) {
  for (const ModeTally& m : tally.modes) {
    if (m.hits != 0 || m.misses != 0 || !IsEmpty(m.cache_read) || !IsEmpty(m.cache_write) ||
        !IsEmpty(m.duration_miss) || !IsEmpty(m.duration_unknown)) {
      return false;
    }
  }
  for (const auto& format : tally.files) {
    for (uint64_t n : format) {
      if (n != 0) return false;
    }
  }
  return true;
}

void ExpectSameHistogram(const LatencyHistogram& a, const LatencyHistogram& b,
                         std::string_view what) {
  EXPECT_EQ(a.counts, b.counts) << what;
  EXPECT_DOUBLE_EQ(a.sum, b.sum) << what;
}

void ExpectSameTally(const TraceTally& a, const TraceTally& b) {
  for (size_t i = 0; i < kModes.size(); ++i) {
    SCOPED_TRACE(kModes[i]);
    const ModeTally& x = a.modes[i];
    const ModeTally& y = b.modes[i];
    EXPECT_EQ(x.hits, y.hits);
    EXPECT_EQ(x.misses, y.misses);
    ExpectSameHistogram(x.cache_read, y.cache_read, "cache_read");
    ExpectSameHistogram(x.cache_write, y.cache_write, "cache_write");
    ExpectSameHistogram(x.duration_miss, y.duration_miss, "duration_miss");
    ExpectSameHistogram(x.duration_unknown, y.duration_unknown, "duration_unknown");
  }
  EXPECT_EQ(a.files, b.files);
}

// Index of the bucket of kLatencyBuckets holding exactly one observation,
// or -1 when none or several do.
int OnlyBucket(const LatencyHistogram& h) {
  int found = -1;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    if (h.counts[i] == 0) continue;
    if (h.counts[i] > 1 || found >= 0) return -1;
    found = static_cast<int>(i);
  }
  return found;
}

// --- ParseRfc3339 ----------------------------------------------------------

// The constants were checked with python3's datetime and `date -u -d ... +%s`.
constexpr int64_t kInstant = 1795765063906886864;  // 2026-11-27T07:37:43.906886864Z

TEST(ParseRfc3339Test, GoFormatWithNineThreeAndNoFractionDigits) {
  EXPECT_EQ(ParseRfc3339("2026-11-27T07:37:43.906886864Z"), kInstant);
  EXPECT_EQ(ParseRfc3339("2026-11-27T07:37:43.906Z"), int64_t{1795765063906000000});
  EXPECT_EQ(ParseRfc3339("2026-11-27T07:37:43Z"), int64_t{1795765063000000000});
  // Go's RFC3339Nano drops trailing zeros: any number of digits up to nine.
  EXPECT_EQ(ParseRfc3339("2026-11-27T07:37:43.5Z"), int64_t{1795765063500000000});
  EXPECT_EQ(ParseRfc3339("2026-11-27T07:37:43.90688686Z"), int64_t{1795765063906886860});
  EXPECT_EQ(ParseRfc3339("2026-11-27T07:37:43.000000001Z"), int64_t{1795765063000000001});
}

TEST(ParseRfc3339Test, KnownEpochValues) {
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), int64_t{0});
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:01Z"), int64_t{1'000'000'000});
  EXPECT_EQ(ParseRfc3339("1970-01-02T00:00:00Z"), int64_t{86400} * 1'000'000'000);
  EXPECT_EQ(ParseRfc3339("2000-01-01T00:00:00Z"), int64_t{946684800} * 1'000'000'000);
  EXPECT_EQ(ParseRfc3339("1969-12-31T23:59:59Z"), std::nullopt);  // before any build
}

TEST(ParseRfc3339Test, OffsetsGiveTheSameInstantAsZ) {
  EXPECT_EQ(ParseRfc3339("2026-11-27T08:37:43.906886864+01:00"), kInstant);
  EXPECT_EQ(ParseRfc3339("2026-11-27T00:37:43.906886864-07:00"), kInstant);
  EXPECT_EQ(ParseRfc3339("2026-11-27T07:37:43.906886864+00:00"), kInstant);
  // Across a day boundary, with minutes in the offset.
  EXPECT_EQ(ParseRfc3339("2026-11-26T22:07:43.906886864-09:30"), kInstant);
  EXPECT_EQ(ParseRfc3339("2026-11-27T13:22:43.906886864+05:45"), kInstant);
  // RFC 3339 allows lower-case separators.
  EXPECT_EQ(ParseRfc3339("2026-11-27t07:37:43.906886864z"), kInstant);
}

TEST(ParseRfc3339Test, LeapDays) {
  constexpr int64_t kDay = int64_t{86400} * 1'000'000'000;
  EXPECT_EQ(ParseRfc3339("2024-02-29T12:00:00Z"), int64_t{1709208000} * 1'000'000'000);
  EXPECT_EQ(*ParseRfc3339("2024-03-01T00:00:00Z") - *ParseRfc3339("2024-02-28T00:00:00Z"),
            2 * kDay);
  EXPECT_EQ(*ParseRfc3339("2023-03-01T00:00:00Z") - *ParseRfc3339("2023-02-28T00:00:00Z"), kDay);
  // 2000 is a leap year (divisible by 400), 2100 is not (by 100).
  EXPECT_EQ(*ParseRfc3339("2000-03-01T00:00:00Z") - *ParseRfc3339("2000-02-28T00:00:00Z"),
            2 * kDay);
  EXPECT_EQ(*ParseRfc3339("2100-03-01T00:00:00Z") - *ParseRfc3339("2100-02-28T00:00:00Z"), kDay);
  EXPECT_EQ(*ParseRfc3339("2025-01-01T00:00:00Z") - *ParseRfc3339("2024-01-01T00:00:00Z"),
            366 * kDay);
}

TEST(ParseRfc3339Test, GoZeroTimeIsNone) {
  EXPECT_EQ(ParseRfc3339("0001-01-01T00:00:00Z"), std::nullopt);
  EXPECT_EQ(ParseRfc3339(kZeroTime), std::nullopt);
}

TEST(ParseRfc3339Test, MalformedIsNone) {
  for (const char* text : {
           "",
           "2026",
           "2026-11-27",
           "2026-11-27 07:37:43Z",  // no T
           "2026-11-27X07:37:43Z",
           "2026-13-01T00:00:00Z",  // month 13
           "2026-00-01T00:00:00Z",
           "2026-11-00T00:00:00Z",
           "2026-02-31T00:00:00Z",  // no such day
           "2026-04-31T00:00:00Z",
           "2023-02-29T00:00:00Z",  // not a leap year
           "2100-02-29T00:00:00Z",
           "2026-11-32T00:00:00Z",
           "2026-11-27T24:00:00Z",
           "2026-11-27T07:60:00Z",
           "2026-11-27T07:37:43.906886864Zjunk",  // trailing junk
           "2026-11-27T07:37:43Z ",
           "2026-11-27T07:37:43",  // no zone
           "2026-11-27T07:37:43.Z",
           "2026-11-27T07:37:43.906886864",
           "2026-11-27T07:37:43+0100",
           "2026-11-27T07:37:43+01",
           "2026-11-27T07:37:43+24:00",
           "2026-11-27T07:37:43+01:00Z",
           "2026-11-27T7:37:43Z",
           "26-11-27T07:37:43Z",
           "x026-11-27T07:37:43Z",
           "2026/11/27T07:37:43Z",
           "yesterday",
       }) {
    EXPECT_EQ(ParseRfc3339(text), std::nullopt) << '"' << text << '"';
  }
}

// --- Action graphs -----------------------------------------------------------

TEST(TraceParserActionGraphTest, HitsAndMissesPerModeWithLatencies) {
  const std::string graph = Array({
      // Hit (Cmd null): 3 ms.
      Action(0, "link-install", At(40), At(40, 3'000'000)),
      // Miss whose command took longer than the action as timed: write clamped at 0.
      Action(1, "link", At(39), At(39, 500'000'000), R"(["link -o a.out"])", 700'000'000),
      // Miss: 1.5 s, 1.2 s of which the command.
      Action(2, "build", At(30), At(31, 500'000'000), R"(["asm -p runtime", "compile -p runtime"])",
             1'200'000'000),
      // Hits: Cmd null and Cmd an empty array.
      Action(3, "build", At(31), At(31, 200'000)),
      Action(4, "build", At(31), At(31, 1'000'000), "[]"),
      Action(5, "built-in package", At(32), At(32)),
      // Never run: Go's zero times, no TimeStart, a zero TimeDone, done before start.
      Action(6, "nop", kZeroTime, kZeroTime),
      Action(7, "build", "", At(33), R"(["compile"])", 5),
      Action(8, "build", At(33), kZeroTime, R"(["compile"])", 5),
      Action(9, "build", At(34), At(33)),
      // A mode the parser does not know.
      Action(10, "frobnicate", At(35), At(35, 20'000'000), R"(["frob"])", 10'000'000),
      // A miss without CmdReal.
      Action(11, "vet", At(36), At(36, 10'000'000), R"(["vet"])"),
  });
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(graph, kNoLimit, tally);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(outcome.format, TraceFormat::kActionGraph);

  const ModeTally& link = Mode(tally, "link");
  EXPECT_EQ(link.hits, 0u);
  EXPECT_EQ(link.misses, 1u);
  EXPECT_EQ(link.cache_write.sum, 0.0);
  EXPECT_EQ(OnlyBucket(link.cache_write), 0);
  EXPECT_DOUBLE_EQ(link.duration_miss.sum, 0.5);
  EXPECT_EQ(OnlyBucket(link.duration_miss), 7);  // 0.5 is in (0.1, 0.5]
  EXPECT_EQ(link.cache_read.count(), 0u);

  const ModeTally& build = Mode(tally, "build");
  EXPECT_EQ(build.hits, 2u);
  EXPECT_EQ(build.misses, 1u);
  EXPECT_NEAR(build.cache_write.sum, 0.3, 1e-9);
  EXPECT_EQ(OnlyBucket(build.cache_write), 7);  // (0.1, 0.5]
  EXPECT_DOUBLE_EQ(build.duration_miss.sum, 1.5);
  EXPECT_EQ(OnlyBucket(build.duration_miss), 9);  // (1, 5]
  EXPECT_EQ(build.cache_read.count(), 2u);
  EXPECT_NEAR(build.cache_read.sum, 0.0012, 1e-12);
  EXPECT_EQ(build.cache_read.counts[1], 1u);  // 0.0002 in (0.0001, 0.0005]
  EXPECT_EQ(build.cache_read.counts[2], 1u);  // 0.001 in (0.0005, 0.001]
  EXPECT_EQ(build.duration_unknown.count(), 0u);

  // link-install and built-in package ran no command; frobnicate is no mode
  // of the go command; nop never ran.
  const ModeTally& other = tally.modes[kOtherMode];
  EXPECT_EQ(other.hits, 2u);
  EXPECT_EQ(other.misses, 1u);
  EXPECT_NEAR(other.cache_write.sum, 0.01, 1e-12);

  const ModeTally& vet = Mode(tally, "vet");
  EXPECT_EQ(vet.misses, 1u);
  EXPECT_NEAR(vet.cache_write.sum, 0.01, 1e-12);  // no CmdReal: the whole action
  EXPECT_NEAR(vet.duration_miss.sum, 0.01, 1e-12);

  uint64_t actions = 0;
  for (const ModeTally& m : tally.modes) actions += m.hits + m.misses;
  EXPECT_EQ(actions, 8u);
  // Counting files is the collector's business, not the parser's.
  for (const auto& format : tally.files) EXPECT_EQ(format[0] + format[1], 0u);
}

TEST(TraceParserActionGraphTest, UnknownKeysAndNestedValuesAreSkipped) {
  const std::string graph = R"([
    {"Extra": {"Mode": 5, "Cmd": "x", "TimeStart": 7, "ph": 1, "deep": [[[{"a": null}]]]},
     "mode": 3, "cmd": "x", "timestart": false,
     "Args": ["-x", {"Cmd": ["nested"]}], "Failed": false, "IgnoreFail": true,
     "Priority": 1.5e3, "Built": null, "Link": true, "CmdUser": 123, "CmdSys": -4,
     "ActionID": "X7XYx_GFiMH9WkjFmIYc", "Cmd": null, "TimeDone": ")" +
                            At(10, 40'000'000) + R"(", "TimeStart": ")" + At(10) +
                            R"(", "Mode": "build",
     "Unicode": "\u00e9\ud83d\ude00", "Empty": {}, "EmptyArray": [], "Trailing": [1, 2.5, -3, true]},
    {"Mode": "test run", "Cmd": [["nested array"], "go test"], "TimeStart": ")" +
                            At(11) + R"(", "TimeDone": ")" + At(12) + R"(", "CmdReal": 2.5e8}
  ])";
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(graph, kNoLimit, tally);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(outcome.format, TraceFormat::kActionGraph);
  EXPECT_EQ(Mode(tally, "build").hits, 1u);
  EXPECT_EQ(Mode(tally, "build").misses, 0u);
  EXPECT_DOUBLE_EQ(Mode(tally, "build").cache_read.sum, 0.04);
  EXPECT_EQ(Mode(tally, "test run").misses, 1u);
  EXPECT_DOUBLE_EQ(Mode(tally, "test run").cache_write.sum, 0.75);
  EXPECT_EQ(tally.modes[kOtherMode].hits + tally.modes[kOtherMode].misses, 0u);
}

// After a failed compile, the go command still gives the actions that
// depended on it times, but they ran nothing and looked nothing up: no
// ActionID. A compile or link like that is neither a hit nor a miss; a
// mode that never has an ActionID (vet, link-install) still counts.
TEST(TraceParserActionGraphTest, CompilesSkippedAfterAFailureAreNotHits) {
  const std::string graph = R"([
    {"Mode": "build", "Package": "a", "ActionID": "aaa", "Cmd": ["compile a"],
     "TimeStart": ")" + At(1) +
                            R"(", "TimeDone": ")" + At(2) + R"("},
    {"Mode": "build", "Package": "b", "Cmd": null,
     "TimeStart": ")" + At(2) +
                            R"(", "TimeDone": ")" + At(2, 1000) + R"("},
    {"Mode": "link", "Package": "b", "Cmd": null,
     "TimeStart": ")" + At(2) +
                            R"(", "TimeDone": ")" + At(2, 1000) + R"("},
    {"Mode": "build", "Package": "c", "ActionID": "ccc", "Cmd": null,
     "TimeStart": ")" + At(2) +
                            R"(", "TimeDone": ")" + At(2, 1000) + R"("},
    {"Mode": "vet", "Package": "c", "Cmd": null,
     "TimeStart": ")" + At(2) +
                            R"(", "TimeDone": ")" + At(2, 1000) + R"("}
  ])";
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(graph, kNoLimit, tally);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(Mode(tally, "build").misses, 1u);
  EXPECT_EQ(Mode(tally, "build").hits, 1u);  // c, not b
  EXPECT_EQ(Mode(tally, "link").hits + Mode(tally, "link").misses, 0u);
  EXPECT_EQ(Mode(tally, "vet").hits, 1u);
}

TEST(TraceParserActionGraphTest, EveryKnownModeIsCountedUnderItsName) {
  std::vector<std::string> actions;
  for (size_t i = 0; i < kOtherMode; ++i) {
    actions.push_back(Action(static_cast<int>(i), kModes[i], At(1), At(2)));
  }
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(Array(actions), kNoLimit, tally);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  for (size_t i = 0; i < kOtherMode; ++i) {
    EXPECT_EQ(tally.modes[i].hits, 1u) << kModes[i];
  }
  EXPECT_EQ(tally.modes[kOtherMode].hits, 0u);
}

// Much larger than the stream's 64 KiB chunks, so that tokens straddle them.
std::string LargeGraph(size_t actions) {
  std::vector<std::string> elements;
  for (size_t i = 0; i < actions; ++i) {
    const int id = static_cast<int>(i);
    if (i % 3 == 0) {
      elements.push_back(Action(id, "build", At(1), At(1, 1'000'000 + static_cast<int64_t>(i)),
                                R"(["compile -p example.com/m"])", 500'000));
    } else {
      elements.push_back(Action(id, i % 3 == 1 ? "build" : "link", At(2), At(2, 20'000)));
    }
  }
  return Array(elements);
}

TEST(TraceParserActionGraphTest, LargeGraphAcrossChunks) {
  const std::string graph = LargeGraph(3000);
  ASSERT_GT(graph.size(), size_t{4} << 16);
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(graph, kNoLimit, tally);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(Mode(tally, "build").misses, 1000u);
  EXPECT_EQ(Mode(tally, "build").hits, 1000u);
  EXPECT_EQ(Mode(tally, "link").hits, 1000u);
  EXPECT_EQ(Mode(tally, "build").cache_write.count(), 1000u);
  EXPECT_EQ(Mode(tally, "link").cache_read.counts[0], 1000u);  // 20 us each
}

TEST(TraceParserActionGraphTest, FixturesOfRealBuilds) {
  // Counts checked with python3 over the same files.
  {
    TraceTally tally;
    const std::string file = std::string(GOCACHE_FIXTURES) + "/trace/cold-build.actiongraph.json";
    const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << file;
    FdInput input(fd);
    TraceStream stream(input, kNoLimit);
    const ParseOutcome outcome = ParseTrace(stream, tally);
    close(fd);
    ASSERT_TRUE(outcome.ok()) << outcome.error;
    EXPECT_FALSE(stream.compressed());
    EXPECT_EQ(outcome.format, TraceFormat::kActionGraph);
    EXPECT_EQ(Mode(tally, "build").misses, 54u);
    EXPECT_EQ(Mode(tally, "build").hits, 0u);
    EXPECT_EQ(Mode(tally, "link").misses, 1u);
    // link-install, nop and built-in package.
    EXPECT_EQ(tally.modes[kOtherMode].hits, 3u);
    EXPECT_EQ(tally.modes[kOtherMode].misses, 0u);
  }
  {
    TraceTally tally;
    const std::string file = std::string(GOCACHE_FIXTURES) + "/trace/warm-build.actiongraph.json";
    const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << file;
    FdInput input(fd);
    TraceStream stream(input, kNoLimit);
    const ParseOutcome outcome = ParseTrace(stream, tally);
    close(fd);
    ASSERT_TRUE(outcome.ok()) << outcome.error;
    EXPECT_EQ(Mode(tally, "build").hits, 54u);
    EXPECT_EQ(Mode(tally, "build").misses, 0u);
    EXPECT_EQ(Mode(tally, "link").misses, 1u);
  }
  {
    TraceTally tally;
    const std::string file = std::string(GOCACHE_FIXTURES) + "/trace/cold-build.trace.json.gz";
    const int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << file;
    FdInput input(fd);
    TraceStream stream(input, kNoLimit);
    const ParseOutcome outcome = ParseTrace(stream, tally);
    close(fd);
    ASSERT_TRUE(outcome.ok()) << outcome.error;
    EXPECT_TRUE(stream.compressed());
    EXPECT_EQ(outcome.format, TraceFormat::kChrome);
    // 31 spans begin, 29 end; two were still open when the trace was written.
    EXPECT_EQ(Mode(tally, "build").duration_unknown.count(), 29u);
    EXPECT_EQ(Mode(tally, "build").hits + Mode(tally, "build").misses, 0u);
  }
}

// --- Chrome traces -----------------------------------------------------------

TEST(TraceParserChromeTest, ActionSpansByModeInSeconds) {
  const std::string trace = ChromeTrace({
      Event("Executing action (build fmt)", 'B', "1000", 1),
      Event("Executing action (built-in package unsafe)", 'B', "1500.5", 2),
      Event("Loading packages", 'B', "1600", 3),
      Event("Executing action (built-in package unsafe)", 'E', "1600.5", 2),
      Event("Executing action (test run example.com/x)", 'B', "1700", 2),
      Event("Executing action (build fmt)", 'E', "3000", 1),
      Event("Loading packages", 'E', "3100", 3),
      Event("Executing action (test run example.com/x)", 'E', "251700", 2),
      // A complete event, a metadata event and an instant event.
      R"j({"name":"Executing action (link example.com/m)","ph":"X",)j"
      R"j("ts":300000,"dur":1500000,"pid":0,"tid":1})j",
      R"j({"name":"thread_name","ph":"M","pid":0,"tid":1,"args":{"name":"worker 1"}})j",
      R"j({"name":"Executing action (build os)","ph":"i","ts":5,"pid":0,"tid":1,"s":"t"})j",
      // An end without a beginning, and a beginning without an end.
      Event("Executing action (build errors)", 'E', "9", 4),
      Event("Executing action (build io)", 'B', "9", 5),
      // Not an action span: the name must have the closing parenthesis.
      Event("Executing action (build sort", 'B', "10", 6),
      Event("Executing action (build sort", 'E', "20", 6),
  });
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(trace, kNoLimit, tally);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(outcome.format, TraceFormat::kChrome);

  const LatencyHistogram& build = Mode(tally, "build").duration_unknown;
  EXPECT_EQ(build.count(), 1u);
  EXPECT_DOUBLE_EQ(build.sum, 0.002);
  EXPECT_EQ(OnlyBucket(build), 3);  // (0.001, 0.005]

  const LatencyHistogram& builtin = tally.modes[kOtherMode].duration_unknown;  // built-in package
  EXPECT_EQ(builtin.count(), 1u);
  EXPECT_DOUBLE_EQ(builtin.sum, 0.0001);
  EXPECT_EQ(OnlyBucket(builtin), 0);  // upper-inclusive

  const LatencyHistogram& test_run = Mode(tally, "test run").duration_unknown;
  EXPECT_EQ(test_run.count(), 1u);
  EXPECT_DOUBLE_EQ(test_run.sum, 0.25);
  EXPECT_EQ(OnlyBucket(test_run), 7);  // (0.1, 0.5]

  const LatencyHistogram& link = Mode(tally, "link").duration_unknown;
  EXPECT_EQ(link.count(), 1u);
  EXPECT_DOUBLE_EQ(link.sum, 1.5);

  for (size_t i = 0; i < kModes.size(); ++i) {
    const ModeTally& m = tally.modes[i];
    EXPECT_EQ(m.hits + m.misses, 0u) << kModes[i];
    EXPECT_EQ(m.cache_read.count() + m.cache_write.count(), 0u) << kModes[i];
    EXPECT_EQ(m.duration_miss.count(), 0u) << kModes[i];
  }
}

TEST(TraceParserChromeTest, SpansAreMatchedPerProcessAndThread) {
  const std::string trace = ChromeTrace({
      Event("Executing action (build a)", 'B', "0", 7, 0),
      Event("Executing action (link b)", 'B', "10", 7, 1),
      Event("Executing action (vet c)", 'B', "20", 8, 0),
      Event("Executing action (build a)", 'E', "1000", 7, 0),
      Event("Executing action (vet c)", 'E', "520", 8, 0),
      Event("Executing action (link b)", 'E', "2010", 7, 1),
  });
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(trace, kNoLimit, tally);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_DOUBLE_EQ(Mode(tally, "build").duration_unknown.sum, 0.001);
  EXPECT_DOUBLE_EQ(Mode(tally, "link").duration_unknown.sum, 0.002);
  EXPECT_DOUBLE_EQ(Mode(tally, "vet").duration_unknown.sum, 0.0005);
}

TEST(TraceParserChromeTest, UnknownModeIsOther) {
  const std::string trace = ChromeTrace({
      Event("Executing action (frobnicate x)", 'B', "0", 1),
      Event("Executing action (frobnicate x)", 'E', "100", 1),
      Event("Executing action ()", 'B', "0", 2),
      Event("Executing action ()", 'E', "100", 2),
  });
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(trace, kNoLimit, tally);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  EXPECT_EQ(tally.modes[kOtherMode].duration_unknown.count(), 2u);
}

TEST(TraceParserChromeTest, TooManyOpenSpansFail) {
  // The go command nests no action spans; a trace leaving 65537 open is hostile.
  std::string trace = "[";
  for (int i = 0; i <= (1 << 16); ++i) {
    if (i > 0) trace += ',';
    trace += Event("Executing action (build x)", 'B', std::to_string(i), i % 4);
  }
  trace += "]";
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(trace, kNoLimit, tally);
  EXPECT_FALSE(outcome.ok());
  EXPECT_NE(outcome.error.find("open"), std::string::npos) << outcome.error;
  EXPECT_EQ(outcome.format, TraceFormat::kChrome);
  EXPECT_TRUE(IsEmpty(tally));
}

// --- Errors ------------------------------------------------------------------

struct BadCase {
  std::string name;
  std::string input;
  TraceFormat format;  // as far as it could be told
  // Whether a complete element was counted before the error: the parser
  // does add it, and the collector discards the tally of a bad file.
  bool counted_before = false;
};

std::vector<BadCase> BadCases() {
  const std::string good = Action(0, "build", At(1), At(2));
  const std::string good_event = Event("Executing action (build fmt)", 'B', "1", 1) + "," +
                                 Event("Executing action (build fmt)", 'E', "2", 1);
  const auto U = TraceFormat::kUnknown;
  const auto A = TraceFormat::kActionGraph;
  const auto C = TraceFormat::kChrome;
  std::vector<BadCase> cases = {
      {"empty", "", U},
      {"whitespace", " \n\t ", U},
      {"not JSON", "not json at all", U},
      {"binary", std::string("\x00\x01\x02\xff", 4), U},
      {"empty array", "[]", U},
      {"empty array with space", " [ ] ", U},
      {"object", "{}", U},
      {"object of an action", "{\"Mode\": \"build\"}", U},
      {"numbers", "[1,2]", U},
      {"strings", "[\"a\"]", U},
      {"nulls", "[null]", U},
      {"arrays", "[[]]", U},
      {"null", "null", U},
      {"number", "42", U},
      {"string", "\"x\"", U},
      {"bool", "true", U},
      {"neither action nor event", "[{\"x\":1}]", U},
      {"Mode a number", "[{\"Mode\":5}]", U},
      {"Mode an array", "[{\"Mode\":[\"build\"]}]", U},
      {"Mode null", "[{\"Mode\":null}]", U},
      {"TimeStart not a time", "[{\"Mode\":\"build\",\"TimeStart\":\"yesterday\"}]", U},
      {"TimeStart year 1 but not the zero time",
       "[{\"Mode\":\"build\",\"TimeStart\":\"0001-garbage\"}]", U},
      {"TimeStart a number", "[{\"Mode\":\"build\",\"TimeStart\":12}]", U},
      {"TimeDone an object", "[{\"Mode\":\"build\",\"TimeDone\":{}}]", U},
      {"Cmd a string", "[{\"Mode\":\"build\",\"Cmd\":\"go build\"}]", U},
      {"Cmd an object", "[{\"Mode\":\"build\",\"Cmd\":{\"a\":1}}]", U},
      {"Cmd a bool", "[{\"Mode\":\"build\",\"Cmd\":true}]", U},
      {"CmdReal a string", "[{\"Mode\":\"build\",\"CmdReal\":\"1s\"}]", U},
      {"ph too long", "[{\"ph\":\"BE\"}]", U},
      {"ph a number", "[{\"ph\":1}]", U},
      {"ts a string", "[{\"name\":\"Executing action (build x)\",\"ph\":\"B\",\"ts\":\"1\"}]", U},
      {"name a number", "[{\"name\":1,\"ph\":\"B\"}]", U},
      {"action span without ts", "[{\"name\":\"Executing action (build x)\",\"ph\":\"B\"}]", C},
      {"truncated", "[" + good + ",{\"Mode\":\"bu", A, true},
      {"truncated after comma", "[" + good + ",", A, true},
      {"truncated before close", "[" + good, A, true},
      {"second element not an object", "[" + good + ",1]", A, true},
      {"second element Mode a number", "[" + good + ",{\"Mode\":5}]", A, true},
      {"second element without Mode", "[" + good + ",{\"ph\":\"B\"}]", A, true},
      {"event after actions", "[" + good + "," + good_event + "]", A, true},
      {"action after events", "[" + good_event + ",{\"Mode\":\"build\"}]", C, true},
      {"trailing garbage", "[" + good + "] x", A, true},
      {"two arrays", "[" + good + "][]", A, true},
      {"trailing comma", "[" + good + ",]", A, true},
      {"deep brackets", std::string(10'000, '['), U},
      {"deep brackets closed", std::string(10'000, '[') + std::string(10'000, ']'), U},
      {"deep braces", std::string(10'000, '{'), U},
      {"deep nesting in a field",
       "[" + good + ",{\"Mode\":\"build\",\"X\":" + std::string(10'000, '[') +
           std::string(10'000, ']') + "}]",
       A, true},
      {"deep objects in a field",
       "[{\"Mode\":\"build\",\"X\":" +
           [] {
             std::string s;
             for (int i = 0; i < 10'000; ++i) s += "{\"a\":";
             return s + "1" + std::string(10'000, '}');
           }() +
           "}]",
       U},
  };
  return cases;
}

TEST(TraceParserErrorTest, BadInputFailsWithAReason) {
  for (const BadCase& c : BadCases()) {
    SCOPED_TRACE(c.name);
    TraceTally tally;
    const ParseOutcome outcome = ParseTraceBytes(c.input, kNoLimit, tally);
    EXPECT_FALSE(outcome.ok());
    EXPECT_FALSE(outcome.error.empty());
    EXPECT_EQ(outcome.format, c.format) << FormatName(outcome.format);
    if (!c.counted_before) {
      EXPECT_TRUE(IsEmpty(tally));
    }
  }
}

TEST(TraceParserErrorTest, ErrorsSayWhat) {
  const auto error_of = [](std::string_view input) {
    TraceTally tally;
    return ParseTraceBytes(input, kNoLimit, tally).error;
  };
  EXPECT_NE(error_of("{}").find("not a JSON array"), std::string::npos);
  EXPECT_NE(error_of("[]").find("empty"), std::string::npos);
  EXPECT_NE(error_of("[1]").find("element 0"), std::string::npos);
  EXPECT_NE(error_of("[{\"x\":1}]").find("Mode"), std::string::npos);
  EXPECT_NE(error_of("[{\"Mode\":5}]").find("wrong type"), std::string::npos);
  EXPECT_NE(error_of("[{\"Mode\":\"build\"}] x").find("invalid JSON"), std::string::npos);
  EXPECT_NE(error_of("[{\"Mode\":\"build\",").find("invalid JSON"), std::string::npos);
  const std::string deep =
      error_of("[{\"Mode\":\"build\",\"X\":" + std::string(10'000, '[') + "]}]");
  EXPECT_NE(deep.find("nested deeper than " + std::to_string(kMaxDepth)), std::string::npos)
      << deep;
}

TEST(TraceParserErrorTest, NestingIsBoundedAtMaxDepth) {
  // The root array is depth 1 and an element depth 2: a field may hold
  // kMaxDepth - 2 nested arrays, and no more.
  const auto graph_with_nesting = [](int arrays) {
    return "[{\"Mode\":\"build\",\"X\":" + std::string(static_cast<size_t>(arrays), '[') +
           std::string(static_cast<size_t>(arrays), ']') + "}]";
  };
  TraceTally tally;
  const ParseOutcome deepest = ParseTraceBytes(graph_with_nesting(kMaxDepth - 2), kNoLimit, tally);
  EXPECT_TRUE(deepest.ok()) << deepest.error;
  const ParseOutcome deeper = ParseTraceBytes(graph_with_nesting(kMaxDepth - 1), kNoLimit, tally);
  EXPECT_FALSE(deeper.ok());
  EXPECT_NE(deeper.error.find("nested"), std::string::npos) << deeper.error;
}

TEST(TraceParserErrorTest, ByteLimit) {
  const std::string graph =
      Array({Action(0, "build", At(1), At(2)), Action(1, "link", At(2), At(3))});
  {
    TraceTally tally;
    const ParseOutcome outcome = ParseTraceBytes(graph, graph.size(), tally);
    EXPECT_TRUE(outcome.ok()) << outcome.error;
    EXPECT_EQ(Mode(tally, "link").hits, 1u);
  }
  {
    TraceTally tally;
    const uint64_t limit = graph.size() - 1;
    const ParseOutcome outcome = ParseTraceBytes(graph, limit, tally);
    EXPECT_FALSE(outcome.ok());
    EXPECT_NE(outcome.error.find(std::to_string(limit)), std::string::npos) << outcome.error;
    EXPECT_EQ(outcome.error.find("decompressed"), std::string::npos) << outcome.error;
    EXPECT_TRUE(IsEmpty(tally));
  }
  {
    // Cut off in a later chunk of a large file: the limit beats the reader's
    // "unexpected end" it caused.
    const std::string large = LargeGraph(3000);
    TraceTally tally;
    const ParseOutcome outcome = ParseTraceBytes(large, 200'000, tally);
    EXPECT_FALSE(outcome.ok());
    EXPECT_NE(outcome.error.find("larger than 200000 bytes"), std::string::npos) << outcome.error;
    EXPECT_EQ(outcome.format, TraceFormat::kActionGraph);
  }
}

// --- gzip --------------------------------------------------------------------

TEST(TraceParserGzipTest, SameCountsAsPlain) {
  for (const std::string& plain :
       {LargeGraph(3000), ChromeTrace({Event("Executing action (build fmt)", 'B', "1000", 1),
                                       Event("Executing action (build fmt)", 'E', "3000", 1)})}) {
    TraceTally from_plain, from_gzip;
    const ParseOutcome plain_outcome = ParseTraceBytes(plain, kNoLimit, from_plain);
    ASSERT_TRUE(plain_outcome.ok()) << plain_outcome.error;
    const std::string compressed = Gzip(plain);
    ASSERT_LT(compressed.size(), plain.size());
    MemoryInput input(compressed);
    TraceStream stream(input, kNoLimit);
    const ParseOutcome gzip_outcome = ParseTrace(stream, from_gzip);
    ASSERT_TRUE(gzip_outcome.ok()) << gzip_outcome.error;
    EXPECT_TRUE(stream.compressed());
    EXPECT_EQ(gzip_outcome.format, plain_outcome.format);
    ExpectSameTally(from_gzip, from_plain);
  }
}

TEST(TraceParserGzipTest, ConcatenatedMembersAreOneStream) {
  const std::string plain = LargeGraph(900);
  TraceTally from_plain;
  ASSERT_TRUE(ParseTraceBytes(plain, kNoLimit, from_plain).ok());
  // Split in the middle of a token, and in a tiny first member.
  for (size_t split : {plain.size() / 2 + 7, size_t{1}}) {
    SCOPED_TRACE(split);
    const std::string two = Gzip(plain.substr(0, split)) + Gzip(plain.substr(split));
    TraceTally from_gzip;
    const ParseOutcome outcome = ParseTraceBytes(two, kNoLimit, from_gzip);
    ASSERT_TRUE(outcome.ok()) << outcome.error;
    ExpectSameTally(from_gzip, from_plain);
  }
  // Three members, the middle one empty.
  const std::string three = Gzip(plain.substr(0, 100)) + Gzip("") + Gzip(plain.substr(100));
  TraceTally from_three;
  const ParseOutcome outcome = ParseTraceBytes(three, kNoLimit, from_three);
  ASSERT_TRUE(outcome.ok()) << outcome.error;
  ExpectSameTally(from_three, from_plain);
}

TEST(TraceParserGzipTest, TruncatedGzipFails) {
  const std::string compressed = Gzip(LargeGraph(900));
  // Cut in the deflate data, in the trailer (the JSON itself may be whole),
  // and in the header.
  for (size_t keep :
       {compressed.size() / 2, compressed.size() - 4, compressed.size() - 1, size_t{5}}) {
    SCOPED_TRACE(keep);
    TraceTally tally;
    const ParseOutcome outcome = ParseTraceBytes(compressed.substr(0, keep), kNoLimit, tally);
    EXPECT_FALSE(outcome.ok());
    EXPECT_NE(outcome.error.find("gzip"), std::string::npos) << outcome.error;
  }
}

TEST(TraceParserGzipTest, CorruptGzipFails) {
  std::string compressed = Gzip(LargeGraph(900));
  for (size_t i = compressed.size() / 3; i < compressed.size() / 3 + 16; ++i) {
    compressed[i] = static_cast<char>(compressed[i] ^ 0x5a);
  }
  TraceTally tally;
  const ParseOutcome outcome = ParseTraceBytes(compressed, kNoLimit, tally);
  EXPECT_FALSE(outcome.ok());
  EXPECT_FALSE(outcome.error.empty());
}

TEST(TraceParserGzipTest, BombIsCutOffOnceDecompressed) {
  const std::string bomb = Gzip(std::string(10 << 20, ' '));
  ASSERT_LT(bomb.size(), size_t{100} << 10);
  constexpr uint64_t kLimit = 1 << 20;
  TraceTally tally;
  MemoryInput input(bomb);
  TraceStream stream(input, kLimit);
  const ParseOutcome outcome = ParseTrace(stream, tally);
  EXPECT_FALSE(outcome.ok());
  EXPECT_NE(outcome.error.find("decompressed"), std::string::npos) << outcome.error;
  EXPECT_NE(outcome.error.find(std::to_string(kLimit)), std::string::npos) << outcome.error;
  EXPECT_EQ(stream.error(), outcome.error);
  // It stopped at the limit rather than inflating all 10 MB.
  EXPECT_LE(stream.Tell(), kLimit + (64 << 10));
  EXPECT_TRUE(IsEmpty(tally));
}

TEST(TraceParserGzipTest, LimitAppliesToDecompressedBytes) {
  const std::string plain = LargeGraph(900);
  const std::string compressed = Gzip(plain);
  TraceTally tally;
  // Room for the compressed bytes, not for what they decompress to.
  const ParseOutcome outcome = ParseTraceBytes(compressed, compressed.size() * 2, tally);
  ASSERT_LT(compressed.size() * 2, plain.size());
  EXPECT_FALSE(outcome.ok());
  EXPECT_NE(outcome.error.find("decompressed"), std::string::npos) << outcome.error;
  TraceTally enough;
  EXPECT_TRUE(ParseTraceBytes(compressed, plain.size(), enough).ok());
}

}  // namespace
}  // namespace gocache::trace
