// Fuzzes the GOCACHEPROG request reader (helper::RequestReader), which
// reads whatever arrives on the helper's stdin, and the response writer.
// The first input byte sets the size of the reads the input arrives in.
//
// Checks: reading ends (every outcome but the last consumes input); a
// request returned is complete (a body is exactly what the input encoded,
// within the limit); an error answer is JSON that carries the error back
// intact; base64 decodes what it encodes.
#include <rapidjson/document.h>

#include <algorithm>
#include <cstring>

#include "base/base64.h"
#include "commands/cacheprog/protocol.h"
#include "fuzz/fuzz_check.h"

namespace cp = gocache::helper;

namespace {

constexpr uint64_t kMaxBody = 4096;

void CheckAnswer(const cp::Response& response) {
  const std::string line = cp::FormatResponse(response);
  FUZZ_CHECK(!line.empty() && line.back() == '\n');
  FUZZ_CHECK(std::count(line.begin(), line.end(), '\n') == 1);
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size() - 1);
  FUZZ_CHECK(!doc.HasParseError() && doc.IsObject());
  FUZZ_CHECK(doc["ID"].IsInt64() && doc["ID"].GetInt64() == response.id);
  if (!response.err.empty()) {
    FUZZ_CHECK(doc["Err"].IsString());
    FUZZ_CHECK(std::string(doc["Err"].GetString(), doc["Err"].GetStringLength()) == response.err);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gocache::fuzz::Guarded([&] {
    if (size == 0) return;
    const size_t chunk = 1 + data[0] % 64;
    const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
    size_t pos = 0;
    cp::RequestReader reader(
        [&](char* buffer, size_t want) -> ssize_t {
          const size_t n = std::min({want, chunk, input.size() - pos});
          std::memcpy(buffer, input.data() + pos, n);
          pos += n;
          return static_cast<ssize_t>(n);
        },
        kMaxBody);
    size_t outcomes = 0;
    for (;;) {
      const cp::ReadOutcome next = reader.Next();
      FUZZ_CHECK(++outcomes <= input.size() + 1);
      if (next.kind == cp::ReadOutcome::Kind::kEnd) break;
      if (next.kind == cp::ReadOutcome::Kind::kInvalid) {
        FUZZ_CHECK(!next.error.empty());
        FUZZ_CHECK(next.request.body.empty());
        CheckAnswer(cp::Response{.id = next.request.id, .err = next.error});
        continue;
      }
      const cp::Request& request = next.request;
      FUZZ_CHECK(request.body.size() <= kMaxBody);
      if (!request.body.empty()) {
        FUZZ_CHECK(request.command == cp::RequestCommand::kPut);
        const std::string encoded = gocache::base64::Encode(
            {reinterpret_cast<const uint8_t*>(request.body.data()), request.body.size()});
        FUZZ_CHECK(input.find('"' + encoded + '"') != std::string::npos);
      }
      CheckAnswer(cp::Response{.id = request.id, .miss = true});
    }
    const std::span<const uint8_t> bytes(data, size);
    const auto decoded = gocache::base64::Decode(gocache::base64::Encode(bytes));
    FUZZ_CHECK(decoded && decoded->size() == size && std::memcmp(decoded->data(), data, size) == 0);
  });
}
