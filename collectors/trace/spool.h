// A spool directory into which CI jobs drop trace files, and the rule for
// when a file is complete: its writer closed it (inotify close-write, or
// moved-to for a file renamed into place), or a rescan finds its mtime older
// than the settle time (covering filesystems without inotify and events lost
// to a queue overflow). Files still open for writing elsewhere wait, where a
// read lease can tell.
//
// Each file is handed over once: after it was handled it is renamed to
// "<name>.done" (or deleted) or to "<name>.error", and names ending so, names
// starting with "." and names ending in ".tmp" (a writer's temporary files)
// are never picked up. Renaming, not remembering, is what makes "once" hold
// across restarts.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace gocache::trace {

enum class OnDone { kRename, kDelete };

// A complete file found in a spool.
struct SpoolFile {
  size_t spool;  // index of its directory
  std::string name;
  struct stat st;  // lstat: a symbolic link is seen as one
};

class Spool {
 public:
  using Clock = std::chrono::system_clock;

  Spool(std::vector<std::string> dirs, std::chrono::milliseconds settle, OnDone on_done);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // The complete files in every spool. Problems with the spools themselves
  // (a missing directory, a handled file that could not be renamed) go to
  // `problems`: they make the collector's update fail.
  std::vector<SpoolFile> Scan(std::vector<std::string>& problems);

  // Opens a regular file found by Scan() read-only, never following a
  // symbolic link; -1 when it was replaced since, or is still open for
  // writing elsewhere: a later Scan() finds it again.
  int Open(const SpoolFile& file);

  // Renames the file to .done (or deletes it, as configured) when `used`,
  // else to .error. False when that failed (with a problem; the file is
  // offered again a minute later) or when the name now holds another file:
  // the caller must then not count it.
  bool Finish(const SpoolFile& file, bool used, std::vector<std::string>& problems);

  const std::string& dir(const SpoolFile& file) const { return spools_[file.spool].dir; }
  // Whether inotify watches the spools (false: rescans alone find files).
  bool watching() const { return inotify_fd_ >= 0; }

 private:
  struct Dir {
    std::string dir;
    int fd = -1;  // open from one Scan() to the next
    int wd = -1;
    // Names inotify reported closed or moved in since the last Scan().
    std::set<std::string> closed;
  };
  using FileKey = std::tuple<dev_t, ino_t, int64_t, off_t>;  // device, inode, mtime, size

  void DrainEvents();
  void ScanDir(size_t index, Clock::time_point now, std::vector<SpoolFile>& files,
               std::vector<std::string>& problems, std::set<FileKey>& still_stuck);

  std::vector<Dir> spools_;
  const std::chrono::milliseconds settle_;
  const OnDone on_done_;
  int inotify_fd_ = -1;
  // Files that could not be renamed after they were handled: offered again
  // only after kStuckRetry or once they change, so that they are neither
  // counted twice nor parsed over and over; reported as a problem meanwhile.
  struct Stuck {
    std::string problem;
    Clock::time_point since;
  };
  std::map<FileKey, Stuck> stuck_;
};

// Whether a spool file name is one Scan() picks up.
bool IsCandidateName(const std::string& name);

}  // namespace gocache::trace
