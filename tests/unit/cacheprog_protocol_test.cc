#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "base/base64.h"
#include "commands/cacheprog/protocol.h"

namespace gocache::helper {
namespace {

using Kind = ReadOutcome::Kind;

std::string B64(std::string_view bytes) {
  return base64::Encode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

std::string IdOf(char fill) { return B64(std::string(32, fill)); }

// A reader over `input`, handed out `chunk` bytes per read.
class Input {
 public:
  explicit Input(std::string input, size_t chunk = 1 << 20, uint64_t max_body = 1 << 20)
      : input_(std::move(input)),
        reader_(
            [this, chunk](char* buffer, size_t size) -> ssize_t {
              const size_t n = std::min({size, chunk, input_.size() - pos_});
              std::memcpy(buffer, input_.data() + pos_, n);
              pos_ += n;
              return static_cast<ssize_t>(n);
            },
            max_body) {}
  ReadOutcome Next() { return reader_.Next(); }

 private:
  std::string input_;
  size_t pos_ = 0;
  RequestReader reader_;
};

// A request line as the go command writes it: the JSON, then an empty line.
std::string Line(const std::string& json) { return json + "\n\n"; }

std::string Put(int id, const std::string& body, const char* output_field = "OutputID") {
  return Line("{\"ID\":" + std::to_string(id) + ",\"Command\":\"put\",\"ActionID\":\"" + IdOf('a') +
              "\",\"" + output_field + "\":\"" + IdOf('o') +
              "\",\"BodySize\":" + std::to_string(body.size()) + "}") +
         (body.empty() ? "" : "\"" + B64(body) + "\"\n");
}

TEST(RequestReaderTest, ReadsTheGoCommandsRequests) {
  Input input(Line("{\"ID\":1,\"Command\":\"get\",\"ActionID\":\"" + IdOf('a') + "\"}") +
              Put(2, "object file") + Put(3, "older go", "ObjectID") + Put(4, "") +
              Line("{\"ID\":5,\"Command\":\"close\"}"));
  auto got = input.Next();
  ASSERT_EQ(got.kind, Kind::kRequest) << got.error;
  EXPECT_EQ(got.request.id, 1);
  EXPECT_EQ(got.request.command, RequestCommand::kGet);
  buildcache::Id all_a;
  all_a.fill('a');
  EXPECT_EQ(got.request.action_id, all_a);

  got = input.Next();
  ASSERT_EQ(got.kind, Kind::kRequest) << got.error;
  EXPECT_EQ(got.request.command, RequestCommand::kPut);
  EXPECT_EQ(got.request.body, "object file");
  EXPECT_EQ(got.request.output_id[31], 'o');

  got = input.Next();
  ASSERT_EQ(got.kind, Kind::kRequest) << got.error;
  EXPECT_EQ(got.request.body, "older go");
  EXPECT_EQ(got.request.output_id[0], 'o');

  got = input.Next();
  ASSERT_EQ(got.kind, Kind::kRequest) << got.error;
  EXPECT_EQ(got.request.id, 4);
  EXPECT_EQ(got.request.body, "");

  got = input.Next();
  ASSERT_EQ(got.kind, Kind::kRequest);
  EXPECT_EQ(got.request.command, RequestCommand::kClose);
  EXPECT_EQ(input.Next().kind, Kind::kEnd);
}

TEST(RequestReaderTest, ReadsABodyThatArrivesAByteAtATime) {
  std::string body(100'000, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + i / 13);
  Input input(Put(9, body) + Put(10, "next"), 1);
  auto got = input.Next();
  ASSERT_EQ(got.kind, Kind::kRequest) << got.error;
  EXPECT_EQ(got.request.body, body);
  got = input.Next();
  ASSERT_EQ(got.kind, Kind::kRequest) << got.error;
  EXPECT_EQ(got.request.body, "next");
}

// Each bad request is answered with an error for its ID (0 where it has
// none), and the reader keeps its place: the get after it is read intact.
struct BadCase {
  const char* name;
  std::string input;
  int64_t id;
  const char* error;
};

TEST(RequestReaderTest, AnswersEveryBadRequestAndReadsTheNextOne) {
  const std::string action = IdOf('a'), output = IdOf('o');
  const std::string put_head = "{\"ID\":7,\"Command\":\"put\",\"ActionID\":\"" + action +
                               "\",\"OutputID\":\"" + output + "\",\"BodySize\":";
  const std::vector<BadCase> cases = {
      {"not JSON", Line("{\"ID\":7,\"Command\":"), 0, "not a JSON object"},
      {"not an object", Line("[7]"), 0, "not a JSON object"},
      {"no ID", Line("{\"Command\":\"get\"}"), 0, "without an integer ID"},
      {"ID not an integer", Line("{\"ID\":7.5,\"Command\":\"get\"}"), 0, "without an integer ID"},
      {"unknown command", Line("{\"ID\":7,\"Command\":\"delete\"}"), 7, "unknown command 'delete'"},
      {"no command", Line("{\"ID\":7}"), 7, "unknown command ''"},
      {"no ActionID", Line("{\"ID\":7,\"Command\":\"get\"}"), 7, "no ActionID"},
      {"ActionID not base64", Line("{\"ID\":7,\"Command\":\"get\",\"ActionID\":\"!!!!\"}"), 7,
       "ActionID is not base64"},
      {"ActionID of 31 bytes",
       Line("{\"ID\":7,\"Command\":\"get\",\"ActionID\":\"" + B64(std::string(31, 'a')) + "\"}"), 7,
       "ActionID is not base64 of 32 bytes"},
      {"ActionID a number", Line("{\"ID\":7,\"Command\":\"get\",\"ActionID\":12}"), 7,
       "ActionID is not base64"},
      {"put without OutputID",
       Line("{\"ID\":7,\"Command\":\"put\",\"ActionID\":\"" + action + "\",\"BodySize\":3}") +
           "\"" + B64("abc") + "\"\n",
       7, "no OutputID"},
      {"negative BodySize", Line(put_head + "-1}"), 7, "BodySize is not a byte count"},
      {"body shorter than BodySize", Line(put_head + "10}") + "\"" + B64("abc") + "\"\n", 7,
       "the body has 3 bytes, BodySize says 10"},
      {"body longer than BodySize", Line(put_head + "2}") + "\"" + B64("abc") + "\"\n", 7,
       "the body has 3 bytes, BodySize says 2"},
      {"1 TiB BodySize", Line(put_head + "1099511627776}") + "\"" + B64("abc") + "\"\n", 7,
       "BodySize 1099511627776 is more than this helper stores"},
      {"body not base64", Line(put_head + "3}") + "\"YW*j\"\n", 7, "not standard base64"},
      {"body not padded", Line(put_head + "1}") + "\"YQ\"\n", 7, "not standard base64"},
      {"body not a string", Line(put_head + "3}") + "\"YWJj\n", 7, "not a JSON string"},
      {"text after the body", Line(put_head + "3}") + "\"YWJj\" x\n", 7, "text after the body"},
      {"no body", Line(put_head + "3}"), 7, "BodySize is 3 but no body follows"},
      {"a line too long", Line(std::string(kMaxRequestLine + 10, ' ')), 0, "longer than"},
  };
  const std::string next_get =
      Line("{\"ID\":8,\"Command\":\"get\",\"ActionID\":\"" + action + "\"}");
  for (const auto& c : cases) {
    for (const size_t chunk : {size_t{1}, size_t{7}, size_t{1} << 20}) {
      Input input(c.input + next_get, chunk);
      const auto bad = input.Next();
      EXPECT_EQ(bad.kind, Kind::kInvalid) << c.name;
      EXPECT_EQ(bad.request.id, c.id) << c.name;
      EXPECT_NE(bad.error.find(c.error), std::string::npos) << c.name << ": " << bad.error;
      EXPECT_EQ(bad.request.body, "") << c.name;
      const auto next = input.Next();
      ASSERT_EQ(next.kind, Kind::kRequest) << c.name << " chunk " << chunk << ": " << next.error;
      EXPECT_EQ(next.request.id, 8) << c.name;
      EXPECT_EQ(input.Next().kind, Kind::kEnd) << c.name;
    }
  }
}

TEST(RequestReaderTest, AHugeBodyCostsNoMemoryPastTheLimit) {
  // 4 MiB of body against a 1 MiB limit: refused, read past, never kept.
  const std::string body(4 << 20, 'z');
  Input input(Put(3, body) + Line("{\"ID\":4,\"Command\":\"close\"}"), 1 << 16, 1 << 20);
  const auto bad = input.Next();
  EXPECT_EQ(bad.kind, Kind::kInvalid);
  EXPECT_NE(bad.error.find("is more than this helper stores (1048576 bytes)"), std::string::npos)
      << bad.error;
  EXPECT_EQ(input.Next().request.command, RequestCommand::kClose);
}

TEST(RequestReaderTest, TheEndOfInputInsideARequestEndsReading) {
  const std::string put = Put(3, "some body");
  for (size_t cut = 1; cut < put.size(); ++cut) {
    Input input(put.substr(0, cut));
    const auto got = input.Next();
    if (cut == put.size() - 1) {
      // Only the newline after a complete body is missing: a request.
      EXPECT_EQ(got.kind, Kind::kRequest) << got.error;
      continue;
    }
    // Cut inside the JSON line: that line is not JSON. Cut after it: the
    // body is missing or incomplete.
    if (got.kind == Kind::kInvalid) {
      EXPECT_EQ(got.request.id, 0) << cut;
      EXPECT_EQ(input.Next().kind, Kind::kEnd) << cut;
    } else {
      EXPECT_EQ(got.kind, Kind::kEnd) << cut;
      EXPECT_NE(got.error.find("request 3"), std::string::npos) << cut << ": " << got.error;
    }
  }
}

TEST(FormatResponseTest, WritesWhatTheGoCommandDecodes) {
  EXPECT_EQ(FormatResponse(Response{.id = 0, .known_commands = true}),
            "{\"ID\":0,\"KnownCommands\":[\"get\",\"put\",\"close\"]}\n");
  EXPECT_EQ(FormatResponse(Response{.id = 4, .miss = true}), "{\"ID\":4,\"Miss\":true}\n");
  buildcache::Id output;
  output.fill(0xff);
  EXPECT_EQ(FormatResponse(Response{.id = 5,
                                    .output_id = output,
                                    .size = 12,
                                    .time_ns = 1'700'000'000'500'000'000,
                                    .disk_path = "/c/ff/x-d"}),
            "{\"ID\":5,\"OutputID\":\"" + B64(std::string(32, '\xff')) +
                "\",\"Size\":12,\"Time\":\"2023-11-14T22:13:20.5Z\",\"DiskPath\":\"/c/ff/x-d\"}\n");
  EXPECT_EQ(FormatResponse(Response{.id = 6, .err = "a \"quoted\"\nerror"}),
            "{\"ID\":6,\"Err\":\"a \\\"quoted\\\"\\nerror\"}\n");
}

TEST(FormatResponseTest, TimesAreRfc3339WithNanosecondsAsGoWritesThem) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(1'700'000'000'000'000'001), "2023-11-14T22:13:20.000000001Z");
  EXPECT_EQ(FormatTime(1'700'000'000'120'000'000), "2023-11-14T22:13:20.12Z");
}

}  // namespace
}  // namespace gocache::helper
