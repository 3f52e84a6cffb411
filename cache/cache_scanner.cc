#include "cache/cache_scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace gocache {
namespace {

// Bounds the open directory handles a hostile, very deep tree can take.
constexpr size_t kMaxDepth = 128;
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

bool IsDotOrDotDot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

// The counts of one thread's part of the walk.
struct Tally {
  uint64_t inodes = 0;
  uint64_t directories = 0;
  uint64_t errors = 0;
  std::string first_error;

  void Fail(std::string_view name, int err) {
    if (err == ENOENT) return;  // removed while we looked: the go command trims concurrently
    ++errors;
    if (first_error.empty()) first_error = std::string(name) + ": " + std::strerror(err);
  }
};

// One thread's depth-first walk: at most one open handle per level.
class Walker {
 public:
  Walker(ScanVisitor* visitor, dev_t device, const std::function<bool()>& stop,
         const std::vector<std::pair<dev_t, ino_t>>& excluded)
      : visitor_(visitor), device_(device), stop_(stop), excluded_(excluded) {}

  // Reads one directory's entries; subdirectories are walked below it.
  // `depth` is the depth of the directory's entries.
  void ReadDirectory(int dir_fd, std::string_view dir_name, int depth,
                     std::vector<std::pair<std::string, struct stat>>* subdirs = nullptr) {
    DIR* dir = fdopendir(dir_fd);
    if (dir == nullptr) {
      tally_.Fail(dir_name, errno);
      close(dir_fd);
      return;
    }
    const bool want_status = visitor_ && visitor_->wants_file_status();
    for (;;) {
      errno = 0;
      const struct dirent* entry = readdir(dir);
      if (entry == nullptr) {
        if (errno != 0) tally_.Fail(dir_name, errno);
        break;
      }
      const char* name = entry->d_name;
      if (IsDotOrDotDot(name)) continue;

      unsigned char type = entry->d_type;
      struct stat status;
      const bool need_status = type == DT_UNKNOWN || type == DT_DIR ||
                               (want_status && !visitor_->StatsItself(dir_name, name, depth));
      if (need_status) {
        if (fstatat(dirfd(dir), name, &status, AT_SYMLINK_NOFOLLOW) != 0) {
          if (errno != ENOENT) ++tally_.inodes;  // listed, as find lists it
          tally_.Fail(name, errno);
          continue;
        }
        type = S_ISDIR(status.st_mode) ? DT_DIR : DT_REG;
      }
      if (type == DT_DIR && Excluded(status)) continue;  // another cache's tree
      ++tally_.inodes;
      if (type != DT_DIR) {
        if (visitor_) {
          visitor_->OnFile(dirfd(dir), dir_name, name, depth, need_status ? &status : nullptr);
        }
        continue;
      }
      ++tally_.directories;
      if (subdirs) {  // the root: its subdirectories are shared out among threads
        subdirs->emplace_back(name, status);
        continue;
      }
      EnterDirectory(dirfd(dir), name, depth, status);
      if (Stopped()) break;
    }
    closedir(dir);
  }

  void EnterDirectory(int parent_fd, const char* name, int parent_depth,
                      const struct stat& status) {
    if (visitor_) visitor_->OnDirectory(name, parent_depth, status);
    if (status.st_dev != device_) return;  // a mount point inside the cache: listed, not entered
    if (static_cast<size_t>(parent_depth) >= kMaxDepth) {
      tally_.Fail(name, ELOOP);
      return;
    }
    const int fd = OpenNoAtime(parent_fd, name, kDirFlags, noatime_);
    if (fd < 0) {
      tally_.Fail(name, errno);
      return;
    }
    ReadDirectory(fd, name, parent_depth + 1);
  }

  Tally& tally() { return tally_; }

  bool Excluded(const struct stat& status) const {
    for (const auto& [dev, ino] : excluded_) {
      if (status.st_dev == dev && status.st_ino == ino) return true;
    }
    return false;
  }

  // Polls the stop callback until it first says stop, then remembers.
  bool Stopped() {
    if (!stopped_) stopped_ = stop_();
    return stopped_;
  }

 private:
  ScanVisitor* visitor_;
  dev_t device_;
  const std::function<bool()>& stop_;
  const std::vector<std::pair<dev_t, ino_t>>& excluded_;
  bool noatime_ = true;
  bool stopped_ = false;
  Tally tally_;
};

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

int OpenNoAtime(int dir_fd, const char* name, int flags, bool& noatime) {
  if (noatime) {
    const int fd = openat(dir_fd, name, flags | O_NOATIME);
    if (fd >= 0 || errno != EPERM) return fd;
    noatime = false;  // not the owner: do without from now on
  }
  return openat(dir_fd, name, flags);
}

ScanResult ScanTree(const std::string& root, ScanVisitor* visitor,
                    const std::function<bool()>& stop) {
  return ScanTree(root, std::vector<ScanVisitor*>{visitor}, stop);
}

ScanResult ScanTree(const std::string& root, const std::vector<ScanVisitor*>& visitors,
                    const std::function<bool()>& stop, const std::vector<std::string>& excluded) {
  ScanResult result;
  result.started_unix = UnixNow();
  const auto start = std::chrono::steady_clock::now();
  const auto finish = [&] {
    result.duration_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
  };

  bool noatime = true;
  const int fd = OpenNoAtime(AT_FDCWD, root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, noatime);
  struct stat status;
  if (fd < 0 || fstat(fd, &status) != 0) {
    result.root_errno = errno;
    result.root_error = root + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return finish();
  }
  const int root_fd = dup(fd);  // the walk below closes fd with its DIR
  if (root_fd < 0) {
    result.root_errno = errno;
    result.root_error = root + ": " + std::strerror(errno);
    close(fd);
    return finish();
  }

  // Known by identity, not by name: found however the walk reaches them.
  std::vector<std::pair<dev_t, ino_t>> excluded_ids;
  for (const auto& path : excluded) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      excluded_ids.emplace_back(st.st_dev, st.st_ino);
    }
  }
  const size_t threads = std::max<size_t>(1, visitors.size());
  std::vector<Walker> walkers;
  walkers.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    walkers.emplace_back(i < visitors.size() ? visitors[i] : nullptr, status.st_dev, stop,
                         excluded_ids);
  }
  result.root_readable = true;
  result.inodes = 1;
  result.directories = 1;
  std::vector<std::pair<std::string, struct stat>> subdirs;
  if (walkers[0].Stopped()) {
    close(fd);
  } else {
    walkers[0].ReadDirectory(fd, "", 1, &subdirs);
  }

  std::atomic<size_t> next{0};
  const auto work = [&](Walker& walker) {
    for (size_t i; !walker.Stopped() && (i = next.fetch_add(1)) < subdirs.size();) {
      walker.EnterDirectory(root_fd, subdirs[i].first.c_str(), 1, subdirs[i].second);
    }
  };
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < threads && subdirs.size() > 1; ++i) {
    helpers.emplace_back(work, std::ref(walkers[i]));
  }
  work(walkers[0]);
  for (auto& helper : helpers) helper.join();
  close(root_fd);

  for (auto& walker : walkers) {
    Tally& tally = walker.tally();
    result.inodes += tally.inodes;
    result.directories += tally.directories;
    result.errors += tally.errors;
    if (result.first_error.empty()) result.first_error = std::move(tally.first_error);
  }
  return finish();
}

}  // namespace gocache
