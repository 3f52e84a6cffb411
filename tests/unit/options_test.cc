#include "exporter/options.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <string>
#include <vector>

namespace gocache {
namespace {

using namespace std::chrono_literals;

ParsedCommandLine Parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv = {"gocache_exporter"};
  argv.insert(argv.end(), args.begin(), args.end());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

bool Enabled(const Config& config, const std::string& name) {
  return std::any_of(config.collectors.begin(), config.collectors.end(),
                     [&](const EnabledCollector& c) { return c.name == name; });
}

// A usage error: exit 2, one line on stderr naming `needle`.
void ExpectUsageError(const ParsedCommandLine& parsed, const std::string& needle) {
  EXPECT_FALSE(parsed.config.has_value());
  EXPECT_EQ(parsed.exit_code, 2);
  EXPECT_NE(parsed.output.find(needle), std::string::npos) << parsed.output;
  EXPECT_EQ(std::count(parsed.output.begin(), parsed.output.end(), '\n'), 1) << parsed.output;
  EXPECT_NE(parsed.output.find("--help"), std::string::npos) << parsed.output;
}

TEST(ParseCommandLineTest, Defaults) {
  const auto parsed = Parse({});
  ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
  EXPECT_EQ(parsed.exit_code, 0);
  EXPECT_TRUE(parsed.output.empty());
  const Config& c = *parsed.config;
  EXPECT_EQ(c.listen_address, ":9959");
  EXPECT_EQ(c.civet_ports, "9959");
  EXPECT_EQ(c.telemetry_path, "/metrics");
  EXPECT_TRUE(c.cache_dirs.empty());
  EXPECT_TRUE(c.modcache_dirs.empty());
  EXPECT_EQ(c.log_level, log::Level::kInfo);
  EXPECT_EQ(c.log_format, log::Format::kLogfmt);
  EXPECT_FALSE(c.once);
  EXPECT_EQ(c.scrape_timeout, 5s);
  EXPECT_EQ(c.scan_interval, 5min);
  EXPECT_TRUE(c.scan_events);
  EXPECT_EQ(c.verify_interval, 1h);
  EXPECT_TRUE(Enabled(c, "inode"));
  EXPECT_TRUE(c.deprecated_flags.empty());
}

TEST(ParseCommandLineTest, EveryFlagTakesItsValue) {
  const auto parsed = Parse({"--web.listen-address", "127.0.0.1:19959", "--web.telemetry-path=/m",
                             "--cache.dir", "/c", "--modcache.dir", "/m1", "--modcache.dir=/m2",
                             "--log.level", "debug", "--log.format", "json", "--scrape.timeout",
                             "250ms", "--scan.interval", "1h30m", "--once"});
  ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
  const Config& c = *parsed.config;
  EXPECT_EQ(c.listen_address, "127.0.0.1:19959");
  EXPECT_EQ(c.civet_ports, "127.0.0.1:19959");
  EXPECT_EQ(c.telemetry_path, "/m");
  EXPECT_EQ(c.cache_dirs, std::vector<std::string>{"/c"});
  EXPECT_EQ(c.modcache_dirs, (std::vector<std::string>{"/m1", "/m2"}));
  EXPECT_EQ(c.log_level, log::Level::kDebug);
  EXPECT_EQ(c.log_format, log::Format::kJson);
  EXPECT_EQ(c.scrape_timeout, 250ms);
  EXPECT_EQ(c.scan_interval, 90min);
  EXPECT_TRUE(c.once);
  EXPECT_TRUE(c.deprecated_flags.empty());
}

TEST(ParseCommandLineTest, ProcfsIsAHiddenFlag) {
  EXPECT_EQ(Parse({}).config->procfs, "/proc");
  const auto parsed = Parse({"--path.procfs=/fixture/proc"});
  ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
  EXPECT_EQ(parsed.config->procfs, "/fixture/proc");
  ExpectUsageError(Parse({"--path.procfs="}), "--path.procfs must not be empty");
  EXPECT_EQ(Parse({"--help"}).output.find("procfs"), std::string::npos);
}

TEST(ParseCommandLineTest, DensityIntervalIsTheOldNameOfScanInterval) {
  const auto parsed = Parse({"--density.interval", "2m"});
  ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
  EXPECT_EQ(parsed.config->scan_interval, 2min);
  ASSERT_EQ(parsed.config->deprecated_flags.size(), 1u);
  EXPECT_EQ(parsed.config->deprecated_flags[0].given, "--density.interval");
  EXPECT_EQ(parsed.config->deprecated_flags[0].replacement, "--scan.interval");
  // Its errors name the flag as given.
  ExpectUsageError(Parse({"--density.interval", "0"}), "--density.interval '0'");
  // Both names at once: which one was meant?
  ExpectUsageError(Parse({"--density.interval", "2m", "--scan.interval", "1m"}),
                   "--density.interval is the old name of --scan.interval");
  // The old name is left out of the help.
  const auto help = Parse({"--help"});
  EXPECT_NE(help.output.find("--scan.interval"), std::string::npos);
  EXPECT_EQ(help.output.find("density.interval"), std::string::npos) << help.output;
}

TEST(ParseCommandLineTest, Help) {
  for (const char* flag : {"--help", "-h"}) {
    const auto parsed = Parse({flag});
    EXPECT_FALSE(parsed.config.has_value()) << flag;
    EXPECT_EQ(parsed.exit_code, 0) << flag;
    for (const char* text : {"gocache_exporter", "--web.listen-address", "--cache.dir",
                             "--collector.inode", "--no-collector.inode", "--once"}) {
      EXPECT_NE(parsed.output.find(text), std::string::npos) << flag << " lacks " << text;
    }
  }
}

TEST(ParseCommandLineTest, HelpWinsOverBadValues) {
  const auto parsed = Parse({"--log.level", "loud", "--help"});
  EXPECT_EQ(parsed.exit_code, 0);
  EXPECT_NE(parsed.output.find("--log.level"), std::string::npos);
}

TEST(ParseCommandLineTest, Version) {
  const auto parsed = Parse({"--version"});
  EXPECT_FALSE(parsed.config.has_value());
  EXPECT_EQ(parsed.exit_code, 0);
  EXPECT_EQ(parsed.output.rfind("gocache_exporter, version ", 0), 0u) << parsed.output;
  EXPECT_NE(parsed.output.find("revision"), std::string::npos) << parsed.output;
}

TEST(ParseCommandLineTest, UnknownFlag) {
  ExpectUsageError(Parse({"--bogus"}), "--bogus");
  ExpectUsageError(Parse({"--bogus=1"}), "--bogus");
  ExpectUsageError(Parse({"--collector.nosuch"}), "--collector.nosuch");
  ExpectUsageError(Parse({"-x"}), "-x");
}

TEST(ParseCommandLineTest, BadListenAddress) {
  ExpectUsageError(Parse({"--web.listen-address", "9959"}), "--web.listen-address");
  ExpectUsageError(Parse({"--web.listen-address=:99999"}), "--web.listen-address");
  ExpectUsageError(Parse({"--web.listen-address", "example.com:80"}), "--web.listen-address");
}

TEST(ParseCommandLineTest, BadLog) {
  ExpectUsageError(Parse({"--log.level", "verbose"}), "--log.level");
  ExpectUsageError(Parse({"--log.level="}), "--log.level");
  ExpectUsageError(Parse({"--log.format", "text"}), "--log.format");
}

TEST(ParseCommandLineTest, BadDurations) {
  ExpectUsageError(Parse({"--scan.interval", "5x"}), "--scan.interval");
  ExpectUsageError(Parse({"--scan.interval", "0"}), "--scan.interval");
  ExpectUsageError(Parse({"--scan.interval", "1.5m"}), "--scan.interval");
  ExpectUsageError(Parse({"--scrape.timeout", "-1s"}), "--scrape.timeout");
  ExpectUsageError(Parse({"--scrape.timeout", "0s"}), "--scrape.timeout");
  ExpectUsageError(Parse({"--scrape.timeout", "10"}), "--scrape.timeout");
}

TEST(ParseCommandLineTest, BadTelemetryPath) {
  ExpectUsageError(Parse({"--web.telemetry-path", "metrics"}), "--web.telemetry-path");
  ExpectUsageError(Parse({"--web.telemetry-path", "/"}), "--web.telemetry-path");
  ExpectUsageError(Parse({"--web.telemetry-path="}), "--web.telemetry-path");
}

TEST(ParseCommandLineTest, EmptyCacheDir) {
  ExpectUsageError(Parse({"--cache.dir="}), "--cache.dir");
  ExpectUsageError(Parse({"--modcache.dir", ""}), "--modcache.dir");
}

TEST(ParseCommandLineTest, MissingValueNamesFlag) {
  const auto parsed = Parse({"--web.listen-address"});
  EXPECT_FALSE(parsed.config.has_value());
  EXPECT_EQ(parsed.exit_code, 2);
  EXPECT_NE(parsed.output.find("web.listen-address"), std::string::npos) << parsed.output;
}

TEST(ParseCommandLineTest, CollectorSwitches) {
  {
    const auto parsed = Parse({"--no-collector.inode"});
    ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
    EXPECT_FALSE(Enabled(*parsed.config, "inode"));
  }
  {
    const auto parsed = Parse({"--collector.disable-defaults"});
    ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
    EXPECT_TRUE(parsed.config->collectors.empty());
  }
  {
    const auto parsed = Parse({"--collector.disable-defaults", "--collector.inode"});
    ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
    EXPECT_TRUE(Enabled(*parsed.config, "inode"));
  }
  {
    const auto parsed = Parse({"--collector.inode"});
    ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
    EXPECT_TRUE(Enabled(*parsed.config, "inode"));
  }
  {
    const auto parsed = Parse({"--collector.inode=false"});
    ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
    EXPECT_FALSE(Enabled(*parsed.config, "inode"));
  }
}

TEST(ParseCommandLineTest, ScanEventsSwitches) {
  for (const auto& [args, want] : std::vector<std::pair<std::vector<const char*>, bool>>{
           {{"--no-scan.events"}, false},
           {{"--scan.events"}, true},
           {{"--scan.events=false"}, false},
           {{"--scan.events=true", "--scan.verify-interval=10m"}, true}}) {
    std::vector<const char*> argv = {"gocache_exporter"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto parsed = ParseCommandLine(static_cast<int>(argv.size()), argv.data());
    ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
    EXPECT_EQ(parsed.config->scan_events, want) << args[0];
  }
  ExpectUsageError(Parse({"--scan.events", "--no-scan.events"}), "--no-scan.events");
  ExpectUsageError(Parse({"--scan.verify-interval=0s"}), "--scan.verify-interval");
  ExpectUsageError(Parse({"--scan.verify-interval=often"}), "--scan.verify-interval");
}

TEST(ParseCommandLineTest, ContradictingCollectorSwitches) {
  const auto parsed = Parse({"--collector.inode", "--no-collector.inode"});
  ExpectUsageError(parsed, "--collector.inode");
  EXPECT_NE(parsed.output.find("--no-collector.inode"), std::string::npos) << parsed.output;
}

TEST(ParseCommandLineTest, RepeatedCacheDirAndCommas) {
  const auto parsed =
      Parse({"--cache.dir", "/a", "--cache.dir", "/b,c", "--cache.dir=/d e", "--cache.dir=/a/b"});
  ASSERT_TRUE(parsed.config.has_value()) << parsed.output;
  EXPECT_EQ(parsed.config->cache_dirs, (std::vector<std::string>{"/a", "/b,c", "/d e", "/a/b"}));
}

// One directory watched twice would expose each of its series twice.
TEST(ParseCommandLineTest, TheSameDirectoryTwiceIsAUsageError) {
  ExpectUsageError(Parse({"--cache.dir=/a", "--cache.dir=/b", "--cache.dir=/a/"}),
                   "--cache.dir=/a and --cache.dir=/a/ name the same directory");
  ExpectUsageError(Parse({"--cache.dir=/x/./y", "--modcache.dir=/x/y"}),
                   "--cache.dir=/x/./y and --modcache.dir=/x/y name the same directory");
}

TEST(ParseCommandLineTest, UnexpectedPositionalArgument) {
  ExpectUsageError(Parse({"extra"}), "extra");
  ExpectUsageError(Parse({"--once", "/some/dir"}), "/some/dir");
}

}  // namespace
}  // namespace gocache
