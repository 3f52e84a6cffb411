// Benchmark (not a test): the shared cache scan against `du -sb DIR` and
// `find DIR -printf '%s\n'` on the same tree in the same run, page cache
// warm for all, so that the ratios mean something on a shared, noisy machine.
//
//   bench_scan DIR [ROUNDS]
//
// "first scan" is a census with no index (every action entry read); "rescan"
// is the next census of the unchanged tree, which reads no entry again.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "base/subprocess.h"
#include "cache/scan_service.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(const std::function<void()>& run) {
  const auto start = Clock::now();
  run();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Best of `rounds`: the least disturbed run.
double Best(int rounds, const std::function<double()>& run) {
  double best = 1e30;
  for (int i = 0; i < rounds; ++i) best = std::min(best, run());
  return best;
}

double Shell(const std::string& script) {
  return Seconds([&] {
    const auto result = gocache::RunCommand(
        {.argv = {"sh", "-c", script}, .timeout = std::chrono::minutes(10), .max_output = 4096});
    if (!result.error.empty()) {
      std::fprintf(stderr, "bench_scan: %s: %s\n", script.c_str(), result.error.c_str());
      std::exit(1);
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_scan DIR [ROUNDS]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  const std::vector<gocache::CacheDir> caches = {{dir, gocache::CacheKind::kBuild}};
  const std::string quoted = "'" + dir + "'";

  Shell("du -sb " + quoted + " >/dev/null");  // warm the page cache for everyone
  const double du = Best(rounds, [&] { return Shell("du -sb " + quoted + " >/dev/null"); });
  const double find =
      Best(rounds, [&] { return Shell("find " + quoted + " -printf '%s\\n' >/dev/null"); });
  const double count = Best(rounds, [&] {
    gocache::ScanService scans(caches, std::chrono::hours(1), gocache::ScanDepth::kCount);
    return Seconds([&] { scans.ScanAllNow(); });
  });
  double first = 1e30, rescan = 1e30;
  std::shared_ptr<const gocache::ScanSnapshot> snapshot;
  for (int i = 0; i < rounds; ++i) {
    gocache::ScanService scans(caches, std::chrono::hours(1), gocache::ScanDepth::kCensus);
    first = std::min(first, Seconds([&] { scans.ScanAllNow(); }));
    rescan = std::min(rescan, Seconds([&] { scans.ScanAllNow(); }));
    snapshot = scans.Latest(dir);
  }
  const auto& census = *snapshot->census;
  const double entries = static_cast<double>(census.entries[0] + census.entries[1]);

  std::printf("tree: %s: %.0f actions and outputs, %llu inodes, best of %d rounds\n", dir.c_str(),
              entries, static_cast<unsigned long long>(snapshot->walk.inodes), rounds);
  std::printf(
      "census: corrupt %llu, action_without_output %llu, output_without_action %llu, "
      "size_mismatch %llu, scan errors %llu\n",
      static_cast<unsigned long long>(census.corrupt),
      static_cast<unsigned long long>(census.action_without_output),
      static_cast<unsigned long long>(census.output_without_action),
      static_cast<unsigned long long>(census.size_mismatch),
      static_cast<unsigned long long>(snapshot->walk.errors));
  std::printf("%-34s %9s %14s %10s\n", "walk", "seconds", "entries/s", "vs du -sb");
  const auto row = [&](const char* name, double seconds) {
    std::printf("%-34s %9.3f %14.0f %9.2fx\n", name, seconds, entries / seconds, seconds / du);
  };
  row("gocache census, first scan", first);
  row("gocache census, rescan", rescan);
  row("gocache inode count only", count);
  row("du -sb DIR", du);
  row("find DIR -printf '%s\\n'", find);
  return 0;
}
