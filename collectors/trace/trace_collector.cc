#include "collectors/trace/trace_collector.h"

#include <unistd.h>

#include <chrono>
#include <memory>

#include "base/flags.h"
#include "base/log.h"
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

Configured Configure(const ParsedFlags& flags) {
  FlagReader read(flags);
  Config config;
  config.dirs = read.Paths("trace.dir");
  config.settle = read.PositiveDuration("trace.settle");
  config.max_file_bytes = read.PositiveSize("trace.max-file-bytes");
  const std::string on_done = read.Text("trace.on-done");
  if (on_done == "delete") {
    config.on_done = OnDone::kDelete;
  } else if (on_done != "rename") {
    read.Fail("--trace.on-done '" + on_done + "': want rename or delete");
  }
  if (!read.ok()) return read.error();
  ConfiguredCollector configured{Schedule::Every(kPollInterval), nullptr};
  if (!config.dirs.empty()) {  // else nothing to watch
    configured.make = [config](const CollectorContext&) -> std::unique_ptr<Collector> {
      return std::make_unique<TraceCollector>(config);
    };
  }
  return configured;
}

}  // namespace

CollectorInfo Info() {
  return CollectorInfo{
      .name = "trace",
      .help = "cache hits, misses and latency from go command traces (needs --trace.dir)",
      .enabled_by_default = true,
      .add_flags =
          [](FlagSet& options) {
            options.Group("trace collector")
                .Repeated("trace.dir",
                          "Spool directory into which builds drop -debug-actiongraph or "
                          "-debug-trace files (plain or gzip); repeatable.")
                .Value("trace.settle",
                       "A file not reported closed is read once unchanged this long.", "5s")
                .Value("trace.on-done",
                       "What to do with a file once counted: rename (to <name>.done) or delete.",
                       "rename")
                .Value("trace.max-file-bytes",
                       "Larger files (also once decompressed) are rejected.", "256MiB");
          },
      .configure = Configure,
      .scan_depth = ScanDepth::kNone,
  };
}

}  // namespace gocache::trace
