#include "exporter/http_server.h"

#include <gtest/gtest.h>

#include <string>

#include "base/version.h"

namespace gocache {
namespace {

TEST(AcceptsGzipTest, Accepted) {
  for (const char* header :
       {"gzip", "GZIP", "Gzip", "deflate, gzip;q=1.0", "deflate, gzip", "gzip, deflate, br",
        "br;q=1.0, gzip;q=0.8, *;q=0.1", " gzip ", "gzip;q=0.001", "gzip; q=1", "gzip;Q=0.5",
        "gzip;level=9", "identity, gzip", ",gzip", "deflate,,gzip"}) {
    EXPECT_TRUE(AcceptsGzip(header)) << '"' << header << '"';
  }
}

TEST(AcceptsGzipTest, Refused) {
  EXPECT_FALSE(AcceptsGzip(nullptr));
  for (const char* header :
       {"", "identity", "deflate", "br", "deflate, br", "gzip;q=0", "gzip;q=0.0", "gzip;q=0.000",
        "deflate, gzip;q=0", "GZIP;Q=0", "gzip; q=0", "gzipx", "xgzip", "gz", "gzip2",
        "identity;q=1, deflate;q=0.5", ",", " ", "g zip"}) {
    EXPECT_FALSE(AcceptsGzip(header)) << '"' << header << '"';
  }
}

// "x-gzip" is the old name of gzip; HTTP/1.1 lets a server treat it as gzip,
// but Go's promhttp, like this exporter, offers gzip only by its own name.
TEST(AcceptsGzipTest, XGzipIsNotGzip) { EXPECT_FALSE(AcceptsGzip("x-gzip")); }

TEST(LandingPageTest, LinksTheTelemetryPath) {
  const std::string page = LandingPage("/metrics");
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u) << page;
  EXPECT_NE(page.find("<a href=\"/metrics\">Metrics</a>"), std::string::npos) << page;
  EXPECT_NE(page.find(std::string("version ") + kVersion), std::string::npos) << page;
  EXPECT_NE(page.find(kRevision), std::string::npos) << page;
  EXPECT_NE(page.find("</html>"), std::string::npos) << page;

  const std::string other = LandingPage("/custom/path");
  EXPECT_NE(other.find("<a href=\"/custom/path\">"), std::string::npos) << other;
  EXPECT_EQ(other.find("/metrics"), std::string::npos) << other;
}

}  // namespace
}  // namespace gocache
