#include "commands/cacheprog/cacheprog.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "base/write_all.h"
#include "cache/cache_budget.h"
#include "cache/cache_discovery.h"
#include "cache/disk_cache.h"
#include "commands/cacheprog/reporter.h"
#include "commands/cacheprog/server.h"
#include "commands/cacheprog/wrap.h"

namespace gocache {
namespace {

constexpr const char* kProgram = "gocache_exporter cacheprog";

namespace report = cacheprog_report;

report::Report RequestReport(const helper::RequestRecord& record) {
  return report::Report{
      .event = report::Event::kRequest,
      .command = record.command == helper::RequestCommand::kPut ? report::Command::kPut
                                                                : report::Command::kGet,
      .result = record.result,
      .miss = record.miss,
      .bytes = record.bytes,
      .duration_ns = static_cast<uint64_t>(record.duration.count()),
  };
}

// When the cache cannot be used the helper still answers: it declares only
// "close", so the go command builds without a cache (every get a miss, no
// put) instead of failing.
int ServeWithoutCache(const std::string& why) {
  std::cerr << kProgram << ": " << why << ": building without the cache\n";
  const std::string hello = "{\"ID\":0,\"KnownCommands\":[\"close\"]}\n";
  if (!WriteAll(STDOUT_FILENO, hello)) return 1;
  helper::RequestReader reader(
      [](char* buffer, size_t size) { return read(STDIN_FILENO, buffer, size); }, 0);
  for (;;) {
    const auto next = reader.Next();
    if (next.kind == helper::ReadOutcome::Kind::kEnd) return 0;
    helper::Response answer{.id = next.request.id};
    if (next.kind == helper::ReadOutcome::Kind::kInvalid) answer.err = next.error;
    const std::string line = helper::FormatResponse(answer);
    if (!WriteAll(STDOUT_FILENO, line)) return 1;
    if (next.kind == helper::ReadOutcome::Kind::kRequest &&
        next.request.command == helper::RequestCommand::kClose) {
      return 0;
    }
  }
}

// Tells the exporter a helper started, and which GOCACHE its go command has:
// the exporter marks that cache as one the go command no longer writes.
void ReportStart(helper::Reporter& reporter, const std::string& go_cache) {
  reporter.Send(report::Report{.event = report::Event::kStart});
  if (!go_cache.empty()) {
    reporter.Send(report::Report{.event = report::Event::kGoCache, .path = go_cache});
  }
}

// Runs another helper under --wrap, reporting its answers as
// path="wrap:<its name>".
int RunWrapped(const std::vector<std::string>& command, const std::string& socket,
               const std::string& go_cache) {
  const std::string name = std::filesystem::path(command.front()).filename().string();
  helper::Reporter reporter(socket, std::string(report::kWrapPrefix) + name);
  ReportStart(reporter, go_cache);
  bool stopped = false;
  const auto wrapped = helper::Wrap(
      command, STDIN_FILENO, STDOUT_FILENO,
      [&](const helper::RequestRecord& r) { reporter.Send(RequestReport(r)); },
      [&] {
        reporter.Send(report::Report{.event = report::Event::kStop});
        reporter.Finish();
        stopped = true;
      });
  if (!wrapped.problem.empty()) std::cerr << kProgram << ": " << wrapped.problem << "\n";
  if (!stopped) reporter.Send(report::Report{.event = report::Event::kStop});
  return wrapped.exit_code;
}

CommandOutcome RunCacheprog(const Invocation& invocation) {
  FlagReader& read = invocation.flags;
  const auto dirs = read.Paths("cache.dir");
  const uint64_t max_body_size = read.PositiveSize("max-body-size");
  const std::string socket = read.Text("cacheprog.socket");
  CacheLimits limits;
  limits.max_bytes = read.OptionalPositiveSize("max-bytes");
  limits.max_inode_usage = read.OptionalRatio("max-inode-usage", true);
  if (!read.ok()) return {kExitUsage, read.error()};
  if (dirs.size() > 1) return {kExitUsage, "--cache.dir given more than once"};
  // The go command's GOCACHE, from its environment (the helper's): the helper
  // starts once per go command and may not spend time asking `go env`.
  const std::string go_cache = DefaultBuildCache(ProcessEnv);

  // The go command reading our stdout may be gone: a failed write is an
  // error to handle, not a signal that kills the helper.
  std::signal(SIGPIPE, SIG_IGN);
  if (read.given("wrap")) {
    if (invocation.command.empty()) {
      return {kExitUsage, "--wrap needs the helper to run: --wrap -- CMD ARGS..."};
    }
    for (const char* own : {"cache.dir", "max-bytes", "max-inode-usage", "max-body-size"}) {
      if (read.given(own)) {
        return {kExitUsage, std::string("--") + own +
                                " is the helper's own; with --wrap the "
                                "wrapped helper keeps the cache"};
      }
    }
    return {RunWrapped(invocation.command, socket, go_cache), ""};
  }
  if (!invocation.command.empty()) {
    return {kExitUsage, "a helper to run after -- needs --wrap"};
  }
  const std::string dir = dirs.empty() ? go_cache : dirs.front();
  if (dir.empty()) return {kExitUsage, "no build cache: give --cache.dir"};

  // A fresh runner has no cache yet: the go command would make it too.
  std::error_code ignored;
  std::filesystem::create_directories(dir, ignored);
  std::string error;
  const auto cache = DiskCache::Open(dir, error);
  if (!cache) return {ServeWithoutCache(error), ""};

  helper::Reporter reporter(socket, dir);
  ReportStart(reporter, go_cache);
  helper::ServeOptions options;
  options.max_body_size = max_body_size;
  auto budget = limits.any() ? CacheBudget::Open(dir, limits, error) : std::nullopt;
  // Unbounded rather than failed: a bound never fails a build.
  if (limits.any() && !budget) {
    std::cerr << kProgram << ": cannot keep the bounds: " << error << "\n";
  }
  options.budget = budget ? &*budget : nullptr;
  options.before_close = [&] {
    // The go command trims a cache it writes when it closes it; it no
    // longer writes this one, so its helper does.
    if (const auto trimmed = cache->TrimIfDue(error); trimmed && trimmed->entries() > 0) {
      if (budget) budget->Recount();
      reporter.Send(report::Report{.event = report::Event::kEviction,
                                   .bytes = trimmed->bytes,
                                   .eviction = report::EvictionReason::kAge,
                                   .entries = trimmed->entries()});
    } else if (!trimmed && !error.empty()) {
      std::cerr << kProgram << ": trim: " << error << "\n";
    }
    if (budget) budget->ReleaseHolds();
    reporter.Send(report::Report{.event = report::Event::kStop});
    reporter.Finish();
  };
  const auto served = helper::Serve(
      *cache, STDIN_FILENO, STDOUT_FILENO, options,
      [&](const helper::RequestRecord& r) { reporter.Send(RequestReport(r)); },
      [&](const Eviction& e) {
        reporter.Send(report::Report{.event = report::Event::kEviction,
                                     .bytes = e.bytes,
                                     .eviction = e.bound == TrimBound::kBytes
                                                     ? report::EvictionReason::kBytes
                                                     : report::EvictionReason::kInodes,
                                     .entries = e.entries});
      });
  if (!served.problem.empty()) std::cerr << kProgram << ": " << served.problem << "\n";
  // Without a close (the go command ended first), it stops here.
  if (!served.closed) reporter.Send(report::Report{.event = report::Event::kStop});
  return {kExitHealthy, ""};
}

}  // namespace

const Command& CacheprogCommand() {
  static const Command command{
      .name = "cacheprog",
      .summary =
          "A GOCACHEPROG helper: serves the go command's cache gets and puts\n"
          "                 from a build cache in the go command's own format.",
      .description =
          "A GOCACHEPROG helper (go 1.24 and later, or go 1.21 to 1.23 built with\n"
          "GOEXPERIMENT=cacheprog). The go command starts it once per go command:\n"
          "  GOCACHEPROG=\"gocache_exporter cacheprog --cache.dir=/srv/ci/go-build\"\n"
          "Entries are stored as the go command stores them, so a go command without the\n"
          "helper, check, trim and the exporter use the same directory unchanged.\n"
          "With --wrap it runs another helper instead (a remote cache, say), relays\n"
          "the protocol unchanged and reports how long each of its answers took:\n"
          "  GOCACHEPROG=\"gocache_exporter cacheprog --wrap -- /usr/local/bin/remote-cache\"",
      .add_flags =
          [](FlagSet& options) {
            options.SetUsage("[OPTION...] [--wrap -- HELPER ARGS...]");
            options.Group()
                .Repeated("cache.dir",
                          "The build cache. Default: $GOCACHE, else the go command's default.")
                .Value("max-body-size",
                       "Largest output stored; a larger put gets an error, the build goes on.",
                       "1GiB")
                .Value("max-bytes",
                       "Bound on the bytes of the cache's entries, such as 20GiB: a put that "
                       "would cross it first evicts the least recently used.")
                .Value("max-inode-usage",
                       "Bound on the inode usage of the cache's filesystem (0..1), kept the same "
                       "way.")
                .Switch("wrap",
                        "Run the helper given after -- and measure its answers, instead of "
                        "serving a cache.")
                .Value("cacheprog.socket",
                       "Where a running exporter receives the helper's reports (its own "
                       "--cacheprog.socket); empty: send none.",
                       cacheprog_report::kDefaultSocket);
          },
      .run = RunCacheprog,
      .formats = false,
      .runs_command = true,
  };
  return command;
}

}  // namespace gocache
