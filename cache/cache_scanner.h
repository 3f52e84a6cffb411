// The walk over one cache directory tree that the inode and density
// collectors share. It runs in the background (a runner's cache can hold a
// million files) and is careful in the ways a monitor on a live cache must be:
// it reads directories relative to open handles, never follows symbolic links,
// never leaves the cache's filesystem, and never writes anything.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace gocache {

// Receives what the scan finds; the density collector builds on this.
class ScanVisitor {
 public:
  virtual ~ScanVisitor() = default;
  // Whether OnFile needs the file's status (one fstatat per file).
  virtual bool wants_file_status() const { return false; }
  // Whether the visitor, though it wants status, takes this file's from the
  // file it opens anyway (fstat on the open file saves a path lookup); OnFile
  // then gets a null status.
  virtual bool StatsItself(std::string_view /*parent*/, std::string_view /*name*/,
                           int /*depth*/) const {
    return false;
  }
  // A non-directory entry. `dir_fd` is its open parent directory, `depth` 1
  // for entries directly in the cache root, `parent` the parent's name ("" for
  // the root). `status` is null unless wants_file_status() and not
  // StatsItself().
  virtual void OnFile(int dir_fd, std::string_view parent, std::string_view name, int depth,
                      const struct stat* status) = 0;
  // A directory below the root, before its entries.
  virtual void OnDirectory(std::string_view name, int depth, const struct stat& status) = 0;
};

struct ScanResult {
  bool root_readable = false;
  std::string root_error;  // why the root could not be read
  int root_errno = 0;
  uint64_t inodes = 0;       // the root and everything below it: `find PATH | wc -l`
  uint64_t directories = 0;  // including the root
  uint64_t errors = 0;       // entries that could not be read (vanished ones excluded)
  std::string first_error;
  double started_unix = 0;
  double duration_seconds = 0;
};

// Walks `root`. `stop` is polled once per directory; a stopped scan returns
// what it counted so far. `visitor` may be null (only count).
ScanResult ScanTree(const std::string& root, ScanVisitor* visitor,
                    const std::function<bool()>& stop);

// The same walk on visitors.size() threads: the root's subdirectories (a
// build cache's 256 shards) are shared out among them, and visitor i sees
// only what thread i walks; the entries directly in the root go to visitor 0.
// Null visitors only count. The directories `excluded` names (absolute paths
// below the root: other caches) are neither counted nor entered, as
// `find ROOT -path EXCLUDED -prune -o -print` leaves them out.
ScanResult ScanTree(const std::string& root, const std::vector<ScanVisitor*>& visitors,
                    const std::function<bool()>& stop,
                    const std::vector<std::string>& excluded = {});

// Opens with O_NOATIME where the kernel allows it (the caller owns the file
// or has CAP_FOWNER), so that reading a cache does not even touch atimes;
// elsewhere it opens normally. `noatime` carries what was learned.
int OpenNoAtime(int dir_fd, const char* name, int flags, bool& noatime);

}  // namespace gocache
