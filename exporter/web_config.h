// --web.config.file: the web configuration file of Prometheus's exporters
// (the format node_exporter reads), for TLS, basic auth and response headers.
// Only what can be honoured is accepted; any other key is an error, so that
// a setting is never silently ignored.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gocache {

// Go's tls.ClientAuthType names, as the format spells them.
enum class ClientAuth {
  kNoClientCert,
  kRequestClientCert,
  kRequireAnyClientCert,
  kVerifyClientCertIfGiven,
  kRequireAndVerifyClientCert,
};

struct TlsConfig {
  std::string cert_file;  // paths are resolved against the config file's directory
  std::string key_file;
  std::string client_ca_file;  // empty: none
  ClientAuth client_auth = ClientAuth::kNoClientCert;
  int min_version = 0x0303;  // TLS 1.2, the format's default
  int max_version = 0;       // 0: the highest the TLS library offers
};

struct WebConfig {
  std::optional<TlsConfig> tls;
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash
  std::vector<std::pair<std::string, std::string>> headers;

  bool empty() const { return !tls && basic_auth_users.empty() && headers.empty(); }
};

// The highest bcrypt cost accepted: each failed login costs one hash, and a
// cost of 15 already takes about two seconds of a CPU.
inline constexpr int kMaxBcryptCost = 14;

// Parses the YAML text. `base_dir` resolves relative file paths. On error
// returns nullopt and sets `error` to one line naming the key at fault.
// Does not touch the files named; LoadWebConfig does.
std::optional<WebConfig> ParseWebConfig(std::string_view yaml, const std::string& base_dir,
                                        std::string& error);

// Reads and parses `path`, then checks that every file it names can be read.
// The error names the file or key at fault.
std::optional<WebConfig> LoadWebConfig(const std::string& path, std::string& error);

}  // namespace gocache
