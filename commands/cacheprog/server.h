// The GOCACHEPROG helper's serving loop: requests read on one thread in the
// order the go command sends them, gets answered there (a get is a stat and
// a read of 175 bytes), puts handed to writer threads so that a parallel
// build never waits for one slow write, answers written whole, one line at a
// time, in whatever order they are ready.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "cache/cache_budget.h"
#include "cache/cacheprog_report.h"
#include "cache/disk_cache.h"
#include "commands/cacheprog/protocol.h"

namespace gocache::helper {

struct ServeOptions {
  uint64_t max_body_size = uint64_t{1} << 30;
  int put_threads = 4;
  // The bounds to keep as puts write, if any (--max-bytes,
  // --max-inode-usage); it also learns which outputs this helper handed out.
  CacheBudget* budget = nullptr;
  // Runs once every put before a close is answered, and before the close
  // is: the go command kills its helper as soon as it reads that answer, so
  // whatever the helper still has to do happens here.
  std::function<void()> before_close = {};
};

// What became of one request, for the metrics.
struct RequestRecord {
  RequestCommand command = RequestCommand::kGet;
  cacheprog_report::Result result = cacheprog_report::Result::kError;
  MissReason miss = MissReason::kNone;   // why a get missed
  uint64_t bytes = 0;                    // output bytes served (get) or stored (put)
  std::chrono::nanoseconds duration{0};  // from reading the request to writing the answer
};

using RecordSink = std::function<void(const RequestRecord&)>;
using EvictionSink = std::function<void(const Eviction&)>;

struct ServeResult {
  bool closed = false;  // the go command said close (else its input ended)
  std::string problem;  // how the input or output failed, if it did
};

// Serves `cache` on in_fd/out_fd until a close request (answered after every
// put before it) or the end of the input. `record` is called once per
// request answered, `evicted` once per eviction a put made, from any thread.
ServeResult Serve(const DiskCache& cache, int in_fd, int out_fd, const ServeOptions& options,
                  const RecordSink& record, const EvictionSink& evicted = nullptr);

}  // namespace gocache::helper
