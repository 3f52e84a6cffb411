// What `--version` and gocache_exporter_build_info report.
#pragma once

namespace gocache {

extern const char* const kVersion;
extern const char* const kRevision;
extern const char* const kCompiler;

}  // namespace gocache
