// How full a filesystem's inode table is, the figure the paging alert and
// the trim's inode bound are about.
#pragma once

#include <cstdint>
#include <optional>

namespace gocache {

// (files - files_free) / files, as `df -i` shows IUse%; none when the
// filesystem has no fixed inode table (files == 0, as on btrfs) or reports
// more free inodes than it has.
inline std::optional<double> InodeUsageRatio(uint64_t files, uint64_t files_free) {
  if (files == 0 || files_free > files) return std::nullopt;
  return static_cast<double>(files - files_free) / static_cast<double>(files);
}

}  // namespace gocache
