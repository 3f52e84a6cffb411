// cacheprog collector: what the GOCACHEPROG helpers on this host
// (`gocache_exporter cacheprog`) did, request by request. Each helper
// connects to --cacheprog.socket and writes one line per event
// (cache/cacheprog_report.h), never waiting; the collector receives them on
// a thread of its own, keeps running totals per cache and renders them at
// each scrape. A helper is running while its connection is open. Off by
// default: it binds a socket.
#pragma once

#include "collectors/collector.h"

namespace gocache::cacheprog {

CollectorInfo Info();

}  // namespace gocache::cacheprog
