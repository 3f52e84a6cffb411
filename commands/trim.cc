#include "commands/trim.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "commands/report_format.h"

namespace gocache {
namespace {

using report::Bytes;
using report::Percent;

// The trim command's flag for a bound.
const char* BoundFlag(TrimBound bound) {
  return bound == TrimBound::kBytes ? "max-bytes" : "max-inode-usage";
}

}  // namespace

std::string TrimText(const std::string& dir, const TrimResult& r, bool dry_run) {
  std::ostringstream out;
  if (r.entries() == 0) {
    out << dir << ": nothing to remove";
  } else {
    out << dir << ": " << (dry_run ? "would remove" : "removed") << " " << r.entries()
        << " entries (" << r.actions << " actions, " << r.outputs << " outputs), " << Bytes(r.bytes)
        << ", " << r.entries() << " inodes";
  }
  const auto ratio = r.after.inode_usage();
  out << "; " << (dry_run ? "would leave " : "left ") << r.after.entries << " entries in "
      << Bytes(r.after.bytes) << ", inode usage " << (ratio ? Percent(*ratio) : std::string("n/a"));
  if (r.skipped > 0) out << "; " << r.skipped << " in use left alone";
  for (const auto& u : r.unreachable) {
    // Nothing was removed for this bound: say which and why.
    const auto amount = [&](double v) {
      return u.bound == TrimBound::kBytes ? Bytes(static_cast<uint64_t>(v)) : Percent(v);
    };
    out << "; --" << BoundFlag(u.bound) << " " << amount(u.limit)
        << " cannot be reached (removing every entry unused for --keep-recent would leave "
        << amount(u.floor) << "): nothing removed for it";
  }
  out << (r.bounds_met ? "" : "; a bound still does not hold");
  return out.str();
}

namespace {

// A cache's entries and filesystem before or after the trim.
void Usage(report::JsonWriter& w, std::string_view key, const CacheUsage& usage) {
  using namespace report;
  Key(w, key);
  w.StartObject();
  Uint(w, "entries", usage.entries);
  Uint(w, "entry_bytes", usage.bytes);
  Filesystem(w, usage);
  w.EndObject();
}

}  // namespace

std::string TrimJson(const std::string& dir, const TrimResult& r, bool dry_run) {
  using namespace report;
  rapidjson::StringBuffer json;
  JsonWriter w(json);
  w.StartObject();
  String(w, "path", dir);
  Bool(w, "dry_run", dry_run);
  Key(w, "removed");
  w.StartObject();
  Uint(w, "entries", r.entries());
  Uint(w, "actions", r.actions);
  Uint(w, "outputs", r.outputs);
  Uint(w, "entry_bytes", r.bytes);
  w.EndObject();
  Uint(w, "skipped", r.skipped);
  Usage(w, "before", r.before);
  Usage(w, "after", r.after);
  Key(w, "unreachable");
  w.StartArray();
  for (const auto& u : r.unreachable) {
    w.StartObject();
    String(w, "flag", std::string("--") + BoundFlag(u.bound));
    Double(w, "limit", u.limit);
    Double(w, "floor", u.floor);
    w.EndObject();
  }
  w.EndArray();
  Key(w, "errors");
  w.StartArray();
  for (const auto& e : r.errors) Element(w, e);
  w.EndArray();
  Bool(w, "bounds_met", r.bounds_met);
  w.EndObject();
  return json.GetString();
}

namespace {

CommandOutcome RunTrim(const Invocation& invocation) {
  FlagReader& read = invocation.flags;
  const OutputFormat format = invocation.format;
  TrimBounds bounds;
  bounds.max_inode_usage = read.OptionalRatio("max-inode-usage", true);
  bounds.max_bytes = read.OptionalPositiveSize("max-bytes");
  if (read.given("max-age")) {
    bounds.max_age =
        std::chrono::duration_cast<std::chrono::seconds>(read.PositiveDuration("max-age"));
  }
  bounds.keep_recent =
      std::chrono::duration_cast<std::chrono::seconds>(read.Duration("keep-recent"));
  auto dirs = read.Paths("cache.dir");
  if (!read.ok()) return {kExitUsage, read.error()};
  if (!bounds.any()) {
    return {kExitUsage, "give at least one of --max-bytes, --max-inode-usage, --max-age"};
  }
  if (dirs.size() > 1)
    return {kExitUsage, "--cache.dir given more than once: trim one cache at a time"};
  if (dirs.empty()) dirs = GoBuildCaches();
  if (dirs.empty()) return {kExitUsage, "no build cache: give --cache.dir"};
  const std::string dir = dirs.front();

  TrimOptions trim_options;
  trim_options.dry_run = read.given("dry-run");
  // A progress line on a terminal only; logs stay quiet.
  const bool terminal = isatty(STDERR_FILENO) == 1;
  auto last = std::chrono::steady_clock::now();
  if (terminal) {
    trim_options.progress = [&](const TrimProgress& p) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last < std::chrono::milliseconds(200)) return;
      last = now;
      std::fprintf(stderr, "\rtrim: %s %llu/%llu   ", p.phase,
                   static_cast<unsigned long long>(p.done),
                   static_cast<unsigned long long>(p.total));
    };
  }
  std::string error;
  const auto result = TrimCache(dir, bounds, trim_options, error);
  if (terminal) std::fprintf(stderr, "\r%40s\r", "");
  if (!result) {
    std::cerr << "gocache_exporter trim: cannot read " << error << "\n";
    return {kExitUnreadable, ""};
  }
  for (const auto& e : result->errors) std::cerr << "gocache_exporter trim: " << e << "\n";
  const auto& r = *result;
  std::cout << (format == OutputFormat::kJson ? TrimJson(dir, r, trim_options.dry_run)
                                              : TrimText(dir, r, trim_options.dry_run))
            << "\n";
  return {r.bounds_met ? kExitHealthy : kExitThresholdCrossed, ""};
}

}  // namespace

const Command& TrimCommand() {
  static const Command command{
      .name = "trim",
      .summary =
          "Remove the least recently used entries of a build cache until its\n"
          "                 bounds (bytes, inode usage, age) hold.",
      .description =
          "Removes the least recently used entries of a build cache until every bound holds.\n"
          "An action goes with its output; trim.txt is left as it is. Exit 0 when every bound\n"
          "holds afterwards, 1 when one still does not, 2 usage error, 3 cache unreadable.",
      .add_flags =
          [](FlagSet& options) {
            options.Group()
                .Repeated("cache.dir", "The build cache. Default: go env GOCACHE.")
                .Value("max-bytes", "Bound on the bytes of the cache's entries, such as 10GiB.")
                .Value("max-inode-usage",
                       "Bound on the inode usage of the cache's filesystem (0..1).")
                .Value("max-age", "Remove entries unused for longer, such as 72h.")
                .Value("keep-recent",
                       "Never remove an entry used within this long for --max-bytes or "
                       "--max-inode-usage (0s: any entry).",
                       "1h")
                .Switch("dry-run", "Print what would be removed; remove nothing.");
          },
      .run = RunTrim,
  };
  return command;
}

}  // namespace gocache
