#include "exporter/web_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporter/basic_auth.h"
#include "tests/unit/fixtures.h"

namespace gocache {
namespace {

using testing_util::TempDir;
using namespace std::string_view_literals;

// Real bcrypt hashes (of "alice-secret", cost 10, and "bob-secret", cost 12).
constexpr const char* kAliceHash = "$2y$10$daHNHQMgrNia9hoGXHiwXupYvhJuOGAUo7Ydr21AGdqqvNj3xjR72";
constexpr const char* kBobHash = "$2b$12$/1cIn7XJ1SReH07sUbmRF.iXpiRYzlin.5Wg/zCvKZLOTabs/flAC";

// A well-formed bcrypt hash of the given cost (the salt and hash are made up).
std::string HashOfCost(int cost) {
  std::string hash = "$2y$";
  hash += static_cast<char>('0' + cost / 10);
  hash += static_cast<char>('0' + cost % 10);
  hash += "$";
  hash += std::string(53, 'a');
  return hash;
}

std::optional<WebConfig> Parse(std::string_view yaml, std::string& error,
                               const std::string& base_dir = "/etc/gocache") {
  error.clear();
  return ParseWebConfig(yaml, base_dir, error);
}

WebConfig MustParse(std::string_view yaml, const std::string& base_dir = "/etc/gocache") {
  std::string error;
  auto config = Parse(yaml, error, base_dir);
  EXPECT_TRUE(config.has_value()) << "error: " << error << "\nyaml:\n" << yaml;
  EXPECT_TRUE(error.empty()) << error;
  return config.value_or(WebConfig{});
}

// The YAML is rejected, with an error that names each of `needles`.
void ExpectError(std::string_view yaml, std::initializer_list<std::string_view> needles) {
  std::string error;
  const auto config = Parse(yaml, error);
  EXPECT_FALSE(config.has_value()) << "accepted:\n" << yaml;
  EXPECT_FALSE(error.empty()) << yaml;
  for (std::string_view needle : needles) {
    EXPECT_NE(error.find(needle), std::string::npos)
        << "error '" << error << "' does not mention '" << needle << "'; yaml:\n"
        << yaml;
  }
}

// The TLS part of a configuration with a certificate and key and `extra`.
std::string Tls(const std::string& extra) {
  return "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + extra;
}

TEST(ParseWebConfigTest, FullExample) {
  const std::string yaml = std::string(R"(# node_exporter-style web configuration
tls_server_config:
  cert_file: server.crt
  key_file: /etc/ssl/private/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: certs/ca.crt
  min_version: TLS12
  max_version: TLS13

http_server_config:
  http2: true
  headers:
    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    X-Frame-Options: deny
    X-XSS-Protection: 1; mode=block
    Content-Security-Policy: "default-src 'self'"

basic_auth_users:
  alice: )") + kAliceHash + "\n  bob: '" +
                           kBobHash + "'\n";
  const WebConfig config = MustParse(yaml);
  EXPECT_FALSE(config.empty());
  ASSERT_TRUE(config.tls.has_value());
  EXPECT_EQ(config.tls->cert_file, "/etc/gocache/server.crt");
  EXPECT_EQ(config.tls->key_file, "/etc/ssl/private/server.key");
  EXPECT_EQ(config.tls->client_ca_file, "/etc/gocache/certs/ca.crt");
  EXPECT_EQ(config.tls->client_auth, ClientAuth::kRequireAndVerifyClientCert);
  EXPECT_EQ(config.tls->min_version, 0x0303);
  EXPECT_EQ(config.tls->max_version, 0x0304);

  const std::vector<std::pair<std::string, std::string>> headers = {
      {"Strict-Transport-Security", "max-age=31536000; includeSubDomains"},
      {"X-Content-Type-Options", "nosniff"},
      {"X-Frame-Options", "deny"},
      {"X-XSS-Protection", "1; mode=block"},
      {"Content-Security-Policy", "default-src 'self'"},
  };
  EXPECT_EQ(config.headers, headers);  // in the file's order

  ASSERT_EQ(config.basic_auth_users.size(), 2u);
  EXPECT_EQ(config.basic_auth_users.at("alice"), kAliceHash);
  EXPECT_EQ(config.basic_auth_users.at("bob"), kBobHash);
}

TEST(ParseWebConfigTest, EmptyTextIsPlainHttp) {
  for (const char* yaml : {"", "\n", "# nothing here\n", "---\n", "~\n", "null\n"}) {
    const WebConfig config = MustParse(yaml);
    EXPECT_TRUE(config.empty()) << '"' << yaml << '"';
    EXPECT_FALSE(config.tls.has_value());
  }
}

TEST(ParseWebConfigTest, EmptySectionsAreNothing) {
  const WebConfig config =
      MustParse("tls_server_config:\nhttp_server_config: {}\nbasic_auth_users: {}\n");
  EXPECT_TRUE(config.empty());
  EXPECT_TRUE(MustParse("tls_server_config: {}\n").empty());
  EXPECT_TRUE(MustParse("http_server_config:\n  headers: {}\n  http2: false\n").empty());
}

TEST(ParseWebConfigTest, DefaultsOfTls) {
  const WebConfig config = MustParse(Tls(""));
  ASSERT_TRUE(config.tls.has_value());
  EXPECT_EQ(config.tls->client_ca_file, "");
  EXPECT_EQ(config.tls->client_auth, ClientAuth::kNoClientCert);
  EXPECT_EQ(config.tls->min_version, 0x0303);  // TLS 1.2
  EXPECT_EQ(config.tls->max_version, 0);       // the library's highest
  EXPECT_TRUE(config.basic_auth_users.empty());
  EXPECT_TRUE(config.headers.empty());
}

TEST(ParseWebConfigTest, RelativePathsResolveAgainstBaseDir) {
  const std::string yaml =
      "tls_server_config:\n  cert_file: a/server.crt\n  key_file: ../keys/server.key\n"
      "  client_ca_file: ca.crt\n  client_auth_type: VerifyClientCertIfGiven\n";
  {
    const WebConfig config = MustParse(yaml, "/srv/conf");
    ASSERT_TRUE(config.tls.has_value());
    EXPECT_EQ(config.tls->cert_file, "/srv/conf/a/server.crt");
    EXPECT_EQ(config.tls->key_file, "/srv/conf/../keys/server.key");
    EXPECT_EQ(config.tls->client_ca_file, "/srv/conf/ca.crt");
  }
  {  // a trailing slash is not doubled
    const WebConfig config = MustParse(yaml, "/srv/conf/");
    ASSERT_TRUE(config.tls.has_value());
    EXPECT_EQ(config.tls->cert_file, "/srv/conf/a/server.crt");
  }
  {  // the root directory
    const WebConfig config = MustParse(yaml, "/");
    ASSERT_TRUE(config.tls.has_value());
    EXPECT_EQ(config.tls->cert_file, "/a/server.crt");
  }
  {  // a relative base directory, as for a file named without a slash
    const WebConfig config = MustParse(yaml, ".");
    ASSERT_TRUE(config.tls.has_value());
    EXPECT_EQ(config.tls->cert_file, "./a/server.crt");
    EXPECT_EQ(config.tls->client_ca_file, "./ca.crt");
  }
  {  // no base directory: paths as written
    const WebConfig config = MustParse(yaml, "");
    ASSERT_TRUE(config.tls.has_value());
    EXPECT_EQ(config.tls->cert_file, "a/server.crt");
    EXPECT_EQ(config.tls->key_file, "../keys/server.key");
  }
}

TEST(ParseWebConfigTest, AbsolutePathsKept) {
  const WebConfig config = MustParse(
      "tls_server_config:\n  cert_file: /etc/ssl/certs/server.pem\n"
      "  key_file: /etc/ssl/private/server.key\n  client_ca_file: /etc/ssl/ca.pem\n"
      "  client_auth_type: RequireAndVerifyClientCert\n",
      "/srv/conf");
  ASSERT_TRUE(config.tls.has_value());
  EXPECT_EQ(config.tls->cert_file, "/etc/ssl/certs/server.pem");
  EXPECT_EQ(config.tls->key_file, "/etc/ssl/private/server.key");
  EXPECT_EQ(config.tls->client_ca_file, "/etc/ssl/ca.pem");
}

TEST(ParseWebConfigTest, TlsVersions) {
  const std::pair<const char*, int> versions[] = {
      {"TLS10", 0x0301}, {"TLS11", 0x0302}, {"TLS12", 0x0303}, {"TLS13", 0x0304}};
  for (const auto& [name, value] : versions) {
    const WebConfig min = MustParse(Tls(std::string("  min_version: ") + name + "\n"));
    ASSERT_TRUE(min.tls.has_value()) << name;
    EXPECT_EQ(min.tls->min_version, value) << name;
    EXPECT_EQ(min.tls->max_version, 0) << name;
  }
  for (const auto& [name, value] : versions) {
    // max_version alone: min_version stays TLS 1.2, so only 1.2 and up fit.
    std::string error;
    const auto max = Parse(Tls(std::string("  max_version: ") + name + "\n"), error);
    if (value >= 0x0303) {
      ASSERT_TRUE(max.has_value()) << name << ": " << error;
      EXPECT_EQ(max->tls->max_version, value) << name;
      EXPECT_EQ(max->tls->min_version, 0x0303) << name;
    } else {
      EXPECT_FALSE(max.has_value()) << name;
      EXPECT_NE(error.find("tls_server_config.max_version"), std::string::npos) << error;
    }
  }
  const WebConfig equal = MustParse(Tls("  min_version: TLS11\n  max_version: TLS11\n"));
  ASSERT_TRUE(equal.tls.has_value());
  EXPECT_EQ(equal.tls->min_version, 0x0302);
  EXPECT_EQ(equal.tls->max_version, 0x0302);
}

TEST(ParseWebConfigTest, EveryClientAuthType) {
  const std::pair<const char*, ClientAuth> types[] = {
      {"NoClientCert", ClientAuth::kNoClientCert},
      {"RequestClientCert", ClientAuth::kRequestClientCert},
      {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
      {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
      {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert},
  };
  for (const auto& [name, type] : types) {
    const bool verifies = type == ClientAuth::kVerifyClientCertIfGiven ||
                          type == ClientAuth::kRequireAndVerifyClientCert;
    const std::string extra = std::string("  client_auth_type: ") + name + "\n" +
                              (verifies ? "  client_ca_file: ca.crt\n" : "");
    const WebConfig config = MustParse(Tls(extra));
    ASSERT_TRUE(config.tls.has_value()) << name;
    EXPECT_EQ(config.tls->client_auth, type) << name;
    EXPECT_EQ(config.tls->client_ca_file, verifies ? "/etc/gocache/ca.crt" : "") << name;
  }
}

TEST(ParseWebConfigTest, HeadersCaseInsensitive) {
  const WebConfig config = MustParse(
      "http_server_config:\n  headers:\n"
      "    strict-transport-security: max-age=63072000\n"
      "    x-content-type-options: NoSniff\n"
      "    X-FRAME-OPTIONS: SAMEORIGIN\n"
      "    x-xss-protection: '0'\n"
      "    content-security-policy: frame-ancestors 'none'\n");
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"strict-transport-security", "max-age=63072000"},
      {"x-content-type-options", "NoSniff"},
      {"X-FRAME-OPTIONS", "SAMEORIGIN"},
      {"x-xss-protection", "0"},
      {"content-security-policy", "frame-ancestors 'none'"},
  };
  EXPECT_EQ(config.headers, headers);  // kept as written
  EXPECT_FALSE(config.empty());
  EXPECT_FALSE(config.tls.has_value());
}

TEST(ParseWebConfigTest, HeaderValuesChecked) {
  for (const char* value : {"deny", "DENY", "sameorigin", "SameOrigin"}) {
    EXPECT_EQ(MustParse(std::string("http_server_config:\n  headers:\n    X-Frame-Options: ") +
                        value + "\n")
                  .headers.size(),
              1u)
        << value;
  }
  ExpectError("http_server_config:\n  headers:\n    X-Frame-Options: allow-from x\n",
              {"http_server_config.headers.X-Frame-Options", "deny or sameorigin", "allow-from"});
  ExpectError("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
              {"http_server_config.headers.X-Content-Type-Options", "nosniff", "'sniff'"});
  ExpectError("http_server_config:\n  headers:\n    X-Frame-Options: deny, sameorigin\n",
              {"http_server_config.headers.X-Frame-Options"});
}

TEST(ParseWebConfigTest, Http2) {
  EXPECT_TRUE(MustParse("http_server_config:\n  http2: true\n").empty());
  EXPECT_TRUE(MustParse("http_server_config:\n  http2: false\n").empty());
  for (const char* value : {"yes", "1", "[true]", "{a: b}", "~", "True"}) {
    ExpectError(std::string("http_server_config:\n  http2: ") + value + "\n",
                {"http_server_config.http2", "true or false"});
  }
}

TEST(ParseWebConfigTest, BcryptCostBounds) {
  for (int cost : {4, 10, kMaxBcryptCost}) {
    const WebConfig config = MustParse("basic_auth_users:\n  u: " + HashOfCost(cost) + "\n");
    EXPECT_EQ(config.basic_auth_users.size(), 1u) << cost;
  }
  for (int cost : {kMaxBcryptCost + 1, 20, 31}) {
    ExpectError(
        "basic_auth_users:\n  carol: " + HashOfCost(cost) + "\n",
        {"basic_auth_users.carol", "cost " + std::to_string(cost), std::to_string(kMaxBcryptCost)});
  }
}

TEST(ParseWebConfigTest, UnknownKeysNameTheDottedKey) {
  ExpectError("tls_config:\n  cert_file: a\n", {"tls_config", "unknown key"});
  ExpectError("basic_auth_users: {}\nrate_limit: {}\n", {"rate_limit", "unknown key"});
  ExpectError(Tls("  certfile: x\n"), {"tls_server_config.certfile", "unknown key", "line 4"});
  ExpectError("http_server_config:\n  http3: true\n",
              {"http_server_config.http3", "unknown key", "line 2"});
  ExpectError("http_server_config:\n  header:\n    X-Frame-Options: deny\n",
              {"http_server_config.header", "unknown key"});
}

TEST(ParseWebConfigTest, UnsupportedKeysSaySo) {
  for (const char* key : {"cipher_suites", "curve_preferences", "prefer_server_cipher_suites",
                          "client_allowed_sans", "cert", "key", "client_ca"}) {
    ExpectError(Tls(std::string("  ") + key + ": [x]\n"),
                {std::string("tls_server_config.") + key, "not supported"});
  }
}

TEST(ParseWebConfigTest, WrongTypes) {
  ExpectError("- tls_server_config\n", {"the file", "mapping"});
  ExpectError("just a string\n", {"the file", "mapping"});
  ExpectError("tls_server_config: yes\n", {"tls_server_config", "mapping"});
  ExpectError("tls_server_config: [cert_file]\n", {"tls_server_config", "mapping"});
  ExpectError("http_server_config: [headers]\n", {"http_server_config", "mapping"});
  ExpectError("http_server_config:\n  headers: [X-Frame-Options]\n",
              {"http_server_config.headers", "mapping"});
  ExpectError("http_server_config:\n  headers:\n    X-Frame-Options: [deny]\n",
              {"http_server_config.headers.X-Frame-Options", "string"});
  ExpectError("http_server_config:\n  headers:\n    X-Frame-Options:\n",
              {"http_server_config.headers.X-Frame-Options", "string"});
  ExpectError("basic_auth_users: [alice]\n", {"basic_auth_users", "mapping"});
  ExpectError("basic_auth_users:\n  alice: [x]\n", {"basic_auth_users.alice", "string"});
  ExpectError("basic_auth_users:\n  alice:\n", {"basic_auth_users.alice", "string"});
  ExpectError("tls_server_config:\n  cert_file: [a, b]\n  key_file: k\n",
              {"tls_server_config.cert_file", "string", "line 2"});
  ExpectError("tls_server_config:\n  cert_file: c\n  key_file: {a: b}\n",
              {"tls_server_config.key_file", "string"});
  ExpectError(Tls("  client_ca_file: ~\n"), {"tls_server_config.client_ca_file", "string"});
  ExpectError(Tls("  client_auth_type: [NoClientCert]\n"),
              {"tls_server_config.client_auth_type", "string"});
  ExpectError(Tls("  min_version: 1.2\n"), {"tls_server_config.min_version", "TLS12", "'1.2'"});
  ExpectError(Tls("  max_version: tls13\n"), {"tls_server_config.max_version", "'tls13'"});
  ExpectError(Tls("  min_version: [TLS12]\n"), {"tls_server_config.min_version", "string"});
  ExpectError("? [a, b]\n: c\n", {"the file", "keys must be strings"});
  ExpectError("basic_auth_users:\n  ? {a: b}\n  : c\n", {"basic_auth_users", "keys"});
}

TEST(ParseWebConfigTest, MissingCertOrKey) {
  ExpectError("tls_server_config:\n  key_file: server.key\n", {"tls_server_config.cert_file"});
  ExpectError("tls_server_config:\n  cert_file: server.crt\n", {"tls_server_config.key_file"});
  ExpectError("tls_server_config:\n  cert_file: ''\n  key_file: k\n",
              {"tls_server_config.cert_file", "missing"});
  // Any TLS setting asks for TLS, and TLS needs a certificate and key.
  ExpectError("tls_server_config:\n  min_version: TLS13\n", {"tls_server_config.cert_file"});
}

TEST(ParseWebConfigTest, ClientCaFileAndClientAuthType) {
  for (const char* type : {"VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}) {
    ExpectError(Tls(std::string("  client_auth_type: ") + type + "\n"),
                {"tls_server_config.client_ca_file", "missing"});
  }
  for (const char* type : {"NoClientCert", "RequestClientCert", "RequireAnyClientCert"}) {
    ExpectError(Tls(std::string("  client_auth_type: ") + type + "\n  client_ca_file: ca.crt\n"),
                {"tls_server_config.client_ca_file", "does not verify"});
  }
  ExpectError(Tls("  client_ca_file: ca.crt\n"),
              {"tls_server_config.client_ca_file", "not set to verify"});
  ExpectError(Tls("  client_auth_type: RequireClientCert\n"),
              {"tls_server_config.client_auth_type", "'RequireClientCert'"});
  ExpectError(Tls("  client_auth_type: requireandverifyclientcert\n  client_ca_file: c\n"),
              {"tls_server_config.client_auth_type"});
}

TEST(ParseWebConfigTest, MaxVersionBelowMin) {
  ExpectError(Tls("  min_version: TLS13\n  max_version: TLS12\n"),
              {"tls_server_config.max_version", "min_version"});
  ExpectError(Tls("  max_version: TLS10\n"), {"tls_server_config.max_version"});
}

TEST(ParseWebConfigTest, BadHeaders) {
  for (const char* name : {"Set-Cookie", "Server", "Content-Type", "X-Frame-Option",
                           "X-Frame-Options-X", "Access-Control-Allow-Origin"}) {
    ExpectError(std::string("http_server_config:\n  headers:\n    ") + name + ": x\n",
                {std::string("http_server_config.headers.") + name, "cannot be set"});
  }
  ExpectError("http_server_config:\n  headers:\n    Content-Security-Policy: ''\n",
              {"http_server_config.headers.Content-Security-Policy", "non-empty"});
}

TEST(ParseWebConfigTest, HeaderValueWithCrOrLf) {
  for (const char* value : {R"("max-age=1\r\nSet-Cookie: a=b")", R"("max-age=1\nX: y")",
                            R"("max-age=1\r")", R"("\n")", "|\n      max-age=1\n      X: y"}) {
    ExpectError(std::string("http_server_config:\n  headers:\n    Strict-Transport-Security: ") +
                    value + "\n",
                {"http_server_config.headers.Strict-Transport-Security", "one-line"});
  }
}

// A NUL in a header's name or value must not pass the allowlist (a check on
// C strings would stop at it), since the response writes the whole string.
TEST(ParseWebConfigTest, HeaderWithNulRejected) {
  ExpectError(
      "http_server_config:\n  headers:\n    \"X-Frame-Options\\0\\r\\nSet-Cookie: a\": deny\n",
      {"http_server_config.headers.X-Frame-Options: has a NUL"});
  ExpectError("http_server_config:\n  headers:\n    \"X-Frame-Options\0x\": deny\n"sv,
              {"http_server_config.headers.X-Frame-Options"});
  ExpectError("http_server_config:\n  headers:\n    X-Content-Type-Options: \"nosniff\\0x\"\n",
              {"http_server_config.headers.X-Content-Type-Options"});
  ExpectError("http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\0b\"\n",
              {"http_server_config.headers.Content-Security-Policy", "NUL"});
}

TEST(ParseWebConfigTest, BadUsers) {
  ExpectError("basic_auth_users:\n  alice: secret\n",
              {"basic_auth_users.alice", "not a bcrypt hash"});
  ExpectError("basic_auth_users:\n  alice: $1$abc$defghijklmnopqrstuvwxyz\n",
              {"basic_auth_users.alice", "bcrypt"});
  ExpectError(  // SHA-512 crypt
      "basic_auth_users:\n  alice: "
      "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/"
      "jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/\n",
      {"basic_auth_users.alice", "bcrypt"});
  ExpectError("basic_auth_users:\n  alice: \"\"\n", {"basic_auth_users.alice", "bcrypt"});
  ExpectError("basic_auth_users:\n  'al:ice': " + HashOfCost(10) + "\n",
              {"basic_auth_users.al:ice", "':'"});
  ExpectError("basic_auth_users:\n  '': " + HashOfCost(10) + "\n",
              {"basic_auth_users.", "non-empty"});
  // Costs below bcrypt's minimum are no bcrypt hash at all.
  ExpectError("basic_auth_users:\n  dave: " + HashOfCost(3) + "\n",
              {"basic_auth_users.dave", "bcrypt"});
}

TEST(ParseWebConfigTest, InvalidYamlNamesTheLine) {
  ExpectError("basic_auth_users:\n  alice: x\n bob: [\n", {"not valid YAML", "line "});
  ExpectError("tls_server_config:\n  cert_file: [a\n  key_file: b\n", {"not valid YAML", "line "});
  {
    std::string error;
    EXPECT_FALSE(Parse("a: b\nc: [d\n\ne: f\n", error).has_value());
    EXPECT_NE(error.find("not valid YAML"), std::string::npos) << error;
    EXPECT_NE(error.find("line "), std::string::npos) << error;
  }
  {  // the line is the one at fault
    std::string error;
    EXPECT_FALSE(Parse("http_server_config:\n  http2: true\n\tbad: tab\n", error).has_value());
    EXPECT_NE(error.find("line 3"), std::string::npos) << error;
  }
  ExpectError("{tls_server_config: {cert_file: a, key_file: b}\n", {"not valid YAML"});
  ExpectError("*undefined_alias\n", {"not valid YAML"});
}

// yaml-cpp 0.7 takes a quoted scalar that is never closed to run to the end
// of the file: a missing closing quote on a header that allows any value
// swallows every setting after it, and the exporter would run without the
// basic auth the file asks for (and send the hashes in the header).
// The check for unclosed quotes walks every node once: an alias that
// contains its own anchor, and ten levels of ten aliases each (10^10 paths
// through the tree), are over at once.
TEST(ParseWebConfigTest, AliasesAreWalkedOnce) {
  ExpectError("a: &a [*a, 'x']\n", {"a: unknown key"});
  std::string laughs = "l0: &l0 ['lol', \"lol\", lol]\n";
  for (int i = 1; i <= 10; ++i) {
    laughs += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) laughs += (j ? ", *l" : "*l") + std::to_string(i - 1);
    laughs += "]\n";
  }
  ExpectError(laughs, {"l0: unknown key"});
}

TEST(ParseWebConfigTest, UnterminatedQuoteRejected) {
  const std::string yaml = std::string(
                               "http_server_config:\n  headers:\n"
                               "    Content-Security-Policy: \"default-src 'self'\n"
                               "basic_auth_users:\n  alice: ") +
                           kAliceHash + "\n";
  std::string error;
  const auto config = Parse(yaml, error);
  if (config) {
    ADD_FAILURE() << "accepted, with " << config->basic_auth_users.size()
                  << " basic auth users and the header value '"
                  << (config->headers.empty() ? "" : config->headers[0].second) << "'";
  }
  ExpectError("tls_server_config:\n  cert_file: \"unterminated\n", {"not valid YAML"});
  ExpectError("tls_server_config:\n  cert_file: 'unterminated\n", {"not valid YAML"});
}

// yaml-cpp keeps every entry of a mapping, a repeated key included: a
// second, empty tls_server_config turns TLS off without a word, and a
// repeated user keeps only the last hash. Go's YAML decoders, and so
// node_exporter, refuse a repeated key.
TEST(ParseWebConfigTest, RepeatedKeysRejected) {
  ExpectError(Tls("") + "basic_auth_users: {}\ntls_server_config:\n", {"tls_server_config"});
  ExpectError(
      "basic_auth_users:\n  alice: " + HashOfCost(10) + "\n  alice: " + HashOfCost(4) + "\n",
      {"basic_auth_users.alice"});
  ExpectError(Tls("  cert_file: other.crt\n"), {"tls_server_config.cert_file"});
  ExpectError(
      "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
      "    X-Frame-Options: sameorigin\n",
      {"http_server_config.headers.X-Frame-Options"});
}

TEST(ParseWebConfigTest, AnErrorIsOneLine) {
  for (const char* yaml :
       {"tls_server_config: {cert_file: a}\n", "basic_auth_users:\n  alice: x\n",
        "http_server_config:\n  headers:\n    Server: x\n", "nonsense: 1\n", "a: [b\n"}) {
    std::string error;
    EXPECT_FALSE(Parse(yaml, error).has_value()) << yaml;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

// LoadWebConfig: the file, then the files it names.
class LoadWebConfigTest : public ::testing::Test {
 protected:
  TempDir tmp_;
};

TEST_F(LoadWebConfigTest, ReadsFileAndResolvesAgainstItsDirectory) {
  tmp_.MakeDir("conf");
  tmp_.WriteFile("conf/server.crt", "cert");
  tmp_.WriteFile("conf/server.key", "key");
  const std::string path = tmp_.WriteFile(
      "conf/web.yml", Tls("") + "basic_auth_users:\n  alice: " + std::string(kAliceHash) + "\n");
  std::string error;
  const auto config = LoadWebConfig(path, error);
  ASSERT_TRUE(config.has_value()) << error;
  ASSERT_TRUE(config->tls.has_value());
  EXPECT_EQ(config->tls->cert_file, tmp_ / "conf/server.crt");
  EXPECT_EQ(config->tls->key_file, tmp_ / "conf/server.key");
  EXPECT_EQ(config->basic_auth_users.size(), 1u);
}

TEST_F(LoadWebConfigTest, EmptyFile) {
  std::string error;
  const auto config = LoadWebConfig(tmp_.WriteFile("web.yml", ""), error);
  ASSERT_TRUE(config.has_value()) << error;
  EXPECT_TRUE(config->empty());
}

TEST_F(LoadWebConfigTest, MissingFile) {
  const std::string path = tmp_ / "no-such.yml";
  std::string error;
  EXPECT_FALSE(LoadWebConfig(path, error).has_value());
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
}

TEST_F(LoadWebConfigTest, Directory) {
  const std::string path = tmp_.MakeDir("web.yml");
  std::string error;
  EXPECT_FALSE(LoadWebConfig(path, error).has_value());
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("directory"), std::string::npos) << error;
}

TEST_F(LoadWebConfigTest, ParseErrorPassedOn) {
  std::string error;
  EXPECT_FALSE(LoadWebConfig(tmp_.WriteFile("web.yml", "tls_server_config: [x]\n"), error));
  EXPECT_NE(error.find("tls_server_config"), std::string::npos) << error;
}

TEST_F(LoadWebConfigTest, MissingCert) {
  tmp_.WriteFile("server.key", "key");
  const std::string path = tmp_.WriteFile("web.yml", Tls(""));
  std::string error;
  EXPECT_FALSE(LoadWebConfig(path, error).has_value());
  EXPECT_NE(error.find("tls_server_config.cert_file"), std::string::npos) << error;
  EXPECT_NE(error.find(tmp_ / "server.crt"), std::string::npos) << error;
}

TEST_F(LoadWebConfigTest, MissingKey) {
  tmp_.WriteFile("server.crt", "cert");
  const std::string path = tmp_.WriteFile("web.yml", Tls(""));
  std::string error;
  EXPECT_FALSE(LoadWebConfig(path, error).has_value());
  EXPECT_NE(error.find("tls_server_config.key_file"), std::string::npos) << error;
  EXPECT_NE(error.find(tmp_ / "server.key"), std::string::npos) << error;
}

TEST_F(LoadWebConfigTest, MissingClientCa) {
  tmp_.WriteFile("server.crt", "cert");
  tmp_.WriteFile("server.key", "key");
  const std::string path =
      tmp_.WriteFile("web.yml", Tls("  client_auth_type: RequireAndVerifyClientCert\n  "
                                    "client_ca_file: /nonexistent/ca.crt\n"));
  std::string error;
  EXPECT_FALSE(LoadWebConfig(path, error).has_value());
  EXPECT_NE(error.find("tls_server_config.client_ca_file"), std::string::npos) << error;
  EXPECT_NE(error.find("/nonexistent/ca.crt"), std::string::npos) << error;
}

TEST_F(LoadWebConfigTest, CertIsDirectory) {
  tmp_.MakeDir("server.crt");
  tmp_.WriteFile("server.key", "key");
  const std::string path = tmp_.WriteFile("web.yml", Tls(""));
  std::string error;
  EXPECT_FALSE(LoadWebConfig(path, error).has_value());
  EXPECT_NE(error.find("tls_server_config.cert_file"), std::string::npos) << error;
  EXPECT_NE(error.find(tmp_ / "server.crt"), std::string::npos) << error;
}

// (A file the exporter's user cannot read is tested in test_web.py, as
// nobody: these tests run as root, which reads any file.)
TEST_F(LoadWebConfigTest, CertThatIsAFifoIsRefusedWithoutBlocking) {
  tmp_.WriteFile("server.key", "key");
  ASSERT_EQ(mkfifo((tmp_ / "server.crt").c_str(), 0600), 0);
  const std::string path = tmp_.WriteFile("web.yml", Tls(""));
  std::string error;
  EXPECT_FALSE(LoadWebConfig(path, error).has_value());
  EXPECT_NE(error.find("tls_server_config.cert_file"), std::string::npos) << error;
  EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
}

TEST_F(LoadWebConfigTest, RelativeFileNameResolvesAgainstCurrentDirectory) {
  tmp_.WriteFile("server.crt", "cert");
  tmp_.WriteFile("server.key", "key");
  tmp_.WriteFile("web.yml", Tls(""));
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(chdir(tmp_.path().c_str()), 0);
  std::string error;
  const auto config = LoadWebConfig("web.yml", error);
  ASSERT_EQ(chdir(cwd), 0);
  ASSERT_TRUE(config.has_value()) << error;
  EXPECT_EQ(config->tls->cert_file, "./server.crt");
}

}  // namespace
}  // namespace gocache
