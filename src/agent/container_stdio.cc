#include "agent/container_stdio.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/logs.h"

namespace fulcrum::agent {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

StdioOptions StdioOptionsOf(const base::Json& container) {
  auto flag = [&](const char* name) {
    const base::Json* v = base::FindPath(container, {name});
    return v != nullptr && v->is_boolean() && v->get<bool>();
  };
  return {flag("stdin"), flag("stdinOnce"), flag("tty")};
}

base::Result<std::shared_ptr<ContainerStdio>> ContainerStdio::Open(const StdioOptions& options) {
  if (!options.stdin && !options.tty) return std::shared_ptr<ContainerStdio>();
  std::shared_ptr<ContainerStdio> stdio(new ContainerStdio(options));
  if (options.stdin && !options.tty) {
    int fds[2];
    // Close-on-exec: only the container may hold the read end, and only the agent the write end,
    // or the container would never read EOF.
    if (::pipe2(fds, O_CLOEXEC) != 0) return base::Internal(Errno("stdin pipe"));
    stdio->container_end_ = fds[0];
    stdio->input_ = fds[1];
  }
  return stdio;
}

ContainerStdio::~ContainerStdio() {
  if (input_ >= 0 && input_ != terminal_) ::close(input_);
  if (container_end_ >= 0) ::close(container_end_);
  if (terminal_ >= 0) ::close(terminal_);
  for (int fd : subscribers_) ::close(fd);
}

void ContainerStdio::Prepare(ContainerBundle* bundle, LogCapture* capture,
                             const std::string& key) {
  std::lock_guard lock(mu_);
  if (options_.tty) {
    bundle->terminal_fd = &terminal_;
    capture->AwaitTerminal(key);
  } else {
    bundle->stdin_fd = container_end_;
  }
}

base::Status ContainerStdio::Started(LogCapture* capture, const std::string& key) {
  {
    std::lock_guard lock(mu_);
    if (container_end_ >= 0) ::close(container_end_);
    container_end_ = -1;
    if (!options_.tty) return base::Status::Ok();
    if (terminal_ < 0) return base::Internal("container " + key + " was given no terminal");
    // Non-blocking for the log capture thread, which reads until EAGAIN; Write polls instead.
    ::fcntl(terminal_, F_SETFL, ::fcntl(terminal_, F_GETFL) | O_NONBLOCK);
    if (options_.stdin) input_ = terminal_;
  }
  std::weak_ptr<ContainerStdio> self = weak_from_this();
  return capture->AttachTerminal(key, terminal_, [self](std::string_view data) {
    if (auto stdio = self.lock()) stdio->PublishOutput(data);
  });
}

bool ContainerStdio::Write(std::string_view data) {
  std::lock_guard lock(mu_);
  while (!data.empty()) {
    if (input_ < 0 || stdin_closed_) return false;
    ssize_t n = ::write(input_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {  // the terminal's input queue is full
      pollfd p = {input_, POLLOUT, 0};
      (void)::poll(&p, 1, 1000);
      continue;
    }
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return input_ >= 0 && !stdin_closed_;
}

void ContainerStdio::CloseStdin() {
  std::lock_guard lock(mu_);
  stdin_closed_ = true;
  if (input_ >= 0 && input_ != terminal_) ::close(input_);
  input_ = -1;
}

bool ContainerStdio::stdin_open() const {
  std::lock_guard lock(mu_);
  return input_ >= 0 && !stdin_closed_;
}

void ContainerStdio::Resize(uint16_t width, uint16_t height) {
  if (terminal_ < 0) return;
  winsize ws{};
  ws.ws_col = width;
  ws.ws_row = height;
  ::ioctl(terminal_, TIOCSWINSZ, &ws);
}

base::Result<int> ContainerStdio::SubscribeOutput() {
  if (terminal_ < 0) return base::Internal("the container has no terminal");
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return base::Internal(Errno("socketpair"));
  }
  std::lock_guard lock(output_mu_);
  if (hung_up_) {
    ::close(pair[1]);
  } else {
    subscribers_.push_back(pair[1]);
  }
  return pair[0];
}

void ContainerStdio::PublishOutput(std::string_view data) {
  std::lock_guard lock(output_mu_);
  if (data.empty()) {
    hung_up_ = true;
    for (int fd : subscribers_) ::close(fd);
    subscribers_.clear();
    return;
  }
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    ssize_t n = ::send(*it, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {  // the session went away
      ::close(*it);
      it = subscribers_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace fulcrum::agent
