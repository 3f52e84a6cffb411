// `gocache_exporter cacheprog`: a GOCACHEPROG helper that keeps the go
// command's build cache in its own disk format (cache/disk_cache.h), so that
// plain go commands, `check`, `trim` and the exporter use it unchanged.
#pragma once

#include "commands/command.h"

namespace gocache {

const Command& CacheprogCommand();

}  // namespace gocache
