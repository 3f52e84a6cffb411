#include "commands/cacheprog/protocol.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>
#include <ctime>

#include "base/base64.h"

namespace gocache::helper {
namespace {

constexpr size_t kReadChunk = 64 * 1024;

using Kind = ReadOutcome::Kind;

ReadOutcome Invalid(int64_t id, std::string error) {
  ReadOutcome outcome;
  outcome.kind = Kind::kInvalid;
  outcome.request.id = id;
  outcome.error = std::move(error);
  return outcome;
}

// A get or put that turned out invalid: it keeps its ID and command.
ReadOutcome Fail(ReadOutcome outcome, std::string error) {
  outcome.kind = Kind::kInvalid;
  outcome.request.body.clear();
  outcome.command_known = true;
  outcome.error = std::move(error);
  return outcome;
}

ReadOutcome End(std::string error) {
  ReadOutcome outcome;
  outcome.kind = Kind::kEnd;
  outcome.error = std::move(error);
  return outcome;
}

// A short, printable excerpt of a line for an error message.
std::string Excerpt(std::string_view line) {
  constexpr size_t kMax = 60;
  std::string out;
  for (char c : line.substr(0, kMax)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (line.size() > kMax) out += "...";
  return out;
}

// An ID field: standard base64 of exactly 32 bytes.
bool ReadId(const rapidjson::Value& request, const char* field, buildcache::Id& id,
            std::string& error) {
  const auto member = request.FindMember(field);
  if (member == request.MemberEnd() || member->value.IsNull()) {
    error = std::string("no ") + field;
    return false;
  }
  std::optional<std::string> bytes;
  if (member->value.IsString()) {
    bytes = base64::Decode(
        std::string_view(member->value.GetString(), member->value.GetStringLength()));
  }
  if (!bytes || bytes->size() != id.size()) {
    error = std::string(field) + " is not base64 of " + std::to_string(id.size()) + " bytes";
    return false;
  }
  std::memcpy(id.data(), bytes->data(), id.size());
  return true;
}

}  // namespace

std::string_view CommandName(RequestCommand command) {
  switch (command) {
    case RequestCommand::kGet:
      return "get";
    case RequestCommand::kPut:
      return "put";
    case RequestCommand::kClose:
      return "close";
  }
  return "get";
}

RequestReader::RequestReader(Source source, uint64_t max_body_size)
    : source_(std::move(source)), max_body_size_(max_body_size) {}

bool RequestReader::Fill() {
  if (eof_) return false;
  // The unread part to the front, then room for one more read; the buffer
  // grows only while a line is longer than it (up to kMaxRequestLine).
  if (pos_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (buffer_.size() < end_ + kReadChunk) buffer_.resize(end_ + kReadChunk);
  ssize_t n;
  do {
    n = source_(buffer_.data() + end_, kReadChunk);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<size_t>(n);
  return true;
}

size_t RequestReader::Find(char c, size_t from) const {
  const void* at = std::memchr(buffer_.data() + from, c, end_ - from);
  return at ? static_cast<size_t>(static_cast<const char*>(at) - buffer_.data())
            : std::string::npos;
}

bool RequestReader::SkipToEndOfLine() {
  for (;;) {
    const size_t newline = Find('\n', pos_);
    if (newline != std::string::npos) {
      pos_ = newline + 1;
      return true;
    }
    pos_ = end_;
    if (!Fill()) return false;
  }
}

std::optional<std::string> RequestReader::ReadLine(bool& too_long) {
  too_long = false;
  size_t searched = pos_;
  for (;;) {
    const size_t newline = Find('\n', searched);
    if (newline != std::string::npos) {
      std::string line;
      if (newline - pos_ > kMaxRequestLine) {
        too_long = true;
      } else {
        line = buffer_.substr(pos_, newline - pos_);
      }
      pos_ = newline + 1;
      return line;
    }
    if (end_ - pos_ > kMaxRequestLine) {
      too_long = true;
      if (!SkipToEndOfLine()) return std::nullopt;
      return std::string();
    }
    searched = end_ - pos_;  // Fill() moves the unread part to the front
    if (!Fill()) {
      if (pos_ == end_) return std::nullopt;
      // A last line without its newline.
      std::string line = buffer_.substr(pos_, end_ - pos_);
      pos_ = end_;
      return line;
    }
  }
}

ReadOutcome RequestReader::ReadBody(ReadOutcome put, int64_t body_size) {
  const std::string id = std::to_string(put.request.id);
  // The empty line after the request, then the body.
  for (;;) {
    if (pos_ == end_ && !Fill()) {
      return End("the input ended before the body of request " + id);
    }
    if (buffer_[pos_] != '\n') break;
    ++pos_;
  }
  if (buffer_[pos_] != '"') {
    // Not a body: left to be read as the next request.
    return Fail(std::move(put),
                "BodySize is " + std::to_string(body_size) + " but no body follows");
  }
  ++pos_;
  const bool too_large = static_cast<uint64_t>(body_size) > max_body_size_;
  base64::StreamDecoder decoder(too_large ? 0 : static_cast<uint64_t>(body_size));
  for (bool closed = false; !closed;) {
    if (pos_ == end_ && !Fill()) {
      return End("the input ended inside the body of request " + id);
    }
    const char* begin = buffer_.data() + pos_;
    const size_t available = end_ - pos_;
    const char* quote = static_cast<const char*>(std::memchr(begin, '"', available));
    const char* newline = static_cast<const char*>(std::memchr(begin, '\n', available));
    const char* end = quote ? quote : begin + available;
    if (newline && newline < end) {
      pos_ += static_cast<size_t>(newline - begin) + 1;
      return Fail(std::move(put), "the body is not a JSON string on one line");
    }
    decoder.Feed(std::string_view(begin, static_cast<size_t>(end - begin)));
    pos_ += static_cast<size_t>(end - begin);
    if (quote) {
      ++pos_;
      closed = true;
    }
  }
  // The body's line ends right after the closing quote.
  if (pos_ < end_ || Fill()) {
    if (buffer_[pos_] == '\n') {
      ++pos_;
    } else {
      SkipToEndOfLine();
      return Fail(std::move(put), "text after the body");
    }
  }
  if (!decoder.Finish()) return Fail(std::move(put), "the body is not standard base64");
  if (too_large) {
    return Fail(std::move(put), "BodySize " + std::to_string(body_size) +
                                    " is more than this helper stores (" +
                                    std::to_string(max_body_size_) + " bytes)");
  }
  if (decoder.decoded_size() != static_cast<uint64_t>(body_size)) {
    return Fail(std::move(put), "the body has " + std::to_string(decoder.decoded_size()) +
                                    " bytes, BodySize says " + std::to_string(body_size));
  }
  if (put.kind == Kind::kRequest) put.request.body = std::move(decoder.bytes());
  return put;
}

ReadOutcome RequestReader::Next() {
  for (;;) {
    bool too_long = false;
    const auto line = ReadLine(too_long);
    if (!line) return End("");
    if (too_long) {
      return Invalid(0, "a request line longer than " + std::to_string(kMaxRequestLine) + " bytes");
    }
    if (line->empty()) continue;  // the empty line after each request

    rapidjson::Document doc;
    doc.Parse(line->data(), line->size());
    if (doc.HasParseError() || !doc.IsObject()) {
      return Invalid(0, "not a JSON object: " + Excerpt(*line));
    }
    const auto id = doc.FindMember("ID");
    if (id == doc.MemberEnd() || !id->value.IsInt64()) {
      return Invalid(0, "a request without an integer ID: " + Excerpt(*line));
    }
    ReadOutcome outcome;
    outcome.kind = Kind::kRequest;
    Request& request = outcome.request;
    request.id = id->value.GetInt64();
    const auto command = doc.FindMember("Command");
    const std::string_view name =
        command != doc.MemberEnd() && command->value.IsString()
            ? std::string_view(command->value.GetString(), command->value.GetStringLength())
            : std::string_view();
    if (name == "close") {
      request.command = RequestCommand::kClose;
      return outcome;
    }
    if (name != "get" && name != "put") {
      return Invalid(request.id, "unknown command '" + Excerpt(name) + "'");
    }
    request.command = name == "get" ? RequestCommand::kGet : RequestCommand::kPut;
    outcome.command_known = true;
    std::string error;
    bool valid = ReadId(doc, "ActionID", request.action_id, error);
    if (request.command == RequestCommand::kGet) {
      return valid ? outcome : Fail(std::move(outcome), error);
    }
    // A put. Its body follows whenever BodySize is above 0, even when
    // something else is wrong with it: read past it to stay in step.
    int64_t body_size = 0;
    if (const auto size = doc.FindMember("BodySize"); size != doc.MemberEnd()) {
      if (!size->value.IsInt64() || size->value.GetInt64() < 0) {
        return Fail(std::move(outcome), "BodySize is not a byte count");
      }
      body_size = size->value.GetInt64();
      request.body_size = static_cast<uint64_t>(body_size);
    }
    const char* output_field =
        !doc.HasMember("OutputID") && doc.HasMember("ObjectID") ? "ObjectID" : "OutputID";
    if (valid) valid = ReadId(doc, output_field, request.output_id, error);
    if (!valid) outcome = Fail(std::move(outcome), error);
    return body_size > 0 ? ReadBody(std::move(outcome), body_size) : outcome;
  }
}

std::string FormatTime(int64_t unix_ns) {
  int64_t seconds = unix_ns / 1'000'000'000;
  int64_t nanos = unix_ns % 1'000'000'000;
  if (nanos < 0) {
    nanos += 1'000'000'000;
    --seconds;
  }
  const time_t t = static_cast<time_t>(seconds);
  struct tm utc;
  gmtime_r(&t, &utc);
  char text[64];
  size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  if (nanos > 0) {
    char fraction[16];
    std::snprintf(fraction, sizeof fraction, ".%09lld", static_cast<long long>(nanos));
    size_t len = std::strlen(fraction);
    while (fraction[len - 1] == '0') --len;
    std::memcpy(text + n, fraction, len);
    n += len;
  }
  text[n++] = 'Z';
  return std::string(text, n);
}

std::string FormatResponse(const Response& response) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> json(buffer);
  json.StartObject();
  json.Key("ID");
  json.Int64(response.id);
  if (!response.err.empty()) {
    json.Key("Err");
    json.String(response.err.data(), static_cast<rapidjson::SizeType>(response.err.size()));
  }
  if (response.known_commands) {
    json.Key("KnownCommands");
    json.StartArray();
    for (const auto command :
         {RequestCommand::kGet, RequestCommand::kPut, RequestCommand::kClose}) {
      const std::string_view name = CommandName(command);
      json.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    }
    json.EndArray();
  }
  if (response.miss) {
    json.Key("Miss");
    json.Bool(true);
  }
  if (response.output_id) {
    const std::string id = base64::Encode(*response.output_id);
    json.Key("OutputID");
    json.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
  }
  if (response.size != 0) {
    json.Key("Size");
    json.Int64(response.size);
  }
  if (response.time_ns) {
    const std::string time = FormatTime(*response.time_ns);
    json.Key("Time");
    json.String(time.data(), static_cast<rapidjson::SizeType>(time.size()));
  }
  if (!response.disk_path.empty()) {
    json.Key("DiskPath");
    json.String(response.disk_path.data(),
                static_cast<rapidjson::SizeType>(response.disk_path.size()));
  }
  json.EndObject();
  std::string line(buffer.GetString(), buffer.GetSize());
  line += '\n';
  return line;
}

}  // namespace gocache::helper
