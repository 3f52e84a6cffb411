// Fuzzes gocache::ParseWebConfig, the --web.config.file parser. Checks that
// a rejected configuration always says why, and that an accepted one keeps
// the promises the HTTP server relies on: every header is one of the allowed
// ones, by its whole name, with an allowed one-line value free of NUL; every
// user is named without ':' and has a bcrypt hash whose cost is within
// kMaxBcryptCost; TLS has a certificate and key, a client CA exactly when
// client certificates are verified, and versions in order. Relative paths
// resolve against the base directory and nothing else depends on it; and the
// accepted configuration, written back out with yaml-cpp's emitter, parses
// to the same configuration.
#include <strings.h>
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "exporter/basic_auth.h"
#include "exporter/web_config.h"
#include "fuzz/fuzz_check.h"

namespace {

using gocache::ClientAuth;
using gocache::TlsConfig;
using gocache::WebConfig;

constexpr const char* kBaseDir = "/fuzz/base";

// The headers a web configuration may set and the values each allows (none
// listed: any), written out again here rather than taken from the parser.
struct AllowedHeader {
  std::string_view name;
  std::initializer_list<std::string_view> values;
};
constexpr AllowedHeader kAllowedHeaders[] = {
    {"Strict-Transport-Security", {}},
    {"X-Content-Type-Options", {"nosniff"}},
    {"X-Frame-Options", {"deny", "sameorigin"}},
    {"X-XSS-Protection", {}},
    {"Content-Security-Policy", {}},
};

bool EqualFold(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool HeaderAllowed(std::string_view name, std::string_view value) {
  for (const auto& allowed : kAllowedHeaders) {
    if (!EqualFold(name, allowed.name)) continue;
    if (allowed.values.size() == 0) return true;
    for (std::string_view v : allowed.values) {
      if (EqualFold(value, v)) return true;
    }
    return false;
  }
  return false;
}

bool Verifies(ClientAuth auth) {
  return auth == ClientAuth::kVerifyClientCertIfGiven ||
         auth == ClientAuth::kRequireAndVerifyClientCert;
}

const char* ClientAuthName(ClientAuth auth) {
  switch (auth) {
    case ClientAuth::kNoClientCert:
      return "NoClientCert";
    case ClientAuth::kRequestClientCert:
      return "RequestClientCert";
    case ClientAuth::kRequireAnyClientCert:
      return "RequireAnyClientCert";
    case ClientAuth::kVerifyClientCertIfGiven:
      return "VerifyClientCertIfGiven";
    case ClientAuth::kRequireAndVerifyClientCert:
      return "RequireAndVerifyClientCert";
  }
  return nullptr;
}

const char* VersionName(int version) {
  switch (version) {
    case 0x0301:
      return "TLS10";
    case 0x0302:
      return "TLS11";
    case 0x0303:
      return "TLS12";
    case 0x0304:
      return "TLS13";
  }
  return nullptr;
}

// Where a path of the file ends up, given the directory it is relative to.
std::string Resolved(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path.front() == '/') return path;
  return base_dir + "/" + path;
}

void CheckAccepted(const WebConfig& config) {
  for (const auto& [name, value] : config.headers) {
    FUZZ_CHECK(HeaderAllowed(name, value));
    FUZZ_CHECK(!value.empty());
    FUZZ_CHECK(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
  }
  for (const auto& [user, hash] : config.basic_auth_users) {
    FUZZ_CHECK(!user.empty());
    FUZZ_CHECK(user.find(':') == std::string::npos);
    const auto cost = gocache::BcryptCost(hash);
    FUZZ_CHECK(cost.has_value());
    FUZZ_CHECK(*cost >= 4 && *cost <= gocache::kMaxBcryptCost);
    FUZZ_CHECK(hash.size() == 60);
  }
  if (config.tls) {
    const TlsConfig& tls = *config.tls;
    FUZZ_CHECK(!tls.cert_file.empty() && !tls.key_file.empty());
    // Resolved against an absolute directory, every path is absolute.
    FUZZ_CHECK(tls.cert_file.front() == '/' && tls.key_file.front() == '/');
    FUZZ_CHECK(tls.client_ca_file.empty() || tls.client_ca_file.front() == '/');
    FUZZ_CHECK(ClientAuthName(tls.client_auth) != nullptr);
    FUZZ_CHECK(Verifies(tls.client_auth) == !tls.client_ca_file.empty());
    FUZZ_CHECK(VersionName(tls.min_version) != nullptr);
    FUZZ_CHECK(tls.max_version == 0 || VersionName(tls.max_version) != nullptr);
    FUZZ_CHECK(tls.max_version == 0 || tls.max_version >= tls.min_version);
  }
  FUZZ_CHECK(config.empty() ==
             (!config.tls && config.basic_auth_users.empty() && config.headers.empty()));
}

bool SameTls(const TlsConfig& a, const TlsConfig& b) {
  return a.cert_file == b.cert_file && a.key_file == b.key_file &&
         a.client_ca_file == b.client_ca_file && a.client_auth == b.client_auth &&
         a.min_version == b.min_version && a.max_version == b.max_version;
}

bool Same(const WebConfig& a, const WebConfig& b) {
  if (a.tls.has_value() != b.tls.has_value()) return false;
  if (a.tls && !SameTls(*a.tls, *b.tls)) return false;
  return a.basic_auth_users == b.basic_auth_users && a.headers == b.headers;
}

// Whether yaml-cpp's emitter writes `text` back as it is: valid UTF-8 only
// (it writes U+FFFD for a byte that is not).
bool Emittable(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > text.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(text[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

bool AllEmittable(const WebConfig& config) {
  for (const auto& [name, value] : config.headers) {
    if (!Emittable(name) || !Emittable(value)) return false;
  }
  for (const auto& [user, hash] : config.basic_auth_users) {
    if (!Emittable(user)) return false;
  }
  if (config.tls) {
    for (const std::string* path :
         {&config.tls->cert_file, &config.tls->key_file, &config.tls->client_ca_file}) {
      if (!Emittable(*path)) return false;
    }
  }
  return true;
}

std::string Emit(const WebConfig& config) {
  YAML::Emitter out;
  out.SetStringFormat(YAML::DoubleQuoted);
  out << YAML::BeginMap;
  if (config.tls) {
    const TlsConfig& tls = *config.tls;
    out << YAML::Key << "tls_server_config" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "cert_file" << YAML::Value << tls.cert_file;
    out << YAML::Key << "key_file" << YAML::Value << tls.key_file;
    if (!tls.client_ca_file.empty()) {
      out << YAML::Key << "client_ca_file" << YAML::Value << tls.client_ca_file;
    }
    out << YAML::Key << "client_auth_type" << YAML::Value << ClientAuthName(tls.client_auth);
    out << YAML::Key << "min_version" << YAML::Value << VersionName(tls.min_version);
    if (tls.max_version != 0) {
      out << YAML::Key << "max_version" << YAML::Value << VersionName(tls.max_version);
    }
    out << YAML::EndMap;
  }
  if (!config.headers.empty()) {
    out << YAML::Key << "http_server_config" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "headers" << YAML::Value << YAML::BeginMap;
    for (const auto& [name, value] : config.headers) {
      out << YAML::Key << name << YAML::Value << value;
    }
    out << YAML::EndMap << YAML::EndMap;
  }
  if (!config.basic_auth_users.empty()) {
    out << YAML::Key << "basic_auth_users" << YAML::Value << YAML::BeginMap;
    for (const auto& [user, hash] : config.basic_auth_users) {
      out << YAML::Key << user << YAML::Value << hash;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  FUZZ_CHECK(out.good());
  return out.c_str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return gocache::fuzz::Guarded([&] {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    std::string error;
    const auto config = gocache::ParseWebConfig(text, kBaseDir, error);
    if (!config) {
      FUZZ_CHECK(!error.empty());
      // Rejected whatever the base directory: it only resolves paths.
      std::string error2;
      FUZZ_CHECK(!gocache::ParseWebConfig(text, "", error2).has_value());
      FUZZ_CHECK(error2 == error);
      return;
    }
    FUZZ_CHECK(error.empty());
    CheckAccepted(*config);

    // With no base directory the paths are as written; resolving them gives
    // the paths parsed against kBaseDir, and nothing else changes.
    std::string error2;
    auto raw = gocache::ParseWebConfig(text, "", error2);
    FUZZ_CHECK(raw.has_value());
    if (raw->tls) {
      raw->tls->cert_file = Resolved(raw->tls->cert_file, kBaseDir);
      raw->tls->key_file = Resolved(raw->tls->key_file, kBaseDir);
      raw->tls->client_ca_file = Resolved(raw->tls->client_ca_file, kBaseDir);
    }
    FUZZ_CHECK(Same(*raw, *config));

    // Written back out, the configuration reads the same. (Every path is
    // absolute by now, so the base directory no longer matters.)
    if (!AllEmittable(*config)) return;
    const std::string yaml = Emit(*config);
    std::string error3;
    const auto again = gocache::ParseWebConfig(yaml, kBaseDir, error3);
    if (!again || !Same(*again, *config)) {
      std::fprintf(stderr, "fuzz: re-emitted configuration %s:\n%s\n",
                   again ? "differs" : ("is rejected: " + error3).c_str(), yaml.c_str());
    }
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(Same(*again, *config));
  });
}
