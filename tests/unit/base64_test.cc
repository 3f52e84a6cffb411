#include "base/base64.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace gocache::base64 {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Base64Test, EncodesAsRfc4648WithPadding) {
  EXPECT_EQ(Encode(Bytes("")), "");
  EXPECT_EQ(Encode(Bytes("f")), "Zg==");
  EXPECT_EQ(Encode(Bytes("fo")), "Zm8=");
  EXPECT_EQ(Encode(Bytes("foo")), "Zm9v");
  EXPECT_EQ(Encode(Bytes("foobar")), "Zm9vYmFy");
  EXPECT_EQ(Encode(Bytes("\xfb\xff")), "+/8=");
}

TEST(Base64Test, DecodesWhatItEncodes) {
  std::mt19937 random(7);
  for (size_t size = 0; size < 70; ++size) {
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(random());
    const auto decoded = Decode(Encode(Bytes(bytes)));
    ASSERT_TRUE(decoded.has_value()) << size;
    EXPECT_EQ(*decoded, bytes);
  }
}

TEST(Base64Test, RefusesWhatIsNotPaddedStandardBase64) {
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zm9v=", "Zg==Zg==", "Zm9-", "Zm9_", "Zm 9v", "=Zm9",
                          "Zg=a", "Zm9vY", "\"Zm9v\"",
                          // Not canonical: unused bits set ("Zg==" and "Zm8=" are).
                          "Zh==", "Zm9="}) {
    EXPECT_FALSE(Decode(bad).has_value()) << bad;
  }
}

TEST(Base64Test, StreamsInPiecesOfAnyLength) {
  const std::string text = Encode(Bytes("the body of a put, in pieces"));
  for (size_t piece = 1; piece <= text.size(); ++piece) {
    StreamDecoder decoder(1000);
    for (size_t i = 0; i < text.size(); i += piece) {
      ASSERT_TRUE(decoder.Feed(std::string_view(text).substr(i, piece)));
    }
    ASSERT_TRUE(decoder.Finish());
    EXPECT_EQ(decoder.bytes(), "the body of a put, in pieces");
  }
}

TEST(Base64Test, LargeBodiesInPiecesDecodeExactlyWithinTheirLimit) {
  // Past the size of the decoder's own buffer, in pieces that split groups
  // anywhere, with limits below, at and above the size.
  std::mt19937 rng(7);
  for (const size_t size : {0u, 1u, 2u, 3u, 3071u, 3072u, 3073u, 10000u}) {
    std::string body(size, '\0');
    for (auto& c : body) c = static_cast<char>(rng());
    const std::string text =
        Encode(std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size()));
    for (const size_t limit : {size, size / 2, size + 10}) {
      StreamDecoder decoder(limit);
      for (size_t i = 0; i < text.size();) {
        const size_t piece = 1 + rng() % 700;
        ASSERT_TRUE(decoder.Feed(std::string_view(text).substr(i, piece))) << size;
        i += piece;
      }
      ASSERT_TRUE(decoder.Finish()) << size;
      EXPECT_EQ(decoder.decoded_size(), size);
      EXPECT_EQ(decoder.bytes(), body.substr(0, std::min(size, limit))) << size << " " << limit;
    }
    if (text.size() > 8) {
      // A character outside the alphabet in the middle is refused.
      std::string bad = text;
      bad[text.size() / 2] = '!';
      StreamDecoder decoder(size);
      EXPECT_FALSE(decoder.Feed(bad) && decoder.Finish()) << size;
    }
  }
}

TEST(Base64Test, KeepsNothingPastItsLimitButCountsIt) {
  StreamDecoder decoder(4);
  ASSERT_TRUE(decoder.Feed("Zm9vYmFy"));
  ASSERT_TRUE(decoder.Finish());
  EXPECT_EQ(decoder.decoded_size(), 6u);
  EXPECT_TRUE(decoder.over_limit());
  EXPECT_EQ(decoder.bytes(), "foob");
}

TEST(Base64Test, AnIncompleteGroupIsNotFinished) {
  StreamDecoder decoder(10);
  ASSERT_TRUE(decoder.Feed("Zm9"));
  EXPECT_FALSE(decoder.Finish());
}

}  // namespace
}  // namespace gocache::base64
