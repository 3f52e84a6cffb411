#include "base/base64.h"

#include <algorithm>
#include <array>

namespace gocache::base64 {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Each character's value, -1 for those outside the alphabet: put bodies run
// to megabytes, so the lookup is a table.
constexpr std::array<int8_t, 256> kValues = [] {
  std::array<int8_t, 256> values{};
  values.fill(-1);
  for (int i = 0; i < 64; ++i) values[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return values;
}();

int Value(char c) { return kValues[static_cast<uint8_t>(c)]; }

}  // namespace

std::string Encode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = uint32_t{bytes[i]} << 16 | uint32_t{bytes[i + 1]} << 8 | bytes[i + 2];
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (const size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = uint32_t{bytes[i]} << 16;
    if (rest == 2) v |= uint32_t{bytes[i + 1]} << 8;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += rest == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Decode(std::string_view text) {
  StreamDecoder decoder(text.size());
  if (!decoder.Feed(text) || !decoder.Finish()) return std::nullopt;
  return std::move(decoder.bytes());
}

void StreamDecoder::Keep(const char* bytes, size_t size) {
  if (decoded_ < limit_) {
    bytes_.append(bytes, static_cast<size_t>(std::min<uint64_t>(size, limit_ - decoded_)));
  }
  decoded_ += size;
}

bool StreamDecoder::Feed(std::string_view text) {
  size_t at = 0;
  // A group under way (the text came in pieces) is finished first.
  while (at < text.size() && in_quad_ != 0) {
    if (!FeedOne(text[at++])) return false;
  }
  // Then whole groups of four: nearly all of a put body, decoded without the
  // checks each character of the last group needs. A group holding '=' or
  // anything invalid is left to them.
  if (valid_ && !ended_ && padding_ == 0) {
    char out[3 * 1024];
    size_t filled = 0;
    for (; at + 4 <= text.size(); at += 4) {
      const int a = Value(text[at]), b = Value(text[at + 1]), c = Value(text[at + 2]),
                d = Value(text[at + 3]);
      if ((a | b | c | d) < 0) break;
      const uint32_t v = static_cast<uint32_t>(a << 18 | b << 12 | c << 6 | d);
      out[filled++] = static_cast<char>(v >> 16);
      out[filled++] = static_cast<char>(v >> 8 & 0xff);
      out[filled++] = static_cast<char>(v & 0xff);
      if (filled == sizeof out) {
        Keep(out, filled);
        filled = 0;
      }
    }
    if (filled > 0) Keep(out, filled);
  }
  for (; at < text.size(); ++at) {
    if (!FeedOne(text[at])) return false;
  }
  return valid_;
}

bool StreamDecoder::FeedOne(char c) {
  if (!valid_) return false;
  if (ended_) {
    valid_ = false;  // text after the padded final group
    return false;
  }
  if (c == '=') {
    // Padding fills only the last one or two places of the last group
    // ("xy==", "xyz="); a character after it is refused below.
    if (in_quad_ < 2) {
      valid_ = false;
      return false;
    }
    ++padding_;
    quad_ <<= 6;
    ++in_quad_;
  } else {
    const int v = Value(c);
    if (v < 0 || padding_ > 0) {
      valid_ = false;
      return false;
    }
    quad_ = quad_ << 6 | static_cast<uint32_t>(v);
    ++in_quad_;
  }
  if (in_quad_ < 4) return true;
  // The unused low bits of a padded group must be zero (RFC 4648's
  // canonical form, what the go command writes): each text decodes to one
  // byte string and each byte string has one text.
  if ((padding_ == 1 && (quad_ & 0xff) != 0) || (padding_ == 2 && (quad_ & 0xffff) != 0)) {
    valid_ = false;
    return false;
  }
  const char group[3] = {static_cast<char>(quad_ >> 16), static_cast<char>(quad_ >> 8 & 0xff),
                         static_cast<char>(quad_ & 0xff)};
  Keep(group, static_cast<size_t>(3 - padding_));
  ended_ = padding_ > 0;
  quad_ = 0;
  in_quad_ = 0;
  return true;
}

bool StreamDecoder::Finish() {
  if (in_quad_ != 0) valid_ = false;
  return valid_;
}

}  // namespace gocache::base64
