#include "exporter/flag_values.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace gocache {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

TEST(ParseDurationTest, Valid) {
  EXPECT_EQ(ParseDuration("30s"), milliseconds(30s));
  EXPECT_EQ(ParseDuration("5m"), milliseconds(5min));
  EXPECT_EQ(ParseDuration("1h30m"), milliseconds(90min));
  EXPECT_EQ(ParseDuration("250ms"), 250ms);
  EXPECT_EQ(ParseDuration("1d"), milliseconds(24h));
  EXPECT_EQ(ParseDuration("2w"), milliseconds(14 * 24h));
  EXPECT_EQ(ParseDuration("0"), 0ms);
  EXPECT_EQ(ParseDuration("0s"), 0ms);
  EXPECT_EQ(ParseDuration("1m30s500ms"), 90500ms);
  EXPECT_EQ(ParseDuration("1s1ms"), 1001ms);
  EXPECT_EQ(ParseDuration("100h"), milliseconds(100h));
}

TEST(ParseDurationTest, Invalid) {
  for (const char* text : {"", "5", "m", "5x", "-5s", "1.5s", "s5", " 5s", "5s ", "5 s", "5S",
                           "5sec", "1h30", "ms", "+5s", "5mm", "0x10s", "99999999999s"}) {
    EXPECT_EQ(ParseDuration(text), std::nullopt) << '"' << text << '"';
  }
}

std::optional<std::string> Civet(std::string_view address, std::string* error_out = nullptr) {
  std::string error;
  auto ports = ListenAddressToCivetPorts(address, error);
  if (ports) {
    EXPECT_TRUE(error.empty()) << address << ": " << error;
  } else {
    EXPECT_FALSE(error.empty()) << address << ": no error message";
  }
  if (error_out) *error_out = error;
  return ports;
}

TEST(ListenAddressTest, Valid) {
  EXPECT_EQ(Civet(":9959"), "9959");
  EXPECT_EQ(Civet(":0"), "0");
  EXPECT_EQ(Civet(":65535"), "65535");
  EXPECT_EQ(Civet("127.0.0.1:0"), "127.0.0.1:0");
  EXPECT_EQ(Civet("0.0.0.0:9959"), "0.0.0.0:9959");
  EXPECT_EQ(Civet("localhost:80"), "127.0.0.1:80");
  EXPECT_EQ(Civet("[::1]:9959"), "[::1]:9959");
  EXPECT_EQ(Civet("[::]:9959"), "[::]:9959");
  EXPECT_EQ(Civet("[fe80::1:2]:1"), "[fe80::1:2]:1");
}

TEST(ListenAddressTest, Invalid) {
  for (const char* address :
       {"9959", ":99999", ":65536", ":abc", ":", "", "example.com:80", "[zz]:1", "::1:9959",
        "[::1]", "127.0.0.1", "127.0.0.1:", "256.0.0.1:80", ":-1", ":+80", ": 80", "[127.0.0.1]:80",
        "1.2.3.4.5:80"}) {
    EXPECT_EQ(Civet(address), std::nullopt) << '"' << address << '"';
  }
}

TEST(ListenAddressTest, ErrorsSayWhy) {
  std::string error;
  EXPECT_EQ(Civet(":99999", &error), std::nullopt);
  EXPECT_NE(error.find("port"), std::string::npos) << error;
  EXPECT_EQ(Civet("[zz]:1", &error), std::nullopt);
  EXPECT_NE(error.find("[zz]"), std::string::npos) << error;
  EXPECT_EQ(Civet("9959", &error), std::nullopt);
  EXPECT_NE(error.find(":9959"), std::string::npos) << error;  // shows the expected form
}

}  // namespace
}  // namespace gocache
