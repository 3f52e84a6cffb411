// What a command for CI jobs is: a name, its flags, and a run that computes
// its result and renders it as text or JSON. commands.cc parses every
// command's line the same way (commands.h).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/flags.h"

namespace gocache {

// Exit codes of the commands.
constexpr int kExitHealthy = 0;
constexpr int kExitThresholdCrossed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreadable = 3;

enum class OutputFormat { kText, kJson };

struct CommandOutcome {
  int exit_code = kExitHealthy;
  std::string usage_error;  // set: a usage error (exit 2), nothing else printed
};

// What a command runs with.
struct Invocation {
  FlagReader& flags;
  OutputFormat format;
  // For a command that runs another (Command::runs_command): the command line
  // after `--`, empty when none was given.
  std::vector<std::string> command;
};

struct Command {
  const char* name;
  const char* summary;      // one line of the exporter's --help
  const char* description;  // the head of the command's --help
  // The command's own flags (--format and --help are everyone's).
  std::function<void(FlagSet&)> add_flags;
  // Reads the flags (a bad value is a usage error naming it), does the work
  // and prints the result in the invocation's format.
  std::function<CommandOutcome(const Invocation&)> run;
  // Whether it prints a result that --format chooses the form of.
  bool formats = true;
  // Whether it takes a command line to run after `--`.
  bool runs_command = false;
};

// The build caches the go command uses (go env GOCACHE), for a command given
// no --cache.dir: none when there is none.
std::vector<std::string> GoBuildCaches();

// The thresholds check and trim share, each where given.
struct Thresholds {
  std::optional<double> max_inode_usage;   // --max-inode-usage
  std::optional<uint64_t> max_bytes;       // --max-bytes
  std::optional<uint64_t> min_free_bytes;  // --min-free-bytes (check)
};

}  // namespace gocache
