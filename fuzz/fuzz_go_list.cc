// Fuzzes the reading of `go list` output: gocache::stale::ParseListOutput
// over the whole output, and the streaming ListParser fed the same bytes in
// chunks whose sizes are drawn from a generator seeded by the input (so
// that a real go list output is a seed as it is). Both must agree on
// success, error text and counts, and the counts must be consistent.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "collectors/stale/go_list_parser.h"
#include "fuzz/fuzz_check.h"

namespace {

namespace stale = gocache::stale;

// FNV-1a over the input, then xorshift64: a different chunking per input,
// the same one every time the input is run again.
class ChunkSizes {
 public:
  explicit ChunkSizes(std::string_view data) {
    for (unsigned char c : data) state_ = (state_ ^ c) * 0x100000001b3;
    if (state_ == 0) state_ = 1;
  }
  size_t Next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    // Mostly short chunks, which split lines; now and then a long one.
    return (state_ >> 8) % 8 == 0 ? 1 + (state_ >> 16) % 65536 : 1 + (state_ >> 16) % 32;
  }

 private:
  uint64_t state_ = 0xcbf29ce484222325;
};

bool SameSummary(const stale::ListSummary& a, const stale::ListSummary& b) {
  return a.packages == b.packages && a.stale_by_reason == b.stale_by_reason;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gocache::fuzz::Guarded([&] {
    const std::string_view output(reinterpret_cast<const char*>(data), size);

    std::string whole_error;
    const auto whole = stale::ParseListOutput(output, whole_error);
    FUZZ_CHECK(whole.has_value() == whole_error.empty());

    // As the collector feeds it: stop at the first failing chunk, and
    // Finish only when every chunk was taken.
    stale::ListParser parser;
    ChunkSizes sizes(output);
    bool ok = true;
    for (std::string_view rest = output; ok && !rest.empty();) {
      const size_t n = std::min(sizes.Next(), rest.size());
      ok = parser.Feed(rest.substr(0, n));
      rest.remove_prefix(n);
    }
    ok = ok && parser.Finish();
    FUZZ_CHECK(ok == parser.error().empty());

    if (whole.has_value() != ok || whole_error != parser.error() ||
        (ok && !SameSummary(*whole, parser.summary()))) {
      std::fprintf(stderr,
                   "fuzz: whole and chunked parses differ:\n  whole: %s \"%s\"\n  chunked: %s "
                   "\"%s\"\n",
                   whole ? "ok" : "error", whole_error.c_str(), ok ? "ok" : "error",
                   parser.error().c_str());
      std::abort();
    }

    if (whole) {
      const size_t lines = static_cast<size_t>(std::count(output.begin(), output.end(), '\n')) + 1;
      FUZZ_CHECK(whole->packages <= lines);
      size_t stale_packages = 0;
      for (const auto& [reason, count] : whole->stale_by_reason) {
        FUZZ_CHECK(count > 0);
        FUZZ_CHECK(stale::NormalizeReason(reason) == reason);
        stale_packages += count;
      }
      FUZZ_CHECK(stale_packages <= whole->packages);
    }
  });
}
