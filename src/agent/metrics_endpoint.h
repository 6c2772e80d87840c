// The agent's own HTTP/1.1 listener (plain HTTP, one request per connection): GET /metrics
// (Prometheus text format 0.0.4, also at /metrics/resource as the kubelet names it) and /healthz.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/status.h"

namespace fulcrum::agent {

class MetricsEndpoint {
 public:
  // Listens on host:port (port 0: any free port) and serves from one thread; `metrics` is called
  // for each scrape. Internal, naming errno, when the address cannot be bound.
  static base::Result<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& host, int port, std::function<std::string()> metrics);
  ~MetricsEndpoint();  // stops and joins the thread
  int port() const { return port_; }

 private:
  MetricsEndpoint(int listen_fd, int wake_fd, int port, std::function<std::string()> metrics);
  void Loop();
  void Serve(int fd);

  const int listen_fd_, wake_fd_, port_;
  const std::function<std::string()> metrics_;
  std::thread thread_;
};

}  // namespace fulcrum::agent
