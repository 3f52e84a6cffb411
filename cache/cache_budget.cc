#include "cache/cache_budget.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <memory>
#include <utility>

#include "base/file_time.h"
#include "cache/inode_usage.h"

namespace gocache {
namespace {

constexpr const char* kStateDir = "/.gocacheprog";

std::string HeldPath(const std::string& dir, pid_t pid) {
  return dir + kStateDir + "/held/" + std::to_string(pid);
}

// The running total in the state file; none when it has none yet.
std::optional<uint64_t> ReadTotal(int fd) {
  char buffer[32];
  const ssize_t n = pread(fd, buffer, sizeof buffer - 1, 0);
  if (n <= 0) return std::nullopt;
  uint64_t total = 0;
  const auto [end, error] = std::from_chars(buffer, buffer + n, total);
  if (error != std::errc() || end == buffer || *end != '\n') return std::nullopt;
  return total;
}

void WriteTotal(int fd, uint64_t total) {
  const std::string text = std::to_string(total) + "\n";
  if (pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size())) {
    (void)ftruncate(fd, static_cast<off_t>(text.size()));
  }
}

// A lock on a file, exclusive or shared, for as long as it lives.
class FileLock {
 public:
  FileLock(int fd, int operation) : fd_(fd) {
    while (flock(fd_, operation) != 0 && errno == EINTR) {
    }
  }
  ~FileLock() { flock(fd_, LOCK_UN); }

 private:
  int fd_;
};

int OpenShared(const std::string& path, std::string& error) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) error = DescribeErrno(errno, path);
  return fd;
}

}  // namespace

std::optional<CacheBudget> CacheBudget::Open(const std::string& dir, const CacheLimits& limits,
                                             std::string& error) {
  const std::string state_dir = dir + kStateDir;
  for (const std::string& path : {state_dir, state_dir + "/held"}) {
    if (mkdir(path.c_str(), 0777) != 0 && errno != EEXIST) {
      error = DescribeErrno(errno, path);
      return std::nullopt;
    }
  }
  const int state_fd = OpenShared(state_dir + "/state", error);
  if (state_fd < 0) return std::nullopt;
  const int lock_fd = OpenShared(state_dir + "/lock", error);
  if (lock_fd < 0) {
    close(state_fd);
    return std::nullopt;
  }
  return CacheBudget(dir, limits, state_fd, lock_fd);
}

CacheBudget::CacheBudget(CacheBudget&& other) noexcept
    : dir_(std::move(other.dir_)),
      limits_(other.limits_),
      state_fd_(std::exchange(other.state_fd_, -1)),
      lock_fd_(std::exchange(other.lock_fd_, -1)),
      held_fd_(std::exchange(other.held_fd_, -1)),
      state_mu_(std::move(other.state_mu_)),
      lock_mu_(std::move(other.lock_mu_)),
      held_mu_(std::move(other.held_mu_)),
      readers_mu_(std::move(other.readers_mu_)) {}

CacheBudget::~CacheBudget() {
  if (held_mu_) ReleaseHolds();
  if (state_fd_ >= 0) close(state_fd_);
  if (lock_fd_ >= 0) close(lock_fd_);
}

void CacheBudget::LockShared() {
  std::lock_guard count(*readers_mu_);
  if (readers_++ == 0) {
    while (flock(lock_fd_, LOCK_SH) != 0 && errno == EINTR) {
    }
  }
}

void CacheBudget::UnlockShared() {
  std::lock_guard count(*readers_mu_);
  if (--readers_ == 0) flock(lock_fd_, LOCK_UN);
}

GetResult CacheBudget::GetAndHold(const DiskCache& cache, const buildcache::Id& action) {
  std::shared_lock threads(*lock_mu_);
  LockShared();
  GetResult got = cache.Get(action);
  if (got.hit) AppendHold(got.hit->output_id);
  UnlockShared();
  return got;
}

void CacheBudget::Hold(const buildcache::Id& output) {
  std::shared_lock threads(*lock_mu_);
  LockShared();
  AppendHold(output);
  UnlockShared();
}

void CacheBudget::ReleaseHolds() {
  std::lock_guard file(*held_mu_);
  if (held_fd_ < 0) return;
  close(held_fd_);
  held_fd_ = -1;
  unlink(HeldPath(dir_, getpid()).c_str());
}

void CacheBudget::AppendHold(const buildcache::Id& output) {
  std::lock_guard file(*held_mu_);
  if (held_fd_ < 0) {
    held_fd_ = open(HeldPath(dir_, getpid()).c_str(),
                    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (held_fd_ < 0) return;
  }
  const std::string line = buildcache::HexId(output) + "\n";
  (void)write(held_fd_, line.data(), line.size());
}

std::vector<buildcache::Id> CacheBudget::ReadHeld() const {
  std::vector<buildcache::Id> held;
  const std::string held_dir = dir_ + kStateDir + "/held";
  DIR* listing = opendir(held_dir.c_str());
  if (!listing) return held;
  const std::unique_ptr<DIR, int (*)(DIR*)> closer(listing, closedir);
  while (const dirent* d = readdir(listing)) {
    pid_t pid = 0;
    const std::string_view name = d->d_name;
    const auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (error != std::errc() || end != name.data() + name.size() || pid <= 0) continue;
    // A helper that is gone (killed before it could say so) holds nothing.
    if (kill(pid, 0) != 0 && errno == ESRCH) {
      unlink((held_dir + "/" + d->d_name).c_str());
      continue;
    }
    std::ifstream in(held_dir + "/" + d->d_name);
    for (std::string line; std::getline(in, line);) {
      if (const auto id = buildcache::DecodeHexId(line)) held.push_back(*id);
    }
  }
  std::sort(held.begin(), held.end());
  held.erase(std::unique(held.begin(), held.end()), held.end());
  return held;
}

void CacheBudget::Recount() {
  std::lock_guard threads(*state_mu_);
  FileLock processes(state_fd_, LOCK_EX);
  (void)ftruncate(state_fd_, 0);
}

std::optional<Eviction> CacheBudget::Reserve(uint64_t bytes, uint64_t files, std::string& error) {
  if (!limits_.any()) return std::nullopt;
  std::lock_guard threads(*state_mu_);
  FileLock processes(state_fd_, LOCK_EX);
  auto total = ReadTotal(state_fd_);
  if (!total) {
    const auto usage = MeasureCache(dir_, true, error);
    if (!usage) return std::nullopt;
    total = usage->bytes;
  }
  struct statvfs fs;
  std::optional<double> usage_after;  // with the put's files
  if (limits_.max_inode_usage && statvfs(dir_.c_str(), &fs) == 0) {
    usage_after = InodeUsageRatio(fs.f_files, fs.f_ffree - std::min<uint64_t>(files, fs.f_ffree));
  }
  const bool over_bytes = limits_.max_bytes && *total + bytes > *limits_.max_bytes;
  const bool over_inodes = usage_after && *usage_after > *limits_.max_inode_usage;
  std::optional<Eviction> eviction;
  if (over_bytes || over_inodes) {
    // Down to the low-water mark, with room for this put.
    TrimBounds bounds;
    bounds.keep_recent = std::chrono::seconds(0);
    if (limits_.max_bytes) {
      const auto low = static_cast<uint64_t>(limits_.low_water * *limits_.max_bytes);
      bounds.max_bytes = low > bytes ? low - bytes : 0;
    }
    if (limits_.max_inode_usage)
      bounds.max_inode_usage = limits_.low_water * *limits_.max_inode_usage;
    // No get may look up and hold while the holds are read and the
    // entries removed.
    std::unique_lock no_gets(*lock_mu_);
    FileLock no_helpers_gets(lock_fd_, LOCK_EX);
    TrimOptions options;
    options.held = ReadHeld();
    auto trimmed = TrimCache(dir_, bounds, options, error);
    if (!trimmed) return std::nullopt;
    // Out of reach only because of what running go commands hold: then as
    // close as it gets (the trim command would rather remove nothing).
    const auto& out_of_reach = trimmed->unreachable;
    const auto bytes_bound = std::find_if(out_of_reach.begin(), out_of_reach.end(),
                                          [](auto& u) { return u.bound == TrimBound::kBytes; });
    if (bytes_bound != out_of_reach.end()) {
      bounds.max_bytes = static_cast<uint64_t>(bytes_bound->floor);
      trimmed = TrimCache(dir_, bounds, options, error);
      if (!trimmed) return std::nullopt;
    }
    if (!trimmed->errors.empty()) error = trimmed->errors.front();
    eviction = Eviction{over_bytes ? TrimBound::kBytes : TrimBound::kInodeUsage, trimmed->entries(),
                        trimmed->bytes};
    total = trimmed->after.bytes;
  }
  WriteTotal(state_fd_, *total + bytes);
  return eviction;
}

}  // namespace gocache
