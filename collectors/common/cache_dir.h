// A cache directory the exporter watches.
#pragma once

#include <string>
#include <string_view>

namespace gocache {

enum class CacheKind { kBuild, kMod };

inline std::string_view KindLabel(CacheKind kind) {
  return kind == CacheKind::kBuild ? "build" : "mod";
}

struct CacheDir {
  std::string path;  // absolute, as configured (the `path` label)
  CacheKind kind;
};

}  // namespace gocache
