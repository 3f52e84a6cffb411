#include "collectors/trace/trace_collector.h"

#include <unistd.h>

#include <chrono>
#include <memory>

#include "base/flag_values.h"
#include "base/flags.h"
#include "base/log.h"
#include "cache/cache_discovery.h"
#include "collectors/trace/spool.h"
#include "collectors/trace/trace_parser.h"
#include "collectors/trace/trace_tally.h"

namespace gocache::trace {
namespace {

// How often the spools are looked at: inotify events wait at most this long.
constexpr auto kPollInterval = std::chrono::seconds(1);
// Bad files are logged one by one up to this many per update; a flood of
// them is summarized.
constexpr size_t kMaxLoggedFiles = 10;

struct Config {
  std::vector<std::string> dirs;
  std::chrono::milliseconds settle{0};
  OnDone on_done = OnDone::kRename;
  uint64_t max_file_bytes = 0;
};

class TraceCollector : public Collector {
 public:
  explicit TraceCollector(Config config)
      : config_(config), spool_(config.dirs, config.settle, config.on_done) {
    if (!spool_.watching()) {
      log::Warn("inotify is not available: trace files are found by rescans alone",
                {{"settle", std::to_string(config.settle.count()) + "ms"}});
    }
  }

  CollectResult Update() override {
    CollectResult result;
    size_t logged = 0, unlogged = 0;
    const auto report_bad = [&](const SpoolFile& file, std::string_view reason) {
      if (logged++ < kMaxLoggedFiles) {
        log::Warn("trace file rejected",
                  {{"file", spool_.dir(file) + "/" + file.name}, {"err", reason}});
      } else {
        ++unlogged;
      }
    };
    for (const SpoolFile& file : spool_.Scan(result.errors)) {
      TraceTally parsed;
      ParseOutcome outcome;
      if (!S_ISREG(file.st.st_mode)) {
        outcome.error = S_ISLNK(file.st.st_mode) ? "a symbolic link, which is never followed"
                                                 : "not a regular file";
      } else if (static_cast<uint64_t>(file.st.st_size) > config_.max_file_bytes) {
        outcome.error = "larger than --trace.max-file-bytes (" +
                        std::to_string(config_.max_file_bytes) + " bytes)";
      } else {
        const int fd = spool_.Open(file);
        if (fd < 0) continue;  // replaced, or still being written: a later scan finds it
        FdInput input(fd);
        TraceStream stream(input, config_.max_file_bytes);
        outcome = ParseTrace(stream, parsed);
        close(fd);
      }
      // Not finished when the file changed since it was found (it was still
      // being written: a parse error says nothing of the finished file) or
      // cannot be renamed: then it is not counted, and read again later.
      if (!spool_.Finish(file, outcome.ok(), result.errors)) continue;
      if (outcome.ok()) {
        tally_.Merge(parsed);
      } else {
        report_bad(file, outcome.error);
      }
      tally_.CountFile(outcome.format, outcome.ok());
    }
    if (unlogged > 0) {
      log::Warn("more trace files rejected", {{"count", unlogged}});
    }
    result.families = Render(tally_);
    return result;
  }

 private:
  const Config config_;
  Spool spool_;
  TraceTally tally_;  // since the exporter started
};

std::string ValidateFlags(const cxxopts::ParseResult& flags) {
  for (const auto& dir : RepeatedFlag(flags, "trace.dir")) {
    if (dir.empty()) return "--trace.dir must not be empty";
  }
  std::string error;
  if (!ParsePositiveDurationFlag("trace.settle", flags["trace.settle"].as<std::string>(), error)) {
    return error;
  }
  if (!ParsePositiveSizeFlag("trace.max-file-bytes",
                             flags["trace.max-file-bytes"].as<std::string>(), error)) {
    return error;
  }
  const auto on_done = flags["trace.on-done"].as<std::string>();
  if (on_done != "rename" && on_done != "delete") {
    return "--trace.on-done '" + on_done + "': want rename or delete";
  }
  return "";
}

}  // namespace

CollectorInfo Info() {
  return CollectorInfo{
      .name = "trace",
      .help = "cache hits, misses and latency from go command traces (needs --trace.dir)",
      .enabled_by_default = true,
      .add_flags =
          [](cxxopts::Options& options) {
            // clang-format off
            options.add_options("trace collector")
                ("trace.dir", "Spool directory into which builds drop -debug-actiongraph or "
                 "-debug-trace files (plain or gzip); repeatable.",
                 cxxopts::value<std::vector<std::string>>())
                ("trace.settle", "A file not reported closed is read once unchanged this long.",
                 cxxopts::value<std::string>()->default_value("5s"))
                ("trace.on-done", "What to do with a file once counted: rename (to <name>.done) "
                 "or delete.",
                 cxxopts::value<std::string>()->default_value("rename"))
                ("trace.max-file-bytes", "Larger files (also once decompressed) are rejected.",
                 cxxopts::value<std::string>()->default_value("256MiB"));
            // clang-format on
          },
      .validate_flags = ValidateFlags,
      .schedule = [](const cxxopts::ParseResult&) { return Schedule::Every(kPollInterval); },
      .factory = [](const CollectorContext& context) -> std::unique_ptr<Collector> {
        const auto& flags = context.flags;
        Config config;
        for (const auto& dir : RepeatedFlag(flags, "trace.dir")) {
          config.dirs.push_back(AbsolutePath(dir));
        }
        if (config.dirs.empty()) return nullptr;  // nothing to watch
        config.settle = *ParseDuration(flags["trace.settle"].as<std::string>());
        config.on_done = flags["trace.on-done"].as<std::string>() == "delete" ? OnDone::kDelete
                                                                              : OnDone::kRename;
        config.max_file_bytes = *ParseSize(flags["trace.max-file-bytes"].as<std::string>());
        return std::make_unique<TraceCollector>(std::move(config));
      },
      .scan_depth = ScanDepth::kNone,
  };
}

}  // namespace gocache::trace
