// inode collector: inode and space pressure of the filesystem under each
// cache, and the cache tree's own share of it. Cheap (statvfs), so it runs at
// every scrape; the tree's inode count comes from the shared background scan.
#pragma once

#include <cstdint>
#include <optional>

#include "collectors/collector.h"

namespace gocache::inode {

CollectorInfo Info();

// The cache tree's share of its filesystem's used inodes; none when no inode
// is in use (or reported).
std::optional<double> InodeShareRatio(uint64_t dir_inodes, uint64_t files, uint64_t files_free);

}  // namespace gocache::inode
