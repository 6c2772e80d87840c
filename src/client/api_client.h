// The client side of the Kubernetes REST API as fulcrum's server speaks it: kubeconfig loading,
// request/response with errors decoded from `Status` bodies, and watch streams. Every component
// other than the API server (controllers, scheduler, agents, DNS) reaches the cluster through this.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/json.h"
#include "base/status.h"
#include "client/http_client.h"

namespace fulcrum::client {

using base::Json;

// Where the API server is and how to prove who we are.
struct ClientConfig {
  std::string server;  // "https://127.0.0.1:6443"
  std::string ca_pem;  // certificate authority data (PEM); empty for plain http
  std::string token;   // bearer token; empty for none
  std::string default_namespace = "default";
  std::string user_agent = "fulcrum";
};

// Reads a kubeconfig file (YAML) and returns its current context's cluster and user.
// certificate-authority-data, certificate-authority (a file) and token / tokenFile are understood.
// Errors: NotFound when the file is missing; BadRequest naming what is wrong with it.
base::Result<ClientConfig> LoadKubeconfig(const std::string& path);

// "/api/v1/namespaces/NS/pods/NAME/status" from its parts; `group_version` is "v1" for the core
// group or "apps/v1"; empty namespace, name and subresource are left out.
std::string ResourcePath(std::string_view group_version, std::string_view resource,
                         std::string_view namespace_name = "", std::string_view name = "",
                         std::string_view subresource = "");

// Percent-encodes a query parameter value (label and field selectors).
std::string QueryEscape(std::string_view value);

// The namespace/name key of an object ("name" for cluster-scoped objects).
std::string ObjectKey(const Json& object);

enum class PatchType { kJson, kMerge, kStrategicMerge };

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
  Json object;
};

// One open watch response. Not thread-safe; Close may be called from another thread to unblock
// Next.
class WatchStream {
 public:
  virtual ~WatchStream() = default;
  // Blocks for the next event. Returns false when the server ended the stream normally (the watch
  // timed out); Unavailable when the connection failed or nothing arrived within the read timeout;
  // BadRequest for a malformed event.
  virtual base::Result<bool> Next(WatchEvent* event) = 0;
  virtual void Close() = 0;
};

// A client of one API server. Thread-safe: requests from many threads share a pool of keep-alive
// connections. Errors from the server come back as the Status code its reason names (NotFound,
// AlreadyExists, Conflict, Invalid, Gone, ...) with the server's message; transport failures are
// Unavailable.
class ApiClient {
 public:
  // Errors: BadRequest for an unusable URL or CA.
  static base::Result<std::unique_ptr<ApiClient>> Create(ClientConfig config);
  ~ApiClient();

  const ClientConfig& config() const { return config_; }

  base::Result<Json> Get(std::string_view path);
  // POST to a collection path.
  base::Result<Json> Create(std::string_view collection_path, const Json& object);
  // PUT to an object path (or its /status subresource).
  base::Result<Json> Update(std::string_view path, const Json& object);
  base::Result<Json> Patch(std::string_view path, PatchType type, const Json& patch);
  // DELETE with optional DeleteOptions. The server's answer (the object or a Status) is returned.
  base::Result<Json> Delete(std::string_view path, const Json& options = nullptr);
  // Any request; `body` may be empty.
  base::Result<Json> Request(std::string_view method, std::string_view path, std::string_view body,
                             std::string_view content_type = "application/json");
  // GET that returns the raw body (logs).
  base::Result<std::string> GetRaw(std::string_view path);

  // Opens `path` (which must carry ?watch=1 or be a watch URL with its query) as a stream.
  // A stream that sees no bytes for `read_timeout_seconds` fails with Unavailable.
  base::Result<std::unique_ptr<WatchStream>> Watch(std::string_view path_and_query,
                                                   int read_timeout_seconds = 0);

 private:
  ApiClient(ClientConfig config, Url url, std::shared_ptr<TlsContext> tls);
  std::unique_ptr<HttpConnection> Acquire();
  void Release(std::unique_ptr<HttpConnection> connection);

  ClientConfig config_;
  Url url_;
  std::shared_ptr<TlsContext> tls_;
  std::mutex mu_;
  std::vector<std::unique_ptr<HttpConnection>> idle_;  // guarded by mu_
};

// The Status a server's error response stands for: its reason mapped back to a code, its message
// kept. Used for any response with an HTTP status >= 400.
base::Status StatusFromResponse(const HttpResponse& response);

}  // namespace fulcrum::client
