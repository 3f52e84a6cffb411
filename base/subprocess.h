// Runs a child process with a deadline and bounded output: in its own process
// group, ended with SIGTERM then SIGKILL when it overruns, always reaped.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gocache {

// Where a child failed before its program ran.
enum class SetupStage {
  kIsolation,         // the user and mount namespace of read_only_dirs, scratch_dirs
  kWorkingDirectory,  // chdir to cwd
  kExec,              // the exec itself
};

struct SetupFailure {
  SetupStage stage;
  std::string message;  // what failed and why, such as "unshare(...): Operation not permitted"
};

struct CommandResult {
  bool started = false;
  // Set when the child could not set itself up: reported by the child on a
  // pipe of its own, not guessed from its exit status or stderr.
  std::optional<SetupFailure> setup_failure;
  bool timed_out = false;
  int exit_code = -1;  // valid when the child exited normally
  std::string output;  // stdout, at most max_output bytes
  bool output_truncated = false;
  std::string error_head;  // the first bytes of stderr
  std::string error;       // why it could not run, or how it ended badly
};

struct CommandSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH
  std::chrono::milliseconds timeout{10000};
  size_t max_output = 1 << 20;
  // When set, stdout is handed to it chunk by chunk as it arrives instead of
  // being kept in `output` (max_output still bounds the total). Returning
  // false ends the child: the consumer has seen enough to know it failed.
  std::function<bool(std::string_view)> on_output{};
  // The child's environment ("NAME=value"); empty: the exporter's own.
  std::vector<std::string> env{};
  std::string cwd{};  // empty: the exporter's
  int nice = 0;       // added to the child's CPU niceness
  // Directories the child sees read-only: it runs in a user and mount
  // namespace of its own in which each is bind-mounted read-only onto
  // itself. Where that is impossible, the result has a setup_failure
  // (SetupStage::kIsolation).
  std::vector<std::string> read_only_dirs{};
  // Directories the child sees as empty and writable (a tmpfs of its own
  // over each, in the same namespace): what it writes there is lost.
  std::vector<std::string> scratch_dirs{};
};

// The exit status of a child that could not set itself up (isolation, cwd,
// exec); the result's setup_failure says which and why.
constexpr int kSetupFailed = 126;

CommandResult RunCommand(const CommandSpec& spec);

// Ends every running and future RunCommand child (its whole process group):
// for shutdown, so that no go command outlives the exporter.
void CancelAllCommands();

// A child whose stdin and stdout are pipes of this process, left running:
// a GOCACHEPROG helper run by another (cacheprog --wrap) or by a benchmark.
// Its stderr is this process's.
struct PipedChild {
  pid_t pid = -1;
  int in = -1;   // its stdin, to write to
  int out = -1;  // its stdout, to read from
};

// Starts argv (argv[0] looked up on PATH); none, with `error` ("cannot run
// X: reason"), when it cannot be started.
std::optional<PipedChild> SpawnPiped(const std::vector<std::string>& argv, std::string& error);

// The full path of an executable named `name` on $PATH, or "".
std::string FindOnPath(const std::string& name);

}  // namespace gocache
