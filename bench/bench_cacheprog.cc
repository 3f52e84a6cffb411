// Benchmark (not a test): the GOCACHEPROG helper (`gocache_exporter
// cacheprog`) driven over its pipes as the go command drives it, against
// what the go command does itself on the same files without a helper.
//
//   bench_cacheprog EXPORTER CACHE_DIR [REQUESTS] [SOCKET]
//
// 1. Start-up: from spawning a helper to reading its answer to a first get,
//    20 times, without and with --max-bytes, against spawning
//    `EXPORTER --version` (the binary's own loading and linking).
// 2. Gets of REQUESTS (default 2000) existing entries, one at a time, timed
//    from writing the request to reading the answer, against the same
//    lookups made directly: open and read the action entry, stat the output;
//    and a line sent through `cat` and back, the floor of any request.
//    Twice: the first pass also refreshes the mtime of every entry older
//    than an hour (the hourly refresh), the second is the steady state.
// 3. Puts of REQUESTS new entries (256 B to 64 KiB, log-uniform), without
//    and with --max-bytes (far above the cache's size: the bookkeeping of a
//    bound, no eviction), against writing the same two files directly.
// 4. The peak RSS of the helpers of each row (VmHWM, just before the close).
//
// The helpers report to SOCKET when given (an exporter's --cacheprog.socket),
// else to nobody. trim.txt is set to now first, so that no helper runs the
// daily trim on the benchmark's cache. Exits 1 when a get misses or a put
// fails.
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "base/base64.h"
#include "base/subprocess.h"
#include "base/write_all.h"
#include "cache/build_cache.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
namespace buildcache = gocache::buildcache;
using buildcache::Id;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "bench_cacheprog: %s\n", message.c_str());
  std::exit(1);
}

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// A helper process and its pipes.
class Helper {
 public:
  explicit Helper(const std::vector<std::string>& args) {
    std::string error;
    const auto child = gocache::SpawnPiped(args, error);
    if (!child) Die(error);
    pid_ = child->pid;
    in_ = child->in;
    out_ = child->out;
  }

  void Send(const std::string& text) {
    if (!gocache::WriteAll(in_, text)) Die("the helper stopped reading");
  }

  std::string ReadLine() {
    for (;;) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      char chunk[4096];
      const ssize_t n = read(out_, chunk, sizeof chunk);
      if (n <= 0) Die("the helper ended early");
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  // Sends close, waits for the answer and the exit; the peak RSS in MiB,
  // read before the close (VmHWM: wait4's ru_maxrss would count the memory
  // of this process, which the child shared until its exec).
  double Close(int64_t id) {
    double rss_mib = 0;
    std::ifstream status_file("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(status_file, line);) {
      if (line.starts_with("VmHWM:")) rss_mib = std::strtod(line.c_str() + 6, nullptr) / 1024;
    }
    Send("{\"ID\":" + std::to_string(id) + ",\"Command\":\"close\"}\n\n");
    ReadLine();
    close(in_);
    close(out_);
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_ || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      Die("the helper did not exit 0");
    }
    return rss_mib;
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string buffer_;
};

std::string B64(const Id& id) { return gocache::base64::Encode(id); }

std::string GetLine(int64_t id, const Id& action) {
  return "{\"ID\":" + std::to_string(id) + ",\"Command\":\"get\",\"ActionID\":\"" + B64(action) +
         "\"}\n\n";
}

struct Entry {
  Id action, output;
  std::string action_path, output_path;
};

// Up to `count` well-formed entries whose outputs exist with their size,
// taken evenly from the shards, in a seeded random order.
std::vector<Entry> FindEntries(const std::string& dir, size_t count) {
  std::vector<Entry> found;
  const size_t per_shard = count / 256 + 1;
  for (int shard = 0; shard < 256 && found.size() < count; ++shard) {
    char name[3];
    std::snprintf(name, sizeof name, "%02x", shard);
    DIR* d = opendir((dir + "/" + name).c_str());
    if (!d) continue;
    size_t taken = 0;
    while (const dirent* e = readdir(d)) {
      const std::string_view file = e->d_name;
      if (taken == per_shard || found.size() == count) break;
      if (file.size() != buildcache::kHexIdSize + 2 || !file.ends_with("-a")) continue;
      const auto hex = file.substr(0, buildcache::kHexIdSize);
      const std::string path = dir + "/" + name + "/" + std::string(file);
      std::ifstream in(path, std::ios::binary);
      std::string content(buildcache::kActionEntrySize + 1, '\0');
      in.read(content.data(), static_cast<std::streamsize>(content.size()));
      content.resize(static_cast<size_t>(in.gcount()));
      const auto entry = buildcache::ParseActionEntry(content, hex);
      const auto action = buildcache::DecodeHexId(hex);
      if (!entry || !action) continue;
      const std::string output_path = buildcache::EntryPath(dir, entry->output_id, 'd');
      struct stat st;
      if (stat(output_path.c_str(), &st) != 0 || st.st_size != entry->output_size) continue;
      found.push_back(Entry{*action, entry->output_id, path, output_path});
      ++taken;
    }
    closedir(d);
  }
  std::shuffle(found.begin(), found.end(), std::mt19937_64(42));
  return found;
}

struct Stats {
  double p50 = 0, p99 = 0, max = 0;
};

Stats Summarize(std::vector<double> micros) {
  std::sort(micros.begin(), micros.end());
  const auto at = [&](double q) {
    return micros[std::min(micros.size() - 1, static_cast<size_t>(q * micros.size()))];
  };
  return Stats{at(0.5), at(0.99), micros.back()};
}

// A row of microseconds; with a reference, the ratio of the medians; with an
// RSS above 0, the helper's peak RSS.
void PrintRow(const char* what, const Stats& s, const Stats* reference, double rss_mib = 0) {
  std::printf("%-44s %10.1f %10.1f %10.1f", what, s.p50, s.p99, s.max);
  if (reference) std::printf(" %8.2fx", s.p50 / reference->p50);
  if (rss_mib > 0) std::printf(" %8.1f", rss_mib);
  std::printf("\n");
}

std::vector<std::string> HelperArgs(const std::string& exporter, const std::string& dir,
                                    const std::string& socket, bool bounded) {
  std::vector<std::string> args = {exporter, "cacheprog", "--cache.dir=" + dir,
                                   "--cacheprog.socket=" + socket};
  // Far above any benchmark cache: the bookkeeping of a bound, no eviction.
  if (bounded) args.push_back("--max-bytes=1TiB");
  return args;
}

// Spawn to first answer, `runs` times; the peak RSS of the largest helper.
Stats StartUp(const std::vector<std::string>& args, const Entry& entry, int runs, double& rss) {
  std::vector<double> micros;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    Helper helper(args);
    helper.Send(GetLine(1, entry.action));
    helper.ReadLine();  // {"ID":0,"KnownCommands":...}
    const std::string answer = helper.ReadLine();
    micros.push_back(Micros(Clock::now() - start));
    if (answer.find("\"Miss\"") != std::string::npos) Die("a get missed: " + answer);
    rss = std::max(rss, helper.Close(2));
  }
  return Summarize(micros);
}

Stats SpawnOnly(const std::string& exporter, int runs) {
  std::vector<double> micros;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    char* argv[] = {const_cast<char*>(exporter.c_str()), const_cast<char*>("--version"), nullptr};
    pid_t pid;
    if (posix_spawn(&pid, argv[0], &actions, nullptr, argv, environ) != 0) Die("spawn");
    posix_spawn_file_actions_destroy(&actions);
    int status;
    waitpid(pid, &status, 0);
    micros.push_back(Micros(Clock::now() - start));
  }
  return Summarize(micros);
}

Stats HelperGets(Helper& helper, const std::vector<Entry>& entries, int64_t& id) {
  std::vector<double> micros;
  for (const Entry& e : entries) {
    const std::string line = GetLine(++id, e.action);
    const auto start = Clock::now();
    helper.Send(line);
    const std::string answer = helper.ReadLine();
    micros.push_back(Micros(Clock::now() - start));
    if (answer.find("\"DiskPath\"") == std::string::npos) Die("a get missed: " + answer);
  }
  return Summarize(micros);
}

// A line written to `cat` and read back, `count` times: a round trip through
// a pipe pair and another process, the least any GOCACHEPROG request costs.
Stats PipeRoundTrips(size_t count) {
  Helper cat({"/bin/cat"});
  std::vector<double> micros;
  const std::string line = GetLine(1, Id{});
  for (size_t i = 0; i < count; ++i) {
    const auto start = Clock::now();
    cat.Send(line.substr(0, line.size() - 1));  // one line: without the empty one
    cat.ReadLine();
    micros.push_back(Micros(Clock::now() - start));
  }
  cat.Close(0);
  return Summarize(micros);
}

// What the go command does for a get without a helper: read the action
// entry, stat its output.
Stats DirectGets(const std::vector<Entry>& entries) {
  std::vector<double> micros;
  char buffer[buildcache::kActionEntrySize + 1];
  for (const Entry& e : entries) {
    const auto start = Clock::now();
    const int fd = open(e.action_path.c_str(), O_RDONLY | O_CLOEXEC);
    const ssize_t n = fd < 0 ? -1 : read(fd, buffer, sizeof buffer);
    if (fd >= 0) close(fd);
    struct stat st;
    const bool ok = n == static_cast<ssize_t>(buildcache::kActionEntrySize) &&
                    stat(e.output_path.c_str(), &st) == 0;
    micros.push_back(Micros(Clock::now() - start));
    if (!ok) Die("cannot read " + e.action_path);
  }
  return Summarize(micros);
}

struct NewEntry {
  Id action, output;
  std::string body;
};

std::vector<NewEntry> MakeNewEntries(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<NewEntry> made(count);
  for (auto& e : made) {
    for (auto& b : e.action) b = static_cast<uint8_t>(rng());
    for (auto& b : e.output) b = static_cast<uint8_t>(rng());
    // 256 B to 64 KiB, log-uniform.
    const double exponent = 8 + 8 * std::uniform_real_distribution<double>(0, 1)(rng);
    e.body.resize(static_cast<size_t>(std::exp2(exponent)));
    for (auto& c : e.body) c = static_cast<char>(rng());
  }
  return made;
}

Stats HelperPuts(Helper& helper, const std::vector<NewEntry>& entries, int64_t& id,
                 uint64_t& bytes) {
  std::vector<double> micros;
  for (const NewEntry& e : entries) {
    const std::string line = "{\"ID\":" + std::to_string(++id) +
                             ",\"Command\":\"put\",\"ActionID\":\"" + B64(e.action) +
                             "\",\"OutputID\":\"" + B64(e.output) +
                             "\",\"BodySize\":" + std::to_string(e.body.size()) + "}\n\n\"" +
                             gocache::base64::Encode(std::span(
                                 reinterpret_cast<const uint8_t*>(e.body.data()), e.body.size())) +
                             "\"\n";
    const auto start = Clock::now();
    helper.Send(line);
    const std::string answer = helper.ReadLine();
    micros.push_back(Micros(Clock::now() - start));
    if (answer.find("\"Err\"") != std::string::npos) Die("a put failed: " + answer);
    bytes += e.body.size();
  }
  return Summarize(micros);
}

bool WriteFile(const std::string& path, std::string_view content) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return false;
  const bool ok = gocache::WriteAll(fd, content);
  return close(fd) == 0 && ok;
}

// What the go command does for a put without a helper: write the output
// and the action entry in place.
Stats DirectPuts(const std::string& dir, const std::vector<NewEntry>& entries) {
  std::vector<double> micros;
  for (const NewEntry& e : entries) {
    const auto start = Clock::now();
    const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    const bool ok = WriteFile(buildcache::EntryPath(dir, e.output, 'd'), e.body) &&
                    WriteFile(buildcache::EntryPath(dir, e.action, 'a'),
                              buildcache::FormatActionEntry(
                                  e.action, e.output, static_cast<int64_t>(e.body.size()), now_ns));
    micros.push_back(Micros(Clock::now() - start));
    if (!ok) Die("cannot write into " + dir);
  }
  return Summarize(micros);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) Die("usage: bench_cacheprog EXPORTER CACHE_DIR [REQUESTS] [SOCKET]");
  const std::string exporter = argv[1], dir = argv[2];
  const size_t requests = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 2000;
  const std::string socket = argc > 4 ? argv[4] : "";
  {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    if (!WriteFile(dir + "/trim.txt", std::to_string(now) + "\n")) Die("cannot write trim.txt");
  }
  const auto entries = FindEntries(dir, requests);
  if (entries.size() < requests) Die("the cache has too few entries");
  std::printf("%zu requests of each kind on %s\n\n", requests, dir.c_str());
  std::printf("%-44s %10s %10s %10s %9s %8s\n", "microseconds", "p50", "p99", "max", "p50 ratio",
              "RSS MiB");

  constexpr int kStarts = 20;
  const Stats spawn = SpawnOnly(exporter, kStarts);
  PrintRow("spawn `gocache_exporter --version` (ref)", spawn, nullptr);
  double rss = 0;
  const Stats start = StartUp(HelperArgs(exporter, dir, socket, false), entries[0], kStarts, rss);
  PrintRow("helper start-up to first answer", start, &spawn, rss);
  rss = 0;
  const Stats bounded_start =
      StartUp(HelperArgs(exporter, dir, socket, true), entries[0], kStarts, rss);
  PrintRow("  the same with --max-bytes", bounded_start, &spawn, rss);

  int64_t id = 0;
  uint64_t put_bytes = 0;
  {
    Helper helper(HelperArgs(exporter, dir, socket, false));
    helper.ReadLine();
    const Stats first = HelperGets(helper, entries, id);
    const Stats direct = DirectGets(entries);
    const Stats steady = HelperGets(helper, entries, id);
    const Stats direct2 = DirectGets(entries);
    const double get_rss = helper.Close(++id);
    const Stats pipe = PipeRoundTrips(entries.size());
    std::printf("\n");
    PrintRow("get: read entry, stat output (ref)", direct2, nullptr);
    PrintRow("a line through `cat` and back (floor)", pipe, &direct2);
    PrintRow("get through the helper", steady, &direct2, get_rss);
    PrintRow("  first of the hour (mtimes refreshed)", first, &direct);
  }
  {
    const auto fresh = MakeNewEntries(requests, 1), fresh2 = MakeNewEntries(requests, 2),
               fresh3 = MakeNewEntries(requests, 3);
    const Stats direct = DirectPuts(dir, fresh);
    Helper helper(HelperArgs(exporter, dir, socket, false));
    helper.ReadLine();
    const Stats put = HelperPuts(helper, fresh2, id, put_bytes);
    const double put_rss = helper.Close(++id);
    Helper bounded(HelperArgs(exporter, dir, socket, true));
    bounded.ReadLine();
    const Stats bounded_put = HelperPuts(bounded, fresh3, id, put_bytes);
    const double bounded_rss = bounded.Close(++id);
    std::printf("\n");
    PrintRow("put: write output and entry (ref)", direct, nullptr);
    PrintRow("put through the helper", put, &direct, put_rss);
    PrintRow("  the same with --max-bytes", bounded_put, &direct, bounded_rss);
  }
  std::printf("bench_cacheprog: gets=%zu puts=%zu put_bytes=%" PRIu64 "\n",
              2 * requests + 2 * kStarts, 2 * requests, put_bytes);
  return 0;
}
