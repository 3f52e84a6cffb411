#include "collectors/trace/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "base/file_time.h"

namespace gocache::trace {
namespace {

constexpr auto kStuckRetry = std::chrono::minutes(1);

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Whether another process has the file open for writing: a read lease is
// refused then. Where leases are not allowed (another owner without
// CAP_LEASE, NFS), the settle time alone decides.
bool OpenForWriting(int fd) {
  if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
    fcntl(fd, F_SETLEASE, F_UNLCK);
    return false;
  }
  return errno == EAGAIN;
}

}  // namespace

bool IsCandidateName(const std::string& name) {
  return !name.empty() && name[0] != '.' && !EndsWith(name, ".done") && !EndsWith(name, ".error") &&
         !EndsWith(name, ".tmp");
}

Spool::Spool(std::vector<std::string> dirs, std::chrono::milliseconds settle, OnDone on_done)
    : settle_(settle), on_done_(on_done) {
  for (auto& dir : dirs) {
    Dir d;
    d.dir = std::move(dir);
    spools_.push_back(std::move(d));
  }
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

Spool::~Spool() {
  for (const Dir& d : spools_) {
    if (d.fd >= 0) close(d.fd);
  }
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

void Spool::DrainEvents() {
  if (inotify_fd_ < 0) return;
  alignas(struct inotify_event) char buffer[16 << 10];
  for (;;) {
    const ssize_t n = read(inotify_fd_, buffer, sizeof buffer);
    if (n <= 0) return;  // EAGAIN: drained
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const struct inotify_event*>(buffer + at);
      at += static_cast<ssize_t>(sizeof(struct inotify_event) + event->len);
      if (event->len == 0) continue;  // about the directory itself
      for (Dir& d : spools_) {
        if (d.wd == event->wd) d.closed.insert(event->name);
      }
    }
  }
}

std::vector<SpoolFile> Spool::Scan(std::vector<std::string>& problems) {
  DrainEvents();
  std::vector<SpoolFile> files;
  std::set<FileKey> still_stuck;
  const auto now = Clock::now();
  for (size_t i = 0; i < spools_.size(); ++i) {
    ScanDir(i, now, files, problems, still_stuck);
    spools_[i].closed.clear();
  }
  std::erase_if(stuck_, [&](const auto& entry) { return !still_stuck.count(entry.first); });
  return files;
}

void Spool::ScanDir(size_t index, Clock::time_point now, std::vector<SpoolFile>& files,
                    std::vector<std::string>& problems, std::set<FileKey>& still_stuck) {
  Dir& d = spools_[index];
  if (d.fd >= 0) close(d.fd);
  d.fd = open(d.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.fd < 0) {
    const int err = errno;
    problems.push_back(DescribeErrno(err, "trace spool " + d.dir));
    return;
  }
  if (inotify_fd_ >= 0) {
    // Adding again is cheap and follows a spool that was deleted and made
    // anew: the kernel returns the same watch for the same directory.
    d.wd = inotify_add_watch(inotify_fd_, d.dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR);
  }
  const int list_fd = dup(d.fd);
  DIR* listing = list_fd >= 0 ? fdopendir(list_fd) : nullptr;
  if (listing == nullptr) {
    if (list_fd >= 0) close(list_fd);
    const int err = errno;
    problems.push_back(DescribeErrno(err, "trace spool " + d.dir));
    return;
  }
  const std::unique_ptr<DIR, int (*)(DIR*)> closer(listing, closedir);
  for (;;) {
    errno = 0;
    const struct dirent* entry = readdir(listing);
    if (entry == nullptr) {
      if (const int err = errno; err != 0) {
        problems.push_back(DescribeErrno(err, "reading trace spool " + d.dir));
      }
      break;
    }
    std::string name = entry->d_name;
    if (!IsCandidateName(name)) continue;
    struct stat st;
    if (fstatat(d.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone
    if (S_ISDIR(st.st_mode)) continue;  // someone's subdirectory: not ours to rename
    const FileKey key{st.st_dev, st.st_ino, MtimeNs(st), st.st_size};
    if (const auto stuck = stuck_.find(key); stuck != stuck_.end()) {
      if (now - stuck->second.since < kStuckRetry) {
        still_stuck.insert(key);
        problems.push_back(stuck->second.problem);
        continue;
      }
      stuck_.erase(stuck);  // try again: the cause may be gone
    }
    const auto mtime = Clock::time_point(
        std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(MtimeNs(st))));
    if (!d.closed.count(name) && now - mtime < settle_) continue;
    files.push_back({index, std::move(name), st});
  }
}

int Spool::Open(const SpoolFile& file) {
  const int dir_fd = spools_[file.spool].fd;
  const int fd = openat(dir_fd, file.name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat opened;
  if (fstat(fd, &opened) != 0 || !S_ISREG(opened.st_mode) || opened.st_ino != file.st.st_ino ||
      opened.st_dev != file.st.st_dev || OpenForWriting(fd)) {
    close(fd);
    return -1;
  }
  return fd;
}

bool Spool::Finish(const SpoolFile& file, bool used, std::vector<std::string>& problems) {
  const Dir& d = spools_[file.spool];
  // The writer may have replaced the file under the same name since it was
  // read: renaming would then take the new file without counting it.
  struct stat now;
  // (An inode number alone can be reused at once: the type, size and mtime
  // must match too.)
  if (fstatat(d.fd, file.name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 ||
      now.st_ino != file.st.st_ino || now.st_dev != file.st.st_dev ||
      (now.st_mode & S_IFMT) != (file.st.st_mode & S_IFMT) || now.st_size != file.st.st_size ||
      MtimeNs(now) != MtimeNs(file.st)) {
    return false;
  }
  const bool remove = used && on_done_ == OnDone::kDelete;
  const std::string to = file.name + (used ? ".done" : ".error");
  if ((remove ? unlinkat(d.fd, file.name.c_str(), 0)
              : renameat(d.fd, file.name.c_str(), d.fd, to.c_str())) == 0) {
    return true;
  }
  const int err = errno;
  // Gone: another reader of the spool (a second exporter) took it first.
  if (err == ENOENT) return false;
  const std::string problem =
      DescribeErrno(err, (remove ? "cannot delete trace file " : "cannot rename trace file ") +
                             d.dir + "/" + file.name + (remove ? "" : " to " + to));
  problems.push_back(problem);
  stuck_[{file.st.st_dev, file.st.st_ino, MtimeNs(file.st), file.st.st_size}] = {
      problem + " (it is not counted until it can be; tried again every minute)", Clock::now()};
  return false;
}

}  // namespace gocache::trace
