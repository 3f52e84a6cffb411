// A stand-in for libcrypto.so: nothing but its soname and a dependency on the
// real libcrypto.so.3, so that CivetWeb finds OpenSSL without the -dev
// package. See civetweb_libssl.cc.
