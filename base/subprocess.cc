#include "base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

extern char** environ;

namespace gocache {
namespace {

constexpr size_t kErrorHeadBytes = 2048;
constexpr auto kKillGrace = std::chrono::milliseconds(500);

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits for the child; past `deadline` its group gets `signal_to_send`,
// then SIGKILL.
int Reap(pid_t pid, Clock::time_point deadline, int signal_to_send, bool& timed_out) {
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) return status;
    if (Clock::now() >= deadline) {
      timed_out = true;
      kill(-pid, signal_to_send);
      signal_to_send = SIGKILL;
      deadline = Clock::now() + kKillGrace;
    }
    usleep(10000);
  }
}

// What the child needs to isolate itself, prepared before fork: after it,
// only async-signal-safe calls.
struct Isolation {
  std::string uid_map, gid_map;
  std::vector<std::pair<const char*, unsigned long>> dirs;  // path, mount flags to keep
  std::vector<const char*> scratch;
};

std::atomic<bool> g_cancelled{false};
// How often a wait looks at g_cancelled.
constexpr int kCancelPollMs = 100;

// Mount flags a remount inside a user namespace must keep: the kernel locks
// these from the parent namespace.
unsigned long LockedFlags(const char* path) {
  struct statvfs fs;
  if (statvfs(path, &fs) != 0) return 0;
  unsigned long flags = 0;
  if (fs.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (fs.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (fs.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (fs.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (fs.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (fs.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

// The child's end of the setup status pipe (close-on-exec: a successful exec
// closes it unwritten), and the stage it is in.
int g_setup_fd = -1;

// In the child: reports why setup failed on the status pipe, then exits.
// Async-signal-safe calls only.
[[noreturn]] void ChildFail(SetupStage stage, const char* what) {
  const int err = errno;
  const char code = static_cast<char>('0' + static_cast<int>(stage));
  [[maybe_unused]] ssize_t n = write(g_setup_fd, &code, 1);
  n = write(g_setup_fd, what, strlen(what));
  n = write(g_setup_fd, ": ", 2);
  const char* why = strerror(err);
  n = write(g_setup_fd, why, strlen(why));
  _exit(kSetupFailed);
}

bool WriteFile(const char* path, const std::string& content) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  close(fd);
  return ok;
}

// In the child: a user namespace in which we are who we were, and a mount
// namespace in which the given directories are read-only.
void EnterIsolation(const Isolation& isolation) {
  const auto fail = [](const char* what) { ChildFail(SetupStage::kIsolation, what); };
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWUSER|CLONE_NEWNS)");
  if (!WriteFile("/proc/self/setgroups", "deny")) fail("/proc/self/setgroups");
  if (!WriteFile("/proc/self/uid_map", isolation.uid_map)) fail("/proc/self/uid_map");
  if (!WriteFile("/proc/self/gid_map", isolation.gid_map)) fail("/proc/self/gid_map");
  // Nothing done here may reach the exporter's mount namespace.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail("mount private");
  for (const auto& [dir, keep] : isolation.dirs) {
    if (mount(dir, dir, nullptr, MS_BIND | MS_REC, nullptr) != 0) fail(dir);
    if (mount(nullptr, dir, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, nullptr) != 0) {
      fail(dir);
    }
  }
  for (const char* dir : isolation.scratch) {
    if (mount("gocache-scratch", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m") != 0) fail(dir);
  }
}

}  // namespace

void CancelAllCommands() { g_cancelled = true; }

std::string FindOnPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    struct stat status;
    if (stat(candidate.c_str(), &status) == 0 && S_ISREG(status.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return "";
}

namespace {

// Phase 1, before fork: everything the child needs, so that after fork it
// makes only async-signal-safe calls.
struct Prepared {
  std::string program;
  std::vector<char*> argv, envp;
  Isolation isolation;
};

std::optional<Prepared> Prepare(const CommandSpec& spec, std::string& error) {
  if (spec.argv.empty()) {
    error = "no command";
    return std::nullopt;
  }
  Prepared p;
  p.program = FindOnPath(spec.argv[0]);
  if (p.program.empty()) {
    error = spec.argv[0] + ": not found on PATH";
    return std::nullopt;
  }
  for (const auto& arg : spec.argv) p.argv.push_back(const_cast<char*>(arg.c_str()));
  p.argv.push_back(nullptr);
  for (const auto& var : spec.env) p.envp.push_back(const_cast<char*>(var.c_str()));
  p.envp.push_back(nullptr);
  for (const auto& dir : spec.scratch_dirs) p.isolation.scratch.push_back(dir.c_str());
  if (!spec.read_only_dirs.empty() || !spec.scratch_dirs.empty()) {
    p.isolation.uid_map = "0 " + std::to_string(getuid()) + " 1\n";
    p.isolation.gid_map = "0 " + std::to_string(getgid()) + " 1\n";
    for (const auto& dir : spec.read_only_dirs) {
      p.isolation.dirs.emplace_back(dir.c_str(), LockedFlags(dir.c_str()));
    }
  }
  return p;
}

// The parent's ends of the child's stdout, stderr and setup status.
struct ChildPipes {
  int out = -1, err = -1, setup = -1;
};

// Phase 2: fork; the child sets itself up and execs. -1 with `error` when
// there is no child.
pid_t Spawn(const CommandSpec& spec, const Prepared& p, ChildPipes& pipes, std::string& error) {
  int fds[3][2];
  for (int i = 0; i < 3; ++i) {
    if (pipe2(fds[i], O_CLOEXEC) != 0) {
      error = std::string("pipe: ") + std::strerror(errno);
      for (int j = 0; j < i; ++j) close(fds[j][0]), close(fds[j][1]);
      return -1;
    }
  }
  const pid_t pid = fork();
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    for (auto& pair : fds) close(pair[0]), close(pair[1]);
    return -1;
  }
  if (pid == 0) {
    g_setup_fd = fds[2][1];
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the exporter blocks SIGTERM; the child must not
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    dup2(fds[0][1], STDOUT_FILENO);
    dup2(fds[1][1], STDERR_FILENO);
    if (spec.nice != 0) setpriority(PRIO_PROCESS, 0, spec.nice);
    if (!p.isolation.uid_map.empty()) EnterIsolation(p.isolation);
    if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) {
      ChildFail(SetupStage::kWorkingDirectory, spec.cwd.c_str());
    }
    if (spec.env.empty()) {
      execv(p.program.c_str(), p.argv.data());
    } else {
      execve(p.program.c_str(), p.argv.data(), p.envp.data());
    }
    ChildFail(SetupStage::kExec, p.program.c_str());
  }
  setpgid(pid, pid);  // also here, so a kill(-pid) right away cannot miss
  for (auto& pair : fds) close(pair[1]);
  pipes = {fds[0][0], fds[1][0], fds[2][0]};
  return pid;
}

// Marks the result timed out; returns why the child is ended.
std::string TimedOut(const CommandSpec& spec, CommandResult& result) {
  result.timed_out = true;
  return spec.argv[0] + ": timed out after " + std::to_string(spec.timeout.count()) + "ms";
}

// Phase 3: reads stdout and stderr until both close, the deadline passes,
// the consumer has seen enough, or shutdown. Returns why the child must be
// ended early, or "".
std::string ReadOutput(const CommandSpec& spec, const ChildPipes& pipes, Clock::time_point deadline,
                       CommandResult& result) {
  pollfd fds[2] = {{pipes.out, POLLIN, 0}, {pipes.err, POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  std::string ended;
  size_t output_bytes = 0;
  while (open_fds > 0 && !g_cancelled && ended.empty()) {
    const int ready = poll(fds, 2, std::min(RemainingMs(deadline), kCancelPollMs));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0 && Clock::now() < deadline) continue;
    if (ready <= 0) break;  // deadline passed
    for (auto& pfd : fds) {
      if (pfd.fd < 0 || pfd.revents == 0) continue;
      const ssize_t n = read(pfd.fd, buf, sizeof buf);
      if (n <= 0) {
        close(pfd.fd);
        pfd.fd = -1;
        --open_fds;
        continue;
      }
      const bool is_out = &pfd == &fds[0];
      if (is_out && spec.on_output) {
        output_bytes += static_cast<size_t>(n);
        if (output_bytes > spec.max_output) {
          result.output_truncated = true;
          ended = spec.argv[0] + ": output over " + std::to_string(spec.max_output) + " bytes";
        } else if (!spec.on_output(std::string_view(buf, static_cast<size_t>(n)))) {
          ended = spec.argv[0] + ": output rejected";
        }
        continue;
      }
      std::string& sink = is_out ? result.output : result.error_head;
      const size_t cap = is_out ? spec.max_output : kErrorHeadBytes;
      const size_t room = cap - std::min(cap, sink.size());
      sink.append(buf, std::min(room, static_cast<size_t>(n)));
      if (is_out && static_cast<size_t>(n) > room) result.output_truncated = true;
    }
  }
  for (auto& pfd : fds) {
    if (pfd.fd >= 0) close(pfd.fd);
  }
  if (ended.empty() && g_cancelled) ended = spec.argv[0] + ": cancelled at shutdown";
  if (ended.empty() && open_fds > 0) {
    // The deadline passed with output still open, perhaps held by a
    // descendant after the child itself exited.
    ended = TimedOut(spec, result);
  }
  return ended;
}

// Phase 4: ends the child (its whole group, politely first) when `ended`
// says so, else waits for it until the deadline; always reaps it. Returns
// its wait status.
int EndChild(const CommandSpec& spec, pid_t pid, Clock::time_point deadline, std::string& ended,
             CommandResult& result) {
  bool reap_timed_out = false;
  int status;
  if (!ended.empty()) {
    kill(-pid, SIGTERM);
    status = Reap(pid, Clock::now() + kKillGrace, SIGKILL, reap_timed_out);
  } else {
    status = Reap(pid, deadline, SIGTERM, reap_timed_out);
    if (reap_timed_out) ended = TimedOut(spec, result);
  }
  if (!ended.empty()) kill(-pid, SIGKILL);  // descendants that ignored SIGTERM
  return status;
}

// Phase 5, after the child is reaped: what its setup status pipe says.
// Empty when the exec succeeded (the pipe closed unwritten).
void ReadSetupStatus(int fd, CommandResult& result) {
  char buf[512];
  std::string status;
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) status.append(buf, static_cast<size_t>(n));
  close(fd);
  if (status.empty()) return;
  const int stage = status[0] - '0';
  result.setup_failure = SetupFailure{static_cast<SetupStage>(stage), status.substr(1)};
}

}  // namespace

CommandResult RunCommand(const CommandSpec& spec) {
  CommandResult result;
  const auto prepared = Prepare(spec, result.error);
  if (!prepared) return result;
  ChildPipes pipes;
  const pid_t pid = Spawn(spec, *prepared, pipes, result.error);
  if (pid < 0) return result;
  result.started = true;

  const auto deadline = Clock::now() + spec.timeout;
  std::string ended = ReadOutput(spec, pipes, deadline, result);
  const int status = EndChild(spec, pid, deadline, ended, result);
  ReadSetupStatus(pipes.setup, result);

  if (!ended.empty()) {
    result.error = ended;
  } else if (result.setup_failure) {
    result.exit_code = WEXITSTATUS(status);
    result.error = spec.argv[0] + ": cannot set up the child: " + result.setup_failure->message;
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
    if (result.exit_code != 0) {
      result.error = spec.argv[0] + ": exit status " + std::to_string(result.exit_code);
    }
  } else if (WIFSIGNALED(status)) {
    result.error = spec.argv[0] + ": killed by signal " + std::to_string(WTERMSIG(status));
  }
  return result;
}

std::optional<PipedChild> SpawnPiped(const std::vector<std::string>& argv, std::string& error) {
  int to_child[2] = {-1, -1}, from_child[2] = {-1, -1};
  if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    for (const int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) {
      if (fd >= 0) close(fd);
    }
    return std::nullopt;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  PipedChild child;
  const int spawned = posix_spawnp(&child.pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(to_child[0]);
  close(from_child[1]);
  if (spawned != 0) {
    close(to_child[1]);
    close(from_child[0]);
    error = "cannot run " + argv.front() + ": " + std::strerror(spawned);
    return std::nullopt;
  }
  child.in = to_child[1];
  child.out = from_child[0];
  return child;
}

}  // namespace gocache
