// The HTTP side: prometheus-cpp's Exposer serves the telemetry path; a
// CivetWeb request hook in front of it serves the landing page at "/" and
// answers 404 for every other path.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <string>
#include <vector>

namespace prometheus {
class Exposer;
}

namespace gocache {

class HttpServer {
 public:
  // Listens at once. Throws std::runtime_error with a one-line reason when
  // it cannot (address in use, no such address).
  HttpServer(const std::string& civet_ports, const std::string& telemetry_path,
             const std::weak_ptr<prometheus::Collectable>& metrics);
  ~HttpServer();

  std::vector<int> ListeningPorts() const;

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
};

// The landing page's HTML.
std::string LandingPage(const std::string& telemetry_path);

}  // namespace gocache
