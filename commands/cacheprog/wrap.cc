#include "commands/cacheprog/wrap.h"

#include <fcntl.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "base/subprocess.h"
#include "base/write_all.h"
#include "commands/cacheprog/protocol.h"

namespace gocache::helper {
namespace {

using Clock = std::chrono::steady_clock;
using Result = cacheprog_report::Result;

// How long an answer waits for the relaying thread to note the request it
// answers: the request was relayed before it was parsed, so the wrapped
// helper can answer first, by microseconds.
constexpr auto kNoteWait = std::chrono::seconds(1);

// A request relayed and not answered yet.
struct Relayed {
  RequestCommand command = RequestCommand::kGet;
  bool counted = false;  // a get or a put
  bool close = false;
  uint64_t body_size = 0;
  Clock::time_point read_at;
};

// What the relaying thread tells the answering one.
struct Relay {
  std::mutex mu;
  std::condition_variable noted;
  std::map<int64_t, Relayed> pending;
  bool done = false;  // the go command's input ended, or the wrapped helper went

  std::optional<Relayed> Take(int64_t id) {
    std::unique_lock lock(mu);
    noted.wait_for(lock, kNoteWait, [&] { return done || pending.contains(id); });
    const auto it = pending.find(id);
    if (it == pending.end()) return std::nullopt;
    const Relayed relayed = it->second;
    pending.erase(it);
    return relayed;
  }
};

// Copies the go command's requests to the wrapped helper as they are read,
// and notes each get and put with the time it was read. Ends at the end of
// the input, or when `stop_fd` becomes readable.
void RelayRequests(int in_fd, int child_in, int stop_fd, Relay& relay) {
  Clock::time_point read_at;
  // Bodies are read past, not kept: the wrapped helper stores them.
  RequestReader reader(
      [&](char* buffer, size_t size) -> ssize_t {
        pollfd fds[2] = {{in_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
        for (;;) {
          if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return -1;
          }
          if (fds[1].revents != 0) return 0;
          const ssize_t n = read(in_fd, buffer, size);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) return n;
          read_at = Clock::now();
          // A helper that stopped reading has ended or is ending.
          if (!WriteAll(child_in, std::string_view(buffer, static_cast<size_t>(n)))) return 0;
          return n;
        }
      },
      0);
  for (;;) {
    const ReadOutcome next = reader.Next();
    if (next.kind == ReadOutcome::Kind::kEnd) break;
    const Request& request = next.request;
    // Every request with an ID is noted, so that no answer waits for its
    // note: gets and puts to be counted, a close to act before its answer,
    // and commands this helper does not know but the wrapped one may.
    if (request.id == 0) continue;
    {
      std::lock_guard lock(relay.mu);
      relay.pending[request.id] = Relayed{
          .command = request.command,
          .counted = next.command_known,
          .close =
              next.kind == ReadOutcome::Kind::kRequest && request.command == RequestCommand::kClose,
          .body_size = request.body_size,
          .read_at = read_at,
      };
    }
    relay.noted.notify_all();
  }
  close(child_in);  // the wrapped helper sees the end of its input
  {
    std::lock_guard lock(relay.mu);
    relay.done = true;
  }
  relay.noted.notify_all();
}

// What one answer of the wrapped helper (a line, its newline included) was
// to: the request it answers, taken from `relay`, with the record it makes
// (its duration still to be set). None for its greeting, or for an answer
// to nothing relayed.
std::optional<std::pair<Relayed, RequestRecord>> Answered(std::string_view line, Relay& relay) {
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  const auto id = doc.FindMember("ID");
  // ID 0 is its greeting, or an answer to a request nobody could read.
  if (id == doc.MemberEnd() || !id->value.IsInt64() || id->value.GetInt64() == 0) {
    return std::nullopt;
  }
  const auto relayed = relay.Take(id->value.GetInt64());
  if (!relayed) return std::nullopt;
  RequestRecord r{.command = relayed->command};
  const auto err = doc.FindMember("Err");
  const auto miss = doc.FindMember("Miss");
  const auto size = doc.FindMember("Size");
  if (err != doc.MemberEnd() && err->value.IsString() && err->value.GetStringLength() > 0) {
    r.result = Result::kError;
  } else if (relayed->command == RequestCommand::kPut) {
    r.result = Result::kOk;
    r.bytes = relayed->body_size;
  } else if (miss != doc.MemberEnd() && miss->value.IsBool() && miss->value.GetBool()) {
    r.result = Result::kMiss;
    r.miss = MissReason::kRemote;
  } else {
    r.result = Result::kHit;
    if (size != doc.MemberEnd() && size->value.IsInt64() && size->value.GetInt64() > 0) {
      r.bytes = static_cast<uint64_t>(size->value.GetInt64());
    }
  }
  return std::make_pair(*relayed, r);
}

// Closes what is open of a set of file descriptors.
void CloseAll(std::initializer_list<int> fds) {
  for (const int fd : fds) {
    if (fd >= 0) close(fd);
  }
}

}  // namespace

WrapResult Wrap(const std::vector<std::string>& command, int in_fd, int out_fd,
                const RecordSink& record, const std::function<void()>& before_close) {
  int stop[2];
  if (pipe2(stop, O_CLOEXEC) != 0) return {127, std::string("pipe: ") + std::strerror(errno)};
  std::string error;
  const auto child = SpawnPiped(command, error);
  if (!child) {
    CloseAll({stop[0], stop[1]});
    return {127, error};
  }

  const auto relay = std::make_shared<Relay>();
  std::thread requests([in_fd, child_in = child->in, stop_fd = stop[0], relay] {
    RelayRequests(in_fd, child_in, stop_fd, *relay);
  });
  // Its answers, a line at a time, each passed on whole before it is read.
  // When the go command is gone they are still read, so that the wrapped
  // helper never blocks on a full pipe.
  bool go_command_gone = false;
  std::string partial;
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = read(child->out, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial.append(buffer, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t newline; (newline = partial.find('\n', start)) != std::string::npos;
         start = newline + 1) {
      const std::string_view line = std::string_view(partial).substr(start, newline + 1 - start);
      if (go_command_gone) continue;
      auto answered = Answered(line, *relay);
      if (answered && answered->first.close && before_close) before_close();
      if (!WriteAll(out_fd, line)) {
        go_command_gone = true;
        continue;
      }
      if (!answered || !answered->first.counted || !record) continue;
      answered->second.duration = Clock::now() - answered->first.read_at;
      record(answered->second);
    }
    partial.erase(0, start);
  }
  // Whatever it wrote last, even without a newline, goes on unchanged.
  if (!go_command_gone && !partial.empty()) WriteAll(out_fd, partial);
  close(child->out);

  int status = 0;
  while (waitpid(child->pid, &status, 0) < 0 && errno == EINTR) {
  }
  // The go command may still be writing: stop relaying it.
  while (write(stop[1], "x", 1) < 0 && errno == EINTR) {
  }
  requests.join();
  CloseAll({stop[0], stop[1]});
  WrapResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace gocache::helper
