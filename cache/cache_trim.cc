#include "cache/cache_trim.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "base/file_time.h"
#include "cache/build_cache.h"
#include "cache/inode_usage.h"

namespace gocache {
namespace {

using buildcache::Id;

constexpr int kShards = 256;
constexpr uint32_t kNoOutput = UINT32_MAX;

struct Entry {
  Id id;
  int64_t mtime_ns;
  uint64_t size;
  uint8_t shard;
  bool action;
  uint32_t output = kNoOutput;  // actions: index of the output they name, if present
};

std::string NameOf(const Entry& e) { return buildcache::HexId(e.id) + (e.action ? "-a" : "-d"); }

// The shard directories, open, and the entries in them.
class Listing {
 public:
  ~Listing() {
    for (int fd : shard_fds) {
      if (fd >= 0) close(fd);
    }
    if (root_fd >= 0) close(root_fd);
  }

  bool Open(const std::string& dir, std::string& error) {
    root_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (root_fd < 0 || fstat(root_fd, &st) != 0) {
      error = DescribeErrno(errno, dir);
      return false;
    }
    device = st.st_dev;
    return true;
  }

  bool Statvfs(CacheUsage& usage, std::string& error) const {
    struct statvfs fs;
    if (fstatvfs(root_fd, &fs) != 0) {
      error = DescribeErrno(errno, "statvfs");
      return false;
    }
    usage.files = fs.f_files;
    usage.files_free = fs.f_ffree;
    usage.avail_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    return true;
  }

  // Lists every action and output; reads each action's entry for the
  // output it names.
  void List(const std::string& dir, const TrimOptions& options, std::vector<std::string>& errors) {
    for (int shard = 0; shard < kShards; ++shard) {
      const std::string name = buildcache::ShardName(shard);
      // O_NOFOLLOW: a shard that is a symbolic link is not the cache's.
      const int fd = openat(root_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
          errors.push_back(DescribeErrno(errno, dir + "/" + name));
        }
        continue;
      }
      struct stat st;
      if (fstat(fd, &st) != 0 || st.st_dev != device) {  // another filesystem: not entered
        close(fd);
        continue;
      }
      shard_fds[shard] = fd;
      ListShard(shard, dir + "/" + name, errors);
      if (options.progress) options.progress({"listing", static_cast<uint64_t>(shard + 1), 256});
    }
    LinkOutputs();
  }

  int root_fd = -1;
  dev_t device = 0;
  std::array<int, kShards> shard_fds = [] {
    std::array<int, kShards> fds;
    fds.fill(-1);
    return fds;
  }();
  std::vector<Entry> entries;

 private:
  void ListShard(int shard, const std::string& path, std::vector<std::string>& errors) {
    const int list_fd = dup(shard_fds[shard]);
    DIR* dir = list_fd >= 0 ? fdopendir(list_fd) : nullptr;
    if (dir == nullptr) {
      if (list_fd >= 0) close(list_fd);
      errors.push_back(DescribeErrno(errno, path));
      return;
    }
    const std::unique_ptr<DIR, int (*)(DIR*)> closer(dir, closedir);
    while (const struct dirent* d = readdir(dir)) {
      const std::string_view name = d->d_name;
      const auto type = buildcache::Classify(shard, name);
      if (type == buildcache::EntryType::kOther) continue;
      struct stat st;
      if (fstatat(shard_fds[shard], d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (!S_ISREG(st.st_mode)) continue;  // never a link, never anything but a file
      // Classify() accepted the name: 64 hex digits.
      Entry e{*buildcache::DecodeHexId(name.substr(0, buildcache::kHexIdSize)), MtimeNs(st),
              static_cast<uint64_t>(st.st_size), static_cast<uint8_t>(shard),
              type == buildcache::EntryType::kAction};
      if (e.action) ReadAction(shard, d->d_name);
      entries.push_back(e);
    }
  }

  // The output the action entry about to be listed names, kept as its id in
  // `pending_` until every output is listed.
  void ReadAction(int shard, const char* name) {
    int fd = openat(shard_fds[shard], name,
                    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (noatime_ ? O_NOATIME : 0));
    if (fd < 0 && errno == EPERM && noatime_) {  // not the owner: without O_NOATIME
      noatime_ = false;
      fd = openat(shard_fds[shard], name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    }
    if (fd < 0) return;
    char buffer[buildcache::kActionEntrySize + 1];
    const ssize_t n = read(fd, buffer, sizeof buffer);
    close(fd);
    if (n <= 0) return;
    const std::string_view content(buffer, static_cast<size_t>(n));
    if (!buildcache::ParseActionEntry(content, std::string_view(name, buildcache::kHexIdSize))) {
      return;  // corrupt: an action alone
    }
    // "v1 <action id> <output id> ...": ParseActionEntry checked the hex.
    pending_.push_back(
        {entries.size(), *buildcache::DecodeHexId(content.substr(3 + buildcache::kHexIdSize + 1,
                                                                 buildcache::kHexIdSize))});
  }

  void LinkOutputs() {
    std::vector<std::pair<Id, uint32_t>> outputs;
    for (uint32_t i = 0; i < entries.size(); ++i) {
      if (!entries[i].action) outputs.push_back({entries[i].id, i});
    }
    std::sort(outputs.begin(), outputs.end());
    for (const auto& [action, output_id] : pending_) {
      const auto it =
          std::lower_bound(outputs.begin(), outputs.end(), std::make_pair(output_id, uint32_t{0}));
      if (it != outputs.end() && it->first == output_id) entries[action].output = it->second;
    }
    pending_.clear();
  }

  bool noatime_ = true;
  std::vector<std::pair<size_t, Id>> pending_;
};

// The inode usage with `used` inodes in use (never more than `files`).
std::optional<double> UsageWith(uint64_t used, uint64_t files) {
  return InodeUsageRatio(files, files - std::min(used, files));
}

bool BoundsHold(const TrimBounds& bounds, uint64_t bytes, uint64_t used, uint64_t files) {
  if (bounds.max_bytes && bytes > *bounds.max_bytes) return false;
  const auto usage = UsageWith(used, files);
  return !(bounds.max_inode_usage && usage && *usage > *bounds.max_inode_usage);
}

// The entry bytes and used inodes left as units are removed, in order: each
// unit's entry, and the output of an action once no other action names it.
class Removal {
 public:
  Removal(const std::vector<Entry>& entries, std::vector<uint32_t> references,
          const CacheUsage& usage)
      : entries_(entries),
        references_(std::move(references)),
        bytes_(usage.bytes),
        used_(usage.used_files()) {}

  // Takes `unit` off; returns the output that goes with it, or kNoOutput.
  uint32_t Take(uint32_t unit) {
    const Entry& e = entries_[unit];
    uint32_t output = kNoOutput;
    if (e.action && e.output != kNoOutput && --references_[e.output] == 0) output = e.output;
    for (uint32_t i : {unit, output}) {
      if (i == kNoOutput) continue;
      bytes_ -= entries_[i].size;
      used_ -= used_ > 0 ? 1 : 0;
    }
    return output;
  }

  uint64_t bytes() const { return bytes_; }
  uint64_t used() const { return used_; }

 private:
  const std::vector<Entry>& entries_;
  std::vector<uint32_t> references_;  // actions still naming each output
  uint64_t bytes_, used_;
};

void Count(const std::vector<Entry>& entries, CacheUsage& usage) {
  const int64_t now = NowNs();
  for (const Entry& e : entries) {
    ++usage.entries;
    usage.bytes += e.size;
    if (buildcache::Trimmable(e.mtime_ns, now)) ++usage.trimmable;
  }
}

}  // namespace

std::optional<double> CacheUsage::inode_usage() const { return InodeUsageRatio(files, files_free); }

std::optional<CacheUsage> MeasureCache(const std::string& dir, bool count_entries,
                                       std::string& error) {
  Listing listing;
  CacheUsage usage;
  if (!listing.Open(dir, error) || !listing.Statvfs(usage, error)) return std::nullopt;
  if (count_entries) {
    std::vector<std::string> errors;
    listing.List(dir, {}, errors);
    if (!errors.empty()) {
      error = errors.front();
      return std::nullopt;
    }
    Count(listing.entries, usage);
  }
  return usage;
}

std::optional<TrimResult> TrimCache(const std::string& dir, const TrimBounds& bounds,
                                    const TrimOptions& options, std::string& error) {
  Listing listing;
  TrimResult result;
  if (!listing.Open(dir, error) || !listing.Statvfs(result.before, error)) return std::nullopt;
  listing.List(dir, options, result.errors);
  std::vector<Entry>& entries = listing.entries;
  Count(entries, result.before);

  // Units of removal, least recently used first: each action with the
  // output it names, and each output that no action names.
  std::vector<uint32_t> references(entries.size(), 0);
  for (uint32_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.action && e.output != kNoOutput) ++references[e.output];
    // A running go command's hold is one more reference: the output stays
    // whatever becomes of the actions that name it.
    if (!e.action && std::binary_search(options.held.begin(), options.held.end(), e.id)) {
      ++references[i];
    }
  }
  std::vector<uint32_t> units;
  for (uint32_t i = 0; i < entries.size(); ++i) {
    if (entries[i].action || references[i] == 0) units.push_back(i);
  }
  std::sort(units.begin(), units.end(), [&](uint32_t a, uint32_t b) {
    return std::tie(entries[a].mtime_ns, entries[a].id) <
           std::tie(entries[b].mtime_ns, entries[b].id);
  });
  constexpr int64_t kNs = 1'000'000'000;
  const int64_t now = NowNs();
  const int64_t age_cutoff = bounds.max_age ? now - bounds.max_age->count() * kNs : INT64_MIN;
  // An entry used within keep_recent has an mtime within keep_recent plus
  // the go command's mtime interval.
  const int64_t keep_cutoff =
      bounds.keep_recent.count() > 0
          ? now - (bounds.keep_recent.count() + buildcache::kMtimeIntervalSeconds) * kNs
          : INT64_MAX;

  // The floor: what removing every unit the byte and inode bounds may take
  // would leave. A bound below it is left out rather than chased.
  TrimBounds reachable;  // the byte and inode bounds worth chasing
  {
    Removal all(entries, references, result.before);
    for (uint32_t unit : units) {
      if (entries[unit].mtime_ns >= keep_cutoff) break;
      all.Take(unit);
    }
    if (bounds.max_bytes) {
      if (all.bytes() <= *bounds.max_bytes) {
        reachable.max_bytes = bounds.max_bytes;
      } else {
        result.unreachable.push_back({TrimBound::kBytes, static_cast<double>(*bounds.max_bytes),
                                      static_cast<double>(all.bytes())});
      }
    }
    const uint64_t files = result.before.files;
    const auto floor = UsageWith(all.used(), files);
    if (bounds.max_inode_usage && floor) {
      if (*floor <= *bounds.max_inode_usage) {
        reachable.max_inode_usage = bounds.max_inode_usage;
      } else {
        result.unreachable.push_back({TrimBound::kInodeUsage, *bounds.max_inode_usage, *floor});
      }
    }
  }

  // The plan: (entry, the output that goes with it or kNoOutput), oldest
  // first, while the age bound or a reachable bound still asks for more.
  std::vector<std::pair<uint32_t, uint32_t>> plan;
  Removal removal(entries, std::move(references), result.before);
  for (uint32_t unit : units) {
    const int64_t mtime = entries[unit].mtime_ns;
    const bool too_old = mtime < age_cutoff;
    const bool over_bound = mtime < keep_cutoff && !BoundsHold(reachable, removal.bytes(),
                                                               removal.used(), result.before.files);
    if (!too_old && !over_bound) break;  // units are in mtime order: none after it either
    plan.push_back({unit, removal.Take(unit)});
  }

  uint64_t done = 0;
  bool stopped = false;
  // Outputs named by an action that had to stay: planned to go with a
  // later action, they must stay too.
  std::vector<bool> still_named(entries.size(), false);
  for (const auto& [first, second] : plan) {
    if (options.stop && options.stop()) {
      stopped = true;
      break;
    }
    for (uint32_t i : {first, second}) {
      if (i == kNoOutput) continue;
      const Entry& e = entries[i];
      if (!e.action && still_named[i]) break;
      if (!options.dry_run) {
        const std::string name = NameOf(e);
        const int fd = listing.shard_fds[e.shard];
        struct stat st;
        // Used (or replaced) since it was listed: a build needs it; and if
        // the action stays, so does its output.
        const bool changed = fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                             !S_ISREG(st.st_mode) || MtimeNs(st) != e.mtime_ns;
        if (changed || unlinkat(fd, name.c_str(), 0) != 0) {
          if (!changed && errno != ENOENT) {
            result.errors.push_back(DescribeErrno(errno, dir + "/" + name));
          }
          ++result.skipped;
          if (e.action && e.output != kNoOutput) still_named[e.output] = true;
          break;
        }
      }
      ++(e.action ? result.actions : result.outputs);
      result.bytes += e.size;
    }
    if (options.progress && ++done % 4096 == 0) {
      options.progress({"removing", done, plan.size()});
    }
  }

  result.after = result.before;
  result.after.entries -= result.entries();
  result.after.bytes -= result.bytes;
  if (options.dry_run) {
    result.after.files_free += std::min(result.entries(), result.before.used_files());
  } else {
    std::string statvfs_error;
    if (!listing.Statvfs(result.after, statvfs_error)) result.errors.push_back(statvfs_error);
  }
  // The age bound holds unless an old entry had to be left alone or the
  // trim was stopped before it got to every one.
  result.bounds_met =
      BoundsHold(bounds, result.after.bytes, result.after.used_files(), result.after.files) &&
      (!bounds.max_age || (result.skipped == 0 && !stopped));
  return result;
}

}  // namespace gocache
