#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fulcrum::apiserver {

// One parsed HTTP request. Header names are lower-cased; query values are percent-decoded.
struct HttpRequest {
  std::string method;  // "GET"
  std::string path;    // "/api/v1/namespaces/default/pods" (decoded, no query)
  std::multimap<std::string, std::string> query;
  std::map<std::string, std::string> headers;
  std::string body;
  std::string remote_address;

  // The first value of a query parameter, or `fallback`.
  std::string Query(const std::string& name, const std::string& fallback = "") const;
  bool HasQuery(const std::string& name) const { return query.count(name) > 0; }
  std::string Header(const std::string& lower_name) const;
};

// Immutable bytes that many streams may queue at once: one watch event, framed once.
using SharedBytes = std::shared_ptr<const std::string>;

// `data` framed as one chunk of a chunked body (RFC 9112 §7.1): hex size, CRLF, data, CRLF.
// Empty data gives an empty string (an empty chunk would end the body).
std::string HttpChunk(std::string_view data);

// A response body produced over time (a watch). No thread waits on it: after the response head,
// the server hands the connection to one of a few event-loop threads, which polls the stream
// when it can write and writes what Poll returns, so a slow client holds a queue, not a thread.
class HttpStream {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~HttpStream() = default;
  // Called once, before the first Poll, with the function the stream calls (from any thread,
  // without blocking) whenever a Poll that found nothing would now find something: data, or the
  // end. Until then the server polls again only at the time Poll asked for.
  virtual void Start(std::function<void()> wake) = 0;
  // Appends the chunks ready now, each already framed with HttpChunk, to *out, stopping once
  // about `max_bytes` are appended. Never blocks. Returns false once the stream has ended
  // (everything it will send was appended); the server then ends the body. Otherwise sets
  // *poll_at to when it wants to be polled even without a wake (a bookmark or the timeout).
  // Calls never overlap.
  virtual bool Poll(TimePoint now, std::size_t max_bytes, std::vector<SharedBytes>* out,
                    TimePoint* poll_at) = 0;
  // True once the producer gave up on a client that does not keep up. The server then ends the
  // connection without waiting more than a short grace for a write already under way. Thread-safe.
  virtual bool Abandoned() const = 0;
  // Ends the stream early: the client went away, or the server is stopping. Thread-safe.
  virtual void Cancel() = 0;
};

// A connection a handler took over (HttpResponse::takeover): an upgrade to another protocol, or a
// response the handler frames itself. Read and Write may run at the same time on two threads;
// calls of one of them must not overlap. Thread-safe otherwise.
class TakenConnection {
 public:
  virtual ~TakenConnection() = default;
  // Blocks until bytes arrive and returns their count; 0 once the peer closed or the connection
  // failed; -1 when `timeout` passed first (a later Read continues the same wait).
  virtual long Read(char* buf, std::size_t n, std::chrono::milliseconds timeout) = 0;
  // Writes all of `data`. False once the connection failed.
  virtual bool Write(std::string_view data) = 0;
  // Ends the connection at once: a Read under way returns 0, later Writes fail.
  virtual void Close() = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, `body` is written first and then the stream, with chunked transfer encoding.
  std::shared_ptr<HttpStream> stream;
  // When set, nothing else here is used: the connection's thread calls this with the connection
  // (bytes the client sent after the request are the first Read), and the function writes
  // everything itself, the response head included. The connection is closed when it returns.
  std::function<void(TakenConnection&)> takeover;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Percent-decodes `s`; '+' becomes a space only when `plus_is_space`.
std::string PercentDecode(std::string_view s, bool plus_is_space);
// Splits "a=b&c=d" into decoded pairs.
std::multimap<std::string, std::string> ParseQuery(std::string_view raw);

}  // namespace fulcrum::apiserver
