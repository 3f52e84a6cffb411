#include <fcntl.h>
#include <poll.h>

#include <atomic>
#include <future>
#include <mutex>
#include <set>

#include "base/base64.h"
#include "commands/cacheprog/server.h"
#include "fixtures.h"

namespace gocache::helper {
namespace {

using testing_util::TempDir;

std::string B64(std::string_view bytes) {
  return base64::Encode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

std::string IdOf(int n) {
  std::string id(32, '\0');
  id[0] = static_cast<char>(n);
  id[1] = static_cast<char>(n >> 8);
  return B64(id);
}

// The helper served on two pipes, on a thread of its own, as a go command
// sees it.
class Session {
 public:
  explicit Session(const DiskCache& cache, ServeOptions options = {}) {
    int in[2], out[2];
    EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    to_helper_ = in[1];
    from_helper_ = out[0];
    served_ = std::async(std::launch::async, [=, &cache, this] {
      const auto result = Serve(cache, in[0], out[1], options, [this](const RequestRecord& r) {
        std::lock_guard lock(mu_);
        records_.push_back(r);
      });
      close(in[0]);
      close(out[1]);
      return result;
    });
  }
  ~Session() {
    if (to_helper_ >= 0) close(to_helper_);
    if (served_.valid()) served_.wait();
    close(from_helper_);
  }

  void Send(const std::string& text) {
    ASSERT_EQ(write(to_helper_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }
  void EndInput() {
    close(to_helper_);
    to_helper_ = -1;
  }

  // The next line the helper wrote, waiting at most 10 s.
  std::string ReadLine() {
    for (;;) {
      if (const size_t newline = pending_.find('\n'); newline != std::string::npos) {
        std::string line = pending_.substr(0, newline);
        pending_.erase(0, newline + 1);
        return line;
      }
      pollfd p{from_helper_, POLLIN, 0};
      if (poll(&p, 1, 10'000) != 1) return "<timeout>";
      char buf[4096];
      const ssize_t n = read(from_helper_, buf, sizeof buf);
      if (n <= 0) return "<eof>";
      pending_.append(buf, static_cast<size_t>(n));
    }
  }

  ServeResult Wait() { return served_.get(); }

  std::vector<RequestRecord> records() {
    std::lock_guard lock(mu_);
    return records_;
  }

 private:
  int to_helper_ = -1, from_helper_ = -1;
  std::string pending_;
  std::future<ServeResult> served_;
  std::mutex mu_;
  std::vector<RequestRecord> records_;
};

std::string Get(int id, int action) {
  return "{\"ID\":" + std::to_string(id) + ",\"Command\":\"get\",\"ActionID\":\"" + IdOf(action) +
         "\"}\n\n";
}

std::string Put(int id, int action, int output, const std::string& body) {
  return "{\"ID\":" + std::to_string(id) + ",\"Command\":\"put\",\"ActionID\":\"" + IdOf(action) +
         "\",\"OutputID\":\"" + IdOf(output) + "\",\"BodySize\":" + std::to_string(body.size()) +
         "}\n\n" + (body.empty() ? "" : "\"" + B64(body) + "\"\n");
}

DiskCache OpenCache(const TempDir& dir) {
  std::string error;
  auto cache = DiskCache::Open(dir.path(), error);
  EXPECT_TRUE(cache.has_value()) << error;
  return *cache;
}

TEST(ServeTest, AnswersGetsPutsAndCloseAsTheGoCommandExpects) {
  TempDir dir;
  const DiskCache cache = OpenCache(dir);
  Session session(cache);
  EXPECT_EQ(session.ReadLine(), "{\"ID\":0,\"KnownCommands\":[\"get\",\"put\",\"close\"]}");

  session.Send(Get(1, 5));
  EXPECT_EQ(session.ReadLine(), "{\"ID\":1,\"Miss\":true}");

  session.Send(Put(2, 5, 6, "the output"));
  const std::string put = session.ReadLine();
  const std::string output_path = buildcache::EntryPath(
      dir.path(), *buildcache::DecodeHexId(std::string("0600") + std::string(60, '0')), 'd');
  EXPECT_EQ(put, "{\"ID\":2,\"DiskPath\":\"" + output_path + "\"}");

  session.Send(Get(3, 5));
  const std::string hit = session.ReadLine();
  EXPECT_NE(hit.find("\"ID\":3,\"OutputID\":\"" + IdOf(6) + "\",\"Size\":10,\"Time\":\""),
            std::string::npos)
      << hit;
  EXPECT_NE(hit.find("\"DiskPath\":\"" + output_path + "\"}"), std::string::npos) << hit;

  session.Send("{\"ID\":4,\"Command\":\"close\"}\n\n");
  EXPECT_EQ(session.ReadLine(), "{\"ID\":4}");
  const ServeResult result = session.Wait();
  EXPECT_TRUE(result.closed);
  EXPECT_EQ(result.problem, "");

  const auto records = session.records();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].result, cacheprog_report::Result::kMiss);
  EXPECT_EQ(records[0].miss, MissReason::kNoEntry);
  EXPECT_EQ(records[1].command, RequestCommand::kPut);
  EXPECT_EQ(records[1].result, cacheprog_report::Result::kOk);
  EXPECT_EQ(records[1].bytes, 10u);
  EXPECT_EQ(records[2].result, cacheprog_report::Result::kHit);
  EXPECT_EQ(records[2].bytes, 10u);
  for (const auto& r : records) EXPECT_GT(r.duration.count(), 0);
}

TEST(ServeTest, CloseIsAnsweredAfterEveryPutBeforeIt) {
  TempDir dir;
  const DiskCache cache = OpenCache(dir);
  // The helper's last work runs after every put and before the close answer.
  std::atomic<int> stored_before_close = -1;
  const auto count_stored = [&] {
    int stored = 0;
    for (int i = 1; i <= 50; ++i) {
      buildcache::Id action{};
      action[0] = static_cast<uint8_t>(i);
      stored += cache.Get(action).hit.has_value();
    }
    stored_before_close = stored;
  };
  Session session(cache, ServeOptions{.put_threads = 3, .before_close = count_stored});
  session.ReadLine();
  std::string batch;
  for (int i = 1; i <= 50; ++i) batch += Put(i, i, 1000 + i, std::string(10'000 + i, 'x'));
  batch += "{\"ID\":51,\"Command\":\"close\"}\n\n";
  session.Send(batch);
  std::set<std::string> answered;
  for (int i = 1; i <= 51; ++i) {
    const std::string line = session.ReadLine();
    const auto id = line.substr(6, line.find_first_of(",}") - 6);
    if (id == "51") {
      EXPECT_EQ(answered.size(), 50u) << "close answered before every put";
      EXPECT_EQ(stored_before_close, 50) << "before_close ran first, after every put";
    } else {
      EXPECT_NE(line.find("\"DiskPath\""), std::string::npos) << line;
    }
    answered.insert(id);
  }
  EXPECT_EQ(answered.size(), 51u);
  EXPECT_TRUE(session.Wait().closed);
  for (int i = 1; i <= 50; ++i) {
    std::string raw(32, '\0');
    raw[0] = static_cast<char>(i);
    buildcache::Id action;
    std::memcpy(action.data(), raw.data(), 32);
    const auto got = cache.Get(action);
    ASSERT_TRUE(got.hit.has_value()) << i;
    EXPECT_EQ(got.hit->size, 10'000 + i);
  }
}

TEST(ServeTest, ABadRequestGetsAnErrorAndServingGoesOn) {
  TempDir dir;
  const DiskCache cache = OpenCache(dir);
  Session session(cache);
  session.ReadLine();
  session.Send("{not json}\n\n");
  EXPECT_EQ(session.ReadLine(), "{\"ID\":0,\"Err\":\"not a JSON object: {not json}\"}");
  session.Send("{\"ID\":2,\"Command\":\"get\",\"ActionID\":\"short\"}\n\n");
  EXPECT_EQ(session.ReadLine(), "{\"ID\":2,\"Err\":\"ActionID is not base64 of 32 bytes\"}");
  session.Send("{\"ID\":3,\"Command\":\"put\",\"ActionID\":\"" + IdOf(1) + "\",\"OutputID\":\"" +
               IdOf(2) + "\",\"BodySize\":5}\n\n\"YWJj\"\n");
  EXPECT_EQ(session.ReadLine(), "{\"ID\":3,\"Err\":\"the body has 3 bytes, BodySize says 5\"}");
  session.Send(Get(4, 1));
  EXPECT_EQ(session.ReadLine(), "{\"ID\":4,\"Miss\":true}");
  session.EndInput();
  const ServeResult result = session.Wait();
  EXPECT_FALSE(result.closed);
  // Nothing of the refused put was written.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    EXPECT_TRUE(entry.is_directory()) << entry.path();
  }
  // The malformed line claimed no command: not counted as a get or a put.
  const auto records = session.records();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].result, cacheprog_report::Result::kError);
  EXPECT_EQ(records[1].command, RequestCommand::kPut);
  EXPECT_EQ(records[1].result, cacheprog_report::Result::kError);
}

TEST(ServeTest, TheEndOfInputMidRequestEndsServingCleanly) {
  TempDir dir;
  const DiskCache cache = OpenCache(dir);
  Session session(cache);
  session.ReadLine();
  session.Send("{\"ID\":3,\"Command\":\"put\",\"ActionID\":\"" + IdOf(1) + "\",\"OutputID\":\"" +
               IdOf(2) + "\",\"BodySize\":5}\n\n\"YWJj");
  session.EndInput();
  const ServeResult result = session.Wait();
  EXPECT_FALSE(result.closed);
  EXPECT_NE(result.problem.find("inside the body of request 3"), std::string::npos)
      << result.problem;
  EXPECT_EQ(session.ReadLine(), "<eof>");
  EXPECT_TRUE(session.records().empty());
}

}  // namespace
}  // namespace gocache::helper
