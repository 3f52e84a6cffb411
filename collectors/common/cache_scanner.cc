#include "collectors/common/cache_scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

namespace gocache {
namespace {

// Bounds the open directory handles a hostile, very deep tree can take.
constexpr size_t kMaxDepth = 128;

class Walk {
 public:
  Walk(ScanVisitor* visitor, const std::function<bool()>& stop, ScanResult& result)
      : visitor_(visitor), stop_(stop), result_(result) {}

  void Run(const std::string& root) {
    const int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      result_.root_error = root + ": " + std::strerror(errno);
      return;
    }
    struct stat status;
    if (fstat(fd, &status) != 0) {
      result_.root_error = root + ": " + std::strerror(errno);
      close(fd);
      return;
    }
    DIR* dir = fdopendir(fd);
    if (dir == nullptr) {
      result_.root_error = root + ": " + std::strerror(errno);
      close(fd);
      return;
    }
    result_.root_readable = true;
    result_.inodes = 1;
    result_.directories = 1;
    device_ = status.st_dev;
    stack_.push_back({dir, ""});
    while (!stack_.empty() && !stop_()) ReadSome();
    for (auto& frame : stack_) closedir(frame.dir);
  }

 private:
  struct Frame {
    DIR* dir;
    std::string name;
  };

  void Fail(std::string_view name, int err) {
    if (err == ENOENT) return;  // removed while we looked: the go command trims concurrently
    ++result_.errors;
    if (result_.first_error.empty()) {
      result_.first_error = std::string(name) + ": " + std::strerror(err);
    }
  }

  // Reads entries of the top directory until it ends or a subdirectory is
  // entered (depth first, so at most one handle per level is open).
  void ReadSome() {
    Frame& frame = stack_.back();
    const int dir_fd = dirfd(frame.dir);
    const int depth = static_cast<int>(stack_.size());
    for (;;) {
      errno = 0;
      const struct dirent* entry = readdir(frame.dir);
      if (entry == nullptr) {
        if (errno != 0) Fail(frame.name, errno);
        closedir(frame.dir);
        stack_.pop_back();
        return;
      }
      const char* name = entry->d_name;
      if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;

      unsigned char type = entry->d_type;
      struct stat status;
      const bool need_status =
          type == DT_UNKNOWN || type == DT_DIR || (visitor_ && visitor_->wants_file_status());
      if (need_status) {
        if (fstatat(dir_fd, name, &status, AT_SYMLINK_NOFOLLOW) != 0) {
          if (errno != ENOENT) ++result_.inodes;  // listed, as find lists it
          Fail(name, errno);
          continue;
        }
        type = S_ISDIR(status.st_mode) ? DT_DIR : DT_REG;
      }
      ++result_.inodes;
      if (type != DT_DIR) {
        if (visitor_) {
          visitor_->OnFile(dir_fd, frame.name, name, depth, need_status ? &status : nullptr);
        }
        continue;
      }
      ++result_.directories;
      if (visitor_) visitor_->OnDirectory(name, depth, status);
      // A mount point inside the cache is listed but not entered.
      if (status.st_dev != device_) continue;
      if (stack_.size() >= kMaxDepth) {
        Fail(name, ELOOP);
        continue;
      }
      if (Enter(dir_fd, name)) return;
    }
  }

  bool Enter(int parent_fd, const char* name) {
    const int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      Fail(name, errno);
      return false;
    }
    DIR* dir = fdopendir(fd);
    if (dir == nullptr) {
      Fail(name, errno);
      close(fd);
      return false;
    }
    stack_.push_back({dir, name});
    return true;
  }

  ScanVisitor* visitor_;
  const std::function<bool()>& stop_;
  ScanResult& result_;
  dev_t device_ = 0;
  std::vector<Frame> stack_;
};

}  // namespace

ScanResult ScanTree(const std::string& root, ScanVisitor* visitor,
                    const std::function<bool()>& stop) {
  ScanResult result;
  result.started_unix =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto start = std::chrono::steady_clock::now();
  Walk(visitor, stop, result).Run(root);
  result.duration_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace gocache
