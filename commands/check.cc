#include "commands/check.h"

#include <algorithm>
#include <iostream>

#include "base/paths.h"
#include "cache/cache_discovery.h"
#include "commands/report_format.h"

namespace gocache {

using report::Bytes;
using report::Percent;

int CheckReport::exit_code() const {
  bool crossed = false;
  for (const auto& cache : caches) {
    if (!cache.usage) return kExitUnreadable;
    crossed = crossed || !cache.crossed.empty();
  }
  return crossed ? kExitThresholdCrossed : kExitHealthy;
}

CheckReport CheckCaches(const std::vector<std::string>& dirs, const Thresholds& t) {
  CheckReport report;
  for (const std::string& dir : dirs) {
    CacheCheck check;
    check.path = dir;
    check.counted = t.max_bytes.has_value();
    check.usage = MeasureCache(dir, check.counted, check.error);
    if (const auto& usage = check.usage) {
      const auto ratio = usage->inode_usage();
      if (t.max_inode_usage && ratio && *ratio > *t.max_inode_usage) {
        check.crossed.push_back("inode usage " + Percent(*ratio) + " > " +
                                Percent(*t.max_inode_usage));
      }
      if (t.max_bytes && usage->bytes > *t.max_bytes) {
        check.crossed.push_back("entries hold " + Bytes(usage->bytes) + " > " +
                                Bytes(*t.max_bytes));
      }
      if (t.min_free_bytes && usage->avail_bytes < *t.min_free_bytes) {
        check.crossed.push_back("free space " + Bytes(usage->avail_bytes) + " < " +
                                Bytes(*t.min_free_bytes));
      }
    }
    report.caches.push_back(std::move(check));
  }
  return report;
}

std::string CheckText(const CheckReport& report) {
  std::string text;
  for (const auto& check : report.caches) {
    text += check.path + ": ";
    if (!check.usage) {
      text += "cannot read: " + check.error + "\n";
      continue;
    }
    const CacheUsage& usage = *check.usage;
    const auto ratio = usage.inode_usage();
    text += "inode usage " + (ratio ? Percent(*ratio) : std::string("n/a")) + ", " +
            Bytes(usage.avail_bytes) + " free";
    if (check.counted) {
      text += ", " + std::to_string(usage.entries) + " entries in " + Bytes(usage.bytes) + ", " +
              std::to_string(usage.trimmable) + " trimmable";
    }
    text += check.crossed.empty() ? ": ok" : ": FAIL";
    for (const auto& crossed : check.crossed) text += "; " + crossed;
    text += "\n";
    if (!check.cacheprog.empty()) {
      text += "  note: the go command uses GOCACHEPROG=" + check.cacheprog +
              " and stores no entries here itself\n";
    }
  }
  return text;
}

std::string CheckJson(const CheckReport& report) {
  using namespace report;
  rapidjson::StringBuffer json;
  JsonWriter w(json);
  w.StartObject();
  Key(w, "caches");
  w.StartArray();
  for (const auto& check : report.caches) {
    w.StartObject();
    String(w, "path", check.path);
    if (!check.usage) {
      Bool(w, "healthy", false);
      String(w, "error", check.error);
    } else {
      Filesystem(w, *check.usage);
      if (check.counted) {
        Uint(w, "entries", check.usage->entries);
        Uint(w, "entry_bytes", check.usage->bytes);
        Uint(w, "trimmable_entries", check.usage->trimmable);
      }
      if (!check.cacheprog.empty()) String(w, "cacheprog", check.cacheprog);
      Bool(w, "healthy", check.crossed.empty());
      Key(w, "crossed");
      w.StartArray();
      for (const auto& crossed : check.crossed) Element(w, crossed);
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();
  Bool(w, "healthy", report.exit_code() == kExitHealthy);
  w.EndObject();
  return std::string(json.GetString()) + "\n";
}

namespace {

CommandOutcome RunCheck(const Invocation& invocation) {
  FlagReader& read = invocation.flags;
  const OutputFormat format = invocation.format;
  Thresholds t;
  t.max_inode_usage = read.OptionalRatio("max-inode-usage", true);
  t.max_bytes = read.OptionalPositiveSize("max-bytes");
  t.min_free_bytes = read.OptionalPositiveSize("min-free-bytes");
  auto dirs = read.Paths("cache.dir");
  if (!read.ok()) return {kExitUsage, read.error()};
  const bool given = !dirs.empty();
  if (!given) dirs = GoBuildCaches();
  if (dirs.empty()) return {kExitUsage, "no build cache: give --cache.dir"};

  CheckReport report = CheckCaches(dirs, t);
  // A cache the go command no longer writes is worth saying so about.
  if (const std::string prog = GoCacheProg(ProcessEnv); !prog.empty()) {
    const auto go_caches = given ? GoBuildCaches() : dirs;
    for (auto& check : report.caches) {
      if (std::find(go_caches.begin(), go_caches.end(), AbsolutePath(check.path)) !=
          go_caches.end()) {
        check.cacheprog = prog;
      }
    }
  }
  std::cout << (format == OutputFormat::kJson ? CheckJson(report) : CheckText(report));
  return {report.exit_code(), ""};
}

}  // namespace

const Command& CheckCommand() {
  static const Command command{
      .name = "check",
      .summary = "A pre-build gate: is each build cache healthy? Exit 0 healthy, 1 not.",
      .description =
          "A pre-build gate: is each build cache healthy?\n"
          "Exit 0 healthy, 1 a threshold crossed, 2 usage error, 3 a cache cannot be "
          "read.",
      .add_flags =
          [](FlagSet& options) {
            options.Group()
                .Repeated("cache.dir", "Build cache to check; repeatable. Default: go env GOCACHE.")
                .Value("max-inode-usage",
                       "Fail when the cache's filesystem uses more of its inodes (0..1).")
                .Value("max-bytes",
                       "Fail when the cache's entries hold more bytes (counts the entries).")
                .Value("min-free-bytes", "Fail when less space is available to the build's user.");
          },
      .run = RunCheck,
  };
  return command;
}

}  // namespace gocache
