// Benchmark (not a test): the trace parser over one file, read the way the
// trace collector reads a spooled file (open, FdInput, TraceStream,
// ParseTrace), plain or gzip-compressed, page cache warm.
//
//   bench_trace FILE [REPEATS]
//
// Parses FILE REPEATS times (default 3) and prints the best run: content
// bytes (decompressed, for a gzip file), seconds, MB/s (10^6 bytes), the
// actions or spans counted, and the process's peak RSS, before the first
// parse and at the end, which shows that memory does not grow with the file.
// Exits 1 unless every run parsed the file.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "collectors/trace/trace_parser.h"
#include "collectors/trace/trace_stream.h"
#include "collectors/trace/trace_tally.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace trace = gocache::trace;

double PeakRssMiB() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024;  // ru_maxrss is in KiB on Linux
}

struct Run {
  double seconds = 0;
  uint64_t bytes = 0;  // content bytes the parser read
  bool compressed = false;
  uint64_t actions = 0;
  trace::ParseOutcome outcome;
};

Run ParseOnce(const std::string& path) {
  Run run;
  const auto start = Clock::now();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "bench_trace: %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(1);
  }
  trace::TraceTally tally;
  {
    trace::FdInput input(fd);
    trace::TraceStream stream(input, std::numeric_limits<uint64_t>::max());
    run.outcome = trace::ParseTrace(stream, tally);
    run.bytes = stream.Tell();
    run.compressed = stream.compressed();
  }
  close(fd);
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const trace::ModeTally& mode : tally.modes) run.actions += mode.hits + mode.misses;
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: bench_trace FILE [REPEATS]\n");
    return 2;
  }
  const std::string path = argv[1];
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
  if (repeats < 1) {
    std::fprintf(stderr, "bench_trace: REPEATS must be at least 1\n");
    return 2;
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr, "bench_trace: %s: %s\n", path.c_str(), std::strerror(errno));
    return 1;
  }

  const double rss_before = PeakRssMiB();
  Run best;
  best.seconds = 1e30;
  for (int i = 0; i < repeats; ++i) {
    Run run = ParseOnce(path);
    if (!run.outcome.ok()) {
      std::fprintf(stderr, "bench_trace: %s: not parsed: %s\n", path.c_str(),
                   run.outcome.error.c_str());
      return 1;
    }
    if (run.seconds < best.seconds) best = std::move(run);
  }
  const double rss_after = PeakRssMiB();

  std::printf("bench_trace: %s: %s, %s, %lld bytes on disk, best of %d runs\n", path.c_str(),
              std::string(trace::FormatName(best.outcome.format)).c_str(),
              best.compressed ? "gzip" : "plain", static_cast<long long>(st.st_size), repeats);
  std::printf("%-14s %14llu\n", "bytes", static_cast<unsigned long long>(best.bytes));
  std::printf("%-14s %14.3f\n", "seconds", best.seconds);
  std::printf("%-14s %14.1f\n", "MB/s", static_cast<double>(best.bytes) / 1e6 / best.seconds);
  std::printf("%-14s %14llu\n", "actions", static_cast<unsigned long long>(best.actions));
  std::printf("%-14s %14.0f\n", "actions/s", static_cast<double>(best.actions) / best.seconds);
  std::printf("%-14s %14.1f  (%.1f before the first parse)\n", "peak RSS MiB", rss_after,
              rss_before);
  std::printf("%-14s %14s\n", "outcome", "ok");
  return 0;
}
