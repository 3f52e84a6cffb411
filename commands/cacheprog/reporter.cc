#include "commands/cacheprog/reporter.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace gocache::helper {
namespace {

// What may wait for the exporter: some hundreds of reports, a burst of gets.
constexpr size_t kMaxPending = 256 * 1024;
// A helper without an exporter tries again at most this often.
constexpr auto kRetryInterval = std::chrono::seconds(1);
constexpr int kFinalFlushMs = 200;
// Reports go in batches, at most this long after they were made, or at once
// when this many bytes wait: a send per request, and the exporter waking for
// each, would take CPU from the build on a small runner.
constexpr auto kBatchInterval = std::chrono::milliseconds(100);
constexpr size_t kBatchBytes = 16 * 1024;

}  // namespace

Reporter::Reporter(std::string socket_path, std::string cache_path)
    : socket_path_(std::move(socket_path)), cache_path_(std::move(cache_path)) {
  if (socket_path_.empty()) return;
  std::lock_guard lock(mu_);
  Connect();
}

Reporter::~Reporter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  waiting_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  Finish();
  std::lock_guard lock(mu_);
  if (fd_ >= 0) close(fd_);
}

void Reporter::FlushLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    waiting_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (waiting_.wait_for(lock, kBatchInterval, [this] { return stopping_; })) return;
    if (fd_ >= 0) Flush();
  }
}

void Reporter::Finish() {
  std::lock_guard lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kFinalFlushMs);
  while (fd_ >= 0 && !pending_.empty()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd_, POLLOUT, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    Flush();
  }
}

bool Reporter::Connect() {
  last_attempt_ = std::chrono::steady_clock::now();
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // A path too long for a socket address never connects: every report is
  // then lost, and counted.
  if (socket_path_.size() >= sizeof address.sun_path) return false;
  std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  // A unix socket connects at once or not at all (no exporter, or its
  // backlog full): it never waits.
  if (connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    close(fd_);
    fd_ = -1;
    return false;
  }
  return true;
}

void Reporter::Disconnect() {
  // Whatever was waiting is lost with the connection.
  lost_ += static_cast<uint64_t>(std::count(pending_.begin(), pending_.end(), '\n'));
  pending_.clear();
  close(fd_);
  fd_ = -1;
}

void Reporter::Flush() {
  while (!pending_.empty()) {
    const ssize_t n = send(fd_, pending_.data(), pending_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      pending_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    Disconnect();
    return;
  }
}

void Reporter::Send(cacheprog_report::Report report) {
  if (socket_path_.empty()) return;
  report.pid = getpid();
  if (report.path.empty()) report.path = cache_path_;
  std::lock_guard lock(mu_);
  if (fd_ < 0 &&
      (std::chrono::steady_clock::now() - last_attempt_ < kRetryInterval || !Connect())) {
    ++lost_;
    return;
  }
  report.lost = lost_;
  const std::string line = cacheprog_report::Encode(report) + "\n";
  if (pending_.size() + line.size() > kMaxPending) {
    ++lost_;
    Flush();
    return;
  }
  const bool batch_started = pending_.empty();
  pending_ += line;
  lost_ = 0;  // counted in the line, which goes or is counted lost itself
  if (pending_.size() >= kBatchBytes) {
    Flush();
    return;
  }
  if (!flusher_.joinable()) flusher_ = std::thread([this] { FlushLoop(); });
  // The flusher waits for a first report, then for the batch to fill.
  if (batch_started) waiting_.notify_one();
}

uint64_t Reporter::lost() {
  std::lock_guard lock(mu_);
  return lost_;
}

}  // namespace gocache::helper
