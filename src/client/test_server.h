// For tests: a real API server in this process on a free port with an in-memory store, and a
// client for it built from the kubeconfig it writes.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "apiserver/api_server.h"
#include "client/api_client.h"

namespace fulcrum::client {

// Waits, at most `limit`, for a condition that another thread (a controller, an informer, the
// server) makes true; returns whether it became true. The bound keeps a broken test from hanging;
// nothing is asserted about how long it took.
template <typename F>
bool Eventually(F f, std::chrono::milliseconds limit = std::chrono::seconds(15)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return f();
}

class TestDir {
 public:
  TestDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fulcrum-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TestDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class TestServer {
 public:
  TestServer() {
    apiserver::ApiServerOptions options;
    options.data_dir = dir_.path();
    options.store_uri = "memory:";
    options.listen_port = 0;
    auto server = apiserver::StartApiServer(options);
    EXPECT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    auto config = LoadKubeconfig(server_->kubeconfig_path());
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    auto client = ApiClient::Create(*config);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(*client);
  }
  ~TestServer() { server_->Stop(); }
  ApiClient& client() { return *client_; }
  const std::string& dir() const { return dir_.path(); }

 private:
  TestDir dir_;
  std::unique_ptr<apiserver::ApiServer> server_;
  std::unique_ptr<ApiClient> client_;
};

}  // namespace fulcrum::client
