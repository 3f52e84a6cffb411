// What the fuzz targets share: a check that stays on in release builds
// (assert is compiled out by NDEBUG) and a guard that turns an escaping
// exception into a crash with its message. libFuzzer reports an abort as a
// crash and saves the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <exception>

#define FUZZ_CHECK(condition)                                                                     \
  do {                                                                                            \
    if (!(condition)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

namespace gocache::fuzz {

// Runs one input through `body`; the parsers report errors by value, so
// any exception that escapes is a bug.
template <typename Body>
int Guarded(Body&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: exception escaped the parser: %s\n", e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz: a non-standard exception escaped the parser\n");
    std::abort();
  }
  return 0;
}

}  // namespace gocache::fuzz
