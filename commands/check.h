// `gocache_exporter check`: a pre-build gate. Is each build cache healthy?
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cache/cache_trim.h"
#include "commands/command.h"

namespace gocache {

// One cache, checked.
struct CacheCheck {
  std::string path;
  std::optional<CacheUsage> usage;  // none: unreadable, see error
  std::string error;
  bool counted = false;              // entries counted (--max-bytes)
  std::vector<std::string> crossed;  // thresholds crossed, as sentences
  // The GOCACHEPROG go commands here use when this is their GOCACHE: they
  // then store no entries in it themselves. Empty: they write it.
  std::string cacheprog;
};

struct CheckReport {
  std::vector<CacheCheck> caches;
  int exit_code() const;
};

// Measures each cache against the thresholds; statvfs alone unless
// --max-bytes needs the entries counted.
CheckReport CheckCaches(const std::vector<std::string>& dirs, const Thresholds& thresholds);

std::string CheckText(const CheckReport& report);
std::string CheckJson(const CheckReport& report);

const Command& CheckCommand();

}  // namespace gocache
