// The companion commands for CI jobs: `gocache_exporter check`, a pre-build
// health gate, and `gocache_exporter trim`, a size-bounded LRU trim. Each
// command line is parsed the same way here; the commands live in their own
// files (check.h, trim.h).
#pragma once

#include <string>
#include <string_view>

namespace gocache {

// Whether argv[1] names a command (then RunCommandLine runs it).
bool IsCommand(std::string_view name);

// The commands, one line each, for the exporter's --help.
std::string CommandsHelp();

// Runs `gocache_exporter <command> ...`; returns the exit code.
int RunCommandLine(int argc, char** argv);

}  // namespace gocache
