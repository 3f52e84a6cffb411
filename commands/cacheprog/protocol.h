// The GOCACHEPROG protocol, as the go command speaks it (cmd/go/internal/
// cache/prog.go): JSON lines on the helper's stdin and stdout.
//
// The go command writes each request as a JSON object on a line of its own
// followed by an empty line; a put with a BodySize above 0 is followed by
// its body, a JSON string of standard base64 on a line of its own. The
// helper first writes {"ID":0,"KnownCommands":[...]}, then answers each
// request by ID, in any order.
//
// The reader trusts nothing: every request it returns is complete and
// valid, and anything else becomes an error to answer with, costing no
// memory past the body limit and never losing its place in the stream.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cache/build_cache.h"

namespace gocache::helper {

enum class RequestCommand { kGet, kPut, kClose };

std::string_view CommandName(RequestCommand command);

struct Request {
  int64_t id = 0;
  RequestCommand command = RequestCommand::kGet;
  buildcache::Id action_id{};  // get and put
  buildcache::Id output_id{};  // put: "OutputID", or "ObjectID" before go 1.24
  std::string body;            // put
  uint64_t body_size = 0;      // put: its BodySize, whether or not the body was kept
};

struct ReadOutcome {
  enum class Kind {
    kRequest,  // `request` is complete and valid
    kInvalid,  // answer request.id (0 where none could be read) with `error`
    kEnd,      // the input ended; `error` says how if not between requests
  };
  Kind kind = Kind::kEnd;
  Request request;
  bool command_known = false;  // request.command was read (a get or a put)
  std::string error;
};

// Longest request line read (the go command's are about 200 bytes).
constexpr size_t kMaxRequestLine = 64 * 1024;

class RequestReader {
 public:
  // read(2)-like: bytes read into the buffer, 0 at the end, -1 on error.
  using Source = std::function<ssize_t(char* buffer, size_t size)>;

  // Put bodies larger than `max_body_size` are refused (and read past).
  RequestReader(Source source, uint64_t max_body_size);

  ReadOutcome Next();

 private:
  bool Fill();
  // The next line without its '\n'; none at the end of input. A line longer
  // than kMaxRequestLine is read past and returned empty with `too_long`.
  std::optional<std::string> ReadLine(bool& too_long);
  // Reads the body line of a put whose request said `body_size`.
  ReadOutcome ReadBody(ReadOutcome put, int64_t body_size);
  bool SkipToEndOfLine();
  // The index of the first `c` in [from, end_), or npos.
  size_t Find(char c, size_t from) const;

  Source source_;
  uint64_t max_body_size_;
  std::string buffer_;  // bytes read: [pos_, end_) are not consumed yet
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
};

struct Response {
  int64_t id = 0;
  std::string err = {};
  bool known_commands = false;  // the first message: get, put and close
  bool miss = false;
  std::optional<buildcache::Id> output_id = {};
  int64_t size = 0;
  std::optional<int64_t> time_ns = {};
  std::string disk_path = {};
};

// One line of JSON, '\n' included, as the go command's decoder reads it
// (fields it would leave empty are left out).
std::string FormatResponse(const Response& response);

// A time as encoding/json writes a time.Time: RFC 3339 with nanoseconds,
// trailing zeros of the fraction dropped, in UTC.
std::string FormatTime(int64_t unix_ns);

}  // namespace gocache::helper
