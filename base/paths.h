// Paths as the exporter names things by them (the `path` and `module` labels).
#pragma once

#include <string>

namespace gocache {

// Absolute, without trailing slashes or "." components; symbolic links are
// kept as given (the `path` label is the directory as configured).
std::string AbsolutePath(const std::string& path);

}  // namespace gocache
