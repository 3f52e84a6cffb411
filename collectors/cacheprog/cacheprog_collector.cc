#include "collectors/cacheprog/cacheprog_collector.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "base/file_time.h"
#include "base/flags.h"
#include "base/log.h"
#include "base/worker.h"
#include "cache/cache_discovery.h"
#include "cache/cacheprog_report.h"
#include "collectors/metric_family.h"

namespace gocache::cacheprog {
namespace {

namespace report = cacheprog_report;
using prometheus::MetricType;

enum Family {
  kRequests,
  kMisses,
  kDuration,
  kBytes,
  kEvictions,
  kEvictedBytes,
  kStarted,
  kRunning,
  kLost,
  kInvalid,
  kConfigured,
  kFamilyCount
};

constexpr std::array<FamilyDecl, kFamilyCount> kFamilies = {{
    {"gocache_cacheprog_requests_total",
     "Requests the GOCACHEPROG helpers answered, by command (get, put) and result (hit, miss, "
     "ok, error).",
     MetricType::Counter},
    {"gocache_cacheprog_get_misses_total", "Gets the helpers answered with a miss, by why.",
     MetricType::Counter},
    {"gocache_cacheprog_request_duration_seconds",
     "Time from reading a request to writing its answer.", MetricType::Histogram},
    {"gocache_cacheprog_bytes_total",
     "Output bytes served by get hits (get) and stored by puts (put).", MetricType::Counter},
    {"gocache_cacheprog_evictions_total",
     "Entries (actions and outputs) the helpers removed, by reason (bytes, inodes, age).",
     MetricType::Counter},
    {"gocache_cacheprog_evicted_bytes_total", "Bytes of the entries the helpers removed.",
     MetricType::Counter},
    {"gocache_cacheprog_processes_started_total",
     "Helper processes that reported (one per go command).", MetricType::Counter},
    {"gocache_cacheprog_processes", "Helper processes running now.", MetricType::Gauge},
    {"gocache_cacheprog_reports_lost_total",
     "Reports the helpers could not deliver (no exporter listening, its queue full).",
     MetricType::Counter},
    {"gocache_cacheprog_reports_invalid_total",
     "Lines on the socket that were not a helper's report, or named a cache past the limit "
     "of caches tracked.",
     MetricType::Counter},
    {"gocache_cacheprog_configured",
     "1 when the go command uses a GOCACHEPROG helper for this build cache (it then writes no "
     "entries there itself): a helper reported it as its go command's GOCACHE, or the "
     "exporter's own go environment names a GOCACHEPROG.",
     MetricType::Gauge},
}};
static_assert(Complete(kFamilies));

// Buckets from 50 µs (a get from the local disk takes tens of µs) to 10 s.
const std::vector<double> kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                      0.01,    0.025,  0.05,    0.1,    0.25,  1,      10};

// Caches tracked: each is a `path` label value, so their number is bounded.
constexpr size_t kMaxPaths = 64;
// Helpers connected at once; one more is turned away (its reports lost).
constexpr size_t kMaxConnections = 1024;

constexpr size_t kCommands = report::kCommandNames.size();
constexpr size_t kResults = report::kResultNames.size();

struct Histogram {
  std::vector<uint64_t> counts = std::vector<uint64_t>(kBuckets.size() + 1);
  double sum = 0;
};

struct CacheTotals {
  uint64_t requests[kCommands][kResults] = {};
  Histogram durations[kCommands][kResults];
  uint64_t misses[report::kMissReasonNames.size()] = {};
  uint64_t bytes[kCommands] = {};
  uint64_t evictions[report::kEvictionReasonNames.size()] = {};
  uint64_t evicted_bytes[report::kEvictionReasonNames.size()] = {};
  uint64_t started = 0;
  uint64_t lost = 0;
  uint64_t running = 0;  // connections open from helpers of this cache
};

bool ResultFits(size_t command, size_t result) {
  return command == static_cast<size_t>(report::Command::kGet)
             ? result != static_cast<size_t>(report::Result::kOk)
             : result == static_cast<size_t>(report::Result::kOk) ||
                   result == static_cast<size_t>(report::Result::kError);
}

// What the receiving thread fills and scrapes read.
struct Totals {
  explicit Totals(std::vector<std::string> watched) : watched(std::move(watched)) {}

  std::mutex mu;
  std::map<std::string, CacheTotals> caches;
  uint64_t invalid = 0;
  // The build caches the exporter watches, and those of them that a helper's
  // go command had as its GOCACHE.
  const std::vector<std::string> watched;
  std::set<std::string> configured;
  // Every GOCACHE helpers reported (bounded: each is looked at once).
  std::set<std::string> go_caches;

  // Counts one report that came on a connection; `connection_path` is the
  // cache that connection reported for so far (empty before its first). A
  // helper serves one cache: a report for another is invalid.
  void Apply(const report::Report& r, std::string& connection_path) {
    std::lock_guard lock(mu);
    if (r.event == report::Event::kGoCache) {
      GoCache(r, connection_path);
      return;
    }
    if (!connection_path.empty() && r.path != connection_path) {
      ++invalid;
      return;
    }
    auto it = caches.find(r.path);
    if (it == caches.end()) {
      if (caches.size() >= kMaxPaths) {
        ++invalid;
        return;
      }
      it = caches.emplace(r.path, CacheTotals{}).first;
    }
    CacheTotals& t = it->second;
    if (connection_path.empty()) {
      connection_path = r.path;
      ++t.running;
    }
    t.lost += r.lost;
    switch (r.event) {
      case report::Event::kStart:
        ++t.started;
        break;
      case report::Event::kStop:
      case report::Event::kGoCache:  // handled above
        break;
      case report::Event::kRequest: {
        const auto c = static_cast<size_t>(r.command), res = static_cast<size_t>(r.result);
        ++t.requests[c][res];
        Histogram& h = t.durations[c][res];
        const double seconds = static_cast<double>(r.duration_ns) / kNanosPerSecond;
        size_t bucket = 0;
        while (bucket < kBuckets.size() && seconds > kBuckets[bucket]) ++bucket;
        ++h.counts[bucket];
        h.sum += seconds;
        if (r.result == report::Result::kMiss) ++t.misses[static_cast<size_t>(r.miss)];
        if (r.result == report::Result::kHit || r.result == report::Result::kOk) {
          t.bytes[c] += r.bytes;
        }
        break;
      }
      case report::Event::kEviction:
        t.evictions[static_cast<size_t>(r.eviction)] += r.entries;
        t.evicted_bytes[static_cast<size_t>(r.eviction)] += r.bytes;
        break;
    }
  }

  // A helper named its go command's GOCACHE; it has said which cache it
  // serves first. Called with mu held.
  void GoCache(const report::Report& r, const std::string& connection_path) {
    const auto it = caches.find(connection_path);
    if (it == caches.end()) {
      ++invalid;
      return;
    }
    it->second.lost += r.lost;
    if (go_caches.contains(r.path)) return;
    if (go_caches.size() >= kMaxPaths) {
      ++invalid;
      return;
    }
    go_caches.insert(r.path);
    // Once per GOCACHE: a watched cache may be named through a symlink.
    for (const auto& path : watched) {
      if (SameDirectory(path, r.path)) configured.insert(path);
    }
  }

  // A helper's connection closed (it ended, or was killed).
  void Closed(const std::string& connection_path) {
    if (connection_path.empty()) return;
    std::lock_guard lock(mu);
    --caches[connection_path].running;
  }

  void Invalid() {
    std::lock_guard lock(mu);
    ++invalid;
  }
};

class CacheprogCollector : public Collector {
 public:
  CacheprogCollector(std::string socket_path, std::vector<std::string> watched)
      : socket_path_(std::move(socket_path)), totals_(std::make_shared<Totals>(watched)) {
    // This user's go commands use a helper: their GOCACHE, if watched, gets
    // no entries from them.
    if (const std::string prog = GoCacheProg(ProcessEnv); !prog.empty()) {
      const std::string go_cache = DefaultBuildCache(ProcessEnv);
      for (const auto& path : watched) {
        if (go_cache.empty() || !SameDirectory(path, go_cache)) continue;
        totals_->configured.insert(path);
        log::Info("the go command uses a GOCACHEPROG helper: it writes no entries to this cache",
                  {{"path", path}, {"gocacheprog", prog}});
      }
    }
  }

  ~CacheprogCollector() override { Stop(std::chrono::milliseconds(1000)); }

  void Start() override {
    std::lock_guard lock(mu_);
    started_ = true;
    Listen();
  }

  void Stop(std::chrono::milliseconds grace) override {
    std::lock_guard lock(mu_);
    if (receiver_) receiver_->Stop(grace);
    receiver_.reset();
    if (bound_) unlink(socket_path_.c_str());
    bound_ = false;
  }

  CollectResult Update() override {
    CollectResult result;
    {
      std::lock_guard lock(mu_);
      // Not bound yet (its directory may appear later): try again.
      if (started_ && !bound_) Listen();
      if (!error_.empty()) result.errors.push_back(error_);
    }
    auto f = MakeFamilies(kFamilies);
    std::lock_guard lock(totals_->mu);
    for (auto& [path, t] : totals_->caches) {
      for (size_t c = 0; c < kCommands; ++c) {
        const std::string command(report::kCommandNames[c]);
        for (size_t res = 0; res < kResults; ++res) {
          if (!ResultFits(c, res)) continue;
          const Labels labels = {{"path", path},
                                 {"command", command},
                                 {"result", std::string(report::kResultNames[res])}};
          AddSample(f[kRequests], labels, static_cast<double>(t.requests[c][res]));
          const Histogram& h = t.durations[c][res];
          if (t.requests[c][res] > 0) AddHistogram(f[kDuration], labels, kBuckets, h.counts, h.sum);
        }
        AddSample(f[kBytes], {{"path", path}, {"command", command}},
                  static_cast<double>(t.bytes[c]));
      }
      for (size_t m = 1; m < report::kMissReasonNames.size(); ++m) {
        AddSample(f[kMisses],
                  {{"path", path}, {"reason", std::string(report::kMissReasonNames[m])}},
                  static_cast<double>(t.misses[m]));
      }
      for (size_t e = 0; e < report::kEvictionReasonNames.size(); ++e) {
        const Labels labels = {{"path", path},
                               {"reason", std::string(report::kEvictionReasonNames[e])}};
        AddSample(f[kEvictions], labels, static_cast<double>(t.evictions[e]));
        AddSample(f[kEvictedBytes], labels, static_cast<double>(t.evicted_bytes[e]));
      }
      AddSample(f[kStarted], {{"path", path}}, static_cast<double>(t.started));
      AddSample(f[kRunning], {{"path", path}}, static_cast<double>(t.running));
      AddSample(f[kLost], {{"path", path}}, static_cast<double>(t.lost));
    }
    if (bound_) AddSample(f[kInvalid], {}, static_cast<double>(totals_->invalid));
    for (const auto& path : totals_->watched) {
      AddSample(f[kConfigured], {{"path", path}}, totals_->configured.contains(path) ? 1 : 0);
    }
    AppendNonEmpty(result.families, std::move(f));
    return result;
  }

 private:
  // Binds the socket and starts the receiving thread; on failure keeps the
  // error for the next update. Called with mu_ held.
  void Listen() {
    const int fd = Bind();
    if (fd < 0) return;
    bound_ = true;
    error_.clear();
    receiver_ = std::make_unique<Worker>([fd, totals = totals_](const Worker::Control& control) {
      Receive(fd, *totals, control);
      close(fd);
    });
  }

  int Bind() {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path_.size() >= sizeof address.sun_path) {
      SetError("--cacheprog.socket " + socket_path_ + ": longer than a socket path may be");
      return -1;
    }
    std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      SetError(DescribeErrno(errno, "cacheprog socket"));
      return -1;
    }
    // A socket left by an exporter that did not stop cleanly goes; anything
    // else at that path stays, and binding fails on it.
    struct stat st;
    if (lstat(socket_path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      unlink(socket_path_.c_str());
    }
    if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
      SetError(DescribeErrno(errno, "cacheprog: bind " + socket_path_));
      close(fd);
      return -1;
    }
    // Helpers run as the CI jobs' users: any local user may report.
    chmod(socket_path_.c_str(), 0666);
    return fd;
  }

  // The runner logs it (once, with a line when it clears).
  void SetError(const std::string& error) { error_ = error; }

  // One helper's connection: what it sent that is not a whole line yet,
  // and the cache it reports for.
  struct Connection {
    int fd;
    std::string partial;
    std::string path;
  };

  // Reads what a connection has; false when it is done (closed, or sent
  // something that is not a helper's).
  static bool Read(Connection& c, Totals& totals) {
    char buffer[64 * 1024];
    for (;;) {
      const ssize_t n = recv(c.fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.partial.append(buffer, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t newline; (newline = c.partial.find('\n', start)) != std::string::npos;
           start = newline + 1) {
        const auto decoded =
            report::Decode(std::string_view(c.partial).substr(start, newline - start));
        if (decoded) {
          totals.Apply(*decoded, c.path);
        } else {
          totals.Invalid();
        }
      }
      c.partial.erase(0, start);
      if (c.partial.size() > report::kMaxLine) {
        totals.Invalid();
        return false;  // a line longer than any report: not a helper
      }
    }
  }

  static void Receive(int listener, Totals& totals, const Worker::Control& control) {
    std::vector<Connection> connections;
    std::vector<pollfd> polled;
    while (!control.stop_requested()) {
      polled.assign(1, pollfd{listener, POLLIN, 0});
      for (const auto& c : connections) polled.push_back(pollfd{c.fd, POLLIN, 0});
      if (poll(polled.data(), polled.size(), 200) <= 0) continue;
      // Connections first: the vector is rebuilt before the next poll.
      for (size_t i = connections.size(); i-- > 0;) {
        if (polled[i + 1].revents == 0 || Read(connections[i], totals)) continue;
        totals.Closed(connections[i].path);
        close(connections[i].fd);
        connections.erase(connections.begin() + static_cast<std::ptrdiff_t>(i));
      }
      if (polled[0].revents & POLLIN) {
        for (int fd;
             (fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          if (connections.size() >= kMaxConnections) {
            close(fd);
            totals.Invalid();
            continue;
          }
          connections.push_back(Connection{fd, "", ""});
        }
      }
    }
    for (const auto& c : connections) {
      totals.Closed(c.path);
      close(c.fd);
    }
  }

  const std::string socket_path_;
  const std::shared_ptr<Totals> totals_;
  std::mutex mu_;
  bool started_ = false;
  bool bound_ = false;
  std::string error_;
  std::unique_ptr<Worker> receiver_;
};

Configured Configure(const ParsedFlags& flags) {
  FlagReader read(flags);
  const std::string socket = read.Text("cacheprog.socket");
  if (!read.ok()) return read.error();
  if (socket.empty() || socket.front() != '/') {
    return "--cacheprog.socket '" + socket + "': want an absolute path";
  }
  return ConfiguredCollector{Schedule::AtScrape(), [socket](const CollectorContext& context) {
                               std::vector<std::string> watched;
                               for (const auto& cache : context.caches) {
                                 if (cache.kind == CacheKind::kBuild) watched.push_back(cache.path);
                               }
                               return std::make_unique<CacheprogCollector>(socket, watched);
                             }};
}

}  // namespace

CollectorInfo Info() {
  return CollectorInfo{
      .name = "cacheprog",
      .help = "requests of the GOCACHEPROG helpers (gocache_exporter cacheprog) on this host",
      .enabled_by_default = false,
      .add_flags =
          [](FlagSet& options) {
            options.Group("cacheprog collector")
                .Value("cacheprog.socket",
                       "Unix socket the helpers report to (their --cacheprog.socket).",
                       cacheprog_report::kDefaultSocket);
          },
      .configure = Configure,
  };
}

}  // namespace gocache::cacheprog
