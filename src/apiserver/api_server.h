#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/status.h"

namespace fulcrum::apiserver {

struct ApiServerOptions {
  std::string data_dir;               // pki/, kubeconfig and (by default) the SQLite store
  std::string store_uri;              // "" = sqlite:DATA_DIR/state.db
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 6443;        // 0 = any free port
  base::Clock* clock = nullptr;       // nullptr = the real clock
};

// The Kubernetes-compatible API server: HTTPS, bearer-token authentication, discovery, REST
// verbs for every registered kind, watch, server-side tables, /metrics, and the in-process
// namespace finalizer. Writes DATA_DIR/kubeconfig once it is serving.
class ApiServer {
 public:
  virtual ~ApiServer() = default;
  virtual uint16_t port() const = 0;
  virtual std::string kubeconfig_path() const = 0;
  // Stops serving and releases the store. Idempotent.
  virtual void Stop() = 0;
};

base::Result<std::unique_ptr<ApiServer>> StartApiServer(const ApiServerOptions& options);

}  // namespace fulcrum::apiserver
