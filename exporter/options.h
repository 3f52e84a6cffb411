// The command line: node_exporter-style flags (see the README's Flags table),
// parsed and checked into a Config, with usage errors worded for exit 2.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/log.h"
#include "collectors/collector.h"
#include "exporter/web_config.h"

namespace gocache {

// An enabled collector, its flags parsed.
struct EnabledCollector {
  std::string name;
  ConfiguredCollector configured;
  ScanDepth scan_depth;
};

// A flag given by a name that is going away, for one line in the log.
struct DeprecatedFlag {
  std::string given, replacement;
};

struct Config {
  std::string listen_address;  // as given, for logs
  std::string civet_ports;     // the same in CivetWeb's syntax
  std::string telemetry_path;
  WebConfig web;  // from --web.config.file; empty without it
  int max_connections = 0;
  std::chrono::milliseconds request_timeout{0};
  std::vector<std::string> cache_dirs;
  std::vector<std::string> modcache_dirs;
  log::Level log_level = log::Level::kInfo;
  log::Format log_format = log::Format::kLogfmt;
  bool once = false;
  std::chrono::milliseconds scrape_timeout{0};
  std::chrono::milliseconds scan_interval{0};
  bool scan_events = true;  // follow build caches by inotify events where they serve
  std::chrono::milliseconds verify_interval{0};
  std::string procfs;                        // --path.procfs (hidden): where /proc is mounted
  std::vector<EnabledCollector> collectors;  // in exposition order
  std::vector<DeprecatedFlag> deprecated_flags;
};

// Either a configuration to run with, or what to print and the exit status:
// 0 after --help or --version (on stdout), 2 for a usage error (on stderr).
struct ParsedCommandLine {
  std::optional<Config> config;
  int exit_code = 0;
  std::string output;
};

ParsedCommandLine ParseCommandLine(int argc, const char* const argv[]);

}  // namespace gocache
