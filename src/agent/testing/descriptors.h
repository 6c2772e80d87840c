// Reading descriptors in the agent's tests: pipes, sockets and terminals that stand in for a
// container's stdio.
#pragma once

#include <unistd.h>

#include <string>

namespace fulcrum::agent {

// Reads from `fd` until what was read holds `marker`, or the descriptor ends (EOF, or EIO from a
// terminal whose other side closed); returns what was read.
inline std::string ReadFdUntil(int fd, const std::string& marker) {
  std::string got;
  char buf[256];
  while (got.find(marker) == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

}  // namespace fulcrum::agent
