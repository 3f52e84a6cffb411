// A cache directory the exporter watches.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gocache {

enum class CacheKind { kBuild, kMod };

inline std::string_view KindLabel(CacheKind kind) {
  return kind == CacheKind::kBuild ? "build" : "mod";
}

struct CacheDir {
  std::string path;  // absolute, as configured (the `path` label)
  CacheKind kind;
  // Other watched caches inside this one (a GOMODCACHE below the GOCACHE
  // directory): their trees are theirs, not counted again in this one's.
  std::vector<std::string> nested = {};
};

}  // namespace gocache
