#include "collectors/trace/trace_stream.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace gocache::trace {

ssize_t FdInput::Read(char* buffer, size_t size) {
  for (;;) {
    const ssize_t n = read(fd_, buffer, size);
    if (n >= 0 || errno != EINTR) return n;
  }
}

ssize_t MemoryInput::Read(char* buffer, size_t size) {
  const size_t n = std::min(size, data_.size());
  if (n > 0) std::memcpy(buffer, data_.data(), n);
  data_.remove_prefix(n);
  return static_cast<ssize_t>(n);
}

TraceStream::TraceStream(RawInput& input, uint64_t max_bytes)
    : input_(input), max_bytes_(max_bytes) {
  buffer_[0] = '\0';
  // The first raw chunk tells gzip (magic 1f 8b) from plain content.
  if (ReadRaw() && raw_end_ - raw_begin_ >= 2 && static_cast<unsigned char>(raw_[0]) == 0x1f &&
      static_cast<unsigned char>(raw_[1]) == 0x8b) {
    compressed_ = true;
    // 16 + MAX_WBITS: a gzip header and trailer, not a zlib one.
    if (inflateInit2(&zlib_, 16 + MAX_WBITS) != Z_OK) {
      Fail("cannot start gzip decompression");
    } else {
      zlib_ready_ = true;
    }
  }
  Fill();
}

TraceStream::~TraceStream() {
  if (zlib_ready_) inflateEnd(&zlib_);
}

void TraceStream::Fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);
}

bool TraceStream::ReadRaw() {
  raw_begin_ = raw_end_ = 0;
  if (raw_ended_) return false;
  const ssize_t n = input_.Read(raw_, sizeof raw_);
  if (n < 0) {
    Fail(std::string("read: ") + std::strerror(errno));
    raw_ended_ = true;
    return false;
  }
  if (n == 0) {
    raw_ended_ = true;
    return false;
  }
  raw_end_ = static_cast<size_t>(n);
  return true;
}

void TraceStream::Fill() {
  consumed_ += held_;
  const size_t n = error_.empty() ? Produce(buffer_, kChunk) : 0;
  held_ = n;
  produced_ += n;
  if (n > 0 && produced_ > max_bytes_) {
    Fail("larger than " + std::to_string(max_bytes_) + " bytes" +
         (compressed_ ? " once decompressed" : ""));
  }
  if (n == 0 || !error_.empty()) {
    ended_ = true;
    buffer_[0] = '\0';
    current_ = last_ = buffer_;
    return;
  }
  current_ = buffer_;
  last_ = buffer_ + n - 1;
}

size_t TraceStream::Produce(char* out, size_t size) {
  if (compressed_) return Inflate(out, size);
  if (raw_begin_ == raw_end_ && !ReadRaw()) return 0;
  const size_t n = std::min(size, raw_end_ - raw_begin_);
  std::memcpy(out, raw_ + raw_begin_, n);
  raw_begin_ += n;
  return n;
}

size_t TraceStream::Inflate(char* out, size_t size) {
  if (!zlib_ready_) return 0;
  zlib_.next_out = reinterpret_cast<Bytef*>(out);
  zlib_.avail_out = static_cast<uInt>(size);
  while (zlib_.avail_out == size) {
    if (zlib_.avail_in == 0) {
      if (raw_begin_ == raw_end_ && !ReadRaw()) {
        // A gzip file ends after a complete member, never inside one.
        if (!member_ended_) Fail("truncated gzip data");
        return 0;
      }
      zlib_.next_in = reinterpret_cast<Bytef*>(raw_ + raw_begin_);
      zlib_.avail_in = static_cast<uInt>(raw_end_ - raw_begin_);
      raw_begin_ = raw_end_;
      if (member_ended_) {
        // More bytes after a member: the next member (as gzip -d reads
        // concatenated files).
        inflateReset(&zlib_);
        member_ended_ = false;
      }
    }
    const int status = inflate(&zlib_, Z_NO_FLUSH);
    if (status == Z_STREAM_END) {
      member_ended_ = true;
      if (zlib_.avail_in > 0) {
        inflateReset(&zlib_);
        member_ended_ = false;
      }
      continue;
    }
    if (status != Z_OK && status != Z_BUF_ERROR) {
      Fail(std::string("corrupt gzip data: ") + (zlib_.msg ? zlib_.msg : "inflate failed"));
      return 0;
    }
  }
  return size - zlib_.avail_out;
}

}  // namespace gocache::trace
