// Sends the helper's reports (cache/cacheprog_report.h) to a running
// exporter over a unix stream socket, one line each, in batches (within
// 100 ms), never waiting: what cannot go waits in a bounded buffer; a report
// that finds no exporter, or no room, is counted as lost, and the count goes
// with the next report delivered. A build never notices.
//
// A stream, not datagrams: a unix datagram socket queues 10 datagrams by
// default (net.unix.max_dgram_qlen), which a build's burst of gets overruns
// whenever the exporter is not scheduled for a moment.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "cache/cacheprog_report.h"

namespace gocache::helper {

class Reporter {
 public:
  // `socket_path` empty: reports nothing, counts nothing.
  Reporter(std::string socket_path, std::string cache_path);
  // Finishes, and disconnects.
  ~Reporter();
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  // Fills in the pid, the path (unless the report names one) and the count
  // of lost reports, and sends.
  // Safe from any thread.
  void Send(cacheprog_report::Report report);

  // Gives what is still buffered up to 200 ms to go. The go command kills
  // its helper once it has the answer to its close, so this comes before.
  void Finish();

  // Reports lost and not yet counted in one delivered.
  uint64_t lost();

 private:
  bool Connect();  // with mu_ held
  void Flush();    // with mu_ held
  void Disconnect();
  void FlushLoop();  // the batches' thread, started with the first report

  const std::string socket_path_;
  const std::string cache_path_;
  std::mutex mu_;
  int fd_ = -1;
  std::chrono::steady_clock::time_point last_attempt_{};
  std::string pending_;  // whole lines not yet written
  uint64_t lost_ = 0;
  bool stopping_ = false;
  std::condition_variable waiting_;
  std::thread flusher_;
};

}  // namespace gocache::helper
