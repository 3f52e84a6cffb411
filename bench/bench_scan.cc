// Benchmark: the shared cache scanner against `find DIR | wc -l` and
// `du -s --inodes DIR` on the same tree in the same run, so that the ratio
// means something on a shared, noisy machine.
//
//   bench_scan DIR [ROUNDS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "collectors/common/cache_scanner.h"
#include "collectors/common/subprocess.h"

namespace {

using Clock = std::chrono::steady_clock;

// Best of `rounds`: the least disturbed run.
double BestSeconds(int rounds, const std::function<void()>& run) {
  double best = 1e30;
  for (int i = 0; i < rounds; ++i) {
    const auto start = Clock::now();
    run();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

double RunShell(int rounds, const std::string& script, std::string& output) {
  return BestSeconds(rounds, [&] {
    const auto result = gocache::RunCommand(
        {.argv = {"sh", "-c", script}, .timeout = std::chrono::minutes(10), .max_output = 4096});
    if (!result.error.empty()) {
      std::fprintf(stderr, "bench_scan: %s: %s\n", script.c_str(), result.error.c_str());
      std::exit(1);
    }
    output = result.output;
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_scan DIR [ROUNDS]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const std::function<bool()> never = [] { return false; };

  gocache::ScanResult scan;
  const double scanner =
      BestSeconds(rounds, [&] { scan = gocache::ScanTree(dir, nullptr, never); });
  std::string find_out, du_out;
  const double find = RunShell(rounds, "find '" + dir + "' | wc -l", find_out);
  const double du = RunShell(rounds, "du -s --inodes '" + dir + "'", du_out);

  std::printf("tree: %s, %llu inodes (find: %llu), best of %d rounds\n", dir.c_str(),
              static_cast<unsigned long long>(scan.inodes), std::stoull(find_out), rounds);
  std::printf("%-28s %10s %14s %12s\n", "walker", "seconds", "inodes/s", "vs find");
  const auto row = [&](const char* name, double seconds) {
    std::printf("%-28s %10.3f %14.0f %11.2fx\n", name, seconds,
                static_cast<double>(scan.inodes) / seconds, find / seconds);
  };
  row("gocache scanner", scanner);
  row("find DIR | wc -l", find);
  row("du -s --inodes DIR", du);
  return scan.inodes == std::stoull(find_out) ? 0 : 1;
}
