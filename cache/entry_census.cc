#include "cache/entry_census.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/file_time.h"

namespace gocache {
using buildcache::EntryType;

size_t AgeBucket(double age) {
  size_t i = 0;
  while (i < kAgeBuckets.size() && age > kAgeBuckets[i]) ++i;
  return i;
}

void EntrySizes::Add(EntryType type, int64_t size) {
  if (type == EntryType::kOther) return;
  // Prometheus buckets are upper-inclusive.
  const auto bucket =
      std::lower_bound(kSizeBuckets.begin(), kSizeBuckets.end(), static_cast<double>(size)) -
      kSizeBuckets.begin();
  ++counts[static_cast<size_t>(type)][bucket];
}

EntrySizes& EntrySizes::operator+=(const EntrySizes& other) {
  for (size_t t = 0; t < counts.size(); ++t) {
    for (size_t b = 0; b < counts[t].size(); ++b) counts[t][b] += other.counts[t][b];
  }
  return *this;
}

CensusVisitor::CensusVisitor(CacheKind kind, int64_t scan_start_ns, const ActionIndex& previous)
    : kind_(kind), scan_start_ns_(scan_start_ns), previous_(previous) {}

void CensusVisitor::OnDirectory(std::string_view name, int depth, const struct stat& status) {
  if (kind_ != CacheKind::kBuild || depth != 1) return;
  const int shard = buildcache::ShardIndex(name);
  if (shard < 0) return;
  census_.shards_present.set(shard);
  census_.shard_dir_bytes += static_cast<uint64_t>(status.st_size);
}

const IndexedAction* CensusVisitor::Known(uint64_t key) const {
  const auto it =
      std::lower_bound(previous_.begin(), previous_.end(), key,
                       [](const IndexedAction& entry, uint64_t k) { return entry.key < k; });
  return it != previous_.end() && it->key == key ? &*it : nullptr;
}

bool CensusVisitor::StatsItself(std::string_view parent, std::string_view name, int depth) const {
  if (kind_ != CacheKind::kBuild || depth != 2) return false;
  const int shard = buildcache::ShardIndex(parent);
  return shard >= 0 && buildcache::Classify(shard, name) == EntryType::kAction &&
         Known(buildcache::IdKey(name)) == nullptr;
}

void CensusVisitor::Fail(std::string_view name, int err) {
  if (err == ENOENT) return;  // trimmed while we looked
  ++read_errors_;
  if (first_read_error_.empty()) first_read_error_ = std::string(name) + ": " + std::strerror(err);
}

ActionLook LookAtAction(int dir_fd, std::string_view name, bool& noatime) {
  ActionLook look;
  char file[buildcache::kHexIdSize + 3];  // "<64 hex>-a" and its NUL
  const size_t n = name.copy(file, sizeof file - 1);
  file[n] = '\0';
  // O_NONBLOCK: a FIFO under an entry's name must not block the scan.
  const int fd = OpenNoAtime(dir_fd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, noatime);
  if (fd < 0) {
    look.err = errno;
    // A symbolic link: counted, not followed.
    look.found = look.err == ELOOP && fstatat(dir_fd, file, &look.status, AT_SYMLINK_NOFOLLOW) == 0;
    if (!look.found && look.err == ELOOP) look.err = errno;
    return look;
  }
  if (fstat(fd, &look.status) != 0) {
    look.err = errno;
    close(fd);
    return look;
  }
  look.found = true;
  if (!S_ISREG(look.status.st_mode)) {
    close(fd);
    return look;
  }
  char buf[buildcache::kActionEntrySize + 1];
  size_t got = 0;
  while (got < sizeof buf) {
    const ssize_t r = read(fd, buf + got, sizeof buf - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
    // A regular file reads short only at its end: no second read to see EOF.
    if (got < sizeof buf) break;
  }
  close(fd);
  if (const auto entry = buildcache::ParseActionEntry(std::string_view(buf, got),
                                                      name.substr(0, buildcache::kHexIdSize))) {
    look.output_key = entry->output_key;
    look.output_size = entry->output_size;
  }
  return look;
}

void CensusVisitor::OnFile(int dir_fd, std::string_view parent, std::string_view name, int depth,
                           const struct stat* scanned) {
  ActionLook look;  // for a file the scanner left to us: always a new action entry
  if (scanned == nullptr) {
    look = LookAtAction(dir_fd, name, noatime_);
    ++actions_read_;
    if (!look.found) return Fail(name, look.err);
  }
  const struct stat* status = scanned ? scanned : &look.status;
  const uint64_t size = static_cast<uint64_t>(status->st_size);
  census_.allocated_bytes += static_cast<uint64_t>(status->st_blocks) * 512;
  const int shard = depth == 2 ? buildcache::ShardIndex(parent) : -1;
  const EntryType type = kind_ == CacheKind::kBuild && shard >= 0
                             ? buildcache::Classify(shard, name)
                             : EntryType::kOther;
  const auto t = static_cast<size_t>(type);
  ++census_.entries[t];
  census_.bytes[t] += size;
  if (kind_ != CacheKind::kBuild || shard < 0) return;

  const int64_t mtime_ns = MtimeNs(*status);
  const int64_t age_ns = scan_start_ns_ - mtime_ns;
  if (buildcache::TrimConsiders(name) && buildcache::Trimmable(mtime_ns, scan_start_ns_)) {
    ++census_.trimmable_entries;
    census_.trimmable_bytes += size;
  }
  if (type == EntryType::kOther) return;

  ++census_.shard_entries[shard];
  census_.sizes.Add(type, status->st_size);
  const double age = std::max<double>(0, static_cast<double>(age_ns) / kNanosPerSecond);
  ++census_.age_counts[AgeBucket(age)];
  census_.age_sum_seconds += age;
  const uint64_t key = buildcache::IdKey(name);
  if (type == EntryType::kOutput) {
    outputs_.emplace_back(key, status->st_size);
  } else if (scanned == nullptr) {
    actions_.push_back({key, CtimeNs(*status), look.output_key, look.output_size});
  } else if (S_ISREG(status->st_mode)) {
    ReadAction(dir_fd, name, CtimeNs(*status));
  } else {
    // A FIFO, socket or symbolic link under an entry's name: never read
    // (links are not followed), never valid.
    actions_.push_back({key, CtimeNs(*status), 0, IndexedAction::kCorrupt});
  }
}

void CensusVisitor::ReadAction(int dir_fd, std::string_view name, int64_t ctime_ns) {
  const uint64_t key = buildcache::IdKey(name);
  // Entries are immutable but for their mtime: one whose inode did not
  // change is not read again.
  if (const IndexedAction* known = Known(key); known && known->ctime_ns == ctime_ns) {
    actions_.push_back(*known);
    return;
  }
  const ActionLook look = LookAtAction(dir_fd, name, noatime_);
  ++actions_read_;
  if (!look.found) return Fail(name, look.err);
  // Replaced since the scanner's stat, perhaps by a non-regular file: the
  // look says corrupt then.
  actions_.push_back({key, ctime_ns, look.output_key, look.output_size});
}

void CensusVisitor::Reserve(size_t actions, size_t outputs) {
  actions_.reserve(actions);
  outputs_.reserve(outputs);
}

CacheCensus FinishCensus(std::vector<CensusVisitor>& visitors, ActionIndex& index) {
  CacheCensus total;
  size_t action_count = 0;
  for (const auto& v : visitors) action_count += v.actions_.size();
  ActionIndex().swap(index);
  index.reserve(action_count);
  // Outputs stay in one sorted run per thread: merging them would cost a
  // second copy of the largest array at the peak.
  using OutputRun = std::vector<std::pair<uint64_t, int64_t>>;
  std::vector<OutputRun> outputs;
  for (auto& v : visitors) {
    const CacheCensus& part = v.census_;
    for (size_t t = 0; t < 3; ++t) {
      total.entries[t] += part.entries[t];
      total.bytes[t] += part.bytes[t];
    }
    total.allocated_bytes += part.allocated_bytes;
    total.sizes += part.sizes;
    total.shards_present |= part.shards_present;
    for (size_t s = 0; s < 256; ++s) total.shard_entries[s] += part.shard_entries[s];
    total.shard_dir_bytes += part.shard_dir_bytes;
    for (size_t b = 0; b < total.age_counts.size(); ++b) total.age_counts[b] += part.age_counts[b];
    total.age_sum_seconds += part.age_sum_seconds;
    total.trimmable_entries += part.trimmable_entries;
    total.trimmable_bytes += part.trimmable_bytes;
    index.insert(index.end(), v.actions_.begin(), v.actions_.end());
    std::vector<IndexedAction>().swap(v.actions_);
    outputs.push_back(std::move(v.outputs_));
    std::sort(outputs.back().begin(), outputs.back().end());
  }
  std::sort(index.begin(), index.end(),
            [](const IndexedAction& a, const IndexedAction& b) { return a.key < b.key; });

  std::vector<std::vector<bool>> referenced;
  for (const auto& run : outputs) referenced.emplace_back(run.size());
  for (const auto& action : index) {
    if (action.output_size == IndexedAction::kCorrupt) {
      ++total.corrupt;
      continue;
    }
    bool found = false;
    for (size_t r = 0; r < outputs.size() && !found; ++r) {
      const auto& run = outputs[r];
      const auto it = std::lower_bound(
          run.begin(), run.end(), action.output_key,
          [](const std::pair<uint64_t, int64_t>& output, uint64_t k) { return output.first < k; });
      if (it == run.end() || it->first != action.output_key) continue;
      found = true;
      referenced[r][static_cast<size_t>(it - run.begin())] = true;
      if (it->second != action.output_size) ++total.size_mismatch;
    }
    if (!found) ++total.action_without_output;
  }
  for (const auto& flags : referenced) {
    total.output_without_action +=
        static_cast<uint64_t>(std::count(flags.begin(), flags.end(), false));
  }
  return total;
}

}  // namespace gocache
