#include "base/worker.h"

namespace gocache {

bool Worker::Control::stop_requested() const {
  std::lock_guard lock(state_->mu);
  return state_->stop;
}

bool Worker::Control::Sleep(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(state_->mu);
  state_->cv.wait_for(lock, timeout, [&] { return state_->stop || state_->wake; });
  state_->wake = false;
  return !state_->stop;
}

Worker::Worker(std::function<void(const Control&)> body) : state_(std::make_shared<State>()) {
  thread_ = std::thread([control = Control(state_), body = std::move(body)] {
    body(control);
    auto& state = *control.state_;
    std::lock_guard lock(state.mu);
    state.done = true;
    state.cv.notify_all();
  });
}

Worker::~Worker() { Stop(std::chrono::seconds(1)); }

void Worker::Wake() {
  std::lock_guard lock(state_->mu);
  state_->wake = true;
  state_->cv.notify_all();
}

void Worker::Stop(std::chrono::milliseconds grace) {
  if (!thread_.joinable()) return;
  bool done;
  {
    std::unique_lock lock(state_->mu);
    state_->stop = true;
    state_->cv.notify_all();
    done = state_->cv.wait_for(lock, grace, [&] { return state_->done; });
  }
  if (done) {
    thread_.join();
  } else {
    thread_.detach();
  }
}

}  // namespace gocache
