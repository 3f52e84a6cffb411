#include "commands/commands.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "base/flag_values.h"
#include "base/flags.h"
#include "cache/cache_discovery.h"
#include "cache/cache_trim.h"

namespace gocache {
namespace {

constexpr auto kGoEnvTimeout = std::chrono::seconds(10);

std::string Bytes(uint64_t n) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(n);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return text;
}

std::string Percent(double ratio) {
  char text[16];
  std::snprintf(text, sizeof text, "%.1f%%", ratio * 100);
  return text;
}

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void Key(JsonWriter& w, std::string_view key) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
}
// A string value: an array element, or after its key.
void Element(JsonWriter& w, std::string_view value) {
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}
void String(JsonWriter& w, std::string_view key, std::string_view value) {
  Key(w, key);
  Element(w, value);
}
void Uint(JsonWriter& w, std::string_view key, uint64_t value) {
  Key(w, key);
  w.Uint64(value);
}
void Ratio(JsonWriter& w, std::string_view key, std::optional<double> value) {
  Key(w, key);
  value ? w.Double(*value) : w.Null();
}
void Bool(JsonWriter& w, std::string_view key, bool value) {
  Key(w, key);
  w.Bool(value);
}

// The statvfs figures of a usage, as JSON members.
void Filesystem(JsonWriter& w, const CacheUsage& usage) {
  Uint(w, "files", usage.files);
  Uint(w, "files_free", usage.files_free);
  Ratio(w, "inode_usage_ratio", usage.inode_usage());
  Uint(w, "avail_bytes", usage.avail_bytes);
}

// --format: text or json; empty, with `error`, for anything else.
std::string Format(const cxxopts::ParseResult& flags, std::string& error) {
  std::string format = flags["format"].as<std::string>();
  if (format != "text" && format != "json") {
    error = "--format '" + format + "': want text or json";
    format.clear();
  }
  return format;
}

// A usage error: one line naming the flag, then the hint, exit 2.
int UsageError(std::string_view command, const std::string& message) {
  std::cerr << "gocache_exporter " << command << ": " << message << "\n"
            << "See 'gocache_exporter " << command << " --help'.\n";
  return kExitUsage;
}

// The build caches to act on: the --cache.dir values, else the one the go
// command uses.
std::vector<std::string> BuildCaches(const cxxopts::ParseResult& flags) {
  std::vector<std::string> dirs;
  for (const auto& dir : RepeatedFlag(flags, "cache.dir")) dirs.push_back(AbsolutePath(dir));
  if (!dirs.empty()) return dirs;
  for (const auto& cache : DiscoverCaches({}, {}, kGoEnvTimeout)) {
    if (cache.kind == CacheKind::kBuild) dirs.push_back(cache.path);
  }
  return dirs;
}

struct Thresholds {
  std::optional<double> max_inode_usage;
  std::optional<uint64_t> max_bytes, min_free_bytes;
};

// Parses --max-inode-usage, --max-bytes and --min-free-bytes where given.
std::string ParseThresholds(const cxxopts::ParseResult& flags, Thresholds& t) {
  if (flags.count("max-inode-usage")) {
    std::string error;
    t.max_inode_usage =
        ParseRatioFlag("max-inode-usage", flags["max-inode-usage"].as<std::string>(), true, error);
    if (!t.max_inode_usage) return error;
  }
  for (const char* name : {"max-bytes", "min-free-bytes"}) {
    if (!flags.count(name)) continue;
    std::string error;
    const auto size = ParsePositiveSizeFlag(name, flags[name].as<std::string>(), error);
    if (!size) return error;
    (std::string_view(name) == "max-bytes" ? t.max_bytes : t.min_free_bytes) = size;
  }
  return "";
}

int Check(int argc, char** argv) {
  cxxopts::Options options("gocache_exporter check",
                           "A pre-build gate: is each build cache healthy?\n"
                           "Exit 0 healthy, 1 a threshold crossed, 2 usage error, 3 a cache "
                           "cannot be read.");
  // clang-format off
  options.add_options()
      ("cache.dir", "Build cache to check; repeatable. Default: go env GOCACHE.",
       cxxopts::value<std::vector<std::string>>())
      ("max-inode-usage", "Fail when the cache's filesystem uses more of its inodes (0..1).",
       cxxopts::value<std::string>())
      ("max-bytes", "Fail when the cache's entries hold more bytes (counts the entries).",
       cxxopts::value<std::string>())
      ("min-free-bytes", "Fail when less space is available to the build's user.",
       cxxopts::value<std::string>())
      ("format", "text or json.", cxxopts::value<std::string>()->default_value("text"))
      ("h,help", "Show this help.");
  // clang-format on
  cxxopts::ParseResult flags;
  try {
    flags = options.parse(argc, argv);
  } catch (const std::exception& e) {
    return UsageError("check", e.what());
  }
  if (flags.count("help")) {
    std::cout << options.help();
    return kExitHealthy;
  }
  if (!flags.unmatched().empty()) {
    return UsageError("check", "unexpected argument '" + flags.unmatched().front() + "'");
  }
  Thresholds t;
  if (const auto error = ParseThresholds(flags, t); !error.empty()) {
    return UsageError("check", error);
  }
  std::string format_error;
  const std::string format = Format(flags, format_error);
  if (format.empty()) return UsageError("check", format_error);
  const auto dirs = BuildCaches(flags);
  if (dirs.empty()) return UsageError("check", "no build cache: give --cache.dir");

  bool crossed_any = false, unreadable = false;
  rapidjson::StringBuffer json;
  JsonWriter w(json);
  w.StartObject();
  Key(w, "caches");
  w.StartArray();
  for (const std::string& dir : dirs) {
    std::string error;
    // statvfs alone unless a threshold needs the entries counted.
    const auto usage = MeasureCache(dir, t.max_bytes.has_value(), error);
    std::vector<std::string> crossed;
    std::string text = dir + ": ";
    w.StartObject();
    String(w, "path", dir);
    if (!usage) {
      unreadable = true;
      text += "cannot read: " + error;
      Bool(w, "healthy", false);
      String(w, "error", error);
    } else {
      const auto ratio = usage->inode_usage();
      text += "inode usage " + (ratio ? Percent(*ratio) : std::string("n/a")) + ", " +
              Bytes(usage->avail_bytes) + " free";
      Filesystem(w, *usage);
      if (t.max_bytes) {
        text += ", " + std::to_string(usage->entries) + " entries in " + Bytes(usage->bytes) +
                ", " + std::to_string(usage->trimmable) + " trimmable";
        Uint(w, "entries", usage->entries);
        Uint(w, "entry_bytes", usage->bytes);
        Uint(w, "trimmable_entries", usage->trimmable);
      }
      if (t.max_inode_usage && ratio && *ratio > *t.max_inode_usage) {
        crossed.push_back("inode usage " + Percent(*ratio) + " > " + Percent(*t.max_inode_usage));
      }
      if (t.max_bytes && usage->bytes > *t.max_bytes) {
        crossed.push_back("entries hold " + Bytes(usage->bytes) + " > " + Bytes(*t.max_bytes));
      }
      if (t.min_free_bytes && usage->avail_bytes < *t.min_free_bytes) {
        crossed.push_back("free space " + Bytes(usage->avail_bytes) + " < " +
                          Bytes(*t.min_free_bytes));
      }
      text += crossed.empty() ? ": ok" : ": FAIL";
      Bool(w, "healthy", crossed.empty());
      Key(w, "crossed");
      w.StartArray();
      for (const auto& c : crossed) {
        text += "; " + c;
        Element(w, c);
      }
      w.EndArray();
      crossed_any = crossed_any || !crossed.empty();
    }
    w.EndObject();
    if (format == "text") std::cout << text << "\n";
  }
  w.EndArray();
  const int code = unreadable    ? kExitUnreadable
                   : crossed_any ? kExitThresholdCrossed
                                 : kExitHealthy;
  Bool(w, "healthy", code == kExitHealthy);
  w.EndObject();
  if (format == "json") std::cout << json.GetString() << "\n";
  return code;
}

// The trim command's flag for a bound.
const char* BoundFlag(TrimBound bound) {
  return bound == TrimBound::kBytes ? "max-bytes" : "max-inode-usage";
}

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

// A cache's entries and filesystem before or after the trim.
void Usage(JsonWriter& w, std::string_view key, const CacheUsage& usage) {
  Key(w, key);
  w.StartObject();
  Uint(w, "entries", usage.entries);
  Uint(w, "entry_bytes", usage.bytes);
  Filesystem(w, usage);
  w.EndObject();
}

std::string TrimJson(const std::string& dir, const TrimResult& r, bool dry_run) {
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
    Key(w, "limit");
    w.Double(u.limit);
    Key(w, "floor");
    w.Double(u.floor);
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

int Trim(int argc, char** argv) {
  cxxopts::Options options(
      "gocache_exporter trim",
      "Removes the least recently used entries of a build cache until every bound holds.\n"
      "An action goes with its output; trim.txt is left as it is. Exit 0 when every bound\n"
      "holds afterwards, 1 when one still does not, 2 usage error, 3 cache unreadable.");
  // clang-format off
  options.add_options()
      ("cache.dir", "The build cache. Default: go env GOCACHE.", cxxopts::value<std::string>())
      ("max-bytes", "Bound on the bytes of the cache's entries, such as 10GiB.",
       cxxopts::value<std::string>())
      ("max-inode-usage", "Bound on the inode usage of the cache's filesystem (0..1).",
       cxxopts::value<std::string>())
      ("max-age", "Remove entries unused for longer, such as 72h.", cxxopts::value<std::string>())
      ("keep-recent", "Never remove an entry used within this long for --max-bytes or "
       "--max-inode-usage (0s: any entry).", cxxopts::value<std::string>()->default_value("1h"))
      ("dry-run", "Print what would be removed; remove nothing.")
      ("format", "text or json.", cxxopts::value<std::string>()->default_value("text"))
      ("h,help", "Show this help.");
  // clang-format on
  cxxopts::ParseResult flags;
  try {
    flags = options.parse(argc, argv);
  } catch (const std::exception& e) {
    return UsageError("trim", e.what());
  }
  if (flags.count("help")) {
    std::cout << options.help();
    return kExitHealthy;
  }
  if (!flags.unmatched().empty()) {
    return UsageError("trim", "unexpected argument '" + flags.unmatched().front() + "'");
  }
  Thresholds t;
  if (const auto error = ParseThresholds(flags, t); !error.empty()) {
    return UsageError("trim", error);
  }
  TrimBounds bounds{t.max_bytes, t.max_inode_usage, std::nullopt};
  if (flags.count("max-age")) {
    std::string error;
    const auto age =
        ParsePositiveDurationFlag("max-age", flags["max-age"].as<std::string>(), error);
    if (!age) return UsageError("trim", error);
    bounds.max_age = std::chrono::duration_cast<std::chrono::seconds>(*age);
  }
  {
    std::string error;
    const auto keep =
        ParseDurationFlag("keep-recent", flags["keep-recent"].as<std::string>(), error);
    if (!keep) return UsageError("trim", error);
    bounds.keep_recent = std::chrono::duration_cast<std::chrono::seconds>(*keep);
  }
  if (!bounds.any()) {
    return UsageError("trim", "give at least one of --max-bytes, --max-inode-usage, --max-age");
  }
  std::string format_error;
  const std::string format = Format(flags, format_error);
  if (format.empty()) return UsageError("trim", format_error);
  std::string dir;
  if (flags.count("cache.dir")) {
    dir = AbsolutePath(flags["cache.dir"].as<std::string>());
  } else {
    const auto dirs = BuildCaches(flags);
    if (dirs.empty()) return UsageError("trim", "no build cache: give --cache.dir");
    dir = dirs.front();
  }

  TrimOptions trim_options;
  trim_options.dry_run = flags.count("dry-run") > 0;
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
    return kExitUnreadable;
  }
  for (const auto& e : result->errors) std::cerr << "gocache_exporter trim: " << e << "\n";
  const auto& r = *result;
  if (format == "json") {
    std::cout << TrimJson(dir, r, trim_options.dry_run) << "\n";
  } else {
    std::cout << TrimText(dir, r, trim_options.dry_run) << "\n";
  }
  return r.bounds_met ? kExitHealthy : kExitThresholdCrossed;
}

}  // namespace

bool IsCommand(std::string_view name) { return name == "check" || name == "trim"; }

std::string CommandsHelp() {
  return "Commands:\n"
         "  check          A pre-build gate: is each build cache healthy? Exit 0 healthy, 1 not.\n"
         "  trim           Remove the least recently used entries of a build cache until its\n"
         "                 bounds (bytes, inode usage, age) hold.\n"
         "  help [COMMAND] This help, or a command's (the same as COMMAND --help).\n";
}

int RunCommandLine(int argc, char** argv) {
  const std::string_view command = argv[1];
  // cxxopts sees the command's own arguments, with the command as argv[0].
  return command == "check" ? Check(argc - 1, argv + 1) : Trim(argc - 1, argv + 1);
}

}  // namespace gocache
