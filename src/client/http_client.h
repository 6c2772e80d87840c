// A small HTTP/1.1 client (RFC 9112) for fulcrum's API clients and the benchmarks: blocking
// keep-alive requests and readers of chunked watch streams, over TCP with optional TLS (OpenSSL).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace fulcrum::client {

// "http://host:port" or "https://host:port" (a trailing path is ignored).
struct Url {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
};

// Errors: BadRequest naming the part of `text` that is wrong.
base::Result<Url> ParseUrl(std::string_view text);

// A client TLS configuration that verifies the server against one CA file and the URL's host.
// Thread-safe once created; share one among all connections.
class TlsContext {
 public:
  // Errors: Internal when the CA file cannot be read.
  static base::Result<std::shared_ptr<TlsContext>> Create(const std::string& ca_file);
  // The same, with the CA certificates given as PEM text. Errors: BadRequest for bad PEM.
  static base::Result<std::shared_ptr<TlsContext>> CreateFromPem(std::string_view ca_pem);
  // A context that presents a client certificate (PEM files) and does not verify the server: for
  // the API server's connections to agents, whose serving certificates are self-signed (as
  // kube-apiserver does not verify kubelets by default). Errors: Internal naming the file.
  static base::Result<std::shared_ptr<TlsContext>> CreateWithClientCertificate(
      const std::string& cert_file, const std::string& key_file);
  ~TlsContext();
  SSL_CTX* get() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

// A connected socket, TLS-wrapped when the URL asks for it. Not thread-safe.
class Transport {
 public:
  Transport() = default;
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Connects (blocking) and completes the TLS handshake, verifying the peer. `tls` may be null
  // for plain URLs. The connect and the handshake each give up after `timeout` (a peer that is
  // gone answers nothing; the kernel alone would wait minutes). Errors: Unavailable for
  // connect/handshake failures and timeouts.
  base::Status Connect(const Url& url, const TlsContext* tls,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30));
  void Close();
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Blocking: writes all of `data`. Errors: Unavailable.
  base::Status WriteAll(std::string_view data);

  // Reads at most `n` bytes. Returns the count (> 0), 0 at end of stream, kWouldBlock when a
  // non-blocking socket has nothing more now, or kError.
  static constexpr long kWouldBlock = -1;
  static constexpr long kError = -2;
  long Read(char* buf, std::size_t n);
  // Writes at most `n` bytes. Returns the count (> 0), kWouldBlock when a non-blocking socket
  // takes nothing now (call again with the same bytes once it is writable), or kError.
  long Write(const char* data, std::size_t n);

  // True when TLS has read bytes from the socket that Read has not returned yet, so a poller
  // must call Read again without waiting for the socket to become readable.
  bool HasPending() const;

  // Switches the socket to non-blocking mode (for the watch readers).
  void SetNonBlocking();
  // The negotiated protocol and cipher ("TLSv1.3 TLS_AES_128_GCM_SHA256"), or "none".
  std::string Cipher() const;

  // Makes a blocking Read give up after `seconds` without data, returning kWouldBlock.
  void SetReadTimeout(int seconds);

 private:
  int fd_ = -1;
  SSL* ssl_ = nullptr;
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  // The first value of a header, or "".
  std::string Header(std::string_view lower_name) const;
};

// An incremental parser of one HTTP/1.1 response: status line, headers, then a body framed by
// Content-Length, chunked transfer coding, or the end of the connection. Body bytes are appended
// to response().body, or passed to the sink when one is set (streams).
class ResponseParser {
 public:
  using BodySink = std::function<void(std::string_view)>;
  explicit ResponseParser(BodySink sink = nullptr) : sink_(std::move(sink)) {}

  // Consumes bytes from `data`; returns how many were used (fewer than data.size() only once the
  // response is complete). Errors: BadRequest for a malformed response; the parser is then dead.
  base::Result<std::size_t> Feed(std::string_view data);
  // Tells the parser the peer closed the connection; completes an until-close body.
  void FeedEof();

  bool headers_done() const { return state_ > State::kHeaders; }
  bool complete() const { return state_ == State::kDone; }
  HttpResponse& response() { return response_; }

 private:
  enum class State {
    kStatusLine,
    kHeaders,
    kLengthBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kUntilClose,
    kDone
  };
  base::Status OnLine(std::string_view line);
  void Body(std::string_view bytes);

  BodySink sink_;
  State state_ = State::kStatusLine;
  std::string line_;  // a partial line carried between Feed calls
  std::size_t remaining_ = 0;
  HttpResponse response_;
};

// A blocking HTTP/1.1 keep-alive connection that sends `Authorization: Bearer <token>` when a
// token is given. Connects lazily; when a reused connection turns out to have been closed by the
// server before any response byte arrives, reconnects and retries the request once. Not
// thread-safe: one per client thread.
class HttpConnection {
 public:
  HttpConnection(Url url, std::shared_ptr<TlsContext> tls, std::string token,
                 std::string user_agent = "fulcrum");

  // Sends one request and reads the whole response into *response. Errors: Unavailable for
  // transport failures, BadRequest for a malformed response.
  // The body is sent with `content_type`. A blocking read that waits longer than the read timeout
  // (SetReadTimeout; none by default) fails with Unavailable.
  base::Status Do(std::string_view method, std::string_view target, std::string_view body,
                  HttpResponse* response, std::string_view content_type = "application/json");
  void SetReadTimeout(int seconds) { read_timeout_seconds_ = seconds; }

  // Sends a request whose response is a stream, then hands the connection over: the caller
  // feeds bytes read from the returned transport to its own ResponseParser. The connection is
  // left closed. Errors: Unavailable.
  base::Result<std::unique_ptr<Transport>> StartStream(std::string_view target);

 private:
  std::string RequestHead(std::string_view method, std::string_view target, std::size_t body_bytes,
                          bool has_body, std::string_view content_type) const;
  base::Status Connect();
  base::Status DoOnce(const std::string& request, HttpResponse* response, bool* nothing_read);

  Url url_;
  std::shared_ptr<TlsContext> tls_;
  std::string token_;
  std::string user_agent_;
  int read_timeout_seconds_ = 0;
  Transport transport_;
  std::string buf_;
};

// Splits a byte stream into newline-terminated lines (watch events), carrying partial lines.
class LineSplitter {
 public:
  template <typename F>
  void Feed(std::string_view bytes, F&& on_line) {
    while (!bytes.empty()) {
      auto nl = bytes.find('\n');
      if (nl == std::string_view::npos) {
        partial_.append(bytes);
        return;
      }
      if (partial_.empty()) {
        on_line(bytes.substr(0, nl));
      } else {
        partial_.append(bytes.substr(0, nl));
        on_line(std::string_view(partial_));
        partial_.clear();
      }
      bytes.remove_prefix(nl + 1);
    }
  }

 private:
  std::string partial_;
};

}  // namespace fulcrum::client
