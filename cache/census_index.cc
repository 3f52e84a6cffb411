#include "cache/census_index.h"

#include <algorithm>
#include <limits>
#include <set>

#include "base/file_time.h"

namespace gocache {
namespace {

using buildcache::EntryType;

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// Room for a few more records: a shard that gains one grows by a little
// (1/64, at least 32), not by doubling; a million entries are worth 40 MiB.
template <typename T>
void MakeRoom(std::vector<T>& v, size_t more) {
  if (v.size() + more > v.capacity()) {
    v.reserve(v.size() + more + std::max<size_t>(32, v.size() / 64));
  }
}

template <typename Record>
using Updates = std::vector<std::pair<uint64_t, std::optional<Record>>>;

// Puts sorted, unique `updates` (key, new record or none) into `records`,
// sorted by key, telling what went out and what came in. One merge pass when
// many change (a trim, `go clean -cache`), so the cost stays linear.
template <typename Record, typename OnRemove, typename OnAdd>
void Merge(std::vector<Record>& records, const Updates<Record>& updates, OnRemove on_remove,
           OnAdd on_add) {
  const auto less = [](const Record& r, uint64_t key) { return r.key < key; };
  if (updates.size() * 16 < records.size()) {
    MakeRoom(records, updates.size());
    for (const auto& [key, record] : updates) {
      auto it = std::lower_bound(records.begin(), records.end(), key, less);
      const bool found = it != records.end() && it->key == key;
      if (found) on_remove(*it);
      if (record) {
        on_add(*record);
        if (found) {
          *it = *record;
        } else {
          records.insert(it, *record);
        }
      } else if (found) {
        records.erase(it);
      }
    }
    return;
  }
  std::vector<Record> merged;
  merged.reserve(records.size() + updates.size());
  auto it = records.begin();
  for (const auto& [key, record] : updates) {
    for (; it != records.end() && it->key < key; ++it) merged.push_back(*it);
    if (it != records.end() && it->key == key) on_remove(*it++);
    if (record) {
      on_add(*record);
      merged.push_back(*record);
    }
  }
  merged.insert(merged.end(), it, records.end());
  merged.shrink_to_fit();
  records = std::move(merged);
}

// Counts the names that differ between two sorted runs of records.
template <typename Record, typename Same>
size_t CountDifferences(const std::vector<Record>& a, const std::vector<Record>& b, Same same) {
  size_t differences = 0;
  auto i = a.begin();
  auto j = b.begin();
  while (i != a.end() || j != b.end()) {
    if (j == b.end() || (i != a.end() && i->key < j->key)) {
      ++differences, ++i;
    } else if (i == a.end() || j->key < i->key) {
      ++differences, ++j;
    } else {
      differences += same(*i++, *j++) ? 0 : 1;
    }
  }
  return differences;
}

template <typename Map, typename Same>
size_t CountMapDifferences(const Map& a, const Map& b, Same same) {
  size_t differences = 0;
  for (const auto& [name, value] : a) {
    const auto it = b.find(name);
    differences += it == b.end() || !same(name, value, it->second) ? 1 : 0;
  }
  for (const auto& [name, value] : b) differences += a.contains(name) ? 0 : 1;
  return differences;
}

}  // namespace

uint32_t Blocks(const struct stat& status) {
  return static_cast<uint32_t>(
      std::min<uint64_t>(static_cast<uint64_t>(status.st_blocks), UINT32_MAX));
}

CensusIndex::CensusIndex() = default;

void CensusIndex::ApplyRoot(const std::string& name, std::optional<OtherFile> file,
                            std::optional<SubtreeTally> subtree) {
  root_files_.erase(name);
  root_subtrees_.erase(name);
  if (file) root_files_.emplace(name, *file);
  if (subtree) root_subtrees_.emplace(name, *subtree);
}

void CensusIndex::ClearRoot() {
  root_files_.clear();
  root_subtrees_.clear();
  for (int s = 0; s < 256; ++s) {
    if (shards_[s].present) RemoveShard(s);
  }
}

int64_t CensusIndex::next_change_ns() const {
  int64_t next = kNever;
  for (const auto& s : shards_) {
    if (s.present && !s.tally_stale) next = std::min(next, s.tally.next_change_ns);
  }
  return next;
}

void CensusIndex::Reference(const ActionRecord& action, int delta) {
  // Copies: the record is packed (no reference to its members).
  const uint64_t output_key = action.output_key;
  const int64_t output_size = action.output_size;
  if (output_size == IndexedAction::kCorrupt) return;
  Shard& target = shards_[output_key >> 56];
  auto& pending = target.references.pending;
  pending.push_back({{output_key, output_size}, delta});
  target.pairs_stale = true;
  // Merged as it grows, so that a whole cache's worth (the first walk) is
  // never held twice.
  if (pending.size() >= 1024 + target.references.sorted.size() / 4) {
    MergePending(target.references);
  }
}

void CensusIndex::ReplaceShard(int shard, ShardContents contents, int64_t dir_size) {
  Shard& s = shards_[shard];
  for (const auto& action : s.contents.actions) Reference(action, -1);
  for (const auto& action : contents.actions) Reference(action, +1);
  s.contents = std::move(contents);
  s.present = true;
  s.dir_size = dir_size;
  s.tally_stale = s.pairs_stale = true;
}

void CensusIndex::RemoveShard(int shard) {
  ReplaceShard(shard, {}, 0);
  shards_[shard].present = false;
}

void CensusIndex::SetShardDirSize(int shard, int64_t dir_size) {
  shards_[shard].dir_size = dir_size;
}

std::optional<OtherFile> CensusIndex::Facts(int unit, const std::string& name) const {
  const OtherFiles& others = unit == kRoot ? root_files_ : shards_[unit].contents.others;
  if (const auto it = others.find(name); it != others.end()) return it->second;
  if (unit == kRoot) return std::nullopt;
  const ShardContents& c = shards_[unit].contents;
  const uint64_t key = buildcache::IdKey(name);
  const auto find = [key](const auto& records) -> std::optional<OtherFile> {
    const auto it = std::lower_bound(records.begin(), records.end(), key,
                                     [](const auto& r, uint64_t k) { return r.key < k; });
    if (it == records.end() || it->key != key) return std::nullopt;
    return OtherFile{it->mtime_ns, it->size, int64_t{it->blocks} * 512};
  };
  switch (buildcache::Classify(unit, name)) {
    case EntryType::kAction:
      return find(c.actions);
    case EntryType::kOutput:
      return find(c.outputs);
    case EntryType::kOther:
      break;
  }
  return std::nullopt;
}

void CensusIndex::Apply(int shard, std::vector<NameState> looks) {
  Shard& s = shards_[shard];
  // The last look at a name wins.
  std::stable_sort(looks.begin(), looks.end(),
                   [](const NameState& a, const NameState& b) { return a.name < b.name; });
  Updates<ActionRecord> actions;
  Updates<OutputRecord> outputs;
  for (size_t i = 0; i < looks.size(); ++i) {
    if (i + 1 < looks.size() && looks[i + 1].name == looks[i].name) continue;
    NameState& look = looks[i];
    s.contents.others.erase(look.name);
    s.contents.subtrees.erase(look.name);
    if (look.subtree) {
      s.contents.subtrees.emplace(look.name, *look.subtree);
    } else if (look.other) {
      s.contents.others.emplace(look.name, *look.other);
    }
    switch (buildcache::Classify(shard, look.name)) {
      case EntryType::kAction:
        actions.emplace_back(buildcache::IdKey(look.name), look.action);
        break;
      case EntryType::kOutput:
        outputs.emplace_back(buildcache::IdKey(look.name), look.output);
        break;
      case EntryType::kOther:
        break;
    }
  }
  // Sorted by name is sorted by key within a shard, but for the case of hex
  // digits: keys decide.
  const auto by_key = [](const auto& a, const auto& b) { return a.first < b.first; };
  std::stable_sort(actions.begin(), actions.end(), by_key);
  std::stable_sort(outputs.begin(), outputs.end(), by_key);
  Merge(
      s.contents.actions, actions, [this](const ActionRecord& a) { Reference(a, -1); },
      [this](const ActionRecord& a) { Reference(a, +1); });
  Merge(
      s.contents.outputs, outputs, [](const OutputRecord&) {}, [](const OutputRecord&) {});
  s.tally_stale = s.pairs_stale = true;
}

CensusIndex::ShardTally CensusIndex::Tally(const ShardContents& contents, int64_t now_ns) {
  ShardTally t;
  t.at_ns = now_ns;
  t.next_change_ns = kNever;
  const auto file = [&](EntryType type, int64_t size, int64_t allocated) {
    const auto i = static_cast<size_t>(type);
    ++t.entries[i];
    t.bytes[i] += static_cast<uint64_t>(size);
    t.allocated += static_cast<uint64_t>(allocated);
    t.sizes.Add(type, size);
  };
  const auto trim = [&](int64_t mtime_ns, int64_t size) {
    if (buildcache::Trimmable(mtime_ns, now_ns)) {
      ++t.trimmable_entries;
      t.trimmable_bytes += static_cast<uint64_t>(size);
    } else {
      t.next_change_ns =
          std::min(t.next_change_ns, mtime_ns + buildcache::kTrimCutoffSeconds * kNanosPerSecond);
    }
  };
  const auto age = [&](int64_t mtime_ns) {
    const int64_t age_ns = now_ns - mtime_ns;
    const double seconds = std::max<double>(0, static_cast<double>(age_ns) / kNanosPerSecond);
    const size_t bucket = AgeBucket(seconds);
    ++t.age_counts[bucket];
    if (bucket < kAgeBuckets.size()) {
      const auto bound_ns = static_cast<int64_t>(kAgeBuckets[bucket]) * kNanosPerSecond;
      t.next_change_ns = std::min(t.next_change_ns, mtime_ns + bound_ns);
    }
    if (age_ns >= 0) {
      t.age_sum += seconds;
      ++t.aged;
    } else {
      t.next_change_ns = std::min(t.next_change_ns, mtime_ns);  // it starts to age
    }
  };
  for (const auto& a : contents.actions) {
    file(EntryType::kAction, a.size, int64_t{a.blocks} * 512);
    if (a.output_size == IndexedAction::kCorrupt) ++t.corrupt;
    trim(a.mtime_ns, a.size);
    age(a.mtime_ns);
  }
  for (const auto& o : contents.outputs) {
    file(EntryType::kOutput, o.size, int64_t{o.blocks} * 512);
    trim(o.mtime_ns, o.size);
    age(o.mtime_ns);
  }
  for (const auto& [name, f] : contents.others) {
    file(EntryType::kOther, f.size, f.allocated);
    if (buildcache::TrimConsiders(name)) trim(f.mtime_ns, f.size);
  }
  for (const auto& [name, sub] : contents.subtrees) {
    t.entries[static_cast<size_t>(EntryType::kOther)] += sub.files;
    t.bytes[static_cast<size_t>(EntryType::kOther)] += sub.bytes;
    t.allocated += sub.allocated;
  }
  // A bound is crossed just after mtime + bound: look again a nanosecond on,
  // and never at once (the floating-point age may still round to the bound).
  if (t.next_change_ns != kNever) t.next_change_ns = std::max(t.next_change_ns + 1, now_ns + 1);
  return t;
}

void CensusIndex::MergePending(References& references) {
  auto& refs = references.sorted;
  auto& pending = references.pending;
  if (pending.empty()) return;
  {
    std::sort(pending.begin(), pending.end());
    std::vector<std::pair<uint64_t, int64_t>> merged;
    merged.reserve(refs.size() + pending.size());
    auto it = refs.begin();
    for (size_t i = 0; i < pending.size();) {
      const auto value = pending[i].first;
      int delta = 0;
      for (; i < pending.size() && pending[i].first == value; ++i) delta += pending[i].second;
      for (; it != refs.end() && *it < value; ++it) merged.push_back(*it);
      int count = delta;
      for (; it != refs.end() && *it == value; ++it) ++count;
      for (int n = 0; n < count; ++n) merged.push_back(value);
    }
    merged.insert(merged.end(), it, refs.end());
    merged.shrink_to_fit();
    refs = std::move(merged);
    std::vector<std::pair<std::pair<uint64_t, int64_t>, int>>().swap(pending);
  }
}

CensusIndex::PairTally CensusIndex::Pair(const std::vector<OutputRecord>& outputs,
                                         References& references) {
  MergePending(references);
  const auto& refs = references.sorted;
  PairTally p;
  size_t j = 0;
  for (const auto& output : outputs) {
    for (; j < refs.size() && refs[j].first < output.key; ++j) ++p.action_without_output;
    uint64_t named = 0;
    for (; j < refs.size() && refs[j].first == output.key; ++j) {
      ++named;
      if (refs[j].second != output.size) ++p.size_mismatch;
    }
    if (named == 0) ++p.output_without_action;
  }
  p.action_without_output += refs.size() - j;
  return p;
}

CacheCensus CensusIndex::Census(int64_t now_ns) {
  CacheCensus c;
  for (size_t i = 0; i < shards_.size(); ++i) {
    Shard& s = shards_[i];
    if (s.pairs_stale) {
      s.pairs = Pair(s.contents.outputs, s.references);
      s.pairs_stale = false;
    }
    c.action_without_output += s.pairs.action_without_output;
    c.output_without_action += s.pairs.output_without_action;
    c.size_mismatch += s.pairs.size_mismatch;
    if (!s.present) continue;
    if (s.tally_stale || now_ns >= s.tally.next_change_ns) {
      s.tally = Tally(s.contents, now_ns);
      s.tally_stale = false;
    }
    const ShardTally& t = s.tally;
    c.shards_present.set(i);
    c.shard_dir_bytes += static_cast<uint64_t>(s.dir_size);
    c.shard_entries[i] = static_cast<uint32_t>(t.entries[0] + t.entries[1]);
    for (size_t k = 0; k < 3; ++k) {
      c.entries[k] += t.entries[k];
      c.bytes[k] += t.bytes[k];
    }
    c.allocated_bytes += t.allocated;
    c.corrupt += t.corrupt;
    c.sizes += t.sizes;
    for (size_t b = 0; b < c.age_counts.size(); ++b) c.age_counts[b] += t.age_counts[b];
    c.age_sum_seconds += t.age_sum + static_cast<double>(t.aged) *
                                         static_cast<double>(now_ns - t.at_ns) /
                                         static_cast<double>(kNanosPerSecond);
    c.trimmable_entries += t.trimmable_entries;
    c.trimmable_bytes += t.trimmable_bytes;
  }
  constexpr auto kOther = static_cast<size_t>(EntryType::kOther);
  for (const auto& [name, f] : root_files_) {
    ++c.entries[kOther];
    c.bytes[kOther] += static_cast<uint64_t>(f.size);
    c.allocated_bytes += static_cast<uint64_t>(f.allocated);
  }
  for (const auto& [name, sub] : root_subtrees_) {
    c.entries[kOther] += sub.files;
    c.bytes[kOther] += sub.bytes;
    c.allocated_bytes += sub.allocated;
  }
  return c;
}

uint64_t CensusIndex::inodes() const {
  uint64_t n = 1 + root_files_.size();
  for (const auto& [name, sub] : root_subtrees_) n += sub.inodes;
  for (const auto& s : shards_) {
    if (!s.present) continue;
    n += 1 + s.contents.actions.size() + s.contents.outputs.size() + s.contents.others.size();
    for (const auto& [name, sub] : s.contents.subtrees) n += sub.inodes;
  }
  return n;
}

uint64_t CensusIndex::directories() const {
  uint64_t n = 1;
  for (const auto& [name, sub] : root_subtrees_) n += sub.directories;
  for (const auto& s : shards_) {
    if (!s.present) continue;
    n += 1;
    for (const auto& [name, sub] : s.contents.subtrees) n += sub.directories;
  }
  return n;
}

size_t CensusIndex::Differences(int shard, const ShardContents& fresh,
                                const std::vector<std::string>& unsettled) const {
  const ShardContents& known = shards_[shard].contents;
  std::set<std::pair<EntryType, uint64_t>> unsettled_keys;
  for (const auto& name : unsettled) {
    unsettled_keys.emplace(buildcache::Classify(shard, name), buildcache::IdKey(name));
  }
  const auto settled = [&](EntryType type, uint64_t key) {
    return !unsettled_keys.contains({type, key});
  };
  size_t n = CountDifferences(known.actions, fresh.actions, [&](const auto& a, const auto& b) {
    return a.mtime_ns == b.mtime_ns && a.size == b.size && a.output_key == b.output_key &&
           a.output_size == b.output_size &&
           (a.blocks == b.blocks || !settled(EntryType::kAction, a.key));
  });
  n += CountDifferences(known.outputs, fresh.outputs, [&](const auto& a, const auto& b) {
    return a.mtime_ns == b.mtime_ns && a.size == b.size &&
           (a.blocks == b.blocks || !settled(EntryType::kOutput, a.key));
  });
  n += CountMapDifferences(
      known.others, fresh.others,
      [&](const std::string& name, const OtherFile& a, const OtherFile& b) {
        return a.mtime_ns == b.mtime_ns && a.size == b.size &&
               (a.allocated == b.allocated ||
                std::find(unsettled.begin(), unsettled.end(), name) != unsettled.end());
      });
  n +=
      CountMapDifferences(known.subtrees, fresh.subtrees,
                          [](const std::string&, const SubtreeTally& a, const SubtreeTally& b) {
                            return a.inodes == b.inodes && a.files == b.files && a.bytes == b.bytes;
                          });
  return n;
}

}  // namespace gocache
