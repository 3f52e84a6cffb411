// A trace file's bytes as the stream RapidJSON's reader takes: plain or
// gzip-compressed (told from the content's magic bytes, not the name),
// read in chunks so that memory stays constant whatever the file's size, and
// cut off past a byte limit, which bounds the cost of a hostile file or a
// gzip bomb.
#pragma once

#include <sys/types.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gocache::trace {

// Where the raw (possibly compressed) bytes come from.
class RawInput {
 public:
  virtual ~RawInput() = default;
  // Like read(2): bytes read, 0 at the end, -1 with errno on failure.
  virtual ssize_t Read(char* buffer, size_t size) = 0;
};

class FdInput : public RawInput {
 public:
  explicit FdInput(int fd) : fd_(fd) {}  // does not own fd
  ssize_t Read(char* buffer, size_t size) override;

 private:
  int fd_;
};

class MemoryInput : public RawInput {
 public:
  explicit MemoryInput(std::string_view data) : data_(data) {}
  ssize_t Read(char* buffer, size_t size) override;

 private:
  std::string_view data_;
};

class TraceStream {
 public:
  using Ch = char;  // RapidJSON's stream concept

  TraceStream(RawInput& input, uint64_t max_bytes);
  ~TraceStream();
  TraceStream(const TraceStream&) = delete;
  TraceStream& operator=(const TraceStream&) = delete;

  bool compressed() const { return compressed_; }
  // Why the stream ended early (an I/O error, corrupt compressed data, the
  // byte limit); empty when it ended at the file's end.
  const std::string& error() const { return error_; }

  // RapidJSON's stream concept. At the end, or after an error, Peek() returns
  // '\0', which the reader reports as an unexpected end.
  Ch Peek() const { return *current_; }
  Ch Take() {
    const Ch c = *current_;
    if (current_ < last_) {
      ++current_;
    } else if (!ended_) {
      Fill();
    }
    return c;
  }
  size_t Tell() const { return consumed_ + static_cast<size_t>(current_ - buffer_); }
  // Writing is only for in-situ parsing, which this stream does not offer.
  Ch* PutBegin() { return nullptr; }
  void Put(Ch) {}
  void Flush() {}
  size_t PutEnd(Ch*) { return 0; }

 private:
  static constexpr size_t kChunk = 64 << 10;

  void Fill();
  // Up to `size` bytes of content into `out`: 0 at the end or on error.
  size_t Produce(char* out, size_t size);
  size_t Inflate(char* out, size_t size);
  bool ReadRaw();
  void Fail(std::string message);

  RawInput& input_;
  const uint64_t max_bytes_;
  uint64_t produced_ = 0;
  size_t consumed_ = 0;  // bytes in the buffers before this one
  size_t held_ = 0;      // bytes in this one

  char buffer_[kChunk + 1];
  Ch* current_ = buffer_;
  Ch* last_ = buffer_;
  bool ended_ = false;

  // Raw bytes read but not yet produced (the first chunk, and compressed data).
  char raw_[kChunk];
  size_t raw_begin_ = 0, raw_end_ = 0;
  bool raw_ended_ = false;

  bool compressed_ = false;
  bool member_ended_ = false;
  z_stream zlib_{};
  bool zlib_ready_ = false;

  std::string error_;
};

}  // namespace gocache::trace
