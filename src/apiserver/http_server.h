#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "apiserver/http.h"
#include "base/status.h"

namespace fulcrum::apiserver {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;            // 0: pick a free port; see HttpServer::port()
  std::string cert_file;        // PEM; TLS is off when empty (tests of the plain path only)
  std::string key_file;
  // When set (with TLS), a client must present a certificate that this CA file's CA signed, for
  // client authentication, and whose subject CN is one of `client_names` when that is not empty.
  std::string client_ca_file;
  std::vector<std::string> client_names;
  std::size_t max_body_bytes = 3 * 1024 * 1024;  // Kubernetes' limit for a request body
  std::size_t stream_threads = 0;  // loop threads writing streamed responses; 0 = cores, at most 4
};

// An HTTP/1.1 server (TLS when given a certificate). Requests run on one thread per connection, so
// a handler may block (a durable write) without holding up other clients. A response with a
// stream (a watch) is different: once its head is written, the connection moves to a few shared
// event-loop threads that write whatever the stream produces (see HttpStream), so a thousand
// watches cost a thousand queues, not a thousand threads. Keep-alive is supported; bodies above
// max_body_bytes get 413 without being read into memory.
class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // The bound port (useful with port 0).
  virtual uint16_t port() const = 0;
  // Stops accepting, closes open streams and joins every connection and loop thread.
  virtual void Stop() = 0;
};

// Binds and starts serving `handler` on a background thread. Errors: Unavailable when the address
// cannot be bound, Internal when the certificate cannot be loaded.
base::Result<std::unique_ptr<HttpServer>> StartHttpServer(const HttpServerOptions& options,
                                                          HttpHandler handler);

}  // namespace fulcrum::apiserver
