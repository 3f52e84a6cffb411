// Fuzzes the trace parser (action graphs, Chrome traces, gzip) through
// ParseTraceBytes. Beyond crashes and sanitizer errors it checks that
//  - an ok outcome has told the format, and the tally only holds what that
//    format can count, with histogram counts matching the hit/miss counts;
//  - the same bytes read in short, uneven reads give the same outcome, error
//    text (byte offsets included) and tally, which exercises the stream's
//    buffer boundaries (see CheckSame for corrupt gzip input);
//  - the same bytes gzip-compressed, also read unevenly, give the same too.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>

#include "collectors/trace/trace_parser.h"
#include "collectors/trace/trace_stream.h"
#include "collectors/trace/trace_tally.h"
#include "fuzz/fuzz_check.h"

namespace {

using gocache::trace::LatencyHistogram;
using gocache::trace::ModeTally;
using gocache::trace::ParseOutcome;
using gocache::trace::RawInput;
using gocache::trace::TraceFormat;
using gocache::trace::TraceStream;
using gocache::trace::TraceTally;

// Small, so that a gzip bomb costs little; larger than any input libFuzzer
// makes here, so the limit itself is reached only through decompression.
constexpr uint64_t kMaxBytes = 1 << 20;

// Hands the bytes out in short reads of varying size, as read(2) may. The
// first read returns at least 2 bytes: TraceStream tells gzip from the
// first read's magic bytes, which a regular file always gives whole.
class TrickleInput : public RawInput {
 public:
  explicit TrickleInput(std::string_view data) : data_(data) {}
  ssize_t Read(char* buffer, size_t size) override {
    static constexpr size_t kSizes[] = {2, 1, 7, 4093, 3, 64, 1, 17, 65536, 5};
    const size_t n = std::min({size, data_.size(), kSizes[reads_++ % std::size(kSizes)]});
    if (n > 0) std::memcpy(buffer, data_.data(), n);
    data_.remove_prefix(n);
    return static_cast<ssize_t>(n);
  }

 private:
  std::string_view data_;
  size_t reads_ = 0;
};

ParseOutcome ParseTrickled(std::string_view bytes, TraceTally& tally) {
  TrickleInput input(bytes);
  TraceStream stream(input, kMaxBytes);
  return gocache::trace::ParseTrace(stream, tally);
}

std::string Gzip(std::string_view data) {
  z_stream z{};
  FUZZ_CHECK(deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  FUZZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

bool SameSum(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

bool SameHistogram(const LatencyHistogram& a, const LatencyHistogram& b) {
  return a.counts == b.counts && SameSum(a.sum, b.sum);
}

bool SameTally(const TraceTally& a, const TraceTally& b) {
  if (a.files != b.files) return false;
  for (size_t i = 0; i < a.modes.size(); ++i) {
    const ModeTally &x = a.modes[i], &y = b.modes[i];
    if (x.hits != y.hits || x.misses != y.misses || !SameHistogram(x.cache_read, y.cache_read) ||
        !SameHistogram(x.cache_write, y.cache_write) ||
        !SameHistogram(x.duration_miss, y.duration_miss) ||
        !SameHistogram(x.duration_unknown, y.duration_unknown)) {
      return false;
    }
  }
  return true;
}

void CheckHistogram(const LatencyHistogram& h) {
  // Every observation is a duration of at least 0.
  FUZZ_CHECK(!std::isnan(h.sum) && h.sum >= 0);
  FUZZ_CHECK(h.count() > 0 || h.sum == 0);
}

void CheckTally(const ParseOutcome& outcome, const TraceTally& tally) {
  FUZZ_CHECK(!outcome.ok() || outcome.format != TraceFormat::kUnknown);
  // Files are counted by the collector, never by the parser.
  for (const auto& by_result : tally.files) FUZZ_CHECK(by_result[0] == 0 && by_result[1] == 0);
  for (const ModeTally& m : tally.modes) {
    FUZZ_CHECK(m.cache_read.count() == m.hits);
    FUZZ_CHECK(m.cache_write.count() == m.misses && m.duration_miss.count() == m.misses);
    CheckHistogram(m.cache_read);
    CheckHistogram(m.cache_write);
    CheckHistogram(m.duration_miss);
    CheckHistogram(m.duration_unknown);
    switch (outcome.format) {
      case TraceFormat::kUnknown:  // nothing is counted before the format is told
        FUZZ_CHECK(m.hits == 0 && m.misses == 0 && m.duration_unknown.count() == 0);
        break;
      case TraceFormat::kActionGraph:  // actions have a result, never a span
        FUZZ_CHECK(m.duration_unknown.count() == 0);
        break;
      case TraceFormat::kChrome:  // spans cannot tell a hit from a miss
        FUZZ_CHECK(m.hits == 0 && m.misses == 0);
        break;
    }
  }
}

// The errors of the stream rather than of the JSON in it.
bool IsStreamError(const std::string& error) {
  return error.starts_with("corrupt gzip data") || error.starts_with("truncated gzip data") ||
         error.starts_with("larger than ");
}

// Whole or in short reads, the same bytes must give the same outcome. The one
// allowed difference: where compressed data is corrupt or too large, what the
// reader saw before the stream gave up depends on how much each inflate call
// was handed, so which error is reported first (and the format told by then)
// may differ when one of them is the stream's; success or failure may not.
void CheckSame(const ParseOutcome& a, const TraceTally& a_tally, const ParseOutcome& b,
               const TraceTally& b_tally) {
  const bool stream_failed = IsStreamError(a.error) || IsStreamError(b.error);
  const bool same = a.ok() == b.ok() &&
                    (stream_failed ||
                     (a.format == b.format && a.error == b.error && SameTally(a_tally, b_tally)));
  if (!same) {
    std::fprintf(stderr,
                 "fuzz: outcomes differ:\n  format %s, error \"%s\"\n  format %s, error \"%s\"\n",
                 std::string(gocache::trace::FormatName(a.format)).c_str(), a.error.c_str(),
                 std::string(gocache::trace::FormatName(b.format)).c_str(), b.error.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gocache::fuzz::Guarded([&] {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);

    TraceTally tally;
    const ParseOutcome outcome = gocache::trace::ParseTraceBytes(bytes, kMaxBytes, tally);
    CheckTally(outcome, tally);

    TraceTally trickled_tally;
    const ParseOutcome trickled = ParseTrickled(bytes, trickled_tally);
    CheckSame(outcome, tally, trickled, trickled_tally);

    const bool gzipped = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!gzipped && size <= kMaxBytes) {
      TraceTally gzip_tally;
      const ParseOutcome from_gzip = ParseTrickled(Gzip(bytes), gzip_tally);
      CheckSame(outcome, tally, from_gzip, gzip_tally);
    }
  });
}
