// gocache_exporter: a Prometheus exporter for the health of the Go build and
// module caches. See README.md.
#include <malloc.h>
#include <prometheus/text_serializer.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "base/log.h"
#include "base/subprocess.h"
#include "base/version.h"
#include "cache/cache_discovery.h"
#include "cache/scan_service.h"
#include "collectors/all.h"
#include "commands/commands.h"
#include "exporter/http_server.h"
#include "exporter/options.h"
#include "exporter/scrape.h"
#include "exporter/tls.h"

namespace gocache {
namespace {

constexpr auto kGoEnvTimeout = std::chrono::seconds(10);
constexpr auto kShutdownGrace = std::chrono::milliseconds(1500);

int Run(const Config& config) {
  log::Configure(config.log_level, config.log_format);
  // TLS is set up first, so that a bad certificate or key is a usage error
  // before anything starts.
  if (config.web.tls && !config.once) {
    std::string error;
    if (!CheckServerConfig(*config.web.tls, error)) {
      std::fprintf(stderr, "gocache_exporter: --web.config.file: %s\n", error.c_str());
      return 2;
    }
  }
  const auto caches = DiscoverCaches(config.cache_dirs, config.modcache_dirs, kGoEnvTimeout);
  log::Info("starting gocache_exporter", {{"version", kVersion}, {"revision", kRevision}});
  for (const auto& flag : config.deprecated_flags) {
    log::Warn("flag is deprecated", {{"flag", flag.given}, {"use", flag.replacement}});
  }
  for (const auto& cache : caches) {
    log::Info("watching cache", {{"path", cache.path}, {"kind", KindLabel(cache.kind)}});
  }

  ScanDepth scan_depth = ScanDepth::kNone;
  for (const auto& collector : config.collectors) {
    scan_depth = std::max(scan_depth, collector.scan_depth);
  }
  const auto scans = std::make_shared<ScanService>(
      caches, config.scan_interval, scan_depth, 2,
      EventOptions{config.scan_events && !config.once, config.verify_interval});
  const CollectorContext context{caches, scans, config.procfs};
  std::vector<std::shared_ptr<CollectorRunner>> runners;
  for (const auto& collector : config.collectors) {
    if (!collector.configured.make) {  // enabled, but its flags give it nothing to watch
      log::Debug("collector has nothing to do", {{"collector", collector.name}});
      continue;
    }
    log::Info("enabled collector", {{"collector", collector.name}});
    runners.push_back(
        std::make_shared<CollectorRunner>(collector.name, collector.configured.make(context),
                                          collector.configured.schedule, config.scrape_timeout));
  }
  const auto scraper = std::make_shared<Scraper>(runners, config.scrape_timeout);

  if (config.once) {
    scans->ScanAllNow();
    for (const auto& runner : runners) runner->RunOnce();
    std::cout << prometheus::TextSerializer().Serialize(scraper->CollectLatest()) << std::flush;
    return std::cout ? 0 : 1;
  }

  scans->Start();
  for (const auto& runner : runners) runner->Start();

  std::unique_ptr<HttpServer> server;
  try {
    const HttpServerOptions options{config.civet_ports, config.telemetry_path,
                                    config.max_connections, config.request_timeout};
    server = std::make_unique<HttpServer>(options, config.web, scraper);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gocache_exporter: cannot listen on %s: %s\n",
                 config.listen_address.c_str(), e.what());
    for (const auto& runner : runners) runner->Stop(kShutdownGrace);
    scans->Stop(kShutdownGrace);
    return 1;
  }
  const std::vector<int> listening = server->ListeningPorts();
  std::string ports;
  for (int port : listening) ports += (ports.empty() ? "" : ",") + std::to_string(port);
  // One port (the usual case) is a number; several, a list in text.
  const log::Value ports_value =
      listening.size() == 1 ? log::Value(listening[0]) : log::Value(ports);
  log::Info("listening", {{"address", config.listen_address},
                          {"ports", ports_value},
                          {"telemetry_path", config.telemetry_path},
                          {"tls", config.web.tls.has_value()},
                          {"basic_auth", !config.web.basic_auth_users.empty()}});

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  log::Info("shutting down", {{"signal", strsignal(signal_number)}});
  CancelAllCommands();
  for (const auto& runner : runners) runner->Stop(kShutdownGrace);
  scans->Stop(kShutdownGrace);
  log::Info("shut down");
  // Stopping CivetWeb waits for its listener's poll timeout (2 s) to notice;
  // nothing is left to flush or release, so leave without that teardown,
  // cutting any scrape in flight as an exporter that exits on SIGTERM does.
  std::fflush(nullptr);
  std::_Exit(0);
}

}  // namespace
}  // namespace gocache

int main(int argc, char** argv) {
  // Block the shutdown signals before any thread starts, so that every
  // thread inherits the mask and only the main thread's sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a scraper hanging up is not our death
  // The scan's large arrays are built and freed every interval: keep them in
  // mappings of their own, returned to the system when freed, rather than
  // let glibc's adaptive threshold move them into a heap that keeps its peak.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  // The companion commands for CI jobs: `check` and `trim`.
  if (argc > 1 && gocache::IsCommand(argv[1])) return gocache::RunCommandLine(argc, argv);
  // `help` is --help; `help COMMAND` is COMMAND --help.
  if (argc > 1 && std::strcmp(argv[1], "help") == 0) {
    if (argc == 2) {
      const char* const help[] = {argv[0], "--help"};
      const auto parsed = gocache::ParseCommandLine(2, help);
      std::fputs(parsed.output.c_str(), stdout);
      return parsed.exit_code;
    }
    if (argc == 3 && gocache::IsCommand(argv[2])) {
      char help_flag[] = "--help";
      char* command[] = {argv[0], argv[2], help_flag, nullptr};
      return gocache::RunCommandLine(3, command);
    }
    const std::string problem =
        argc > 3 ? "help takes one command at most"
                 : "help: unknown command '" + std::string(argv[2]) + "': want check or trim";
    std::fprintf(stderr, "gocache_exporter: error: %s (see gocache_exporter --help)\n",
                 problem.c_str());
    return 2;
  }

  auto parsed = gocache::ParseCommandLine(argc, argv);
  if (!parsed.config) {
    std::fputs(parsed.output.c_str(), parsed.exit_code == 0 ? stdout : stderr);
    return parsed.exit_code;
  }
  return gocache::Run(*parsed.config);
}
