#include "collectors/stale/stale_collector.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/flags.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "collectors/metric_family.h"
#include "collectors/stale/go_list_parser.h"

namespace gocache::stale {
namespace {

using prometheus::MetricType;

constexpr size_t kMaxListOutput = 64 << 20;
constexpr int kListNice = 10;
constexpr auto kGoEnvTimeout = std::chrono::seconds(30);

struct Target {
  std::string goos, goarch;
};

bool ParseTarget(std::string_view text, Target& target) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) return false;
  const auto valid = [](std::string_view part) {
    for (char c : part) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
    }
    return true;
  };
  target = {std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
  return valid(target.goos) && valid(target.goarch);
}

// The first lines of the go command's stderr, for a log line.
std::string StderrHead(const std::string& text) {
  std::string head;
  size_t start = 0;
  for (int line = 0; line < 3 && start < text.size(); ++line) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (!head.empty()) head += " | ";
    head += text.substr(start, end - start);
    start = end + 1;
  }
  return head;
}

// Family indexes, in exposition order.
enum Family { kPackages, kStale, kDuration, kSuccess, kFamilyCount };

constexpr std::array<FamilyDecl, kFamilyCount> kFamilies = {{
    {"gocache_packages",
     "Packages go list listed for the module and target, dependencies "
     "included.",
     MetricType::Gauge},
    {"gocache_stale_packages",
     "Packages go list reports stale, by reason (StaleReason up to its "
     "first colon).",
     MetricType::Gauge},
    {"gocache_stale_list_duration_seconds", "Wall time of the last go list.", MetricType::Gauge},
    {"gocache_stale_list_success", "1 if the last go list succeeded.", MetricType::Gauge},
}};
static_assert(Complete(kFamilies));

struct Config {
  std::vector<std::string> modules;
  std::vector<Target> targets;  // empty: the host's, from go env
  std::string go;               // empty: go on PATH
  std::chrono::milliseconds timeout;
  bool allow_mtime_refresh;
  std::vector<std::string> read_only;  // the caches go list must not touch
  std::string gocache;                 // GOCACHE for go list
};

struct ListResult {
  Target target;
  std::string module;
  bool success = false;
  double duration_seconds = 0;
  ListSummary summary;
};

class StaleCollector final : public Collector {
 public:
  explicit StaleCollector(Config config) : config_(std::move(config)) {}

  CollectResult Update() override {
    CollectResult result;
    const std::string go = config_.go.empty() ? FindOnPath("go") : config_.go;
    if (go.empty() || access(go.c_str(), X_OK) != 0) {
      result.errors.push_back("go binary " +
                              (go.empty() ? "not found on PATH" : go + " not executable"));
    }
    std::vector<Target> targets = config_.targets;
    if (targets.empty() && result.errors.empty()) {
      Target host;
      if (HostTarget(go, host, result.errors)) targets.push_back(host);
    }
    std::vector<ListResult> lists;
    for (const auto& module : config_.modules) {
      for (const auto& target : targets) lists.push_back(List(go, module, target, result.errors));
      if (targets.empty()) {  // no go to ask: report the module as failing
        lists.push_back({{"", ""}, module, false, 0, {}});
      }
    }
    Render(lists, result.families);
    return result;
  }

 private:
  bool HostTarget(const std::string& go, Target& target, std::vector<std::string>& errors) {
    if (!host_.goos.empty()) {
      target = host_;
      return true;
    }
    const auto env = RunCommand(
        {.argv = {go, "env", "GOOS", "GOARCH"}, .timeout = kGoEnvTimeout, .max_output = 4096});
    const size_t eol = env.output.find('\n');
    if (!env.error.empty() || eol == std::string::npos ||
        !ParseTarget(env.output.substr(0, eol) + "/" +
                         env.output.substr(eol + 1, env.output.find('\n', eol + 1) - eol - 1),
                     host_)) {
      errors.push_back(
          go + " env GOOS GOARCH failed: " + (env.error.empty() ? "unexpected output" : env.error) +
          " " + StderrHead(env.error_head));
      return false;
    }
    target = host_;
    return true;
  }

  ListResult List(const std::string& go, const std::string& module, const Target& target,
                  std::vector<std::string>& errors) {
    ListResult list{target, module, false, 0, {}};
    const auto fail = [&](const std::string& why) {
      errors.push_back("go list in " + module + " for " + target.goos + "/" + target.goarch + ": " +
                       why);
      return list;
    };
    struct stat status;
    if (stat((module + "/go.mod").c_str(), &status) != 0) {
      return fail("no go.mod: " + std::string(std::strerror(errno)));
    }
    const bool vendored = stat((module + "/vendor/modules.txt").c_str(), &status) == 0;

    CommandSpec spec{.argv = {go, "list", "-e", "-deps", "-f", kListTemplate, "./..."},
                     .timeout = config_.timeout,
                     .max_output = kMaxListOutput};
    spec.cwd = module;
    spec.nice = kListNice;
    if (!config_.gocache.empty() && stat(config_.gocache.c_str(), &status) != 0) {
      return fail("build cache " + config_.gocache + " does not exist (yet)");
    }
    if (!config_.allow_mtime_refresh) {
      for (const auto& dir : config_.read_only) {
        if (stat(dir.c_str(), &status) != 0) continue;  // nothing there to protect
        // A cache no build has used yet has no shard directories, and the
        // go command insists on creating them: it gets an empty scratch
        // directory instead, which is what it would find.
        const bool unused = dir == config_.gocache && stat((dir + "/00").c_str(), &status) != 0;
        (unused ? spec.scratch_dirs : spec.read_only_dirs).push_back(dir);
      }
    }
    spec.env = Environment(module, target, vendored);

    const auto start = std::chrono::steady_clock::now();
    ListParser parser;
    spec.on_output = [&parser](std::string_view chunk) { return parser.Feed(chunk); };
    const auto run = RunCommand(spec);
    list.duration_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (run.setup_failure && run.setup_failure->stage == SetupStage::kIsolation) {
      return fail("cannot run it where it cannot refresh cache mtimes (" +
                  run.setup_failure->message +
                  "); --stale.allow-mtime-refresh runs it without that protection");
    }
    if (run.setup_failure) return fail(run.error);
    if (!parser.error().empty()) return fail(parser.error());
    if (!run.error.empty()) return fail(run.error + ": " + StderrHead(run.error_head));
    if (!parser.Finish()) return fail(parser.error());
    list.summary = parser.summary();
    list.success = true;
    return list;
  }

  std::vector<std::string> Environment(const std::string& module, const Target& target,
                                       bool vendored) const {
    std::vector<std::string> env;
    for (char** var = environ; *var != nullptr; ++var) {
      const std::string_view v(*var);
      const std::string_view name = v.substr(0, v.find('='));
      if (name == "GOFLAGS" || name == "GOPROXY" || name == "GOTOOLCHAIN" || name == "GOOS" ||
          name == "GOARCH" || name == "GOCACHE" || name == "GOWORK" || name == "PWD" ||
          name == "GODEBUG") {
        continue;
      }
      env.emplace_back(v);
    }
    // As a shell's cd would: the go command takes $PWD for the working
    // directory when it names it, so a module reached through a symbolic
    // link (GOROOT/src/cmd on Debian) is seen where it was configured.
    env.push_back("PWD=" + module);
    env.push_back(vendored ? "GOFLAGS=-mod=vendor" : "GOFLAGS=-mod=readonly");
    env.push_back("GOPROXY=off");
    env.push_back("GOTOOLCHAIN=local");
    env.push_back("GOWORK=off");
    // The module index (go1.20+) is written into GOCACHE; it cannot be there
    // (read-only), and without this go list -e reports packages missing.
    env.push_back("GODEBUG=goindex=0");
    env.push_back("GOOS=" + target.goos);
    env.push_back("GOARCH=" + target.goarch);
    if (!config_.gocache.empty()) env.push_back("GOCACHE=" + config_.gocache);
    return env;
  }

  static void Render(const std::vector<ListResult>& lists,
                     std::vector<prometheus::MetricFamily>& out) {
    auto f = MakeFamilies(kFamilies);
    for (const auto& list : lists) {
      if (list.target.goos.empty()) continue;
      const Labels labels = {
          {"module", list.module}, {"goos", list.target.goos}, {"goarch", list.target.goarch}};
      AddSample(f[kSuccess], labels, list.success ? 1 : 0);
      AddSample(f[kDuration], labels, list.duration_seconds);
      if (!list.success) continue;
      AddSample(f[kPackages], labels, static_cast<double>(list.summary.packages));
      for (const auto& [reason, count] : list.summary.stale_by_reason) {
        Labels with_reason = labels;
        with_reason.push_back({"reason", reason});
        AddSample(f[kStale], std::move(with_reason), static_cast<double>(count));
      }
    }
    AppendNonEmpty(out, std::move(f));
  }

  const Config config_;
  Target host_;
};

Configured Configure(const ParsedFlags& flags) {
  FlagReader read(flags);
  Config config;
  config.modules = read.Paths("stale.module");
  for (const auto& text : read.Repeated("stale.target")) {
    Target target;
    if (!ParseTarget(text, target)) {
      read.Fail("--stale.target '" + text + "': want GOOS/GOARCH, such as linux/arm64");
    }
    config.targets.push_back(target);
  }
  config.go = read.Text("stale.go");
  const auto interval = read.PositiveDuration("stale.interval");
  config.timeout = read.PositiveDuration("stale.timeout");
  config.allow_mtime_refresh = read.given("stale.allow-mtime-refresh");
  if (!read.ok()) return read.error();
  ConfiguredCollector configured{Schedule::Every(interval), nullptr};
  if (!config.modules.empty()) {  // else nothing to check
    configured.make = [config](const CollectorContext& context) -> std::unique_ptr<Collector> {
      Config with_caches = config;
      for (const auto& cache : context.caches) {
        with_caches.read_only.push_back(cache.path);
        if (cache.kind == CacheKind::kBuild && with_caches.gocache.empty()) {
          with_caches.gocache = cache.path;
        }
      }
      return std::make_unique<StaleCollector>(std::move(with_caches));
    };
  }
  return configured;
}

}  // namespace

CollectorInfo Info() {
  return CollectorInfo{
      .name = "stale",
      .help = "stale packages by reason per module and target, from go list (needs --stale.module)",
      .enabled_by_default = true,
      .add_flags =
          [](FlagSet& options) {
            options.Group("stale collector")
                .Repeated("stale.module",
                          "Module root directory whose packages to check; repeatable.")
                .Repeated("stale.target",
                          "GOOS/GOARCH to check for; repeatable. Default: the host's.")
                .Value("stale.go", "The go command to run. Default: go on PATH.")
                .Value("stale.interval", "Pause between rounds of go list.", "10m")
                .Value("stale.timeout", "Longest a go list may run before it is killed.", "5m")
                .Switch("stale.allow-mtime-refresh",
                        "Run go list even where it cannot be kept from refreshing cache mtimes.");
          },
      .configure = Configure,
      .scan_depth = ScanDepth::kNone,
  };
}

}  // namespace gocache::stale
