// The companion commands for CI jobs: `gocache_exporter check`, a pre-build
// health gate, and `gocache_exporter trim`, a size-bounded LRU trim.
#pragma once

#include <string>
#include <string_view>

namespace gocache {

// Exit codes of check and trim.
constexpr int kExitHealthy = 0;
constexpr int kExitThresholdCrossed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreadable = 3;

// Whether argv[1] names a command (then RunCommandLine runs it).
bool IsCommand(std::string_view name);

// The commands, one line each, for the exporter's --help.
std::string CommandsHelp();

// Runs `gocache_exporter <command> ...`; returns the exit code.
int RunCommandLine(int argc, char** argv);

}  // namespace gocache
