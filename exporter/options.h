// The command line: node_exporter-style flags (see the README's Flags table),
// parsed and checked into a Config, with usage errors worded for exit 2.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/log.h"
#include "exporter/web_config.h"

namespace cxxopts {
class ParseResult;
}

namespace gocache {

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
  std::vector<std::string> enabled_collectors;
  // Every flag, for the collectors' own options.
  std::shared_ptr<const cxxopts::ParseResult> flags;
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
