#include "exporter/http_server.h"

#include <civetweb.h>
#include <prometheus/text_serializer.h>
#include <strings.h>
#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "base/log.h"
#include "base/version.h"
#include "collectors/metric_family.h"

namespace gocache {
namespace {

constexpr const char* kTextFormat = "text/plain; version=0.0.4; charset=utf-8";

std::string_view Trim(std::string_view text) {
  const size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t") - begin + 1);
}

std::optional<std::string> Gzip(const std::string& input) {
  z_stream stream{};
  // 16 + window bits: a gzip header rather than a zlib one.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return std::nullopt;
  }
  std::string output(deflateBound(&stream, input.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  stream.avail_in = static_cast<uInt>(input.size());
  stream.next_out = reinterpret_cast<Bytef*>(output.data());
  stream.avail_out = static_cast<uInt>(output.size());
  const int result = deflate(&stream, Z_FINISH);
  output.resize(stream.total_out);
  deflateEnd(&stream);
  if (result != Z_STREAM_END) return std::nullopt;
  return output;
}

// CivetWeb tells why it could not start (say, the port in use) only through
// its log callback, on the thread that starts it.
thread_local std::string* t_start_error = nullptr;

int LogMessage(const mg_connection*, const char* message) {
  log::Debug("civetweb", {{"msg", message}});
  if (t_start_error != nullptr && t_start_error->empty()) *t_start_error = message;
  return 1;
}

constexpr FamilyDecl kRequestsFamily = {"gocache_exporter_http_requests_total",
                                        "HTTP requests answered by the exporter, by status code.",
                                        prometheus::MetricType::Counter};

}  // namespace

struct HttpServer::Response {
  int status = 200;
  const char* reason = "OK";
  const char* content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<const char*, std::string>> headers;
};

std::string LandingPage(const std::string& telemetry_path) {
  return "<!DOCTYPE html>\n<html>\n<head><title>gocache_exporter</title></head>\n<body>\n"
         "<h1>gocache_exporter</h1>\n"
         "<p>Prometheus exporter for the health of the Go build and module caches.</p>\n"
         "<ul><li><a href=\"" +
         telemetry_path + "\">Metrics</a></li></ul>\n<p>version " + kVersion + " (revision " +
         kRevision + ")</p>\n</body>\n</html>\n";
}

bool AcceptsGzip(const char* accept_encoding) {
  if (accept_encoding == nullptr) return false;
  std::string_view rest(accept_encoding);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t semicolon = item.find(';');
    const std::string_view coding = Trim(item.substr(0, semicolon));
    if (coding.size() != 4 || strncasecmp(coding.data(), "gzip", 4) != 0) continue;
    if (semicolon == std::string_view::npos) return true;
    // "gzip;q=0" refuses gzip.
    const std::string_view parameter = Trim(item.substr(semicolon + 1));
    if (parameter.size() < 2 || strncasecmp(parameter.data(), "q=", 2) != 0) return true;
    return std::strtod(std::string(parameter.substr(2)).c_str(), nullptr) > 0;
  }
  return false;
}

HttpServer::HttpServer(const HttpServerOptions& options, const WebConfig& web,
                       std::weak_ptr<prometheus::Collectable> metrics)
    : telemetry_path_(options.telemetry_path),
      landing_page_(LandingPage(options.telemetry_path)),
      headers_(web.headers),
      metrics_(std::move(metrics)),
      auth_(web.basic_auth_users),
      tls_(web.tls) {
  // A trailing "s" makes a CivetWeb port speak TLS.
  const std::string ports = options.civet_ports + (tls_ ? "s" : "");
  const std::string threads = std::to_string(options.max_connections);
  const std::string timeout = std::to_string(options.request_timeout.count());
  const char* civet_options[] = {
      "listening_ports",
      ports.c_str(),
      "num_threads",
      threads.c_str(),
      "request_timeout_ms",
      timeout.c_str(),
      // Belt and braces: no document root is set, so no file is served anyway.
      "enable_directory_listing",
      "no",
      nullptr,
  };
  mg_callbacks callbacks{};
  callbacks.begin_request = OnRequest;
  callbacks.log_message = LogMessage;
  callbacks.init_ssl = OnInitSsl;
  mg_init_data init{&callbacks, this, civet_options};
  char error_text[256] = "";
  mg_error_data error{nullptr, error_text, sizeof error_text};
  std::string logged_error;
  t_start_error = &logged_error;
  context_ = mg_start2(&init, &error);
  t_start_error = nullptr;
  if (context_ == nullptr) {
    throw std::runtime_error(!logged_error.empty() ? logged_error
                             : error_text[0]       ? error_text
                                                   : "CivetWeb could not start");
  }
}

HttpServer::~HttpServer() {
  if (context_ != nullptr) mg_stop(context_);
}

std::vector<int> HttpServer::ListeningPorts() const {
  mg_server_port ports[8];
  const int count = mg_get_server_ports(context_, 8, ports);
  std::vector<int> result;
  for (int i = 0; i < count; ++i) result.push_back(ports[i].port);
  return result;
}

int HttpServer::OnInitSsl(void* ssl_ctx, void* user_data) {
  // CivetWeb has loaded OpenSSL and made the context; it is ours to set up
  // (1), which main checked it can be before listening.
  const auto* server = static_cast<HttpServer*>(user_data);
  std::string error;
  if (!ConfigureServerContext(static_cast<SSL_CTX*>(ssl_ctx), *server->tls_, error)) {
    log::Error("cannot set up TLS", {{"err", error}});
    return -1;
  }
  return 1;
}

int HttpServer::OnRequest(mg_connection* conn) {
  return static_cast<HttpServer*>(mg_get_user_data(mg_get_context(conn)))->Handle(conn);
}

int HttpServer::Handle(mg_connection* conn) {
  const mg_request_info* request = mg_get_request_info(conn);
  const bool head = std::strcmp(request->request_method, "HEAD") == 0;
  const char* path = request->local_uri_raw;  // as sent, without the query
  Response response;
  if (auth_.enabled() && !auth_.Allows(mg_get_header(conn, "Authorization"))) {
    response = {401,
                "Unauthorized",
                "text/plain; charset=utf-8",
                "Unauthorized\n",
                {{"WWW-Authenticate", "Basic realm=\"gocache_exporter\", charset=\"UTF-8\""}}};
  } else if (!head && std::strcmp(request->request_method, "GET") != 0) {
    response = {405,
                "Method Not Allowed",
                "text/plain; charset=utf-8",
                "405 method not allowed\n",
                {{"Allow", "GET, HEAD"}}};
  } else if (path != nullptr && telemetry_path_ == path) {
    const auto metrics = metrics_.lock();
    if (!metrics) {  // shutting down
      response = {503, "Service Unavailable", "text/plain; charset=utf-8", "shutting down\n", {}};
    } else {
      response.content_type = kTextFormat;
      auto families = metrics->Collect();
      families.push_back(RequestsFamily());
      response.body = prometheus::TextSerializer().Serialize(families);
    }
    if (metrics && AcceptsGzip(mg_get_header(conn, "Accept-Encoding"))) {
      if (auto compressed = Gzip(response.body)) {
        response.body = std::move(*compressed);
        response.headers.emplace_back("Content-Encoding", "gzip");
      }
    }
  } else if (path != nullptr && std::strcmp(path, "/") == 0) {
    response.content_type = "text/html; charset=utf-8";
    response.body = landing_page_;
  } else {
    response = {404, "Not Found", "text/plain; charset=utf-8", "404 page not found\n", {}};
  }
  Send(conn, response, head);
  for (size_t i = 0; i < kStatuses.size(); ++i) {
    if (kStatuses[i] == response.status) responses_[i].fetch_add(1, std::memory_order_relaxed);
  }
  return response.status;
}

prometheus::MetricFamily HttpServer::RequestsFamily() const {
  auto family = MakeFamily(kRequestsFamily);
  for (size_t i = 0; i < kStatuses.size(); ++i) {
    AddSample(family, {{"code", std::to_string(kStatuses[i])}},
              static_cast<double>(responses_[i].load(std::memory_order_relaxed)));
  }
  return family;
}

void HttpServer::Send(mg_connection* conn, const Response& response, bool head) const {
  std::string text = "HTTP/1.1 " + std::to_string(response.status) + " " + response.reason +
                     "\r\nContent-Type: " + response.content_type +
                     "\r\nContent-Length: " + std::to_string(response.body.size()) +
                     "\r\nConnection: close\r\n";
  for (const auto& [name, value] : response.headers)
    text += std::string(name) + ": " + value + "\r\n";
  for (const auto& [name, value] : headers_) text += name + ": " + value + "\r\n";
  text += "\r\n";
  if (!head) text += response.body;
  mg_write(conn, text.data(), text.size());
}

}  // namespace gocache
