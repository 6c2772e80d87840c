#include "agent/probe.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace fulcrum::agent {
namespace {

using base::Json;
using namespace std::chrono_literals;

base::Result<ProbeSpec> Parse(const std::string& probe, ProbeKind kind = ProbeKind::kLiveness) {
  Json container = Json::parse(R"({"name":"app","ports":[{"name":"http","containerPort":8080}]})");
  return ParseProbe(Json::parse(probe), container, kind, "spec.containers[0].livenessProbe");
}

TEST(ParseProbeTest, DefaultsAndHandlers) {
  auto p = Parse(R"({"httpGet":{"port":"http","path":"healthz"}})");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->handler, ProbeSpec::Handler::kHttpGet);
  EXPECT_EQ(p->port, 8080);
  EXPECT_EQ(p->path, "/healthz");
  EXPECT_EQ(p->scheme, "HTTP");
  EXPECT_EQ(p->period_seconds, 10);
  EXPECT_EQ(p->timeout_seconds, 1);
  EXPECT_EQ(p->success_threshold, 1);
  EXPECT_EQ(p->failure_threshold, 3);
  EXPECT_EQ(p->initial_delay_seconds, 0);
  p = Parse(R"({"exec":{"command":["cat","/tmp/ok"]},"periodSeconds":2,"failureThreshold":1,
                "initialDelaySeconds":5,"timeoutSeconds":3})");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->command, (std::vector<std::string>{"cat", "/tmp/ok"}));
  EXPECT_EQ(p->period_seconds, 2);
  EXPECT_EQ(p->initial_delay_seconds, 5);
  p = Parse(R"({"tcpSocket":{"port":"5432","host":"10.0.0.9"}})");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->port, 5432);
  EXPECT_EQ(p->host, "10.0.0.9");
}

TEST(ParseProbeTest, Errors) {
  auto msg = [](const std::string& probe, ProbeKind kind = ProbeKind::kLiveness) {
    auto p = Parse(probe, kind);
    return p.ok() ? std::string("ok") : p.status().message();
  };
  EXPECT_EQ(msg("{}"), "spec.containers[0].livenessProbe: Required value: must specify a handler type");
  EXPECT_EQ(msg(R"({"exec":{"command":["x"]},"tcpSocket":{"port":1}})"),
            "spec.containers[0].livenessProbe: Forbidden: may not specify more than 1 handler type");
  EXPECT_EQ(msg(R"({"httpGet":{"port":"metrics"}})"),
            "spec.containers[0].livenessProbe.httpGet.port: Invalid value: \"metrics\": no "
            "container port named \"metrics\"");
  EXPECT_EQ(msg(R"({"tcpSocket":{"port":70000}})"),
            "spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: 70000: must be "
            "between 1 and 65535");
  EXPECT_EQ(msg(R"({"exec":{"command":["x"]},"successThreshold":2})"),
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1");
  EXPECT_EQ(msg(R"({"exec":{"command":["x"]},"successThreshold":2})", ProbeKind::kReadiness), "ok");
  EXPECT_EQ(msg(R"({"exec":{"command":["x"]},"periodSeconds":0})"),
            "spec.containers[0].livenessProbe.periodSeconds: Invalid value: 0: must be at least 1");
  EXPECT_EQ(msg(R"({"grpc":{"port":9000}})"),
            "spec.containers[0].livenessProbe.grpc: Unsupported value: grpc probes are not "
            "supported by this node");
  EXPECT_EQ(msg(R"({"exec":{"command":[]}})"),
            "spec.containers[0].livenessProbe.exec.command: Required value");
}

// Answers each probe kind from a script (the port tells the kinds apart); success when empty.
struct ScriptedProber : Prober {
  ProbeOutcome Probe(const ProbeSpec& spec, const ProbeTarget&) override {
    ++calls[spec.port];
    auto& q = script[spec.port];
    if (q.empty()) return {true, ""};
    bool ok = q.front();
    q.pop_front();
    return {ok, ok ? "" : "scripted failure"};
  }
  std::map<int, std::deque<bool>> script;
  std::map<int, int> calls;
};

constexpr int kStartupPort = 1, kLivenessPort = 2, kReadinessPort = 3;

ProbeSpec Spec(int port, int period = 10, int failure = 3, int success = 1, int delay = 0) {
  ProbeSpec s;
  s.handler = ProbeSpec::Handler::kTcpSocket;
  s.port = port;
  s.period_seconds = period;
  s.failure_threshold = failure;
  s.success_threshold = success;
  s.initial_delay_seconds = delay;
  return s;
}

class ContainerProbesTest : public ::testing::Test {
 protected:
  base::WallTime t0_ = base::WallTime{} + 1000000s;
  ScriptedProber prober_;
  ProbeTarget target_{"c1", "10.0.0.5"};
};

TEST_F(ContainerProbesTest, NoProbesMeansStartedAndReady) {
  ContainerProbes p(std::nullopt, std::nullopt, std::nullopt, t0_);
  EXPECT_TRUE(p.Started());
  EXPECT_TRUE(p.Ready());
  EXPECT_FALSE(p.NextDue().has_value());
}

TEST_F(ContainerProbesTest, ReadinessThresholdsAndInitialDelay) {
  ContainerProbes p(std::nullopt, std::nullopt, Spec(kReadinessPort, 5, 2, 2, 10), t0_);
  EXPECT_FALSE(p.Ready());  // readiness starts as failure
  p.Run(prober_, target_, t0_ + 9s);
  EXPECT_EQ(prober_.calls[kReadinessPort], 0);  // initialDelaySeconds
  EXPECT_EQ(*p.NextDue(), t0_ + 10s);
  p.Run(prober_, target_, t0_ + 10s);
  EXPECT_FALSE(p.Ready());  // one success of two
  EXPECT_EQ(*p.NextDue(), t0_ + 15s);
  p.Run(prober_, target_, t0_ + 12s);  // not due
  EXPECT_EQ(prober_.calls[kReadinessPort], 1);
  p.Run(prober_, target_, t0_ + 15s);
  EXPECT_TRUE(p.Ready());
  prober_.script[kReadinessPort] = {false, true, false, false};
  p.Run(prober_, target_, t0_ + 20s);
  EXPECT_TRUE(p.Ready());  // one failure of two
  p.Run(prober_, target_, t0_ + 25s);
  EXPECT_TRUE(p.Ready());  // a success resets the failure run
  p.Run(prober_, target_, t0_ + 30s);
  p.Run(prober_, target_, t0_ + 35s);
  EXPECT_FALSE(p.Ready());
  EXPECT_EQ(p.LastFailure(), "Readiness probe failed: scripted failure");
  EXPECT_FALSE(p.ShouldRestart());  // readiness never restarts
}

TEST_F(ContainerProbesTest, LivenessFailureThresholdRestarts) {
  ContainerProbes p(std::nullopt, Spec(kLivenessPort, 10, 3), std::nullopt, t0_);
  EXPECT_TRUE(p.Ready());
  prober_.script[kLivenessPort] = {false, false, true, false, false, false};
  for (int i = 0; i < 5; ++i) p.Run(prober_, target_, t0_ + std::chrono::seconds(10 * i));
  EXPECT_FALSE(p.ShouldRestart());  // F F S F F
  p.Run(prober_, target_, t0_ + 50s);
  ASSERT_TRUE(p.ShouldRestart());
  EXPECT_EQ(*p.RestartKind(), ProbeKind::kLiveness);
  EXPECT_FALSE(p.NextDue().has_value());
  p.Run(prober_, target_, t0_ + 60s);
  EXPECT_EQ(prober_.calls[kLivenessPort], 6);  // on hold until replaced
}

TEST_F(ContainerProbesTest, StartupGatesLivenessAndReadiness) {
  ContainerProbes p(Spec(kStartupPort, 1, 5), Spec(kLivenessPort), Spec(kReadinessPort), t0_);
  EXPECT_FALSE(p.Started());
  EXPECT_FALSE(p.Ready());
  prober_.script[kStartupPort] = {false, false};
  p.Run(prober_, target_, t0_);
  p.Run(prober_, target_, t0_ + 1s);
  EXPECT_EQ(prober_.calls[kLivenessPort] + prober_.calls[kReadinessPort], 0);
  EXPECT_FALSE(p.Started());
  p.Run(prober_, target_, t0_ + 2s);  // success: started, and the others run from now on
  EXPECT_TRUE(p.Started());
  EXPECT_EQ(prober_.calls[kLivenessPort], 1);
  EXPECT_EQ(prober_.calls[kReadinessPort], 1);
  EXPECT_TRUE(p.Ready());
  p.Run(prober_, target_, t0_ + 12s);
  EXPECT_EQ(prober_.calls[kStartupPort], 3);  // the startup probe is done
}

TEST_F(ContainerProbesTest, StartupFailureThresholdRestarts) {
  ContainerProbes p(Spec(kStartupPort, 1, 3), Spec(kLivenessPort), std::nullopt, t0_);
  prober_.script[kStartupPort] = {false, false, false};
  for (int i = 0; i < 3; ++i) p.Run(prober_, target_, t0_ + std::chrono::seconds(i));
  ASSERT_TRUE(p.ShouldRestart());
  EXPECT_EQ(*p.RestartKind(), ProbeKind::kStartup);
  EXPECT_EQ(prober_.calls[kLivenessPort], 0);
}

// A fake runtime that only execs.
struct ExecRuntime : ContainerRuntime {
  base::Status Create(const std::string&, const ContainerBundle&) override { return {}; }
  base::Status Start(const std::string&) override { return {}; }
  base::Result<ContainerState> State(const std::string&) override { return ContainerState{}; }
  base::Status Kill(const std::string&, int) override { return {}; }
  base::Status Delete(const std::string&) override { return {}; }
  base::Result<ExecResult> Exec(const std::string& id, const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout) override {
    last_argv = argv;
    last_timeout = timeout;
    if (argv[0] == "hang") return base::Status(base::Code::kTimeout, "hang did not finish");
    if (argv[0] == "gone") return base::Conflict("container " + id + " is stopped, not running");
    return ExecResult{argv[0] == "true" ? 0 : 2, argv[0] == "true" ? "" : "not healthy\n"};
  }
  std::vector<std::string> last_argv;
  std::chrono::milliseconds last_timeout{0};
};

TEST(ProberTest, ExecThroughTheRuntime) {
  ExecRuntime runtime;
  auto prober = NewProber(&runtime);
  ProbeSpec s;
  s.command = {"true"};
  s.timeout_seconds = 3;
  ProbeTarget target{"c1", ""};
  EXPECT_TRUE(prober->Probe(s, target).success);
  EXPECT_EQ(runtime.last_timeout, 3000ms);
  s.command = {"check", "--deep"};
  auto out = prober->Probe(s, target);
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "command exited with 2: not healthy");
  s.command = {"hang"};
  EXPECT_EQ(prober->Probe(s, target).message, "command timed out after 3s");
  s.command = {"gone"};
  EXPECT_EQ(prober->Probe(s, target).message, "container c1 is stopped, not running");
}

// A loopback listener answering each connection with `reply` (nothing when empty).
class TestServer {
 public:
  explicit TestServer(std::string reply) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 8);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0 || stop_) {
          if (c >= 0) ::close(c);
          return;
        }
        char buf[4096];
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n > 0) {
          std::lock_guard lock(mu_);
          request_.assign(buf, static_cast<size_t>(n));
        }
        if (!reply_.empty()) (void)!::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
        held_.push_back(c);
      }
    });
  }
  ~TestServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    for (int c : held_) ::close(c);
  }
  int port() const { return port_; }
  std::string request() {
    std::lock_guard lock(mu_);
    return request_;
  }

 private:
  std::string reply_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string request_;  // guarded by mu_
  std::vector<int> held_;
  std::thread thread_;
};

TEST(ProberTest, TcpSocket) {
  auto prober = NewProber(nullptr);
  ProbeSpec s;
  s.handler = ProbeSpec::Handler::kTcpSocket;
  {
    TestServer server("");
    s.port = server.port();
    EXPECT_TRUE(prober->Probe(s, {"c1", "127.0.0.1"}).success);
  }
  auto out = prober->Probe(s, {"c1", "127.0.0.1"});  // the listener is gone
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "dial tcp 127.0.0.1:" + std::to_string(s.port) + ": Connection refused");
}

TEST(ProberTest, HttpGet) {
  auto prober = NewProber(nullptr);
  ProbeSpec s;
  s.handler = ProbeSpec::Handler::kHttpGet;
  s.path = "/healthz";
  s.headers = {{"X-Probe", "yes"}};
  {
    TestServer server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    s.port = server.port();
    EXPECT_TRUE(prober->Probe(s, {"c1", "127.0.0.1"}).success);
    std::string req = server.request();
    EXPECT_EQ(req.substr(0, 24), "GET /healthz HTTP/1.1\r\nH");
    EXPECT_NE(req.find("Host: 127.0.0.1:" + std::to_string(s.port) + "\r\n"), std::string::npos);
    EXPECT_NE(req.find("User-Agent: kube-probe/"), std::string::npos);
    EXPECT_NE(req.find("X-Probe: yes\r\n"), std::string::npos);
  }
  {
    TestServer server("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n");
    s.port = server.port();
    EXPECT_TRUE(prober->Probe(s, {"c1", "127.0.0.1"}).success);
  }
  {
    TestServer server("HTTP/1.0 503 Service Unavailable\r\n\r\n");
    s.port = server.port();
    auto out = prober->Probe(s, {"c1", "127.0.0.1"});
    EXPECT_FALSE(out.success);
    EXPECT_EQ(out.message, "HTTP probe failed with statuscode: 503");
  }
  {
    TestServer server("");  // accepts, never answers: the timeout
    s.port = server.port();
    auto out = prober->Probe(s, {"c1", "127.0.0.1"});
    EXPECT_FALSE(out.success);
    EXPECT_NE(out.message.find("context deadline exceeded"), std::string::npos) << out.message;
  }
  s.scheme = "HTTPS";
  EXPECT_EQ(prober->Probe(s, {"c1", "127.0.0.1"}).message, "scheme HTTPS is not supported");
}

}  // namespace
}  // namespace fulcrum::agent
