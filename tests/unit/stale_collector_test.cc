#include "collectors/stale/stale_collector.h"

#include <gtest/gtest.h>

#include "base/flags.h"
#include "collectors/stale/go_list_parser.h"

namespace gocache::stale {
namespace {

TEST(NormalizeReasonTest, KnownReasonsUpToTheColon) {
  EXPECT_EQ(NormalizeReason("stale dependency: example.com/m/leaf"), "stale dependency");
  EXPECT_EQ(NormalizeReason("build ID mismatch"), "build ID mismatch");
  EXPECT_EQ(NormalizeReason("not installed but available in build cache"),
            "not installed but available in build cache");
  EXPECT_EQ(NormalizeReason("missing or invalid package binary"),
            "missing or invalid package binary");
  EXPECT_EQ(NormalizeReason("build -a flag in use"), "build -a flag in use");
}

TEST(NormalizeReasonTest, AnythingElseIsOther) {
  EXPECT_EQ(NormalizeReason(""), "other");
  EXPECT_EQ(NormalizeReason("stale dependency"), "stale dependency");
  EXPECT_EQ(NormalizeReason("Stale Dependency: x"), "other");
  EXPECT_EQ(NormalizeReason("newer source file /tmp/x.go"), "other");
  EXPECT_EQ(NormalizeReason("build ID mismatch "), "other");
}

TEST(ParseListOutputTest, CountsPackagesAndStaleOnesByReason) {
  std::string error;
  const auto summary = ParseListOutput(
      "fmt\tfalse\t\n"
      "example.com/m/leaf\ttrue\tbuild ID mismatch\n"
      "example.com/m/mid\ttrue\tstale dependency: example.com/m/leaf\n"
      "example.com/m/app\ttrue\tstale dependency: example.com/m/leaf\n"
      "example.com/m/cmd\ttrue\tnot installed but available in build cache\n"
      "example.com/m/odd\ttrue\tsomething new: x\n",
      error);
  ASSERT_TRUE(summary) << error;
  EXPECT_EQ(summary->packages, 6u);
  const std::map<std::string, size_t> want = {{"build ID mismatch", 1},
                                              {"stale dependency", 2},
                                              {"not installed but available in build cache", 1},
                                              {"other", 1}};
  EXPECT_EQ(summary->stale_by_reason, want);
}

TEST(ParseListOutputTest, EmptyOutputListsNothing) {
  std::string error;
  const auto summary = ParseListOutput("", error);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->packages, 0u);
  EXPECT_TRUE(summary->stale_by_reason.empty());
}

TEST(ParseListOutputTest, GarbageIsRejectedNamingTheLine) {
  for (const char* garbage :
       {"fmt false\n", "fmt\tmaybe\t\n", "\ttrue\tx\n", "fmt\n", "fmt\tfalse\t\n\x01\x02\x03\n"}) {
    std::string error;
    EXPECT_FALSE(ParseListOutput(garbage, error)) << garbage;
    EXPECT_NE(error.find("line"), std::string::npos) << error;
  }
}

TEST(ParseListOutputTest, APatternThatFailedToLoadFailsTheList) {
  std::string error;
  EXPECT_FALSE(ParseListOutput("./...\tfalse\t\terror\n", error));
  EXPECT_NE(error.find("./..."), std::string::npos) << error;
  // A package of the module with an error of its own is still counted.
  const auto summary =
      ParseListOutput("fmt\tfalse\t\t\nexample.com/m/bad\ttrue\tbuild ID mismatch\terror\n", error);
  ASSERT_TRUE(summary) << error;
  EXPECT_EQ(summary->packages, 2u);
}

TEST(ListParserTest, LinesSplitAcrossChunksCountOnce) {
  const std::string output =
      "fmt\tfalse\t\t\nexample.com/m/leaf\ttrue\tbuild ID mismatch\t\n"
      "example.com/m/app\ttrue\tstale dependency: example.com/m/leaf\t";
  for (size_t chunk = 1; chunk <= output.size(); chunk += 7) {
    ListParser parser;
    for (size_t at = 0; at < output.size(); at += chunk) {
      ASSERT_TRUE(parser.Feed(std::string_view(output).substr(at, chunk))) << parser.error();
    }
    ASSERT_TRUE(parser.Finish()) << parser.error();
    EXPECT_EQ(parser.summary().packages, 3u) << "chunk " << chunk;
    EXPECT_EQ(parser.summary().stale_by_reason.at("stale dependency"), 1u);
  }
}

TEST(ListParserTest, AnEndlessLineIsRejected) {
  ListParser parser;
  const std::string blob(4096, 'x');
  bool ok = true;
  for (int i = 0; i < 64 && ok; ++i) ok = parser.Feed(blob);
  EXPECT_FALSE(ok);
  EXPECT_NE(parser.error().find("too long"), std::string::npos) << parser.error();
}

// Found by fuzz_go_list: the bound held only for a line split over chunks.
TEST(ListParserTest, ALongLineIsRejectedHoweverItArrives) {
  const std::string output =
      "example.com/a\tfalse\t\t\n" + std::string(200'000, 'x') + "\tfalse\t\t\n";
  std::string error;
  EXPECT_FALSE(ParseListOutput(output, error));
  EXPECT_NE(error.find("line 2 is too long"), std::string::npos) << error;
  for (size_t chunk : {size_t{7}, size_t{65'536}, size_t{150'000}}) {
    ListParser parser;
    bool ok = true;
    for (size_t at = 0; at < output.size() && ok; at += chunk) {
      ok = parser.Feed(std::string_view(output).substr(at, chunk));
    }
    EXPECT_FALSE(ok && parser.Finish()) << "chunk " << chunk;
    EXPECT_NE(parser.error().find("line 2 is too long"), std::string::npos) << parser.error();
  }
}

TEST(StaleInfoTest, RegistersItsFlagsAndParsesThemOnce) {
  const auto info = Info();
  EXPECT_EQ(info.name, "stale");
  EXPECT_EQ(info.scan_depth, ScanDepth::kNone);
  FlagSet options("test", "");
  info.add_flags(options);
  const auto parse = [&](std::vector<const char*> argv) {
    argv.insert(argv.begin(), "test");
    std::string parse_error;
    auto parsed = options.Parse(static_cast<int>(argv.size()), argv.data(), parse_error);
    EXPECT_TRUE(parsed.has_value()) << parse_error;
    return parsed ? std::move(*parsed) : ParsedFlags::Empty();
  };
  // The usage error, or "" when the flags configure the collector.
  const auto error = [&](std::vector<const char*> argv) {
    const auto configured = info.configure(parse(std::move(argv)));
    const auto* message = std::get_if<std::string>(&configured);
    return message ? *message : "";
  };
  EXPECT_EQ(error({"--stale.target=linux/arm64"}), "");
  EXPECT_NE(error({"--stale.target=linux"}).find("--stale.target"), std::string::npos);
  EXPECT_NE(error({"--stale.target=Linux/AMD64"}).find("--stale.target"), std::string::npos);
  EXPECT_NE(error({"--stale.interval=soon"}).find("--stale.interval"), std::string::npos);
  EXPECT_NE(error({"--stale.timeout=0"}).find("--stale.timeout"), std::string::npos);
  EXPECT_EQ(error({"--stale.module="}), "--stale.module must not be empty");

  const auto configured = info.configure(parse({"--stale.interval=90s"}));
  ASSERT_TRUE(std::holds_alternative<ConfiguredCollector>(configured));
  EXPECT_EQ(std::get<ConfiguredCollector>(configured).schedule.interval,
            std::chrono::milliseconds(90000));
  // Without a module it has nothing to check.
  EXPECT_FALSE(std::get<ConfiguredCollector>(configured).make);
  const auto with_module = info.configure(parse({"--stale.module=/src"}));
  ASSERT_TRUE(std::holds_alternative<ConfiguredCollector>(with_module));
  EXPECT_TRUE(std::get<ConfiguredCollector>(with_module).make);
}

}  // namespace
}  // namespace gocache::stale
