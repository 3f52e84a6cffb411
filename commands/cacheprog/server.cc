#include "commands/cacheprog/server.h"

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "base/write_all.h"

namespace gocache::helper {
namespace {

using Clock = std::chrono::steady_clock;
using Result = cacheprog_report::Result;

// Writes each answer as one write of a whole line, so that answers from
// different threads never interleave.
class ResponseWriter {
 public:
  explicit ResponseWriter(int fd) : fd_(fd) {}

  bool Send(const Response& response) {
    const std::string line = FormatResponse(response);
    std::lock_guard lock(mu_);
    if (!broken_ && !WriteAll(fd_, line)) broken_ = true;
    return !broken_;
  }

  bool broken() {
    std::lock_guard lock(mu_);
    return broken_;
  }

 private:
  int fd_;
  std::mutex mu_;
  bool broken_ = false;
};

struct Pending {
  Request request;
  Clock::time_point read_at;
};

class Server {
 public:
  Server(const DiskCache& cache, int out_fd, const ServeOptions& options, const RecordSink& record,
         const EvictionSink& evicted)
      : cache_(cache), out_(out_fd), budget_(options.budget), record_(record), evicted_(evicted) {
    for (int i = 0; i < std::max(1, options.put_threads); ++i) {
      writers_.emplace_back([this] { WriterLoop(); });
    }
  }

  ~Server() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    work_.notify_all();
    for (auto& thread : writers_) thread.join();
  }

  ResponseWriter& out() { return out_; }

  void Get(const Request& request, Clock::time_point read_at) {
    // With bounds, the output a hit hands out is held, so that no eviction
    // takes it while the go command runs.
    const GetResult got =
        budget_ ? budget_->GetAndHold(cache_, request.action_id) : cache_.Get(request.action_id);
    Response response{.id = request.id};
    RequestRecord record{.command = RequestCommand::kGet};
    if (got.hit) {
      response.output_id = got.hit->output_id;
      response.size = got.hit->size;
      response.time_ns = got.hit->time_ns;
      response.disk_path = got.hit->output_path;
      record.result = Result::kHit;
      record.bytes = static_cast<uint64_t>(got.hit->size);
    } else if (!got.error.empty()) {
      response.err = got.error;
    } else {
      response.miss = true;
      record.result = Result::kMiss;
      record.miss = got.miss;
    }
    Answer(response, record, read_at);
  }

  void QueuePut(Request request, Clock::time_point read_at) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(Pending{std::move(request), read_at});
      ++unfinished_;
    }
    work_.notify_one();
  }

  // Waits until every put queued so far is answered.
  void Drain() {
    std::unique_lock lock(mu_);
    done_.wait(lock, [this] { return unfinished_ == 0; });
  }

  void Answer(const Response& response, RequestRecord record, Clock::time_point read_at) {
    Answer(response, record, read_at, record_);
  }

  void Answer(const Response& response, RequestRecord record, Clock::time_point read_at,
              const RecordSink& sink) {
    out_.Send(response);
    record.duration = Clock::now() - read_at;
    if (sink) sink(record);
  }

 private:
  void WriterLoop() {
    for (;;) {
      Pending put;
      {
        std::unique_lock lock(mu_);
        work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        put = std::move(queue_.front());
        queue_.pop_front();
      }
      if (budget_) {
        // An output and an action entry: its bytes and two files.
        std::string error;
        const auto eviction =
            budget_->Reserve(put.request.body.size() + buildcache::kActionEntrySize, 2, error);
        if (eviction && evicted_) evicted_(*eviction);
        budget_->Hold(put.request.output_id);
      }
      const PutResult stored =
          cache_.Put(put.request.action_id, put.request.output_id, put.request.body);
      Response response{.id = put.request.id};
      RequestRecord record{.command = RequestCommand::kPut};
      if (stored.error.empty()) {
        response.disk_path = stored.output_path;
        record.result = Result::kOk;
        record.bytes = put.request.body.size();
      } else {
        response.err = stored.error;
      }
      put.request.body = std::string();  // the memory back before the answer
      Answer(response, record, put.read_at);
      {
        std::lock_guard lock(mu_);
        --unfinished_;
      }
      done_.notify_all();
    }
  }

  const DiskCache& cache_;
  ResponseWriter out_;
  CacheBudget* const budget_;
  const RecordSink& record_;
  const EvictionSink& evicted_;
  std::mutex mu_;
  std::condition_variable work_, done_;
  std::deque<Pending> queue_;
  size_t unfinished_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> writers_;
};

}  // namespace

ServeResult Serve(const DiskCache& cache, int in_fd, int out_fd, const ServeOptions& options,
                  const RecordSink& record, const EvictionSink& evicted) {
  ServeResult result;
  Server server(cache, out_fd, options, record, evicted);
  if (!server.out().Send(Response{.id = 0, .known_commands = true})) {
    result.problem = "cannot write to the go command";
    return result;
  }
  RequestReader reader([in_fd](char* buffer, size_t size) { return read(in_fd, buffer, size); },
                       options.max_body_size);
  for (;;) {
    ReadOutcome next = reader.Next();
    const auto read_at = Clock::now();
    if (next.kind == ReadOutcome::Kind::kEnd) {
      result.problem = next.error;
      break;
    }
    Request& request = next.request;
    if (next.kind == ReadOutcome::Kind::kInvalid) {
      // Counted only as what it claimed to be: a get or put.
      const RecordSink none;
      server.Answer(Response{.id = request.id, .err = next.error},
                    RequestRecord{.command = request.command}, read_at,
                    next.command_known ? record : none);
      continue;
    }
    if (request.command == RequestCommand::kGet) {
      server.Get(request, read_at);
    } else if (request.command == RequestCommand::kPut) {
      server.QueuePut(std::move(request), read_at);
    } else {
      // close: answered once every put before it is, then nothing more.
      server.Drain();
      if (options.before_close) options.before_close();
      server.out().Send(Response{.id = request.id});
      result.closed = true;
      break;
    }
    if (server.out().broken()) break;
  }
  server.Drain();
  if (server.out().broken() && result.problem.empty()) {
    result.problem = "cannot write to the go command";
  }
  return result;
}

}  // namespace gocache::helper
