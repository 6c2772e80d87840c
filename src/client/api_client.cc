#include "client/api_client.h"

#include <sys/socket.h>

#include <cctype>
#include <optional>
#include <utility>

#include "api/yaml.h"
#include "base/base64.h"
#include "base/file.h"

namespace fulcrum::client {
namespace {

// The entry of a kubeconfig list (clusters, users, contexts) with this name, or nullptr.
const Json* NamedEntry(const Json& config, const char* list, const std::string& name,
                       const char* field) {
  const Json* items = base::FindPath(config, {list});
  if (items == nullptr || !items->is_array()) return nullptr;
  for (const Json& item : *items) {
    if (item.is_object() && base::StringAt(item, {"name"}) == name) {
      const Json* inner = base::FindPath(item, {field});
      return inner != nullptr && inner->is_object() ? inner : nullptr;
    }
  }
  return nullptr;
}

std::string TrimSpace(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

const char* PatchContentType(PatchType type) {
  switch (type) {
    case PatchType::kJson: return "application/json-patch+json";
    case PatchType::kMerge: return "application/merge-patch+json";
    case PatchType::kStrategicMerge: return "application/strategic-merge-patch+json";
  }
  return "application/merge-patch+json";
}

base::Code CodeFromReason(std::string_view reason, int http_status) {
  for (int c = static_cast<int>(base::Code::kBadRequest); c <= static_cast<int>(base::Code::kTimeout);
       ++c) {
    auto code = static_cast<base::Code>(c);
    if (reason == base::CodeName(code)) return code;
  }
  switch (http_status) {
    case 400: return base::Code::kBadRequest;
    case 401: return base::Code::kUnauthorized;
    case 403: return base::Code::kForbidden;
    case 404: return base::Code::kNotFound;
    case 405: return base::Code::kMethodNotAllowed;
    case 409: return base::Code::kConflict;
    case 410: return base::Code::kGone;
    case 413: return base::Code::kRequestTooLarge;
    case 415: return base::Code::kUnsupportedMediaType;
    case 422: return base::Code::kInvalid;
    case 429: return base::Code::kTooManyRequests;
    case 503: return base::Code::kUnavailable;
    case 504: return base::Code::kTimeout;
    default: return base::Code::kInternal;
  }
}

class HttpWatchStream : public WatchStream {
 public:
  explicit HttpWatchStream(std::unique_ptr<Transport> transport)
      : transport_(std::move(transport)),
        parser_([this](std::string_view bytes) { body_.append(bytes); }) {}

  base::Result<bool> Next(WatchEvent* event) override {
    while (true) {
      if (auto line = TakeLine()) {
        if (line->empty()) continue;
        Json parsed;
        RETURN_IF_ERROR(base::ParseJson(*line, &parsed));
        if (!parsed.is_object() || !parsed["type"].is_string()) {
          return base::BadRequest("watch event without a type: " + line->substr(0, 200));
        }
        event->type = parsed["type"].get<std::string>();
        event->object = std::move(parsed["object"]);
        return true;
      }
      if (parser_.complete() && parser_.response().status >= 400) {
        HttpResponse r = parser_.response();
        r.body = body_;
        return StatusFromResponse(r);
      }
      if (parser_.complete() || transport_ == nullptr || !transport_->connected()) return false;
      long n = transport_->Read(buf_, sizeof buf_);
      if (n == Transport::kWouldBlock) return base::Unavailable("watch stream idle past its timeout");
      if (n == Transport::kError) return base::Unavailable("watch stream read failed");
      if (n == 0) {
        parser_.FeedEof();
        if (!parser_.complete()) return base::Unavailable("watch stream closed mid-response");
        continue;
      }
      ASSIGN_OR_RETURN(std::size_t used,
                       parser_.Feed(std::string_view(buf_, static_cast<std::size_t>(n))));
      (void)used;
    }
  }

  void Close() override {
    if (transport_ != nullptr) ::shutdown(transport_->fd(), SHUT_RDWR);
  }

 private:
  std::optional<std::string> TakeLine() {
    if (parser_.headers_done() && parser_.response().status >= 400) return std::nullopt;
    auto nl = body_.find('\n', scanned_);
    if (nl == std::string::npos) {
      scanned_ = body_.size();
      return std::nullopt;
    }
    std::string line = body_.substr(0, nl);
    body_.erase(0, nl + 1);
    scanned_ = 0;
    return line;
  }

  std::unique_ptr<Transport> transport_;
  ResponseParser parser_;
  std::string body_;
  std::size_t scanned_ = 0;
  char buf_[64 * 1024];
};

}  // namespace

base::Result<ClientConfig> LoadKubeconfig(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, base::ReadFile(path));
  auto parsed = api::YamlToJson(text);
  if (!parsed.ok()) return base::BadRequest("kubeconfig " + path + ": " + parsed.status().message());
  const Json& config = *parsed;
  std::string context_name = base::StringAt(config, {"current-context"});
  if (context_name.empty()) return base::BadRequest("kubeconfig " + path + " has no current-context");
  const Json* context = NamedEntry(config, "contexts", context_name, "context");
  if (context == nullptr) {
    return base::BadRequest("kubeconfig " + path + ": context " + context_name + " not found");
  }
  ClientConfig out;
  std::string ns = base::StringAt(*context, {"namespace"});
  if (!ns.empty()) out.default_namespace = ns;
  std::string cluster_name = base::StringAt(*context, {"cluster"});
  const Json* cluster = NamedEntry(config, "clusters", cluster_name, "cluster");
  if (cluster == nullptr) {
    return base::BadRequest("kubeconfig " + path + ": cluster " + cluster_name + " not found");
  }
  out.server = base::StringAt(*cluster, {"server"});
  if (out.server.empty()) return base::BadRequest("kubeconfig " + path + ": cluster has no server");
  std::string ca_data = base::StringAt(*cluster, {"certificate-authority-data"});
  std::string ca_file = base::StringAt(*cluster, {"certificate-authority"});
  if (!ca_data.empty()) {
    std::size_t bad = 0;
    if (!base::Base64Decode(ca_data, &out.ca_pem, &bad)) {
      return base::BadRequest("kubeconfig " + path + ": certificate-authority-data is not base64 (byte " +
                              std::to_string(bad) + ")");
    }
  } else if (!ca_file.empty()) {
    ASSIGN_OR_RETURN(out.ca_pem, base::ReadFile(ca_file));
  }
  std::string user_name = base::StringAt(*context, {"user"});
  if (const Json* user = NamedEntry(config, "users", user_name, "user")) {
    out.token = base::StringAt(*user, {"token"});
    std::string token_file = base::StringAt(*user, {"tokenFile"});
    if (out.token.empty() && !token_file.empty()) {
      ASSIGN_OR_RETURN(std::string token, base::ReadFile(token_file));
      out.token = TrimSpace(std::move(token));
    }
  }
  return out;
}

std::string ResourcePath(std::string_view group_version, std::string_view resource,
                         std::string_view namespace_name, std::string_view name,
                         std::string_view subresource) {
  std::string path = group_version.find('/') == std::string_view::npos ? "/api/" : "/apis/";
  path.append(group_version);
  if (!namespace_name.empty()) path.append("/namespaces/").append(namespace_name);
  path.append("/").append(resource);
  if (!name.empty()) path.append("/").append(name);
  if (!subresource.empty()) path.append("/").append(subresource);
  return path;
}

std::string QueryEscape(std::string_view value) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string ObjectKey(const Json& object) {
  std::string ns = base::StringAt(object, {"metadata", "namespace"});
  std::string name = base::StringAt(object, {"metadata", "name"});
  return ns.empty() ? name : ns + "/" + name;
}

base::Status StatusFromResponse(const HttpResponse& response) {
  Json body;
  std::string message;
  std::string reason;
  if (base::ParseJson(response.body, &body).ok() && body.is_object()) {
    message = base::StringAt(body, {"message"});
    reason = base::StringAt(body, {"reason"});
  }
  if (message.empty()) {
    message = "HTTP " + std::to_string(response.status) + ": " + response.body.substr(0, 200);
  }
  return base::Status(CodeFromReason(reason, response.status), message);
}

base::Result<std::unique_ptr<ApiClient>> ApiClient::Create(ClientConfig config) {
  ASSIGN_OR_RETURN(Url url, ParseUrl(config.server));
  std::shared_ptr<TlsContext> tls;
  if (url.tls) {
    if (config.ca_pem.empty()) return base::BadRequest("https server " + config.server + " without a CA");
    ASSIGN_OR_RETURN(tls, TlsContext::CreateFromPem(config.ca_pem));
  }
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(config), std::move(url), std::move(tls)));
}

ApiClient::ApiClient(ClientConfig config, Url url, std::shared_ptr<TlsContext> tls)
    : config_(std::move(config)), url_(std::move(url)), tls_(std::move(tls)) {}

ApiClient::~ApiClient() = default;

std::unique_ptr<HttpConnection> ApiClient::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<HttpConnection>(url_, tls_, config_.token, config_.user_agent);
  // A request never waits this long on a healthy server; a hung one must not hang the caller.
  c->SetReadTimeout(60);
  return c;
}

void ApiClient::Release(std::unique_ptr<HttpConnection> connection) {
  std::lock_guard lock(mu_);
  if (idle_.size() < 16) idle_.push_back(std::move(connection));
}

base::Result<std::string> ApiClient::GetRaw(std::string_view path) {
  auto connection = Acquire();
  HttpResponse response;
  RETURN_IF_ERROR(connection->Do("GET", path, "", &response));
  Release(std::move(connection));
  if (response.status >= 400) return StatusFromResponse(response);
  return std::move(response.body);
}

base::Result<Json> ApiClient::Request(std::string_view method, std::string_view path,
                                      std::string_view body, std::string_view content_type) {
  auto connection = Acquire();
  HttpResponse response;
  RETURN_IF_ERROR(connection->Do(method, path, body, &response, content_type));
  Release(std::move(connection));
  if (response.status >= 400) return StatusFromResponse(response);
  Json out;
  if (!response.body.empty()) {
    base::Status s = base::ParseJson(response.body, &out);
    if (!s.ok()) return base::Internal("server answered " + std::string(path) + " with bad JSON: " + s.message());
  }
  return out;
}

base::Result<Json> ApiClient::Get(std::string_view path) { return Request("GET", path, ""); }

base::Result<Json> ApiClient::Create(std::string_view collection_path, const Json& object) {
  return Request("POST", collection_path, base::DumpJson(object));
}

base::Result<Json> ApiClient::Update(std::string_view path, const Json& object) {
  return Request("PUT", path, base::DumpJson(object));
}

base::Result<Json> ApiClient::Patch(std::string_view path, PatchType type, const Json& patch) {
  return Request("PATCH", path, base::DumpJson(patch), PatchContentType(type));
}

base::Result<Json> ApiClient::Delete(std::string_view path, const Json& options) {
  return Request("DELETE", path, options.is_null() ? "" : base::DumpJson(options));
}

base::Result<std::unique_ptr<WatchStream>> ApiClient::Watch(std::string_view path_and_query,
                                                            int read_timeout_seconds) {
  HttpConnection connection(url_, tls_, config_.token, config_.user_agent);
  ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, connection.StartStream(path_and_query));
  if (read_timeout_seconds > 0) transport->SetReadTimeout(read_timeout_seconds);
  return std::unique_ptr<WatchStream>(new HttpWatchStream(std::move(transport)));
}

}  // namespace fulcrum::client
