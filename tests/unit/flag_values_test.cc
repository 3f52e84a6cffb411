#include "base/flag_values.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
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

TEST(ParseSizeTest, Valid) {
  EXPECT_EQ(ParseSize("0"), uint64_t{0});
  EXPECT_EQ(ParseSize("1048576"), uint64_t{1048576});
  EXPECT_EQ(ParseSize("3B"), uint64_t{3});
  EXPECT_EQ(ParseSize("2kB"), uint64_t{2000});
  EXPECT_EQ(ParseSize("2KB"), uint64_t{2000});
  EXPECT_EQ(ParseSize("500MB"), uint64_t{500'000'000});
  EXPECT_EQ(ParseSize("3GB"), uint64_t{3'000'000'000});
  EXPECT_EQ(ParseSize("5TB"), uint64_t{5'000'000'000'000});
  EXPECT_EQ(ParseSize("4KiB"), uint64_t{4096});
  // Up to 2^63, however written.
  EXPECT_EQ(ParseSize("9223372036854775807"), uint64_t{9223372036854775807u});
  EXPECT_EQ(ParseSize("9223372036854775808"), uint64_t{1} << 63);
  EXPECT_EQ(ParseSize("8388608TiB"), uint64_t{1} << 63);
  EXPECT_EQ(ParseSize("9223372036854775809"), std::nullopt);
  EXPECT_EQ(ParseSize("8388609TiB"), std::nullopt);
  EXPECT_EQ(ParseSize("256MiB"), uint64_t{256} << 20);
  EXPECT_EQ(ParseSize("10GiB"), uint64_t{10} << 30);
  EXPECT_EQ(ParseSize("1TiB"), uint64_t{1} << 40);
  EXPECT_EQ(ParseSize("0MiB"), uint64_t{0});
  // The largest a TiB count may be, 2^63 bytes.
  EXPECT_EQ(ParseSize("8388608TiB"), uint64_t{1} << 63);
}

TEST(ParseSizeTest, Invalid) {
  // Units are case-sensitive as written: "gb", "mib" and "Mib" are no units.
  for (const char* text : {"",
                           "MiB",
                           "B",
                           "1.5GB",
                           "10gb",
                           "10mb",
                           "10Mib",
                           "10mib",
                           "10 MiB",
                           " 10",
                           "10 ",
                           "-1",
                           "+1",
                           "1e6",
                           "0x10",
                           "1MiBs",
                           "1M",
                           "1G",
                           "1K",
                           "1kiB",
                           "1iB",
                           "MiB1",
                           "1MiB1",
                           "99999999999TiB",
                           "8388609TiB",
                           "99999999999999999999",
                           "18446744073709551616"}) {
    EXPECT_EQ(ParseSize(text), std::nullopt) << '"' << text << '"';
  }
}

TEST(ParsePositiveSizeFlagTest, ErrorNamesTheFlagAndValue) {
  std::string error;
  EXPECT_EQ(ParsePositiveSizeFlag("trace.max-file-bytes", "256MiB", error), uint64_t{256} << 20);
  EXPECT_TRUE(error.empty()) << error;
  for (const char* text : {"0", "0MiB", "", "10gb", "1.5GB"}) {
    error.clear();
    EXPECT_EQ(ParsePositiveSizeFlag("trace.max-file-bytes", text, error), std::nullopt) << text;
    EXPECT_NE(error.find("--trace.max-file-bytes"), std::string::npos) << error;
    EXPECT_NE(error.find("'" + std::string(text) + "'"), std::string::npos) << error;
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
