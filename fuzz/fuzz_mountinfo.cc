// Fuzzes gocache::ParseMountInfo, UnescapeMountField and FindMount. Checks
// that every mount came from a line of its own with every field present,
// that unescaping never lengthens a field, and that looking up a mount's own
// mount point finds that mount or one at least as specific that holds it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "cache/mountinfo.h"
#include "fuzz/fuzz_check.h"

namespace {

// Lookups are quadratic in the mounts: a few dozen tell as much as all.
constexpr size_t kMaxLookups = 64;

bool Holds(std::string_view mount_point, std::string_view path) {
  return mount_point == "/" ||
         (path.starts_with(mount_point) &&
          (path.size() == mount_point.size() || path[mount_point.size()] == '/'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gocache::fuzz::Guarded([&] {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    const std::string unescaped = gocache::UnescapeMountField(text);
    FUZZ_CHECK(unescaped.size() <= text.size());
    if (text.find('\\') == std::string_view::npos) FUZZ_CHECK(unescaped == text);

    const std::vector<gocache::Mount> mounts = gocache::ParseMountInfo(text);
    const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    FUZZ_CHECK(mounts.size() <= lines);
    for (const auto& m : mounts) {
      // A field is at least one character, and an escape unescapes to one.
      FUZZ_CHECK(!m.mount_point.empty() && !m.root.empty() && !m.fstype.empty() &&
                 !m.source.empty());
    }

    FUZZ_CHECK(gocache::FindMount({}, "/") == nullptr);
    for (size_t i = 0; i < mounts.size() && i < kMaxLookups; ++i) {
      const std::string_view path = mounts[i].mount_point;
      const gocache::Mount* found = gocache::FindMount(mounts, path);
      FUZZ_CHECK(found != nullptr);
      FUZZ_CHECK(found >= mounts.data() && found < mounts.data() + mounts.size());
      FUZZ_CHECK(Holds(found->mount_point, path));
      // The longest match wins, and among equals the last one listed (the
      // one on top).
      for (const auto& m : mounts) {
        if (!Holds(m.mount_point, path)) continue;
        FUZZ_CHECK(m.mount_point.size() <= found->mount_point.size());
        FUZZ_CHECK(&m <= found || m.mount_point.size() < found->mount_point.size());
      }
    }
  });
}
