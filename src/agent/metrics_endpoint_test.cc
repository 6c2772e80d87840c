#include "agent/metrics_endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

namespace fulcrum::agent {
namespace {

std::string Get(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST(MetricsEndpointTest, ServesMetricsAndHealth) {
  std::atomic<int> scrapes{0};
  auto endpoint = MetricsEndpoint::Start("127.0.0.1", 0, [&] {
    ++scrapes;
    return std::string("node_cpu_usage_seconds_total 1.5\n");
  });
  ASSERT_TRUE(endpoint.ok()) << endpoint.status().ToString();
  int port = (*endpoint)->port();
  ASSERT_GT(port, 0);
  std::string r = Get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_EQ(r.substr(r.find("\r\n\r\n") + 4), "node_cpu_usage_seconds_total 1.5\n");
  EXPECT_EQ(scrapes, 1);
  EXPECT_NE(Get(port, "GET /metrics/resource HTTP/1.1\r\n\r\n").find("1.5"), std::string::npos);
  EXPECT_EQ(Get(port, "GET /healthz HTTP/1.1\r\n\r\n").substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_EQ(Get(port, "GET /nope HTTP/1.1\r\n\r\n").substr(0, 12), "HTTP/1.1 404");
  EXPECT_EQ(Get(port, "POST /metrics HTTP/1.1\r\n\r\n").substr(0, 12), "HTTP/1.1 405");
  EXPECT_EQ(MetricsEndpoint::Start("localhost", 0, [] { return std::string(); }).status().code(),
            base::Code::kInvalid);
}

}  // namespace
}  // namespace fulcrum::agent
