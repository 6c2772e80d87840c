#include "apiserver/pod_proxy.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>

#include "apiserver/api_server.h"
#include "apiserver/http_server.h"
#include "apiserver/pki.h"
#include "base/json.h"
#include "client/api_client.h"
#include "client/http_client.h"

namespace fulcrum::apiserver {
namespace {

namespace fs = std::filesystem;
using base::Json;

// An API server, and a fake agent pod server behind a node that publishes it.
class PodProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pod_proxy_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    ApiServerOptions options;
    options.data_dir = (dir_ / "server").string();
    options.listen_port = 0;
    auto server = StartApiServer(options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    auto config = client::LoadKubeconfig(server_->kubeconfig_path());
    ASSERT_TRUE(config.ok());
    config_ = *config;
    tls_ = *client::TlsContext::CreateFromPem(config_.ca_pem);

    // The agent side: the API server's client certificate, of this cluster's CA, only.
    HttpServerOptions agent;
    agent.cert_file = (dir_ / "agent.crt").string();
    agent.key_file = (dir_ / "agent.key").string();
    ASSERT_TRUE(EnsureSelfSignedCert(agent.cert_file, agent.key_file, "agent", {}).ok());
    agent.client_ca_file = options.data_dir + "/pki/ca.crt";
    agent.client_names = {kApiServerCommonName};
    auto started = StartHttpServer(agent, [this](const HttpRequest& r) { return Agent(r); });
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    agent_ = std::move(*started);

    Json node = {{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata", {{"name", "n1"}}},
                 {"status",
                  {{"addresses", Json::array({{{"type", "InternalIP"}, {"address", "127.0.0.1"}}})},
                   {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", agent_->port()}}}}}}}};
    ASSERT_EQ(Call("POST", "/api/v1/nodes", node).status, 201);
    ASSERT_EQ(Call("POST", "/api/v1/namespaces/default/pods", Pod("web", "n1")).status, 201);
    ASSERT_EQ(Call("POST", "/api/v1/namespaces/default/pods", Pod("pending", "")).status, 201);
  }
  void TearDown() override {
    if (agent_) agent_->Stop();
    if (server_) server_->Stop();
    fs::remove_all(dir_);
  }

  static Json Pod(const std::string& name, const std::string& node) {
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}}},
                {"spec",
                 {{"containers", Json::array({{{"name", "app"}, {"image", "x"}},
                                              {{"name", "side"}, {"image", "x"}}})}}}};
    if (!node.empty()) pod["spec"]["nodeName"] = node;
    return pod;
  }

  HttpResponse Agent(const HttpRequest& request) {
    {
      std::lock_guard lock(mu_);
      agent_requests_.push_back(request.path + "?" + request.Query("tailLines") + "," +
                                request.Query("previous") + "," + request.Query("command"));
    }
    HttpResponse response;
    if (request.path == "/containerLogs/default/web/app") {
      if (request.Query("previous") == "true") {
        response.status = 400;
        response.content_type = "text/plain";
        response.body = "previous terminated container \"app\" in pod \"web\" not found";
        return response;
      }
      response.takeover = [](TakenConnection& conn) {
        conn.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        conn.Write(HttpChunk("one\n"));
        conn.Write(HttpChunk("two\n"));
        conn.Write("0\r\n\r\n");
      };
      return response;
    }
    if (request.path == "/exec/default/web/app") {
      // Upgraded: answers every byte with its upper case, until the client closes.
      response.takeover = [](TakenConnection& conn) {
        conn.Write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\n\r\n");
        char buf[256];
        for (;;) {
          long n = conn.Read(buf, sizeof buf, std::chrono::seconds(5));
          if (n <= 0) return;
          for (long i = 0; i < n; ++i) buf[i] = static_cast<char>(std::toupper(buf[i]));
          if (!conn.Write(std::string_view(buf, static_cast<std::size_t>(n)))) return;
        }
      };
      return response;
    }
    response.status = 404;
    response.body = "404 page not found";
    return response;
  }

  client::HttpResponse Call(const std::string& method, const std::string& target,
                            const Json& body = Json()) {
    auto url = client::ParseUrl(config_.server);
    client::HttpConnection conn(*url, tls_, config_.token);
    client::HttpResponse response;
    EXPECT_TRUE(conn.Do(method, target, body.is_null() ? "" : base::DumpJson(body), &response).ok());
    return response;
  }

  std::string Message(const client::HttpResponse& r) {
    Json j;
    if (!base::ParseJson(r.body, &j).ok()) return "not a Status: " + r.body;
    return base::StringAt(j, {"message"});
  }

  fs::path dir_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<HttpServer> agent_;
  client::ClientConfig config_;
  std::shared_ptr<client::TlsContext> tls_;
  std::mutex mu_;
  std::vector<std::string> agent_requests_;
};

TEST_F(PodProxyTest, LogIsRelayedFromTheNodesAgent) {
  auto r = Call("GET", "/api/v1/namespaces/default/pods/web/log?container=app&tailLines=2");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "one\ntwo\n");
  std::lock_guard lock(mu_);
  ASSERT_EQ(agent_requests_.size(), 1u);
  EXPECT_EQ(agent_requests_[0], "/containerLogs/default/web/app?2,,");
}

TEST_F(PodProxyTest, ErrorsAreKubeApiserversStatuses) {
  auto previous = Call("GET", "/api/v1/namespaces/default/pods/web/log?container=app&previous=true");
  EXPECT_EQ(previous.status, 400);
  EXPECT_EQ(Message(previous), "previous terminated container \"app\" in pod \"web\" not found");
  auto invalid = Call("GET", "/api/v1/namespaces/default/pods/web/log?container=nope");
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(Message(invalid), "container nope is not valid for pod web");
  auto which = Call("GET", "/api/v1/namespaces/default/pods/web/log");
  EXPECT_EQ(Message(which),
            "a container name must be specified for pod web, choose one of: [app side]");
  auto missing = Call("GET", "/api/v1/namespaces/default/pods/nope/log");
  EXPECT_EQ(missing.status, 404);
  auto unscheduled = Call("GET", "/api/v1/namespaces/default/pods/pending/log?container=app");
  EXPECT_EQ(unscheduled.status, 200);
  EXPECT_EQ(unscheduled.body, "");
  auto exec = Call("POST", "/api/v1/namespaces/default/pods/pending/exec?container=app&command=true");
  EXPECT_EQ(exec.status, 400);
  EXPECT_EQ(Message(exec), "pod pending does not have a host assigned");
  auto forward = Call("POST", "/api/v1/namespaces/default/pods/pending/portforward?ports=80");
  EXPECT_EQ(Message(forward), "pod pending does not have a host assigned");
}

TEST_F(PodProxyTest, ExecUpgradeIsRelayedBothWays) {
  auto url = client::ParseUrl(config_.server);
  client::Transport t;
  ASSERT_TRUE(t.Connect(*url, tls_.get()).ok());
  ASSERT_TRUE(t.WriteAll("GET /api/v1/namespaces/default/pods/web/exec?container=app&command=sh"
                         " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + config_.token +
                         "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                         "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n")
                  .ok());
  std::string got;
  auto read_until = [&](const std::string& marker) {
    while (got.find(marker) == std::string::npos) {
      char buf[1024];
      long n = t.Read(buf, sizeof buf);
      if (n <= 0) return false;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  };
  ASSERT_TRUE(read_until("\r\n\r\n"));
  EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 101");
  ASSERT_TRUE(t.WriteAll("hello").ok());
  EXPECT_TRUE(read_until("HELLO"));
  std::lock_guard lock(mu_);
  EXPECT_EQ(agent_requests_.back(), "/exec/default/web/app?,,sh");
}

}  // namespace
}  // namespace fulcrum::apiserver
