#include "exporter/http_server.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <prometheus/exposer.h>

#include <cstring>
#include <mutex>
#include <stdexcept>

#include "exporter/log.h"
#include "exporter/version.h"

namespace gocache {
namespace {

// CivetWeb hands its callbacks only the connection; the server is one per
// process, so its routing table lives here.
std::string g_telemetry_path;
std::string g_landing_page;
// CivetWeb reports why it could not start only through its log callback.
std::mutex g_last_error_mu;
std::string g_first_error;

void Respond(mg_connection* conn, int status, const char* reason, const char* content_type,
             const std::string& body, bool head) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            status, reason, content_type, body.size());
  if (!head) mg_write(conn, body.data(), body.size());
}

int BeginRequest(mg_connection* conn) {
  const mg_request_info* request = mg_get_request_info(conn);
  const char* uri = request->local_uri ? request->local_uri : "";
  const bool head = std::strcmp(request->request_method, "HEAD") == 0;
  if (!head && std::strcmp(request->request_method, "GET") != 0) {
    mg_printf(conn,
              "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n");
    return 405;
  }
  if (g_telemetry_path == uri) {
    if (!head) return 0;  // prometheus-cpp's handler
    // The handler knows only GET; a HEAD gets the headers without rendering.
    mg_printf(conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
              "Connection: close\r\n\r\n");
    return 200;
  }
  if (std::strcmp(uri, "/") == 0) {
    Respond(conn, 200, "OK", "text/html; charset=utf-8", g_landing_page, head);
    return 200;
  }
  Respond(conn, 404, "Not Found", "text/plain; charset=utf-8", "404 page not found\n", head);
  return 404;
}

int LogMessage(const mg_connection*, const char* message) {
  log::Debug("civetweb", {{"msg", message}});
  std::lock_guard lock(g_last_error_mu);
  if (g_first_error.empty()) g_first_error = message;
  return 1;
}

}  // namespace

std::string LandingPage(const std::string& telemetry_path) {
  return "<!DOCTYPE html>\n<html>\n<head><title>gocache_exporter</title></head>\n<body>\n"
         "<h1>gocache_exporter</h1>\n"
         "<p>Prometheus exporter for the health of the Go build and module caches.</p>\n"
         "<ul><li><a href=\"" +
         telemetry_path + "\">Metrics</a></li></ul>\n<p>version " + kVersion + " (revision " +
         kRevision + ")</p>\n</body>\n</html>\n";
}

HttpServer::HttpServer(const std::string& civet_ports, const std::string& telemetry_path,
                       const std::weak_ptr<prometheus::Collectable>& metrics) {
  g_telemetry_path = telemetry_path;
  g_landing_page = LandingPage(telemetry_path);
  {
    std::lock_guard lock(g_last_error_mu);
    g_first_error.clear();
  }
  CivetCallbacks callbacks;
  callbacks.begin_request = BeginRequest;
  callbacks.log_message = LogMessage;
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", civet_ports, "num_threads", "8",
                                 "request_timeout_ms", "10000"},
        &callbacks);
  } catch (const std::exception& e) {
    // The exception says only "null context when constructing CivetServer";
    // CivetWeb logged the reason just before.
    std::lock_guard lock(g_last_error_mu);
    throw std::runtime_error(g_first_error.empty() ? e.what() : g_first_error);
  }
  exposer_->RegisterCollectable(metrics, telemetry_path);
}

HttpServer::~HttpServer() = default;

std::vector<int> HttpServer::ListeningPorts() const { return exposer_->GetListeningPorts(); }

}  // namespace gocache
