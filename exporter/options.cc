#include "exporter/options.h"

#include "base/flag_values.h"
#include "base/flags.h"
#include "base/version.h"
#include "cache/cache_discovery.h"
#include "collectors/all.h"
#include "commands/commands.h"

namespace gocache {
namespace {

constexpr const char* kProgram = "gocache_exporter";
// Flags left out of --help: old names that still work, and test hooks.
constexpr const char* kHiddenGroup = "hidden";

ParsedCommandLine UsageError(const std::string& message) {
  return {std::nullopt, 2, UsageErrorLine(kProgram, message)};
}

void DeclareFlags(FlagSet& options) {
  options.SetUsage(
      "[flags]\n  gocache_exporter check|trim [flags]\n  gocache_exporter help [check|trim]");
  options.Group()
      .Value("web.listen-address", "Address on which to expose metrics and the web interface.",
             ":9959")
      .Value("web.telemetry-path", "Path under which to expose metrics.", "/metrics")
      .Value("web.config.file",
             "Prometheus exporter web configuration file (TLS, basic auth, response headers); "
             "see README.")
      .Int("web.max-connections", "Connections served at once; more wait to be accepted.", 16)
      .Value("web.request-timeout",
             "Longest a request may take to arrive or its response to be sent.", "10s")
      .Repeated("cache.dir",
                "Go build cache (GOCACHE) to watch; repeatable. Default: go env GOCACHE.")
      .Repeated("modcache.dir",
                "Go module cache (GOMODCACHE) to watch; repeatable. Default: go env GOMODCACHE.")
      .Value("scrape.timeout", "How long a scrape waits for a collector that runs at scrape time.",
             "5s")
      .Value("scan.interval",
             "Pause between background scans of the cache trees (the inode, density and trim "
             "collectors read them).",
             "5m")
      .Bool("scan.events",
            "Follow build caches by inotify events (the census stays fresh within seconds and "
            "costs what changes); where events cannot serve, walk every --scan.interval "
            "(default: enabled).")
      .Switch("no-scan.events", "Walk every cache every --scan.interval, as without inotify.")
      .Value("scan.verify-interval",
             "Pause between the walks that verify a census followed by events.", "1h")
      .Switch("collector.disable-defaults", "Disable every collector not enabled explicitly.")
      .Switch("once", "Run every enabled collector once, print the metrics to stdout and exit.")
      .Value("log.level", "Only log messages at or above this level: debug, info, warn, error.",
             "info")
      .Value("log.format", "Log format: logfmt or json.", "logfmt")
      .Switch("version", "Print the version and exit.")
      .Switch("h,help", "Print this help and exit.");
  options.Group(kHiddenGroup)
      .Value("density.interval", "The old name of --scan.interval.")
      // As node_exporter's: lets a test give a fixture /proc (mountinfo).
      .Value("path.procfs", "procfs mountpoint.", "/proc");
  for (const auto& info : AllCollectors()) {
    const std::string state = info.enabled_by_default ? "enabled" : "disabled";
    options.Group("Collectors")
        .Bool("collector." + info.name,
              "Enable the " + info.name + " collector (default: " + state + "): " + info.help + ".")
        .Switch("no-collector." + info.name, "Disable the " + info.name + " collector.");
    if (info.add_flags) info.add_flags(options);
  }
}

std::string VersionText() {
  return std::string(kProgram) + ", version " + kVersion + " (revision: " + kRevision +
         ")\n  compiler: " + kCompiler + "\n";
}

}  // namespace

ParsedCommandLine ParseCommandLine(int argc, const char* const argv[]) {
  FlagSet options(kProgram,
                  "Prometheus exporter for the health of the Go build and module caches.");
  DeclareFlags(options);
  std::string error;
  const auto flags = options.Parse(argc, argv, error);
  if (!flags) return UsageError(error);
  const auto& f = *flags;
  if (f.given("help")) {
    std::vector<std::string> groups;
    for (const auto& group : options.Groups()) {
      if (group != kHiddenGroup) groups.push_back(group);
    }
    return {std::nullopt, 0, options.Help(groups) + "\n" + CommandsHelp()};
  }
  if (f.given("version")) return {std::nullopt, 0, VersionText()};
  if (const auto unexpected = UnexpectedArgument(f); !unexpected.empty()) {
    return UsageError(unexpected);
  }

  Config config;
  FlagReader read(f);
  config.listen_address = f.Text("web.listen-address");
  auto ports = ListenAddressToCivetPorts(config.listen_address, error);
  if (!ports) return UsageError("--web.listen-address '" + config.listen_address + "': " + error);
  config.civet_ports = *ports;

  config.telemetry_path = f.Text("web.telemetry-path");
  if (config.telemetry_path.size() < 2 || config.telemetry_path.front() != '/') {
    return UsageError("--web.telemetry-path must start with '/' and name a path other than '/'");
  }
  if (f.given("web.config.file")) {
    const std::string file = f.Text("web.config.file");
    auto web = LoadWebConfig(file, error);
    if (!web) return UsageError("--web.config.file " + file + ": " + error);
    config.web = std::move(*web);
  }
  config.max_connections = f.Int("web.max-connections");
  if (config.max_connections < 1 || config.max_connections > 1024) {
    return UsageError("--web.max-connections must be from 1 to 1024");
  }

  config.cache_dirs = f.Repeated("cache.dir");
  config.modcache_dirs = f.Repeated("modcache.dir");
  for (const auto& dir : config.cache_dirs) {
    if (dir.empty()) return UsageError("--cache.dir must not be empty");
  }
  for (const auto& dir : config.modcache_dirs) {
    if (dir.empty()) return UsageError("--modcache.dir must not be empty");
  }
  {
    // One directory watched twice would expose every series twice.
    std::vector<std::string> dirs = config.cache_dirs;
    dirs.insert(dirs.end(), config.modcache_dirs.begin(), config.modcache_dirs.end());
    if (const auto same = FindSameDirectory(dirs)) {
      const auto flag = [&](size_t i) {
        return (i < config.cache_dirs.size() ? "--cache.dir=" : "--modcache.dir=") + dirs[i];
      };
      return UsageError(flag(same->first) + " and " + flag(same->second) +
                        " name the same directory: give it once");
    }
  }

  const std::string level = f.Text("log.level");
  if (!log::ParseLevel(level, config.log_level)) {
    return UsageError("--log.level '" + level + "': want debug, info, warn or error");
  }
  const std::string format = f.Text("log.format");
  if (!log::ParseFormat(format, config.log_format)) {
    return UsageError("--log.format '" + format + "': want logfmt or json");
  }

  std::string scan_interval_flag = "scan.interval";
  if (read.given("density.interval")) {
    if (read.given("scan.interval")) {
      return UsageError("--density.interval is the old name of --scan.interval: give one of them");
    }
    scan_interval_flag = "density.interval";
    config.deprecated_flags.push_back({"--density.interval", "--scan.interval"});
  }
  config.scrape_timeout = read.PositiveDuration("scrape.timeout");
  config.scan_interval = read.PositiveDuration(scan_interval_flag);
  config.request_timeout = read.PositiveDuration("web.request-timeout");
  config.verify_interval = read.PositiveDuration("scan.verify-interval");
  if (f.given("scan.events") && f.given("no-scan.events")) {
    return UsageError("--scan.events and --no-scan.events contradict each other");
  }
  config.scan_events =
      !f.given("no-scan.events") && (!f.given("scan.events") || f.Bool("scan.events"));
  if (!read.ok()) return UsageError(read.error());
  config.once = f.given("once");
  config.procfs = read.Text("path.procfs");
  if (config.procfs.empty()) return UsageError("--path.procfs must not be empty");

  const bool defaults = !f.given("collector.disable-defaults");
  for (const auto& info : AllCollectors()) {
    const std::string on = "collector." + info.name;
    const std::string off = "no-collector." + info.name;
    if (f.given(on) && f.given(off)) {
      return UsageError("--" + on + " and --" + off + " contradict each other");
    }
    bool enabled = defaults && info.enabled_by_default;
    if (f.given(on)) enabled = f.Bool(on);
    if (f.given(off)) enabled = false;
    auto configured = info.configure(f);
    if (const auto* message = std::get_if<std::string>(&configured)) return UsageError(*message);
    if (enabled) {
      config.collectors.push_back(
          {info.name, std::get<ConfiguredCollector>(std::move(configured)), info.scan_depth});
    }
  }
  return {std::move(config), 0, ""};
}

}  // namespace gocache
