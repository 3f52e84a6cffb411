// `gocache_exporter trim`: removes the least recently used entries of a build
// cache until every bound holds (cache/cache_trim.h does the work).
#pragma once

#include <string>

#include "cache/cache_trim.h"
#include "commands/command.h"

namespace gocache {

std::string TrimText(const std::string& dir, const TrimResult& result, bool dry_run);
std::string TrimJson(const std::string& dir, const TrimResult& result, bool dry_run);

const Command& TrimCommand();

}  // namespace gocache
