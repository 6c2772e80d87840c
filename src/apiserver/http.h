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

// A response body produced over time (a watch). The server calls Next from the connection's own
// thread until it returns false; Next blocks until it has data, the deadline passes (then it
// returns true with nothing appended, so the server can notice a closed client), or the stream
// ends. Cancel may be called from another thread to end the stream early.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  virtual bool Next(std::string* out, std::chrono::steady_clock::time_point deadline) = 0;
  virtual void Cancel() = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, `body` is written first and then the stream, with chunked transfer encoding.
  std::shared_ptr<HttpStream> stream;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Percent-decodes `s`; '+' becomes a space only when `plus_is_space`.
std::string PercentDecode(std::string_view s, bool plus_is_space);
// Splits "a=b&c=d" into decoded pairs.
std::multimap<std::string, std::string> ParseQuery(std::string_view raw);

}  // namespace fulcrum::apiserver
