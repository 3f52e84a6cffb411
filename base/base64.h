// Standard base64 (RFC 4648, with padding): how encoding/json carries a
// []byte, and so how the go command's GOCACHEPROG messages carry IDs and put
// bodies.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace gocache::base64 {

std::string Encode(std::span<const uint8_t> bytes);

// The decoded bytes, or none for anything but canonical padded standard
// base64 (unused bits zero).
std::optional<std::string> Decode(std::string_view text);

// Decodes a stream of base64 text that arrives in pieces of any length (a
// put body read from a pipe), keeping at most `limit` decoded bytes: a
// hostile length costs no memory past the limit.
class StreamDecoder {
 public:
  explicit StreamDecoder(uint64_t limit) : limit_(limit) {}

  // Feeds text; returns false once anything invalid has been seen.
  bool Feed(std::string_view text);
  // Ends the text: true when it was complete, valid base64.
  bool Finish();

  // Bytes decoded in all, including any past the limit (not kept).
  uint64_t decoded_size() const { return decoded_; }
  bool over_limit() const { return decoded_ > limit_; }
  std::string& bytes() { return bytes_; }

 private:
  bool FeedOne(char c);
  void Keep(const char* bytes, size_t size);  // counts them, keeps those within the limit

  uint64_t limit_;
  uint64_t decoded_ = 0;
  std::string bytes_;
  uint32_t quad_ = 0;  // bits of the group being read
  int in_quad_ = 0;    // its characters so far
  int padding_ = 0;    // '=' seen; only the end may have them
  bool ended_ = false;
  bool valid_ = true;
};

}  // namespace gocache::base64
