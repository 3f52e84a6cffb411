// Writing a whole buffer to a file descriptor: write(2) may take part of it
// (a pipe, a signal), and the rest must follow.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace gocache {

// Writes all of `content`; false, with errno set, when a write fails.
inline bool WriteAll(int fd, std::string_view content) {
  while (!content.empty()) {
    const ssize_t n = write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    content.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace gocache
