#include "exporter/basic_auth.h"

#include <crypt.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace gocache {
namespace {

// A well-formed bcrypt hash: prefix, two-digit cost, then 53 characters.
std::string Hash(std::string_view prefix, std::string_view cost, char fill = 'a') {
  return std::string(prefix) + std::string(cost) + "$" + std::string(53, fill);
}

// A real bcrypt hash of `password`, made by libcrypt with a random salt.
std::string Bcrypt(const std::string& password, int cost = 4) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", cost, nullptr, 0, salt, sizeof salt) == nullptr) {
    ADD_FAILURE() << "crypt_gensalt_rn failed";
    return "";
  }
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_r(password.c_str(), salt, data.get());
  if (hash == nullptr || hash[0] == '*') {
    ADD_FAILURE() << "crypt_r failed";
    return "";
  }
  return hash;
}

std::string EncodeBase64(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < data.size(); i += 3) {
    unsigned chunk = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) chunk |= static_cast<unsigned char>(data[i + 1]) << 8;
    if (i + 2 < data.size()) chunk |= static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(chunk >> 18) & 63];
    out += kAlphabet[(chunk >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(chunk >> 6) & 63] : '=';
    out += i + 2 < data.size() ? kAlphabet[chunk & 63] : '=';
  }
  return out;
}

std::string Header(std::string_view user, std::string_view password,
                   std::string_view scheme = "Basic ") {
  return std::string(scheme) + EncodeBase64(std::string(user) + ":" + std::string(password));
}

TEST(BcryptCostTest, Valid) {
  EXPECT_EQ(BcryptCost(Hash("$2a$", "04")), 4);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "10")), 10);
  EXPECT_EQ(BcryptCost(Hash("$2y$", "12")), 12);
  EXPECT_EQ(BcryptCost(Hash("$2y$", "31")), 31);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "05", '.')), 5);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "05", '/')), 5);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "05", 'Z')), 5);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "05", '9')), 5);
  EXPECT_EQ(BcryptCost("$2y$10$daHNHQMgrNia9hoGXHiwXupYvhJuOGAUo7Ydr21AGdqqvNj3xjR72"), 10);
  const std::string real = Bcrypt("password", 4);
  EXPECT_EQ(BcryptCost(real), 4) << real;
}

TEST(BcryptCostTest, WrongLength) {
  const std::string good = Hash("$2b$", "10");
  EXPECT_EQ(BcryptCost(""), std::nullopt);
  EXPECT_EQ(BcryptCost("$2b$10$"), std::nullopt);
  EXPECT_EQ(BcryptCost(good.substr(0, 59)), std::nullopt);
  EXPECT_EQ(BcryptCost(good + "a"), std::nullopt);
  EXPECT_EQ(BcryptCost(good + "\n"), std::nullopt);
  EXPECT_EQ(BcryptCost(" " + good), std::nullopt);
  EXPECT_EQ(BcryptCost("$2b$1$" + std::string(54, 'a')), std::nullopt);  // one-digit cost
}

TEST(BcryptCostTest, WrongPrefixOrCost) {
  for (const std::string& hash :
       {Hash("$2x$", "10"), Hash("$2$a", "10"), Hash("$3b$", "10"), Hash("$1b$", "10"),
        Hash("x2b$", "10"), Hash("$2B$", "10"), Hash("$2Y$", "10"), Hash("$2b$", "1a"),
        Hash("$2b$", " 9"), Hash("$2b$", "-1"), Hash("$2b$", "+9"), Hash("$2b$", "0x")}) {
    EXPECT_EQ(BcryptCost(hash), std::nullopt) << hash;
  }
  // No '$' after the cost.
  std::string hash = Hash("$2b$", "10");
  hash[6] = 'a';
  EXPECT_EQ(BcryptCost(hash), std::nullopt) << hash;
}

TEST(BcryptCostTest, BadAlphabet) {
  for (char c : {'+', '=', '$', '-', '_', ' ', '!', '\0', '\n', '\x80', '\xff'}) {
    std::string hash = Hash("$2b$", "10");
    hash[7 + 21] = c;  // in the salt
    EXPECT_EQ(BcryptCost(hash), std::nullopt) << "char " << static_cast<int>(c);
    hash = Hash("$2b$", "10");
    hash[59] = c;  // the last of the hash
    EXPECT_EQ(BcryptCost(hash), std::nullopt) << "char " << static_cast<int>(c);
  }
}

TEST(BcryptCostTest, CostBounds) {
  EXPECT_EQ(BcryptCost(Hash("$2b$", "00")), std::nullopt);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "03")), std::nullopt);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "04")), 4);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "31")), 31);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "32")), std::nullopt);
  EXPECT_EQ(BcryptCost(Hash("$2b$", "99")), std::nullopt);
}

TEST(DecodeBase64Test, Rfc4648Vectors) {
  EXPECT_EQ(DecodeBase64(""), "");
  EXPECT_EQ(DecodeBase64("Zg=="), "f");
  EXPECT_EQ(DecodeBase64("Zm8="), "fo");
  EXPECT_EQ(DecodeBase64("Zm9v"), "foo");
  EXPECT_EQ(DecodeBase64("Zm9vYg=="), "foob");
  EXPECT_EQ(DecodeBase64("Zm9vYmE="), "fooba");
  EXPECT_EQ(DecodeBase64("Zm9vYmFy"), "foobar");
}

TEST(DecodeBase64Test, EveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    const std::string data = all.substr(0, n);
    EXPECT_EQ(DecodeBase64(EncodeBase64(data)), data) << n;
  }
  EXPECT_EQ(DecodeBase64("AP8="), std::string("\0\xff", 2));
  EXPECT_EQ(DecodeBase64("+/+/"), "\xfb\xff\xbf");
  EXPECT_EQ(DecodeBase64(EncodeBase64("alice:pass:word")), "alice:pass:word");
}

TEST(DecodeBase64Test, InvalidPadding) {
  for (const char* text : {"Zg=", "Zg", "Z", "Z===", "====", "Zg=a", "Zm=v", "=Zm9", "Zg==Zg==",
                           "Zm9vYg=", "Zm9vYg", "Zm9vYmE", "Zm8=Zm9v", "Zm9v====", "Z=g="}) {
    EXPECT_EQ(DecodeBase64(text), std::nullopt) << '"' << text << '"';
  }
}

TEST(DecodeBase64Test, BadCharacters) {
  for (const char* text : {"Zm9v YmFy", "Zm9v\nYmFy", " Zm9v", "Zm9v ", "Zm9-", "Zm9_", "Zm9.",
                           "Zm9v!!!!", "Zm9\x80"}) {
    EXPECT_EQ(DecodeBase64(text), std::nullopt) << '"' << text << '"';
  }
  EXPECT_EQ(DecodeBase64(std::string_view("Zm9\0", 4)), std::nullopt);
}

TEST(DecodeBase64Test, WrongLength) {
  for (const char* text : {"Z", "Zm", "Zm9", "Zm9vY", "Zm9vYm", "Zm9vYmF", "Zm9vYmFyZ"}) {
    EXPECT_EQ(DecodeBase64(text), std::nullopt) << '"' << text << '"';
  }
}

class BasicAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    alice_hash_ = new std::string(Bcrypt("alice-pw"));
    colon_hash_ = new std::string(Bcrypt("pass:word:"));
    empty_hash_ = new std::string(Bcrypt(""));
  }
  static void TearDownTestSuite() {
    delete alice_hash_;
    delete colon_hash_;
    delete empty_hash_;
  }

  BasicAuth auth_{{{"alice", *alice_hash_}, {"bob", *colon_hash_}, {"erin", *empty_hash_}}};

  static std::string* alice_hash_;
  static std::string* colon_hash_;
  static std::string* empty_hash_;
};

std::string* BasicAuthTest::alice_hash_ = nullptr;
std::string* BasicAuthTest::colon_hash_ = nullptr;
std::string* BasicAuthTest::empty_hash_ = nullptr;

TEST_F(BasicAuthTest, Enabled) {
  EXPECT_TRUE(auth_.enabled());
  EXPECT_FALSE(BasicAuth({}).enabled());
}

TEST_F(BasicAuthTest, RightPassword) {
  EXPECT_TRUE(auth_.Allows(Header("alice", "alice-pw").c_str()));
}

TEST_F(BasicAuthTest, WrongPassword) {
  for (const char* password : {"alice-PW", "alice-pw ", "alice-p", "", "pass:word:"}) {
    EXPECT_FALSE(auth_.Allows(Header("alice", password).c_str())) << password;
  }
  EXPECT_FALSE(auth_.Allows(Header("bob", "alice-pw").c_str()));
  EXPECT_FALSE(auth_.Allows(Header("erin", "x").c_str()));
  // Still right after wrong ones.
  EXPECT_TRUE(auth_.Allows(Header("alice", "alice-pw").c_str()));
}

TEST_F(BasicAuthTest, UnknownUser) {
  EXPECT_FALSE(auth_.Allows(Header("mallory", "alice-pw").c_str()));
  EXPECT_FALSE(auth_.Allows(Header("Alice", "alice-pw").c_str()));
  EXPECT_FALSE(auth_.Allows(Header("alice ", "alice-pw").c_str()));
  EXPECT_FALSE(auth_.Allows(Header("", "alice-pw").c_str()));
  EXPECT_FALSE(auth_.Allows(Header("", "").c_str()));
}

TEST_F(BasicAuthTest, MissingOrMalformedHeader) {
  const std::string b64 = EncodeBase64("alice:alice-pw");
  for (const std::string& header :
       {std::string(""), std::string("Basic"), std::string("Basic "), "Basic" + b64,
        "Basic  " + b64, "Basic\t" + b64, " Basic " + b64, "Basic " + b64 + " ",
        "Basic " + b64 + "=", "Basic " + b64.substr(1), "Bearer " + b64, "Digest " + b64,
        "Basi " + b64, "Basic " + EncodeBase64("alicealice-pw"), std::string("Basic !!!!"),
        "Basic " + std::string(b64.size(), '=')}) {
    EXPECT_FALSE(auth_.Allows(header.c_str())) << '"' << header << '"';
  }
  EXPECT_FALSE(auth_.Allows(nullptr));
}

TEST_F(BasicAuthTest, SchemeIsCaseInsensitive) {
  EXPECT_TRUE(auth_.Allows(Header("alice", "alice-pw", "basic ").c_str()));
  EXPECT_TRUE(auth_.Allows(Header("alice", "alice-pw", "BASIC ").c_str()));
  EXPECT_TRUE(auth_.Allows(Header("alice", "alice-pw", "bAsIc ").c_str()));
}

TEST_F(BasicAuthTest, PasswordWithColons) {
  // The user name ends at the first ':'; the password may hold more.
  EXPECT_TRUE(auth_.Allows(Header("bob", "pass:word:").c_str()));
  EXPECT_FALSE(auth_.Allows(Header("bob", "pass:word").c_str()));
  EXPECT_FALSE(auth_.Allows(Header("bob", "pass").c_str()));
  EXPECT_FALSE(auth_.Allows(("Basic " + EncodeBase64("bob:pass")).c_str()));
}

TEST_F(BasicAuthTest, EmptyPassword) {
  EXPECT_TRUE(auth_.Allows(Header("erin", "").c_str()));
  EXPECT_FALSE(auth_.Allows(Header("erin", " ").c_str()));
  EXPECT_FALSE(auth_.Allows(("Basic " + EncodeBase64("erin")).c_str()));  // no ':'
}

TEST_F(BasicAuthTest, PasswordWithNul) {
  // crypt_r reads the password up to a NUL: what follows must not be ignored.
  EXPECT_FALSE(auth_.Allows(Header("alice", std::string("alice-pw\0junk", 13)).c_str()));
  EXPECT_FALSE(auth_.Allows(Header("alice", std::string("alice-pw\0", 9)).c_str()));
  EXPECT_FALSE(auth_.Allows(Header("erin", std::string("\0", 1)).c_str()));
  EXPECT_TRUE(auth_.Allows(Header("alice", "alice-pw").c_str()));
  // Not even once the right password is in the cache.
  EXPECT_FALSE(auth_.Allows(Header("alice", std::string("alice-pw\0junk", 13)).c_str()));
}

TEST_F(BasicAuthTest, SecondCallServedFromCache) {
  const std::string right = Header("alice", "alice-pw");
  const std::string wrong = Header("alice", "alice-pw2");
  EXPECT_TRUE(auth_.Allows(right.c_str()));
  EXPECT_TRUE(auth_.Allows(right.c_str()));
  // The cache holds credentials, not users: a wrong password after a right
  // one is still wrong, and does not evict the right one.
  EXPECT_FALSE(auth_.Allows(wrong.c_str()));
  EXPECT_FALSE(auth_.Allows(wrong.c_str()));
  EXPECT_TRUE(auth_.Allows(right.c_str()));
  EXPECT_TRUE(auth_.Allows(Header("bob", "pass:word:").c_str()));
  EXPECT_TRUE(auth_.Allows(Header("bob", "pass:word:").c_str()));
  EXPECT_FALSE(auth_.Allows(Header("bob", "alice-pw").c_str()));
  EXPECT_TRUE(auth_.Allows(right.c_str()));
}

TEST(BasicAuthCacheTest, CachedCallSkipsTheHash) {
  // Cost 10: a hash takes tens of milliseconds, a cached answer microseconds.
  BasicAuth auth({{"alice", Bcrypt("alice-pw", 10)}});
  const std::string right = Header("alice", "alice-pw");
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  ASSERT_TRUE(auth.Allows(right.c_str()));
  const auto first = Clock::now() - t0;
  auto cached = Clock::duration::max();
  for (int i = 0; i < 3; ++i) {
    const auto t = Clock::now();
    EXPECT_TRUE(auth.Allows(right.c_str()));
    cached = std::min(cached, Clock::now() - t);
  }
  EXPECT_LT(cached * 10, first) << "first " << first.count() << " ns, cached " << cached.count()
                                << " ns";
  // A wrong password is never cached: it pays for a hash every time.
  const auto t1 = Clock::now();
  EXPECT_FALSE(auth.Allows(Header("alice", "wrong").c_str()));
  EXPECT_FALSE(auth.Allows(Header("alice", "wrong").c_str()));
  EXPECT_GT((Clock::now() - t1), cached * 10);
}

}  // namespace
}  // namespace gocache
