#include "exporter/web_config.h"

#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "exporter/basic_auth.h"

namespace gocache {
namespace {

// Keys of the format that this exporter cannot honour: named as such rather
// than as unknown, so that a node_exporter configuration gets a clear answer.
bool IsUnsupportedKey(std::string_view section, std::string_view key) {
  if (section == "tls_server_config") {
    for (const char* k : {"cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
                          "client_allowed_sans", "cert", "key", "client_ca"}) {
      if (key == k) return true;
    }
  }
  return false;
}

// A parse failure: the message already names the key.
struct Invalid {
  std::string message;
};

std::string Where(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return "";
  return " (line " + std::to_string(mark.line + 1) + ")";
}

// A NUL would end the string for the C functions it goes to (a path for
// OpenSSL, a password for crypt), which would then use another one.
void CheckNoNul(const std::string& text, const std::string& key, const YAML::Node& node) {
  if (text.find('\0') != std::string::npos) throw Invalid{key + ": has a NUL" + Where(node)};
}

std::string Scalar(const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar()) throw Invalid{key + ": want a string" + Where(node)};
  CheckNoNul(node.Scalar(), key, node);
  return node.Scalar();
}

// Calls visit(key, value) for each entry of a mapping (null is empty).
// `section` is the dotted name of the mapping, empty for the file itself.
template <typename Visit>
void ForEachEntry(const YAML::Node& node, const std::string& section, Visit visit) {
  const std::string name = section.empty() ? "the file" : section;
  if (node.IsNull()) return;
  if (!node.IsMap()) throw Invalid{name + ": want a mapping" + Where(node)};
  std::set<std::string> seen;
  for (const auto& entry : node) {
    if (!entry.first.IsScalar()) throw Invalid{name + ": keys must be strings" + Where(node)};
    const std::string& key = entry.first.Scalar();
    const std::string shown = key.substr(0, key.find('\0'));  // one line in the error
    CheckNoNul(key, section.empty() ? shown : section + "." + shown, entry.first);
    // yaml-cpp keeps both entries of a repeated key, where Go's decoders
    // (and so node_exporter) refuse it: a second, empty tls_server_config
    // would turn TLS off without a word.
    if (!seen.insert(key).second) {
      throw Invalid{(section.empty() ? key : section + "." + key) + ": repeated" +
                    Where(entry.first)};
    }
    visit(key, entry.second);
  }
}

// yaml-cpp 0.7 lets a quoted string that is never closed run on to the end
// of the file, swallowing the keys after it (basic_auth_users, say) into a
// header's value. No value of this format spans lines, so a quoted scalar
// must close on the line it opens. Each node is looked at once, by where it
// starts and its type (a block mapping starts where its first key does):
// aliases share their anchor's node, and may even contain it.
void CheckQuotesClose(const YAML::Node& node, std::string_view text,
                      std::set<std::pair<int, int>>& seen) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null() || !seen.emplace(mark.pos, static_cast<int>(node.Type())).second) return;
  if (node.IsMap() || node.IsSequence()) {
    for (const auto& entry : node) {
      if (node.IsMap()) {
        CheckQuotesClose(entry.first, text, seen);
        CheckQuotesClose(entry.second, text, seen);
      } else {
        CheckQuotesClose(entry, text, seen);
      }
    }
    return;
  }
  if (!node.IsScalar() || node.Tag() != "!") return;  // "!": not a plain scalar
  if (mark.pos < 0 || static_cast<size_t>(mark.pos) >= text.size()) return;
  const char quote = text[mark.pos];
  if (quote != '"' && quote != '\'') return;
  for (size_t i = mark.pos + 1; i < text.size() && text[i] != '\n'; ++i) {
    if (quote == '"' && text[i] == '\\') {
      ++i;  // an escaped character
    } else if (text[i] == quote) {
      if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
        ++i;  // '' is a quote inside single quotes
      } else {
        return;
      }
    }
  }
  throw Invalid{"not valid YAML: line " + std::to_string(mark.line + 1) +
                ": a quoted string does not close on its line"};
}

[[noreturn]] void UnknownKey(const std::string& section, const std::string& key,
                             const YAML::Node& node) {
  const std::string name = section.empty() ? key : section + "." + key;
  if (IsUnsupportedKey(section, key)) {
    throw Invalid{name + ": not supported by gocache_exporter" + Where(node)};
  }
  throw Invalid{name + ": unknown key" + Where(node)};
}

std::string Resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path.front() == '/' || base_dir.empty()) return path;
  return base_dir.back() == '/' ? base_dir + path : base_dir + "/" + path;
}

int TlsVersion(const std::string& key, const std::string& text) {
  if (text == "TLS10") return 0x0301;
  if (text == "TLS11") return 0x0302;
  if (text == "TLS12") return 0x0303;
  if (text == "TLS13") return 0x0304;
  throw Invalid{key + ": want TLS10, TLS11, TLS12 or TLS13, not '" + text + "'"};
}

ClientAuth ClientAuthType(const std::string& text) {
  static const std::pair<const char*, ClientAuth> kTypes[] = {
      {"NoClientCert", ClientAuth::kNoClientCert},
      {"RequestClientCert", ClientAuth::kRequestClientCert},
      {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
      {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
      {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert},
  };
  for (const auto& [name, type] : kTypes) {
    if (text == name) return type;
  }
  throw Invalid{"tls_server_config.client_auth_type: unknown type '" + text +
                "' (want NoClientCert, RequestClientCert, RequireAnyClientCert, "
                "VerifyClientCertIfGiven or RequireAndVerifyClientCert)"};
}

std::optional<TlsConfig> ParseTls(const YAML::Node& node, const std::string& base_dir) {
  constexpr const char* kSection = "tls_server_config";
  TlsConfig tls;
  bool client_auth_given = false;
  bool any = false;
  ForEachEntry(node, kSection, [&](const std::string& key, const YAML::Node& value) {
    const std::string name = std::string(kSection) + "." + key;
    any = true;
    if (key == "cert_file") {
      tls.cert_file = Resolve(Scalar(value, name), base_dir);
    } else if (key == "key_file") {
      tls.key_file = Resolve(Scalar(value, name), base_dir);
    } else if (key == "client_ca_file") {
      tls.client_ca_file = Resolve(Scalar(value, name), base_dir);
    } else if (key == "client_auth_type") {
      tls.client_auth = ClientAuthType(Scalar(value, name));
      client_auth_given = true;
    } else if (key == "min_version") {
      tls.min_version = TlsVersion(name, Scalar(value, name));
    } else if (key == "max_version") {
      tls.max_version = TlsVersion(name, Scalar(value, name));
    } else {
      UnknownKey(kSection, key, value);
    }
  });
  if (!any) return std::nullopt;
  if (tls.cert_file.empty()) throw Invalid{"tls_server_config.cert_file: missing"};
  if (tls.key_file.empty()) throw Invalid{"tls_server_config.key_file: missing"};
  const bool verifies = tls.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                        tls.client_auth == ClientAuth::kRequireAndVerifyClientCert;
  if (verifies && tls.client_ca_file.empty()) {
    throw Invalid{
        "tls_server_config.client_ca_file: missing, and client_auth_type verifies "
        "client certificates against it"};
  }
  if (!tls.client_ca_file.empty() && !verifies) {
    throw Invalid{"tls_server_config.client_ca_file: given, but client_auth_type " +
                  std::string(client_auth_given ? "does not verify" : "is not set to verify") +
                  " client certificates"};
  }
  if (tls.max_version != 0 && tls.max_version < tls.min_version) {
    throw Invalid{"tls_server_config.max_version: below min_version"};
  }
  return tls;
}

// The headers Prometheus's exporters let a web configuration set, with the
// values each allows (empty: any value).
// Compares whole strings, so that a NUL inside `text` cannot end it early.
bool EqualsIgnoringCase(const std::string& text, std::string_view word) {
  return text.size() == word.size() && strncasecmp(text.data(), word.data(), word.size()) == 0;
}

void CheckHeader(const std::string& name, const std::string& value) {
  static const std::pair<const char*, std::vector<const char*>> kAllowed[] = {
      {"Strict-Transport-Security", {}},
      {"X-Content-Type-Options", {"nosniff"}},
      {"X-Frame-Options", {"deny", "sameorigin"}},
      {"X-XSS-Protection", {}},
      {"Content-Security-Policy", {}},
  };
  const std::string key = "http_server_config.headers." + name;
  // NUL, CR and LF would end the header early or start another.
  if (value.empty() || value.find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) {
    throw Invalid{key + ": want a one-line, non-empty value"};
  }
  for (const auto& [allowed, values] : kAllowed) {
    if (!EqualsIgnoringCase(name, allowed)) continue;
    if (values.empty()) return;
    for (const char* v : values) {
      if (EqualsIgnoringCase(value, v)) return;
    }
    std::string want;
    for (const char* v : values) want += (want.empty() ? "" : " or ") + std::string(v);
    throw Invalid{key + ": want " + want + ", not '" + value + "'"};
  }
  throw Invalid{key +
                ": this header cannot be set (allowed: Strict-Transport-Security, "
                "X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, "
                "Content-Security-Policy)"};
}

void ParseHttpServer(const YAML::Node& node, WebConfig& config) {
  constexpr const char* kSection = "http_server_config";
  ForEachEntry(node, kSection, [&](const std::string& key, const YAML::Node& value) {
    if (key == "headers") {
      ForEachEntry(value, "http_server_config.headers",
                   [&](const std::string& name, const YAML::Node& header) {
                     const std::string text = Scalar(header, "http_server_config.headers." + name);
                     CheckHeader(name, text);
                     config.headers.emplace_back(name, text);
                   });
    } else if (key == "http2") {
      // HTTP/2 needs TLS's ALPN and is only ever offered, never required:
      // clients fall back to HTTP/1.1, which is all this exporter speaks.
      if (!value.IsScalar() || (value.Scalar() != "true" && value.Scalar() != "false")) {
        throw Invalid{"http_server_config.http2: want true or false" + Where(value)};
      }
    } else {
      UnknownKey(kSection, key, value);
    }
  });
}

void ParseUsers(const YAML::Node& node, WebConfig& config) {
  ForEachEntry(node, "basic_auth_users", [&](const std::string& user, const YAML::Node& value) {
    const std::string key = "basic_auth_users." + user;
    if (user.empty() || user.find(':') != std::string::npos) {
      throw Invalid{key + ": a user name must be non-empty and have no ':'"};
    }
    const std::string hash = Scalar(value, key);
    const auto cost = BcryptCost(hash);
    if (!cost) throw Invalid{key + ": not a bcrypt hash (want $2y$, $2b$ or $2a$)"};
    if (*cost > kMaxBcryptCost) {
      throw Invalid{key + ": bcrypt cost " + std::to_string(*cost) + " is above the limit of " +
                    std::to_string(kMaxBcryptCost) + ": every login would take seconds"};
    }
    config.basic_auth_users[user] = hash;
  });
}

// Reads a configuration file whole; small files only, as these are.
bool ReadConfigFile(const std::string& path, std::string& text, std::string& error) {
  constexpr size_t kMaxBytes = 1 << 20;
  // O_NONBLOCK: a FIFO under the name must not hang the start.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  struct stat status;
  if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    error = "cannot read " + path + ": " +
            (S_ISDIR(status.st_mode) ? "a directory" : "not a regular file");
    close(fd);
    return false;
  }
  char buffer[16384];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0 && text.size() <= kMaxBytes) {
    text.append(buffer, static_cast<size_t>(n));
  }
  const int read_errno = errno;
  close(fd);
  if (n < 0) {
    error = "cannot read " + path + ": " + std::strerror(read_errno);
    return false;
  }
  if (text.size() > kMaxBytes) {
    error = "cannot read " + path + ": larger than 1 MiB";
    return false;
  }
  return true;
}

}  // namespace

std::optional<WebConfig> ParseWebConfig(std::string_view yaml, const std::string& base_dir,
                                        std::string& error) {
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    WebConfig config;
    if (root.IsNull()) return config;  // an empty file: plain HTTP, no auth
    std::set<std::pair<int, int>> seen;
    CheckQuotesClose(root, yaml, seen);
    ForEachEntry(root, "", [&](const std::string& key, const YAML::Node& value) {
      if (key == "tls_server_config") {
        config.tls = ParseTls(value, base_dir);
      } else if (key == "http_server_config") {
        ParseHttpServer(value, config);
      } else if (key == "basic_auth_users") {
        ParseUsers(value, config);
      } else {
        UnknownKey("", key, value);
      }
    });
    return config;
  } catch (const Invalid& invalid) {
    error = invalid.message;
  } catch (const YAML::Exception& e) {
    error = "not valid YAML: line " + std::to_string(e.mark.line + 1) + ": " + e.msg;
  }
  return std::nullopt;
}

std::optional<WebConfig> LoadWebConfig(const std::string& path, std::string& error) {
  std::string text;
  if (!ReadConfigFile(path, text, error)) return std::nullopt;
  const size_t slash = path.rfind('/');
  const std::string base_dir = slash == std::string::npos ? "."
                               : slash == 0               ? "/"
                                                          : path.substr(0, slash);
  auto config = ParseWebConfig(text, base_dir, error);
  if (!config) return std::nullopt;
  if (config->tls) {
    for (const auto& [key, file] : {std::pair{"cert_file", config->tls->cert_file},
                                    std::pair{"key_file", config->tls->key_file},
                                    std::pair{"client_ca_file", config->tls->client_ca_file}}) {
      if (file.empty()) continue;
      std::string contents;
      if (!ReadConfigFile(file, contents, error)) {
        error = std::string("tls_server_config.") + key + ": " + error;
        return std::nullopt;
      }
    }
  }
  return config;
}

}  // namespace gocache
