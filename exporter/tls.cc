#include "exporter/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstdint>

namespace gocache {
namespace {

// OpenSSL's reason for the last failure, and clears its error queue.
std::string OpenSslError() {
  std::string reason;
  while (const unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    reason = text;  // the last is the outermost
  }
  return reason.empty() ? "unknown error" : reason;
}

constexpr uint64_t kNoDefaults = ~uint64_t{0};

// The options OpenSSL gives a new server context, or kNoDefaults.
uint64_t DefaultServerOptions() {
  SSL_CTX* fresh = SSL_CTX_new(TLS_server_method());
  if (fresh == nullptr) return kNoDefaults;
  const uint64_t options = SSL_CTX_get_options(fresh);
  SSL_CTX_free(fresh);
  return options;
}

// Go's RequestClientCert and RequireAnyClientCert ask for a certificate but
// do not verify it.
int AcceptAnyCertificate(int, X509_STORE_CTX*) { return 1; }

}  // namespace

bool CheckServerConfig(const TlsConfig& config, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    error = "cannot set up TLS: " + OpenSslError();
    return false;
  }
  const bool ok = ConfigureServerContext(ctx, config, error);
  SSL_CTX_free(ctx);
  return ok;
}

bool ConfigureServerContext(SSL_CTX* ctx, const TlsConfig& config, std::string& error) {
  // The context's options are ours, from the defaults of a new context, not
  // whatever CivetWeb set before: a CivetWeb built for OpenSSL 1.x sets bits
  // that mean other things in OpenSSL 3 (among them
  // SSL_OP_DISABLE_TLSEXT_CA_NAMES: the client CA names went out as an empty
  // list, which Go's TLS rejects).
  const uint64_t defaults = DefaultServerOptions();
  if (defaults == kNoDefaults) {
    error = "cannot set up TLS: " + OpenSslError();
    return false;
  }
  SSL_CTX_clear_options(ctx, SSL_CTX_get_options(ctx));
  SSL_CTX_set_options(ctx, defaults | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(ctx, config.min_version) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, config.max_version) != 1) {
    error = "tls_server_config.min_version: " + OpenSslError();
    return false;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
    error = "tls_server_config.cert_file: " + config.cert_file + ": " + OpenSslError();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = "tls_server_config.key_file: " + config.key_file + ": " + OpenSslError();
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    error = "tls_server_config.key_file: " + config.key_file +
            " does not match the certificate in " + config.cert_file;
    return false;
  }

  int mode = SSL_VERIFY_NONE;
  SSL_verify_cb callback = nullptr;
  switch (config.client_auth) {
    case ClientAuth::kNoClientCert:
      break;
    case ClientAuth::kRequestClientCert:
      mode = SSL_VERIFY_PEER;
      callback = AcceptAnyCertificate;
      break;
    case ClientAuth::kRequireAnyClientCert:
      mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      callback = AcceptAnyCertificate;
      break;
    case ClientAuth::kVerifyClientCertIfGiven:
      mode = SSL_VERIFY_PEER;
      break;
    case ClientAuth::kRequireAndVerifyClientCert:
      mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      break;
  }
  if (!config.client_ca_file.empty()) {
    const char* file = config.client_ca_file.c_str();
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(file);
    if (names == nullptr || SSL_CTX_load_verify_locations(ctx, file, nullptr) != 1) {
      if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
      error = "tls_server_config.client_ca_file: " + config.client_ca_file +
              ": no certificate could be loaded: " + OpenSslError();
      return false;
    }
    SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
  }
  SSL_CTX_set_verify(ctx, mode, callback);
  // Sessions that carry a verified client certificate can be resumed only
  // within the context that verified it.
  static const unsigned char kSessionContext[] = "gocache_exporter";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  return true;
}

}  // namespace gocache
