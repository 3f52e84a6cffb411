#include "cache/census_watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include "base/file_time.h"
#include "cache/build_cache.h"

namespace gocache {
namespace {

using buildcache::EntryType;

constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB |
                                IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                                IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK;
// Events after which a file's blocks may still change at writeback.
constexpr uint32_t kWritten = IN_CREATE | IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO;
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
// As the scanner: bounds the handles a hostile, deep tree can take.
constexpr int kMaxDepth = 128;

bool IsDotOrDotDot(const char* name) {
  return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

int64_t ReadCentiseconds(const char* file, int64_t fallback) {
  std::ifstream in(file);
  int64_t value = 0;
  return in >> value && value >= 0 ? value : fallback;
}

// How long after a write the kernel may still allocate a file's blocks: dirty
// pages expire after dirty_expire_centisecs and the flusher wakes every
// dirty_writeback_centisecs; twice that, and a margin for a busy disk.
int64_t SettleNs() {
  const int64_t expire = ReadCentiseconds("/proc/sys/vm/dirty_expire_centisecs", 3000);
  const int64_t writeback = ReadCentiseconds("/proc/sys/vm/dirty_writeback_centisecs", 500);
  const int64_t seconds = std::max<int64_t>(60, (expire + 2 * writeback) / 100 + 20);
  return seconds * kNanosPerSecond;
}

OtherFile FileFacts(const struct stat& st) {
  return {MtimeNs(st), st.st_size, static_cast<int64_t>(st.st_blocks) * 512};
}

// Calls `f(name)` for each entry of an open directory; closes it. Returns 0
// or the errno that ended the listing early.
template <typename F>
int ForEachName(int dir_fd, F f) {
  DIR* dir = fdopendir(dir_fd);
  if (dir == nullptr) {
    const int err = errno;
    close(dir_fd);
    return err;
  }
  int err = 0;
  for (;;) {
    errno = 0;
    const dirent* entry = readdir(dir);
    if (entry == nullptr) {
      err = errno;
      break;
    }
    if (!IsDotOrDotDot(entry->d_name)) f(dirfd(dir), std::string(entry->d_name));
  }
  closedir(dir);
  return err;
}

}  // namespace

std::string EventsUnsupportedReason(const std::string& path) {
  struct statfs fs;
  if (statfs(path.c_str(), &fs) != 0) return "";  // missing yet: decided when it exists
  switch (static_cast<uint64_t>(fs.f_type)) {
    case NFS_SUPER_MAGIC:
      return "nfs";
    case 0x65735546:  // FUSE_SUPER_MAGIC
      return "fuse";
    case SMB_SUPER_MAGIC:
    case 0xfe534d42:  // SMB2
    case 0xff534d42:  // CIFS
      return "smb";
    case V9FS_MAGIC:
      return "9p";
    case 0x00c36400:  // CEPH
      return "ceph";
    case AFS_SUPER_MAGIC:
      return "afs";
    default:
      return "";
  }
}

CensusWatch::CensusWatch(CacheDir cache, int inotify_fd)
    : cache_(std::move(cache)), inotify_fd_(inotify_fd), settle_ns_(SettleNs()) {
  shard_wd_.fill(-1);
}

CensusWatch::~CensusWatch() { RemoveAllWatches(); }

std::string CensusWatch::UnitPath(int unit) const {
  return unit == kRoot ? cache_.path : cache_.path + '/' + buildcache::ShardName(unit);
}

int CensusWatch::AddWatch(const std::string& path, int unit, const std::string& name) {
  const int wd = inotify_add_watch(inotify_fd_, path.c_str(), kWatchMask);
  if (wd < 0) {
    // A directory that just went away, or that may not be read (listed, not
    // entered, until the root reports its new mode), is no reason to stop
    // following events.
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES && watch_error_.empty()) {
      watch_error_ = DescribeErrno(errno, "inotify_add_watch " + path);
    }
    return -1;
  }
  watches_[wd] = {unit, name};
  return wd;
}

void CensusWatch::RemoveWatches(int unit, const std::string& name) {
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (it->second.unit == unit && it->second.name == name) {
      inotify_rm_watch(inotify_fd_, it->first);
      it = watches_.erase(it);
    } else {
      ++it;
    }
  }
}

void CensusWatch::RemoveAllWatches() {
  for (const auto& [wd, watched] : watches_) inotify_rm_watch(inotify_fd_, wd);
  watches_.clear();
  shard_wd_.fill(-1);
}

bool CensusWatch::Owns(int wd) const { return watches_.contains(wd); }

void CensusWatch::OnEvent(int wd, uint32_t mask, std::string_view name, int64_t now_ns) {
  const auto it = watches_.find(wd);
  if (it == watches_.end()) return;
  const Watched watched = it->second;
  if (mask & IN_IGNORED) watches_.erase(it);  // the kernel dropped it
  if (watched.unit == kRoot && watched.name.empty()) {
    if (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
      needs_walk_ = true;  // the cache directory itself went away
      return;
    }
  }
  if (!watched.name.empty()) {
    // Somewhere below a name: that name's subtree is counted again.
    dirty_[watched.unit].push_back(watched.name);
  } else if (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
    // A shard directory went away: the root's look at its name says how.
    if ((mask & IN_IGNORED) && shard_wd_[watched.unit] == wd) shard_wd_[watched.unit] = -1;
    dirty_[kRoot].push_back(buildcache::ShardName(watched.unit));
  } else if (!name.empty()) {
    std::string n(name);
    if (mask & kWritten) unsettled_[{watched.unit, n}] = now_ns + settle_ns_;
    dirty_[watched.unit].push_back(std::move(n));
    if (watched.unit != kRoot) dir_changed_.set(watched.unit);
  }
  ++events_seen_[watched.unit];
}

void CensusWatch::Fail(int unit, const std::string& name, int err) {
  if (err == ENOENT) return;  // removed while we looked
  auto [it, added] = unreadable_.try_emplace({unit, name});
  it->second = DescribeErrno(err, UnitPath(unit) + "/" + name);
  if (added) ++errors_total_;
}

void CensusWatch::FailFile(int unit, const std::string& name, int err) {
  Fail(unit, name, err);
  // Listed, so counted as an inode as a walk counts it; not as an entry.
  if (err == ENOENT) {
    unreadable_files_.erase({unit, name});
  } else {
    unreadable_files_.insert({unit, name});
  }
}

bool CensusWatch::Excluded(const struct stat& status) const {
  return std::find(excluded_.begin(), excluded_.end(),
                   std::make_pair(status.st_dev, status.st_ino)) != excluded_.end();
}

SubtreeTally CensusWatch::TallySubtree(int parent_fd, const std::string& name,
                                       const std::string& path, int unit, const std::string& top,
                                       int depth) {
  SubtreeTally tally{1, 1, 0, 0, 0};
  if (depth > kMaxDepth) {
    Fail(unit, top, ELOOP);
    return tally;
  }
  const int fd = OpenNoAtime(parent_fd, name.c_str(), kDirFlags, noatime_);
  if (fd < 0) {
    Fail(unit, top, errno);
    return tally;
  }
  // The watch first, then the listing: a name created in between is both
  // listed and reported, never neither.
  AddWatch(path, unit, top);
  const int err = ForEachName(fd, [&](int dir_fd, const std::string& child) {
    struct stat st;
    if (fstatat(dir_fd, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) ++tally.inodes;  // listed, as find lists it
      Fail(unit, top, errno);
      return;
    }
    if (S_ISDIR(st.st_mode)) {
      if (Excluded(st)) return;    // another cache's tree
      if (st.st_dev != device_) {  // a mount point: listed, not entered
        ++tally.inodes, ++tally.directories;
        return;
      }
      const SubtreeTally sub =
          TallySubtree(dir_fd, child, path + "/" + child, unit, top, depth + 1);
      tally.inodes += sub.inodes;
      tally.directories += sub.directories;
      tally.files += sub.files;
      tally.bytes += sub.bytes;
      tally.allocated += sub.allocated;
      return;
    }
    ++tally.inodes, ++tally.files;
    tally.bytes += static_cast<uint64_t>(st.st_size);
    tally.allocated += static_cast<uint64_t>(st.st_blocks) * 512;
  });
  if (err != 0) Fail(unit, top, err);
  return tally;
}

void CensusWatch::NoteWritten(int unit, const std::string& name, const struct stat& st) {
  // Changed within the settling time (also before the exporter started):
  // looked at again until writeback is surely done.
  const int64_t until = CtimeNs(st) + settle_ns_;
  if (!S_ISDIR(st.st_mode) && until > NowNs()) {
    auto& deadline = unsettled_[{unit, name}];
    deadline = std::max(deadline, until);
  }
}

NameState CensusWatch::LookAt(int dir_fd, int unit, const std::string& name) {
  NameState state{name, {}, {}, {}, {}};
  const std::string where = UnitPath(unit);
  const EntryType type = unit == kRoot ? EntryType::kOther : buildcache::Classify(unit, name);
  struct stat st;
  if (type == EntryType::kAction) {
    const ActionLook look = LookAtAction(dir_fd, name, noatime_);
    if (!look.found) {
      FailFile(unit, name, look.err);
      return state;
    }
    st = look.status;
    if (!S_ISDIR(st.st_mode)) {
      NoteWritten(unit, name, st);
      state.action = ActionRecord{buildcache::IdKey(name), MtimeNs(st),      st.st_size,
                                  look.output_key,         look.output_size, Blocks(st)};
      unreadable_.erase({unit, name});
      unreadable_files_.erase({unit, name});
      return state;
    }
  } else if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    FailFile(unit, name, errno);
    return state;
  }
  unreadable_.erase({unit, name});
  unreadable_files_.erase({unit, name});
  NoteWritten(unit, name, st);
  if (S_ISDIR(st.st_mode)) {
    RemoveWatches(unit, name);
    if (Excluded(st)) return state;
    if (st.st_dev != device_) {
      state.subtree = SubtreeTally{1, 1, 0, 0, 0};
    } else {
      state.subtree = TallySubtree(dir_fd, name, where + "/" + name, unit, name, 1);
    }
    return state;
  }
  if (type == EntryType::kOutput) {
    const OtherFile f = FileFacts(st);
    state.output = OutputRecord{buildcache::IdKey(name), f.mtime_ns, f.size, Blocks(st)};
  } else {
    state.other = FileFacts(st);
  }
  return state;
}

ShardContents CensusWatch::ListShard(int shard, int dir_fd) {
  ShardContents contents;
  std::vector<NameState> looks;
  const int err = ForEachName(dir_fd, [&](int fd, const std::string& name) {
    NameState look = LookAt(fd, shard, name);
    if (look.action) {
      contents.actions.push_back(*look.action);
    } else if (look.output) {
      contents.outputs.push_back(*look.output);
    } else if (look.other) {
      contents.others.emplace(name, *look.other);
    } else if (look.subtree) {
      contents.subtrees.emplace(name, *look.subtree);
    }
  });
  if (err != 0) Fail(shard, "", err);
  const auto by_key = [](const auto& a, const auto& b) { return a.key < b.key; };
  std::sort(contents.actions.begin(), contents.actions.end(), by_key);
  std::sort(contents.outputs.begin(), contents.outputs.end(), by_key);
  // Kept until the shard changes: no room left over from doubling.
  contents.actions.shrink_to_fit();
  contents.outputs.shrink_to_fit();
  return contents;
}

void CensusWatch::ApplyNames(int unit) {
  auto& names = dirty_[unit];
  if (names.empty()) return;
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::string> pending;
  pending.swap(names);
  changed_ = true;
  const int dir_fd = open(UnitPath(unit).c_str(), kDirFlags);
  if (unit == kRoot) {
    if (dir_fd < 0) {
      needs_walk_ = true;
      return;
    }
    for (const auto& name : pending) LookAtRootName(dir_fd, name);
    close(dir_fd);
    return;
  }
  if (dir_fd < 0) return;  // the shard went away: its name in the root says so
  if (!index_.shard_present(unit)) {
    close(dir_fd);
    return;
  }
  std::vector<NameState> looks;
  looks.reserve(pending.size());
  for (const auto& name : pending) looks.push_back(LookAt(dir_fd, unit, name));
  index_.Apply(unit, std::move(looks));
  struct stat st;
  if (fstat(dir_fd, &st) == 0) index_.SetShardDirSize(unit, st.st_size);
  close(dir_fd);
}

void CensusWatch::ForgetFailures(int unit) {
  std::erase_if(unreadable_, [unit](const auto& e) { return e.first.first == unit; });
  std::erase_if(unreadable_files_, [unit](const auto& e) { return e.first == unit; });
}

bool CensusWatch::FollowShard(int root_fd, int shard, bool verify,
                              const std::function<void()>& drain) {
  const std::string path = UnitPath(shard);
  const int wd = AddWatch(path, shard, "");
  if (wd < 0 && !watch_error_.empty()) return false;
  // Only a directory followed all along can have drifted: a new one (its
  // watch is new) is known only from this listing.
  const bool compare = verify && wd >= 0 && index_.shard_present(shard) && shard_wd_[shard] == wd;
  shard_wd_[shard] = wd;
  const std::string name = buildcache::ShardName(shard);
  const int fd = OpenNoAtime(root_fd, name.c_str(), kDirFlags, noatime_);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) {  // gone again: the root will say
    index_.RemoveShard(shard);
    ForgetFailures(shard);
    return true;
  }
  if (fd < 0) {
    // Listed but not entered, as a walk counts it; the root reports a new
    // mode, and it is listed then.
    Fail(kRoot, name, errno);
    ForgetFailures(shard);
    struct stat st;
    index_.ReplaceShard(shard, {}, fstatat(root_fd, name.c_str(), &st, 0) == 0 ? st.st_size : 0);
    dirty_[shard].clear();
    return true;
  }
  unreadable_.erase({kRoot, name});
  struct stat st;
  if (fstat(fd, &st) != 0) st.st_size = 0;
  if (compare) {
    drain();
    ApplyNames(shard);
  }
  // Names reported before the listing are in it.
  dirty_[shard].clear();
  dir_changed_.reset(shard);
  const uint64_t seen = events_seen_[shard];
  ForgetFailures(shard);
  ShardContents fresh = ListShard(shard, fd);  // closes fd
  if (compare) {
    drain();
    // A name that changed while it was listed may differ for that reason.
    if (events_seen_[shard] == seen) {
      std::vector<std::string> unsettled;
      for (const auto& [key, deadline] : unsettled_) {
        if (key.first == shard) unsettled.push_back(key.second);
      }
      drift_total_ += index_.Differences(shard, fresh, unsettled);
    }
  }
  index_.ReplaceShard(shard, std::move(fresh), st.st_size);
  return true;
}

void CensusWatch::LookAtRootName(int root_fd, const std::string& name) {
  if (name == "trim.txt") last_trim_ = buildcache::ReadTrimTime(cache_.path);
  struct stat st;
  const bool exists = fstatat(root_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  const int shard = buildcache::ShardIndex(name);
  if (shard >= 0) {
    if (exists && S_ISDIR(st.st_mode)) {
      // The same directory keeps its watch descriptor and may have changed
      // its permissions; a new one gets a new descriptor. Either is listed
      // whole (a rare event: shard directories are made once).
      const int wd = inotify_add_watch(inotify_fd_, (cache_.path + "/" + name).c_str(), kWatchMask);
      if (shard_wd_[shard] >= 0 && shard_wd_[shard] != wd) {
        inotify_rm_watch(inotify_fd_, shard_wd_[shard]);
        watches_.erase(shard_wd_[shard]);
        shard_wd_[shard] = -1;
      }
      if (!FollowShard(root_fd, shard, false, [] {})) needs_walk_ = true;
      return;
    }
    if (index_.shard_present(shard)) {
      if (shard_wd_[shard] >= 0) {
        inotify_rm_watch(inotify_fd_, shard_wd_[shard]);
        watches_.erase(shard_wd_[shard]);
        shard_wd_[shard] = -1;
      }
      index_.RemoveShard(shard);
      ForgetFailures(shard);
      dirty_[shard].clear();
    }
  }
  if (!exists) {
    Fail(kRoot, name, errno);
    RemoveWatches(kRoot, name);
    index_.ApplyRoot(name, std::nullopt, std::nullopt);
    return;
  }
  unreadable_.erase({kRoot, name});
  if (!S_ISDIR(st.st_mode)) {
    NoteWritten(kRoot, name, st);
    index_.ApplyRoot(name, FileFacts(st), std::nullopt);
    return;
  }
  RemoveWatches(kRoot, name);
  if (Excluded(st)) {
    index_.ApplyRoot(name, std::nullopt, std::nullopt);
  } else if (st.st_dev != device_) {
    index_.ApplyRoot(name, std::nullopt, SubtreeTally{1, 1, 0, 0, 0});
  } else {
    index_.ApplyRoot(name, std::nullopt,
                     TallySubtree(root_fd, name, cache_.path + "/" + name, kRoot, name, 1));
  }
}

CensusWatch::WalkResult CensusWatch::Walk(bool verify, const std::function<void()>& drain) {
  const auto start = std::chrono::steady_clock::now();
  last_walk_ = ScanResult{};
  last_walk_.started_unix = static_cast<double>(NowNs()) / kNanosPerSecond;
  const auto finish = [&](WalkResult result) {
    last_walk_.duration_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    changed_ = true;
    return result;
  };
  needs_walk_ = false;
  watch_error_.clear();
  excluded_.clear();
  for (const auto& path : cache_.nested) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      excluded_.emplace_back(st.st_dev, st.st_ino);
    }
  }
  bool noatime = true;
  const int root_fd =
      OpenNoAtime(AT_FDCWD, cache_.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, noatime);
  struct stat root;
  if (root_fd < 0 || fstat(root_fd, &root) != 0) {
    last_walk_.root_errno = errno;
    last_walk_.root_error = DescribeErrno(errno, cache_.path);
    if (root_fd >= 0) close(root_fd);
    RemoveAllWatches();
    index_.ClearRoot();
    unsettled_.clear();
    unreadable_.clear();
    unreadable_files_.clear();
    for (auto& names : dirty_) names.clear();
    needs_walk_ = true;  // tried again each tick: a fresh runner's cache appears later
    return finish(WalkResult::kNoRoot);
  }
  last_walk_.root_readable = true;
  if (root.st_dev != device_ || !verify) {
    // A new tree (or one whose events were lost): every watch is set again.
    RemoveAllWatches();
  }
  device_ = root.st_dev;
  if (AddWatch(cache_.path, kRoot, "") < 0) {
    close(root_fd);
    return finish(WalkResult::kNoWatches);
  }
  if (verify) {
    // The root's names as events left them: a verifying walk compares
    // shards the index follows, not ones whose news is still queued.
    drain();
    ApplyNames(kRoot);
  }
  dirty_[kRoot].clear();
  std::set<std::string> listed;
  std::vector<std::string> names;
  const int err =
      ForEachName(dup(root_fd), [&](int, const std::string& name) { names.push_back(name); });
  if (err != 0) Fail(kRoot, "", err);
  for (const auto& name : names) {
    listed.insert(name);
    const int shard = buildcache::ShardIndex(name);
    struct stat st;
    if (shard >= 0 && fstatat(root_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(st.st_mode)) {
      if (!FollowShard(root_fd, shard, verify, drain)) {
        close(root_fd);
        return finish(WalkResult::kNoWatches);
      }
      drain();
    } else {
      LookAtRootName(root_fd, name);
    }
  }
  // What the index holds that the listing does not.
  for (int s = 0; s < 256; ++s) {
    const std::string name = buildcache::ShardName(s);
    if (index_.shard_present(s) && !listed.contains(name)) LookAtRootName(root_fd, name);
  }
  std::vector<std::string> gone;
  for (const auto& [name, f] : index_.root_files()) {
    if (!listed.contains(name)) gone.push_back(name);
  }
  for (const auto& [name, sub] : index_.root_subtrees()) {
    if (!listed.contains(name)) gone.push_back(name);
  }
  for (const auto& name : gone) LookAtRootName(root_fd, name);
  last_trim_ = buildcache::ReadTrimTime(cache_.path);
  close(root_fd);
  if (!watch_error_.empty()) return finish(WalkResult::kNoWatches);
  return finish(WalkResult::kDone);
}

void CensusWatch::RecheckUnsettled(int64_t now_ns) {
  // A stat each: only a file whose allocation (or anything else) changed
  // is looked at again.
  for (auto it = unsettled_.begin(); it != unsettled_.end();) {
    const auto& [unit, name] = it->first;
    struct stat st;
    const std::string path = UnitPath(unit) + "/" + name;
    const bool gone = lstat(path.c_str(), &st) != 0;
    if (gone || index_.Facts(unit, name) != FileFacts(st)) dirty_[unit].push_back(name);
    it = gone || it->second < now_ns ? unsettled_.erase(it) : std::next(it);
  }
}

bool CensusWatch::Tick(int64_t now_ns) {
  RecheckUnsettled(now_ns);
  // The root first: a shard directory that went away or was replaced is
  // dealt with before names in it are looked at.
  ApplyNames(kRoot);
  for (int s = 0; s < 256; ++s) ApplyNames(s);
  for (int s = 0; s < 256; ++s) {
    if (!dir_changed_[s]) continue;
    struct stat st;
    if (index_.shard_present(s) && stat(UnitPath(s).c_str(), &st) == 0) {
      index_.SetShardDirSize(s, st.st_size);
    }
  }
  dir_changed_.reset();
  if (now_ns >= clock_change_ns_) changed_ = true;
  const bool changed = changed_;
  return changed;
}

std::shared_ptr<ScanSnapshot> CensusWatch::Snapshot(int64_t now_ns) {
  auto snapshot = std::make_shared<ScanSnapshot>();
  snapshot->mode = ScanMode::kEvents;
  snapshot->walk = last_walk_;
  if (last_walk_.root_readable) {
    snapshot->walk.inodes = index_.inodes() + unreadable_files_.size();
    snapshot->walk.directories = index_.directories();
    snapshot->walk.errors = unreadable_.size();
    if (!unreadable_.empty()) snapshot->walk.first_error = unreadable_.begin()->second;
    snapshot->census = index_.Census(now_ns);
    snapshot->census->last_trim_unix = last_trim_;
    clock_change_ns_ = index_.next_change_ns();
  }
  snapshot->errors_total = errors_total_;
  snapshot->drift_total = drift_total_;
  changed_ = false;
  return snapshot;
}

std::unique_ptr<EventCensus> EventCensus::Open(std::string& error) {
  const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    error = DescribeErrno(errno, "inotify_init1");
    return nullptr;
  }
  return std::unique_ptr<EventCensus>(new EventCensus(fd));
}

EventCensus::~EventCensus() {
  caches_.clear();
  close(fd_);
}

CensusWatch& EventCensus::Follow(CacheDir cache) {
  caches_.push_back(std::make_unique<CensusWatch>(std::move(cache), fd_));
  return *caches_.back();
}

void EventCensus::Unfollow(const std::string& path) {
  std::erase_if(caches_, [&path](const auto& c) { return c->cache().path == path; });
}

void EventCensus::Drain() {
  alignas(inotify_event) char buf[64 * 1024];
  const int64_t now = NowNs();
  for (;;) {
    const ssize_t n = read(fd_, buf, sizeof buf);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // EAGAIN: nothing more
    }
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      if (event->mask & IN_Q_OVERFLOW) {
        for (auto& cache : caches_) cache->Lost();
        continue;
      }
      const std::string_view name =
          event->len ? std::string_view(event->name, strnlen(event->name, event->len)) : "";
      for (auto& cache : caches_) {
        if (cache->Owns(event->wd)) {
          cache->OnEvent(event->wd, event->mask, name, now);
          break;
        }
      }
    }
  }
}

}  // namespace gocache
