// `cacheprog --wrap -- CMD ARGS...`: another GOCACHEPROG helper (a remote
// cache, say) run as this one's child, with the protocol relayed unchanged
// both ways and each of its answers timed. Its stderr is this process's, and
// its exit status becomes this process's.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "commands/cacheprog/server.h"

namespace gocache::helper {

struct WrapResult {
  int exit_code = 0;    // the wrapped helper's; 128 + the signal that ended it
  std::string problem;  // why it could not run, if it could not
};

// Runs `command` (argv[0] looked up on PATH) and relays between in_fd/out_fd
// and it until it exits. `record` is called, on the calling thread, once per
// get or put it answers: "hit" with its Size, "miss" (reason kRemote), "ok"
// with the put's BodySize, or "error", timed from reading the request to
// writing the answer. `before_close` runs before its answer to a close is
// passed on (see ServeOptions::before_close).
WrapResult Wrap(const std::vector<std::string>& command, int in_fd, int out_fd,
                const RecordSink& record, const std::function<void()>& before_close);

}  // namespace gocache::helper
