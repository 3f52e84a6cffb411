// The server side of TLS, set up from the web configuration with OpenSSL in
// the context CivetWeb creates, so that every setting of the format can be
// honoured and a mistake is reported with OpenSSL's own reason.
#pragma once

#include <string>

#include "exporter/web_config.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace gocache {

// Loads the certificate chain, key and client CAs into `ctx` and applies the
// client auth policy and protocol versions. On error returns false and sets
// `error` to one line naming the file or setting at fault.
bool ConfigureServerContext(SSL_CTX* ctx, const TlsConfig& config, std::string& error);

// Whether a server context can be set up from `config`: run before the
// exporter starts, so that a mistake is a usage error.
bool CheckServerConfig(const TlsConfig& config, std::string& error);

}  // namespace gocache
