#include "base/log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gocache::log {
namespace {

constexpr std::string_view kTs = "2024-05-06T07:08:09.123Z";

TEST(RenderTest, LogfmtSimple) {
  EXPECT_EQ(Render(Format::kLogfmt, kTs, Level::kInfo, "listening",
                   {{"address", ":9959"}, {"path", "/metrics"}}),
            "ts=2024-05-06T07:08:09.123Z level=info msg=listening address=:9959 path=/metrics");
}

TEST(RenderTest, LogfmtLevels) {
  EXPECT_NE(Render(Format::kLogfmt, kTs, Level::kDebug, "m", {}).find(" level=debug "),
            std::string::npos);
  EXPECT_NE(Render(Format::kLogfmt, kTs, Level::kWarn, "m", {}).find(" level=warn "),
            std::string::npos);
  EXPECT_NE(Render(Format::kLogfmt, kTs, Level::kError, "m", {}).find(" level=error "),
            std::string::npos);
}

TEST(RenderTest, LogfmtQuoting) {
  EXPECT_EQ(Render(Format::kLogfmt, kTs, Level::kWarn, "collector failed",
                   {{"collector", "inode"},
                    {"err", "statvfs /tmp/my cache: No such file"},
                    {"expr", "a=b"},
                    {"quote", "say \"hi\""},
                    {"multi", "line1\nline2"},
                    {"tab", "a\tb"},
                    {"empty", ""},
                    {"backslash", "C:\\dir"}}),
            "ts=2024-05-06T07:08:09.123Z level=warn msg=\"collector failed\" collector=inode "
            "err=\"statvfs /tmp/my cache: No such file\" expr=\"a=b\" quote=\"say \\\"hi\\\"\" "
            "multi=\"line1\\nline2\" tab=\"a\\tb\" empty=\"\" backslash=C:\\dir");
}

TEST(RenderTest, LogfmtOneLineWhateverTheInput) {
  const std::string out =
      Render(Format::kLogfmt, kTs, Level::kError, "bad\nmsg", {{"k", "a\r\nb\x01"}});
  EXPECT_EQ(out.find('\n'), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << out;
  EXPECT_EQ(out.find('\x01'), std::string::npos) << out;
  EXPECT_NE(out.find("msg=\"bad\\nmsg\""), std::string::npos) << out;
  EXPECT_NE(out.find("k=\"a\\r\\nb\\u0001\""), std::string::npos) << out;
}

TEST(RenderTest, Json) {
  EXPECT_EQ(Render(Format::kJson, kTs, Level::kInfo, "listening", {{"address", ":9959"}}),
            "{\"ts\":\"2024-05-06T07:08:09.123Z\",\"level\":\"info\",\"msg\":\"listening\","
            "\"address\":\":9959\"}");
  EXPECT_EQ(Render(Format::kJson, kTs, Level::kError, "m", {}),
            "{\"ts\":\"2024-05-06T07:08:09.123Z\",\"level\":\"error\",\"msg\":\"m\"}");
}

// Numbers and booleans are JSON numbers and booleans, not strings; logfmt
// writes them as they read.
TEST(RenderTest, JsonNumbersAndBooleansAreBare) {
  EXPECT_EQ(Render(Format::kJson, kTs, Level::kInfo, "listening",
                   {{"ports", 19959},
                    {"tls", false},
                    {"basic_auth", true},
                    {"bytes", uint64_t{18446744073709551615u}},
                    {"ratio", 0.25},
                    {"neg", -3},
                    {"text", "19959"}}),
            "{\"ts\":\"2024-05-06T07:08:09.123Z\",\"level\":\"info\",\"msg\":\"listening\","
            "\"ports\":19959,\"tls\":false,\"basic_auth\":true,"
            "\"bytes\":18446744073709551615,\"ratio\":0.25,\"neg\":-3,\"text\":\"19959\"}");
  EXPECT_EQ(Render(Format::kLogfmt, kTs, Level::kInfo, "m", {{"ports", 19959}, {"tls", false}}),
            "ts=2024-05-06T07:08:09.123Z level=info msg=m ports=19959 tls=false");
  // A copy of a value keeps its digits.
  const std::vector<Field> fields = {{"n", 12345}};
  const Field copy = fields[0];
  EXPECT_EQ(copy.second.text(), "12345");
}

TEST(RenderTest, JsonEscaping) {
  EXPECT_EQ(Render(Format::kJson, kTs, Level::kWarn, "say \"hi\"",
                   {{"path", "C:\\go\\cache"},
                    {"ctl", std::string_view("a\nb\tc\rd\x01\x1f\x7f", 10)},
                    {"k\"ey", "v"},
                    {"space", "a b=c"},
                    {"utf8", "caf\xc3\xa9"}}),
            "{\"ts\":\"2024-05-06T07:08:09.123Z\",\"level\":\"warn\",\"msg\":\"say \\\"hi\\\"\","
            "\"path\":\"C:\\\\go\\\\cache\",\"ctl\":\"a\\nb\\tc\\rd\\u0001\\u001f\\u007f\","
            "\"k\\\"ey\":\"v\",\"space\":\"a b=c\",\"utf8\":\"caf\xc3\xa9\"}");
}

TEST(ParseLevelTest, Values) {
  Level level = Level::kError;
  ASSERT_TRUE(ParseLevel("debug", level));
  EXPECT_EQ(level, Level::kDebug);
  ASSERT_TRUE(ParseLevel("info", level));
  EXPECT_EQ(level, Level::kInfo);
  ASSERT_TRUE(ParseLevel("warn", level));
  EXPECT_EQ(level, Level::kWarn);
  ASSERT_TRUE(ParseLevel("error", level));
  EXPECT_EQ(level, Level::kError);

  for (const char* bad : {"", "INFO", "Info", "warning", "err", "trace", "fatal", " info"}) {
    level = Level::kWarn;
    EXPECT_FALSE(ParseLevel(bad, level)) << bad;
    EXPECT_EQ(level, Level::kWarn) << bad;  // untouched on failure
  }
}

TEST(ParseFormatTest, Values) {
  Format format = Format::kJson;
  ASSERT_TRUE(ParseFormat("logfmt", format));
  EXPECT_EQ(format, Format::kLogfmt);
  ASSERT_TRUE(ParseFormat("json", format));
  EXPECT_EQ(format, Format::kJson);
  for (const char* bad : {"", "JSON", "text", "logfmt ", "console"}) {
    format = Format::kJson;
    EXPECT_FALSE(ParseFormat(bad, format)) << bad;
    EXPECT_EQ(format, Format::kJson) << bad;
  }
}

}  // namespace
}  // namespace gocache::log
