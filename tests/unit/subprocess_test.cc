#include "base/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace gocache {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

CommandResult Sh(const std::string& script, std::chrono::milliseconds timeout = 5s,
                 size_t max_output = 1 << 20) {
  return RunCommand({.argv = {"sh", "-c", script}, .timeout = timeout, .max_output = max_output});
}

int OpenFds() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n;
}

// No child of ours is left unreaped.
void ExpectNoZombie() {
  int status;
  errno = 0;
  const pid_t pid = waitpid(-1, &status, WNOHANG);
  EXPECT_TRUE(pid == 0 || (pid == -1 && errno == ECHILD))
      << "waitpid(-1) returned " << pid << ": an unreaped child";
}

// True once `pid` is gone or a zombie (reparented, its new parent may not
// reap it); waits at most 1 s.
bool WaitProcessDead(pid_t pid) {
  const auto give_up = Clock::now() + 1s;
  for (;;) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!stat || !std::getline(stat, line)) return true;
    const size_t paren = line.rfind(')');
    if (paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z') {
      return true;
    }
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(10ms);
  }
}

TEST(RunCommandTest, Output) {
  const int fds = OpenFds();
  const auto result = Sh("echo hi");
  EXPECT_TRUE(result.started);
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.output, "hi\n");
  EXPECT_FALSE(result.output_truncated);
  EXPECT_TRUE(result.error_head.empty());
  EXPECT_TRUE(result.error.empty()) << result.error;
  EXPECT_EQ(OpenFds(), fds);  // both pipes closed
  ExpectNoZombie();
}

TEST(RunCommandTest, ArgumentsPassedVerbatim) {
  const auto result = RunCommand({.argv = {"printf", "%s|%s", "a b", "c\nd"}});
  EXPECT_EQ(result.exit_code, 0) << result.error;
  EXPECT_EQ(result.output, "a b|c\nd");
}

TEST(RunCommandTest, StdinIsEmpty) {
  const auto result = Sh("wc -c", 2s);
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.output, "0\n");
}

TEST(RunCommandTest, NonZeroExit) {
  const auto result = Sh("exit 3");
  EXPECT_TRUE(result.started);
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_FALSE(result.error.empty());
  EXPECT_NE(result.error.find("3"), std::string::npos) << result.error;
  ExpectNoZombie();
}

TEST(RunCommandTest, StderrCaptured) {
  const auto result = Sh("echo out; echo oops >&2; exit 1");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.output, "out\n");
  EXPECT_EQ(result.error_head, "oops\n");
}

TEST(RunCommandTest, StderrHeadBounded) {
  const auto result = Sh("head -c 100000 /dev/zero | tr '\\0' e >&2; echo done");
  EXPECT_EQ(result.exit_code, 0) << result.error;
  EXPECT_EQ(result.output, "done\n");
  EXPECT_GT(result.error_head.size(), 0u);
  EXPECT_LE(result.error_head.size(), 4096u);
  EXPECT_EQ(result.error_head.find_first_not_of('e'), std::string::npos);
}

TEST(RunCommandTest, KilledBySignal) {
  const auto result = Sh("kill -9 $$");
  EXPECT_TRUE(result.started);
  EXPECT_FALSE(result.timed_out);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.error.find("signal 9"), std::string::npos) << result.error;
}

TEST(RunCommandTest, TimeoutKillsAndReaps) {
  const int fds = OpenFds();
  const auto t0 = Clock::now();
  const auto result = Sh("echo $$; sleep 30", 200ms);
  const auto took = Clock::now() - t0;
  EXPECT_TRUE(result.started);
  EXPECT_TRUE(result.timed_out);
  EXPECT_NE(result.error.find("timed out"), std::string::npos) << result.error;
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(OpenFds(), fds);
  ExpectNoZombie();
  // The shell itself is gone (reaped: no /proc entry, or at most a zombie of
  // someone else if the pid was reused, which the check tolerates).
  ASSERT_FALSE(result.output.empty());
  const pid_t shell = static_cast<pid_t>(std::stol(result.output));
  EXPECT_TRUE(WaitProcessDead(shell));
}

TEST(RunCommandTest, TimeoutKillsTheWholeProcessGroup) {
  const auto t0 = Clock::now();
  // The background sleep is a grandchild: only a group kill reaches it.
  const auto result = Sh("sleep 30 & echo $!; wait", 200ms);
  EXPECT_TRUE(result.timed_out);
  EXPECT_LT(Clock::now() - t0, 3s);
  ExpectNoZombie();
  ASSERT_FALSE(result.output.empty());
  const pid_t grandchild = static_cast<pid_t>(std::stol(result.output));
  EXPECT_TRUE(WaitProcessDead(grandchild)) << "sleep " << grandchild << " survived the timeout";
}

// The child exits at once but leaves a process in its group that holds the
// output pipes open past the deadline. RunCommand stops reading at the
// deadline, so the group overran: it must be signalled like any overrun
// (subprocess.h: "in its own process group, ended with SIGTERM then SIGKILL
// when it overruns"), and the result must not claim a clean exit.
TEST(RunCommandTest, DescendantHoldingOutputPastDeadlineIsKilled) {
  const auto t0 = Clock::now();
  const auto result = Sh("sleep 5 & echo $!", 300ms);
  EXPECT_LT(Clock::now() - t0, 3s);
  ExpectNoZombie();
  ASSERT_FALSE(result.output.empty());
  const pid_t grandchild = static_cast<pid_t>(std::stol(result.output));
  const bool dead = WaitProcessDead(grandchild);
  EXPECT_TRUE(dead) << "sleep " << grandchild << " still runs after RunCommand returned";
  EXPECT_TRUE(result.timed_out) << "output was cut at the deadline, yet exit_code="
                                << result.exit_code << " error='" << result.error << "'";
  if (!dead) kill(grandchild, SIGKILL);  // do not leave it behind
}

TEST(RunCommandTest, TimeoutWithOutputClosedEarly) {
  const auto t0 = Clock::now();
  const auto result = Sh("exec >/dev/null 2>&1; sleep 30", 200ms);
  EXPECT_TRUE(result.timed_out);
  EXPECT_LT(Clock::now() - t0, 3s);
  ExpectNoZombie();
}

TEST(RunCommandTest, SigtermIgnoredThenKilled) {
  const auto t0 = Clock::now();
  const auto result = Sh("trap '' TERM; sleep 30", 200ms);
  EXPECT_TRUE(result.timed_out);
  EXPECT_LT(Clock::now() - t0, 3s);
  ExpectNoZombie();
}

TEST(RunCommandTest, OutputTruncated) {
  const auto result = Sh("head -c 100000 /dev/zero | tr '\\0' x", 5s, 1000);
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.exit_code, 0) << result.error;  // drained, not killed by SIGPIPE
  EXPECT_TRUE(result.output_truncated);
  EXPECT_EQ(result.output.size(), 1000u);
  EXPECT_EQ(result.output, std::string(1000, 'x'));
}

TEST(RunCommandTest, OutputExactlyAtLimitNotTruncated) {
  const auto result = Sh("printf 12345", 5s, 5);
  EXPECT_EQ(result.output, "12345");
  EXPECT_FALSE(result.output_truncated);
  const auto over = Sh("printf 123456", 5s, 5);
  EXPECT_EQ(over.output, "12345");
  EXPECT_TRUE(over.output_truncated);
}

TEST(RunCommandTest, MissingProgram) {
  const auto result = RunCommand({.argv = {"gocache-no-such-program-7f3a"}});
  EXPECT_FALSE(result.started);
  EXPECT_FALSE(result.timed_out);
  EXPECT_NE(result.error.find("gocache-no-such-program-7f3a"), std::string::npos) << result.error;
  ExpectNoZombie();
}

TEST(RunCommandTest, EmptyArgv) {
  const auto result = RunCommand({.argv = {}});
  EXPECT_FALSE(result.started);
  EXPECT_FALSE(result.error.empty());
}

TEST(FindOnPathTest, Values) {
  const std::string sh = FindOnPath("sh");
  ASSERT_FALSE(sh.empty());
  EXPECT_EQ(sh.front(), '/');
  EXPECT_EQ(access(sh.c_str(), X_OK), 0);
  EXPECT_EQ(std::filesystem::path(sh).filename(), "sh");
  EXPECT_EQ(FindOnPath("gocache-no-such-program-7f3a"), "");
  EXPECT_EQ(FindOnPath(sh), sh);  // a path is taken as is
  EXPECT_EQ(FindOnPath("/nonexistent/sh"), "");
}

TEST(RunCommandTest, EnvironmentAndWorkingDirectory) {
  CommandSpec spec{.argv = {"sh", "-c", "echo \"$FOO\"; pwd"}};
  spec.env = {"FOO=bar baz", "PATH=/usr/bin:/bin"};
  spec.cwd = "/";
  const auto result = RunCommand(spec);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.output, "bar baz\n/\n");
}

TEST(RunCommandTest, MissingWorkingDirectoryIsASetupFailure) {
  CommandSpec spec{.argv = {"sh", "-c", "echo ran"}};
  spec.cwd = "/nonexistent/dir";
  const auto result = RunCommand(spec);
  EXPECT_EQ(result.exit_code, kSetupFailed);
  EXPECT_EQ(result.output, "");
  ASSERT_TRUE(result.setup_failure.has_value());
  EXPECT_EQ(result.setup_failure->stage, SetupStage::kWorkingDirectory);
  EXPECT_EQ(result.setup_failure->message, "/nonexistent/dir: No such file or directory");
  EXPECT_EQ(result.error,
            "sh: cannot set up the child: /nonexistent/dir: No such file or directory");
  EXPECT_EQ(result.error_head, "");  // reported on its own pipe, not on stderr
}

TEST(RunCommandTest, IsolationFailureIsASetupStatusNotStderr) {
  // A read-only directory that does not exist cannot be bind-mounted.
  CommandSpec spec{.argv = {"sh", "-c", "echo ran"}};
  spec.read_only_dirs = {"/nonexistent/cache"};
  const auto result = RunCommand(spec);
  EXPECT_EQ(result.output, "");
  ASSERT_TRUE(result.setup_failure.has_value()) << result.error;
  EXPECT_EQ(result.setup_failure->stage, SetupStage::kIsolation);
  EXPECT_NE(result.setup_failure->message.find("/nonexistent/cache"), std::string::npos)
      << result.setup_failure->message;
  EXPECT_EQ(result.error_head, "");
}

TEST(RunCommandTest, ProgramThatWritesLikeASetupFailureIsNotOne) {
  // Text on stderr and exit 126 from the program itself: its own failure.
  const auto result = RunCommand(
      {.argv = {"sh", "-c", "echo 'gocache_exporter: cannot set up the child: x' >&2; exit 126"}});
  EXPECT_FALSE(result.setup_failure.has_value());
  EXPECT_EQ(result.exit_code, 126);
  EXPECT_EQ(result.error, "sh: exit status 126");
}

TEST(RunCommandTest, SuccessfulRunHasNoSetupFailure) {
  const auto result = RunCommand({.argv = {"true"}});
  EXPECT_FALSE(result.setup_failure.has_value());
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.error, "");
}

TEST(RunCommandTest, NicenessIsRaised) {
  errno = 0;
  const int ours = getpriority(PRIO_PROCESS, 0);
  ASSERT_EQ(errno, 0);
  CommandSpec spec{.argv = {"sh", "-c", "cut -d' ' -f19 /proc/self/stat"}};
  spec.nice = 10;
  const auto result = RunCommand(spec);
  EXPECT_EQ(result.output, std::to_string(std::min(19, ours + 10)) + "\n");
}

TEST(RunCommandTest, ReadOnlyDirectoriesCannotBeWrittenAndNothingLeaks) {
  const std::string base = ::testing::TempDir() + "/gocache_ro_" + std::to_string(getpid());
  const std::string locked = base + "/locked", open = base + "/open";
  std::filesystem::create_directories(locked);
  std::filesystem::create_directories(open);
  CommandSpec spec{.argv = {"sh", "-c",
                            "touch '" + open + "/ok' && ! touch '" + locked +
                                "/no' 2>/dev/null && echo isolated"}};
  spec.read_only_dirs = {locked};
  const auto result = RunCommand(spec);
  EXPECT_EQ(result.output, "isolated\n") << result.error << result.error_head;
  EXPECT_TRUE(std::filesystem::exists(open + "/ok"));
  EXPECT_FALSE(std::filesystem::exists(locked + "/no"));
  // The read-only mount lived in the child's namespace only.
  std::ofstream(locked + "/after") << "x";
  EXPECT_TRUE(std::filesystem::exists(locked + "/after"));
  std::filesystem::remove_all(base);
}

TEST(RunCommandTest, OutputStreamsToTheConsumer) {
  std::string seen;
  CommandSpec spec{.argv = {"sh", "-c", "seq 1 20000"}};
  spec.on_output = [&seen](std::string_view chunk) {
    seen.append(chunk);
    return true;
  };
  const auto result = RunCommand(spec);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.output, "");  // handed over, not kept
  EXPECT_EQ(std::count(seen.begin(), seen.end(), '\n'), 20000);
}

TEST(RunCommandTest, ConsumerRejectingOutputEndsTheChild) {
  CommandSpec spec{.argv = {"sh", "-c", "while :; do echo garbage; done"}};
  spec.on_output = [](std::string_view) { return false; };
  const auto start = Clock::now();
  const auto result = RunCommand(spec);
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_NE(result.error.find("output rejected"), std::string::npos) << result.error;
  EXPECT_FALSE(result.timed_out);
}

TEST(RunCommandTest, StreamedOutputIsCapped) {
  CommandSpec spec{.argv = {"sh", "-c", "while :; do echo 0123456789; done"}};
  spec.max_output = 100000;
  spec.on_output = [](std::string_view) { return true; };
  const auto result = RunCommand(spec);
  EXPECT_TRUE(result.output_truncated);
  EXPECT_NE(result.error.find("output over 100000 bytes"), std::string::npos) << result.error;
}

}  // namespace
}  // namespace gocache
