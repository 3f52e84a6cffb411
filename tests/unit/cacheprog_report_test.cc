#include "cache/cacheprog_report.h"

#include <gtest/gtest.h>

namespace gocache::cacheprog_report {
namespace {

Report Request(Command command, Result result, MissReason miss) {
  Report r;
  r.event = Event::kRequest;
  r.pid = 42;
  r.lost = 3;
  r.path = "/srv/ci/go build";  // a space: the path is the rest of the datagram
  r.command = command;
  r.result = result;
  r.miss = miss;
  r.bytes = 1234;
  r.duration_ns = 56789;
  return r;
}

void ExpectSame(const Report& a, const Report& b) {
  EXPECT_EQ(a.event, b.event);
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.lost, b.lost);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.command, b.command);
  EXPECT_EQ(a.result, b.result);
  EXPECT_EQ(a.miss, b.miss);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.duration_ns, b.duration_ns);
  EXPECT_EQ(a.eviction, b.eviction);
  EXPECT_EQ(a.entries, b.entries);
}

TEST(CacheprogReportTest, EveryReportReadsBackAsItself) {
  std::vector<Report> reports = {
      Request(Command::kGet, Result::kHit, MissReason::kNone),
      Request(Command::kGet, Result::kMiss, MissReason::kSizeMismatch),
      Request(Command::kGet, Result::kMiss, MissReason::kRemote),
      Request(Command::kGet, Result::kError, MissReason::kNone),
      Request(Command::kPut, Result::kOk, MissReason::kNone),
      Request(Command::kPut, Result::kError, MissReason::kNone),
  };
  Report start;
  start.event = Event::kStart;
  start.pid = 7;
  start.path = "wrap:gocached";
  reports.push_back(start);
  Report evict;
  evict.event = Event::kEviction;
  evict.pid = 8;
  evict.path = "/c";
  evict.eviction = EvictionReason::kInodes;
  evict.entries = 10;
  evict.bytes = 4096;
  reports.push_back(evict);
  Report go_cache;
  go_cache.event = Event::kGoCache;
  go_cache.pid = 9;
  go_cache.path = "/home/ci/.cache/go-build";
  reports.push_back(go_cache);
  for (const Report& report : reports) {
    const std::string datagram = Encode(report);
    const auto decoded = Decode(datagram);
    ASSERT_TRUE(decoded.has_value()) << datagram;
    ExpectSame(*decoded, report);
  }
  EXPECT_EQ(Encode(reports[1]),
            "v1 request 42 3 get miss size_mismatch 1234 56789 /srv/ci/go build");
}

TEST(CacheprogReportTest, RefusesWhatNoHelperSends) {
  for (const char* bad : {
           "",
           "v1",
           "v2 start 1 0 /c",
           "v1 begin 1 0 /c",
           "v1 start 0 0 /c",  // no pid 0
           "v1 start -1 0 /c",
           "v1 start 1 x /c",
           "v1 start 1 0 relative/path",  // a label must be a cache path
           "v1 start 1 0 ",
           "v1 request 1 0 get hit - 10 /c",      // a field missing
           "v1 request 1 0 delete hit - 1 1 /c",  // commands and results are fixed sets
           "v1 request 1 0 get great - 1 1 /c",
           "v1 request 1 0 get miss - 1 1 /c",        // a miss has a reason
           "v1 request 1 0 get hit no_entry 1 1 /c",  // a hit has none
           "v1 request 1 0 get miss bored 1 1 /c",
           "v1 request 1 0 get ok - 1 1 /c",   // a get is not ok
           "v1 request 1 0 put hit - 1 1 /c",  // a put does not hit
           "v1 request 1 0 put ok - -1 1 /c",
           "v1 evict 1 0 age 1 /c",
           "v1 evict 1 0 boredom 1 1 /c",
           "v1  start 1 0 /c",
           "v1 gocache 1 0 wrap:x",  // a GOCACHE is a directory
       }) {
    EXPECT_FALSE(Decode(bad).has_value()) << "'" << bad << "'";
  }
  EXPECT_FALSE(Decode(std::string("v1 start 1 0 /c\n/d")).has_value());
  EXPECT_FALSE(Decode(std::string("v1 start 1 0 /c\0d", 17)).has_value());
  EXPECT_FALSE(Decode("v1 start 1 0 /" + std::string(kMaxLine, 'x')).has_value());
}

}  // namespace
}  // namespace gocache::cacheprog_report
