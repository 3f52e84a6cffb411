#include "base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
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

void ChildFail(const char* what) {
  const int err = errno;
  const char* prefix = "gocache_exporter: cannot set up the child: ";
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, prefix, strlen(prefix));
  n = write(STDERR_FILENO, what, strlen(what));
  n = write(STDERR_FILENO, ": ", 2);
  const char* why = strerror(err);
  n = write(STDERR_FILENO, why, strlen(why));
  n = write(STDERR_FILENO, "\n", 1);
  _exit(kIsolationFailed);
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
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) ChildFail("unshare(CLONE_NEWUSER|CLONE_NEWNS)");
  if (!WriteFile("/proc/self/setgroups", "deny")) ChildFail("/proc/self/setgroups");
  if (!WriteFile("/proc/self/uid_map", isolation.uid_map)) ChildFail("/proc/self/uid_map");
  if (!WriteFile("/proc/self/gid_map", isolation.gid_map)) ChildFail("/proc/self/gid_map");
  // Nothing done here may reach the exporter's mount namespace.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ChildFail("mount private");
  for (const auto& [dir, keep] : isolation.dirs) {
    if (mount(dir, dir, nullptr, MS_BIND | MS_REC, nullptr) != 0) ChildFail(dir);
    if (mount(nullptr, dir, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, nullptr) != 0) {
      ChildFail(dir);
    }
  }
  for (const char* dir : isolation.scratch) {
    if (mount("gocache-scratch", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m") != 0) {
      ChildFail(dir);
    }
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

CommandResult RunCommand(const CommandSpec& spec) {
  CommandResult result;
  if (spec.argv.empty()) {
    result.error = "no command";
    return result;
  }
  const std::string program = FindOnPath(spec.argv[0]);
  if (program.empty()) {
    result.error = spec.argv[0] + ": not found on PATH";
    return result;
  }
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls.
  std::vector<char*> argv;
  for (const auto& arg : spec.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& var : spec.env) envp.push_back(const_cast<char*>(var.c_str()));
  envp.push_back(nullptr);
  Isolation isolation;
  for (const auto& dir : spec.scratch_dirs) isolation.scratch.push_back(dir.c_str());
  if (!spec.read_only_dirs.empty() || !spec.scratch_dirs.empty()) {
    isolation.uid_map = "0 " + std::to_string(getuid()) + " 1\n";
    isolation.gid_map = "0 " + std::to_string(getgid()) + " 1\n";
    for (const auto& dir : spec.read_only_dirs) {
      isolation.dirs.emplace_back(dir.c_str(), LockedFlags(dir.c_str()));
    }
  }

  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.error = std::string("pipe: ") + std::strerror(errno);
    close(out_pipe[0]);
    close(out_pipe[1]);
    return result;
  }
  const pid_t pid = fork();
  if (pid < 0) {
    result.error = std::string("fork: ") + std::strerror(errno);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    return result;
  }
  if (pid == 0) {
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the exporter blocks SIGTERM; the child must not
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    if (spec.nice != 0) setpriority(PRIO_PROCESS, 0, spec.nice);
    if (!isolation.uid_map.empty()) EnterIsolation(isolation);
    if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) ChildFail(spec.cwd.c_str());
    if (spec.env.empty()) {
      execv(program.c_str(), argv.data());
    } else {
      execve(program.c_str(), argv.data(), envp.data());
    }
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so a kill(-pid) right away cannot miss
  result.started = true;
  close(out_pipe[1]);
  close(err_pipe[1]);

  const auto deadline = Clock::now() + spec.timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  std::string ended;  // why the child is ended early, if it is
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
  const std::string timed_out =
      spec.argv[0] + ": timed out after " + std::to_string(spec.timeout.count()) + "ms";
  if (ended.empty() && g_cancelled) ended = spec.argv[0] + ": cancelled at shutdown";
  if (ended.empty() && open_fds > 0) {
    // The deadline passed with output still open, perhaps held by a
    // descendant after the child itself exited.
    result.timed_out = true;
    ended = timed_out;
  }
  bool reap_timed_out = false;
  int status;
  if (!ended.empty()) {  // end the whole group, politely first
    kill(-pid, SIGTERM);
    status = Reap(pid, Clock::now() + kKillGrace, SIGKILL, reap_timed_out);
  } else {
    status = Reap(pid, deadline, SIGTERM, reap_timed_out);
    if (reap_timed_out) {
      result.timed_out = true;
      ended = timed_out;
    }
  }
  if (!ended.empty()) {
    kill(-pid, SIGKILL);  // descendants that ignored SIGTERM
    result.error = ended;
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

}  // namespace gocache
