// A thread that can be abandoned: work that is stuck in a system call (a hung
// NFS mount) must not keep the exporter from answering or from exiting.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace gocache {

class Worker {
  struct State;

 public:
  // The body's view of its worker. It shares ownership of the state, so a
  // body left running after Stop() never touches freed memory; whatever else
  // the body uses it must likewise own (capture shared_ptrs).
  class Control {
   public:
    bool stop_requested() const;
    // Sleeps until `timeout` passed, Wake() was called, or a stop was
    // requested. Returns false when a stop was requested.
    bool Sleep(std::chrono::milliseconds timeout) const;

   private:
    friend class Worker;
    explicit Control(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
  };

  explicit Worker(std::function<void(const Control&)> body);
  ~Worker();  // Stop(1s)

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Ends the current Sleep() early.
  void Wake();
  // Asks the body to return and waits up to `grace` for it; a body still
  // running then is left behind (detached) rather than waited for.
  void Stop(std::chrono::milliseconds grace);

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
    bool wake = false;
    bool done = false;
  };
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace gocache
