// A stand-in for libssl.so that CivetWeb loads instead of the real one.
//
// Debian's CivetWeb 1.15 loads OpenSSL at run time: it opens libssl.so and
// libcrypto.so (names only the -dev package installs) and looks up each
// function by name. OpenSSL 3 renamed SSL_get_peer_certificate to
// SSL_get1_peer_certificate (the old name is a macro now), so that lookup
// leaves a null pointer, which CivetWeb calls on every TLS connection.
//
// This library has the soname libssl.so and depends on the real libssl.so.3,
// where every other lookup finds its function, and it defines the old name.
// tls.cc loads it, and the libcrypto.so stand-in, before CivetWeb starts; a
// library already loaded answers a dlopen of its soname.
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate

extern "C" __attribute__((visibility("default"))) X509* SSL_get_peer_certificate(const SSL* ssl) {
  return SSL_get1_peer_certificate(ssl);
}
