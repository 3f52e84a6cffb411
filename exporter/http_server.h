// The HTTP side, on CivetWeb: the telemetry path, a landing page at "/", and
// nothing else. One request hook answers every request, so that basic auth,
// the configured headers and the method check apply to every response and no
// request ever reaches CivetWeb's file serving.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "exporter/basic_auth.h"
#include "exporter/tls.h"
#include "exporter/web_config.h"

struct mg_connection;
struct mg_context;

namespace gocache {

struct HttpServerOptions {
  std::string civet_ports;  // from ListenAddressToCivetPorts
  std::string telemetry_path;
  // Connections served at once; more wait in the listen queue. Each holds a
  // thread until it is answered or times out.
  int max_connections = 16;
  // The most a request may take to arrive, and a response to be sent: a
  // client that trickles its request is cut off when this runs out.
  std::chrono::milliseconds request_timeout{10000};
};

class HttpServer {
 public:
  // Listens at once, with TLS when `web` has it. Throws std::runtime_error
  // with a one-line reason when it cannot (address in use, no such address).
  HttpServer(const HttpServerOptions& options, const WebConfig& web,
             std::weak_ptr<prometheus::Collectable> metrics);
  ~HttpServer();

  std::vector<int> ListeningPorts() const;

 private:
  struct Response;
  static int OnRequest(mg_connection* conn);
  static int OnInitSsl(void* ssl_ctx, void* user_data);
  int Handle(mg_connection* conn);
  // gocache_exporter_http_requests_total, from the counts below.
  prometheus::MetricFamily RequestsFamily() const;
  void Send(mg_connection* conn, const Response& response, bool head) const;

  const std::string telemetry_path_;
  const std::string landing_page_;
  const std::vector<std::pair<std::string, std::string>> headers_;
  const std::weak_ptr<prometheus::Collectable> metrics_;
  BasicAuth auth_;
  // Responses by status; kStatuses are all the statuses Handle answers with.
  static constexpr std::array<int, 5> kStatuses{200, 401, 404, 405, 503};
  std::array<std::atomic<uint64_t>, kStatuses.size()> responses_{};
  const std::optional<TlsConfig> tls_;
  mg_context* context_ = nullptr;
};

// The landing page's HTML.
std::string LandingPage(const std::string& telemetry_path);

// Whether an Accept-Encoding header value accepts gzip.
bool AcceptsGzip(const char* accept_encoding);

}  // namespace gocache
