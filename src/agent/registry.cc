// The Docker Registry HTTP API V2 / OCI distribution spec, pull side: GET /v2/<name>/manifests/
// <reference> and /v2/<name>/blobs/<digest>, redirects, and the token authentication flow
// (a 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, a token from the realm,
// the request again with `Authorization: Bearer`).
#include "agent/registry.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "base/base64.h"
#include "client/api_client.h"
#include "client/http_client.h"

namespace fulcrum::agent {

using base::BadRequest;
using base::Code;
using base::Json;
using base::Result;
using base::Status;

namespace {

constexpr size_t kMaxSmallBody = 4 * 1024 * 1024;  // manifests, tokens, error documents
constexpr int kMaxRedirects = 5;

const char kManifestAccept[] =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

// An absolute URL split into what a request needs.
struct Target {
  client::Url url;
  std::string path;  // with the query
};

Result<Target> ParseTarget(const std::string& text) {
  ASSIGN_OR_RETURN(client::Url url, client::ParseUrl(text));
  size_t scheme = text.find("://");
  size_t slash = text.find('/', scheme + 3);
  return Target{url, slash == std::string::npos ? "/" : text.substr(slash)};
}

std::string HostPort(const client::Url& url) {
  bool v6 = url.host.find(':') != std::string::npos;
  std::string host = v6 ? "[" + url.host + "]" : url.host;
  return (url.tls && url.port == 443) || (!url.tls && url.port == 80)
             ? host
             : host + ":" + std::to_string(url.port);
}

// Parameters of one WWW-Authenticate challenge: `Bearer realm="x",service="y"` → {scheme, ...}.
std::map<std::string, std::string> ParseChallenge(const std::string& header) {
  std::map<std::string, std::string> out;
  size_t sp = header.find(' ');
  std::string scheme = header.substr(0, sp);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  out[""] = scheme;
  size_t i = sp == std::string::npos ? header.size() : sp + 1;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    size_t eq = header.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = header.substr(i, eq - i);
    std::string value;
    i = eq + 1;
    if (i < header.size() && header[i] == '"') {
      for (++i; i < header.size() && header[i] != '"'; ++i) {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i];
      }
      ++i;
    } else {
      size_t end = header.find(',', i);
      if (end == std::string::npos) end = header.size();
      value = header.substr(i, end - i);
      i = end;
    }
    out[key] = value;
  }
  return out;
}

// The registry's error document ({"errors":[{"code","message"}]}) as text, or the status line.
std::string RegistryError(const client::HttpResponse& r) {
  Json j;
  std::string out;
  if (base::ParseJson(r.body, &j).ok()) {
    if (const Json* errors = base::FindPath(j, {"errors"}); errors && errors->is_array()) {
      for (const auto& e : *errors) {
        std::string code = base::StringAt(e, {"code"}), message = base::StringAt(e, {"message"});
        out += (out.empty() ? "" : "; ") + (code.empty() ? message : code + ": " + message);
      }
    }
  }
  return out.empty() ? "HTTP " + std::to_string(r.status) : out;
}

class RegistrySource : public ImageSource {
 public:
  RegistrySource(RepositoryName name, bool insecure, std::shared_ptr<client::TlsContext> tls,
                 RegistryOptions options, RegistryAuth auth)
      : name_(std::move(name)),
        insecure_(insecure),
        tls_(std::move(tls)),
        options_(std::move(options)),
        auth_(std::move(auth)) {}

  Result<std::string> Manifest(const std::string& reference, std::string* media_type) override {
    client::HttpResponse r;
    RETURN_IF_ERROR(Fetch("manifests/" + reference, kManifestAccept, -1, &r));
    *media_type = r.Header("content-type");
    return std::move(r.body);
  }

  Status Blob(const std::string& digest, const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return base::Internal("creating " + path + ": " + std::strerror(errno));
    client::HttpResponse r;
    Status st = Fetch("blobs/" + digest, "*/*", fd, &r);
    if (::close(fd) != 0 && st.ok()) {
      st = base::Internal("writing " + path + ": " + std::strerror(errno));
    }
    return st;
  }

 private:
  std::string What(const std::string& what) const {
    return name_.registry + "/" + name_.repository + " " + what;
  }

  // GET /v2/<repository>/<what>, authenticating and following redirects; a 2xx body goes to
  // `fd` when it is not -1, else into r->body.
  Status Fetch(const std::string& what, const std::string& accept, int fd,
               client::HttpResponse* r) {
    std::string url = (insecure_ ? "http://" : "https://") + name_.endpoint + "/v2/" +
                      name_.repository + "/" + what;
    bool authenticated = false;
    for (int hop = 0; hop <= kMaxRedirects; ++hop) {
      ASSIGN_OR_RETURN(Target target, ParseTarget(url));
      // Credentials go only to the registry itself, never to where it redirects blobs.
      bool same_host = HostPort(target.url) == name_.endpoint ||
                       (name_.endpoint.find(':') == std::string::npos &&
                        target.url.host == name_.endpoint);
      std::string authorization = same_host ? authorization_ : "";
      RETURN_IF_ERROR(Get(target, accept, authorization, fd, r));
      if (r->status == 401 && same_host && !authenticated) {
        RETURN_IF_ERROR(Authenticate(r->Header("www-authenticate")));
        authenticated = true;
        --hop;
        continue;
      }
      if (r->status >= 300 && r->status < 400 && !r->Header("location").empty()) {
        std::string location = r->Header("location");
        if (location.rfind("http://", 0) != 0 && location.rfind("https://", 0) != 0) {
          location = (target.url.tls ? "https://" : "http://") + HostPort(target.url) +
                     (location.front() == '/' ? "" : "/") + location;
        }
        url = location;
        continue;
      }
      if (r->status >= 200 && r->status < 300) return Status::Ok();
      std::string message = What(what) + ": " + RegistryError(*r);
      switch (r->status) {
        case 401: return Status(Code::kUnauthorized, "unauthorized: " + message);
        case 403: return Status(Code::kForbidden, "denied: " + message);
        case 404: return base::NotFound("not found: " + message);
        case 429: return Status(Code::kTooManyRequests, "too many requests: " + message);
        default:
          return r->status >= 500 ? base::Unavailable(message) : BadRequest(message);
      }
    }
    return BadRequest(What(what) + ": more than " + std::to_string(kMaxRedirects) + " redirects");
  }

  // Answers a 401's challenge: basic credentials, or a bearer token from the challenge's realm.
  Status Authenticate(const std::string& challenge_header) {
    auto challenge = ParseChallenge(challenge_header);
    std::string basic = auth_.username.empty() && auth_.password.empty()
                            ? ""
                            : "Basic " + base::Base64Encode(auth_.username + ":" + auth_.password);
    if (challenge[""] == "basic") {
      if (basic.empty()) {
        return Status(Code::kUnauthorized,
                      "unauthorized: " + name_.registry + " asks for credentials and the pod has "
                      "no imagePullSecret for it");
      }
      authorization_ = basic;
      return Status::Ok();
    }
    if (challenge[""] != "bearer" || challenge["realm"].empty()) {
      return Status(Code::kUnauthorized, "unauthorized: " + name_.registry +
                                             " sent an unsupported challenge \"" +
                                             challenge_header + "\"");
    }
    std::string url = challenge["realm"];
    std::string query;
    for (const char* key : {"service", "scope"}) {
      if (!challenge[key].empty()) {
        query += (query.empty() ? "" : "&") + std::string(key) + "=" +
                 client::QueryEscape(challenge[key]);
      }
    }
    if (challenge["scope"].empty()) {
      query += (query.empty() ? "" : "&") + std::string("scope=") +
               client::QueryEscape("repository:" + name_.repository + ":pull");
    }
    url += (url.find('?') == std::string::npos ? "?" : "&") + query;
    ASSIGN_OR_RETURN(Target target, ParseTarget(url));
    client::HttpResponse r;
    RETURN_IF_ERROR(Get(target, "application/json", basic, -1, &r));
    if (r.status != 200) {
      return Status(Code::kUnauthorized, "unauthorized: the token service " + challenge["realm"] +
                                             " of " + name_.registry + " answered HTTP " +
                                             std::to_string(r.status));
    }
    Json j;
    std::string token;
    if (base::ParseJson(r.body, &j).ok()) {
      token = base::StringAt(j, {"token"});
      if (token.empty()) token = base::StringAt(j, {"access_token"});
    }
    if (token.empty()) {
      return BadRequest("the token service " + challenge["realm"] + " of " + name_.registry +
                        " sent no token");
    }
    authorization_ = "Bearer " + token;
    return Status::Ok();
  }

  // One GET on its own connection.
  Status Get(const Target& target, const std::string& accept, const std::string& authorization,
             int fd, client::HttpResponse* out) {
    client::Transport transport;
    RETURN_IF_ERROR(transport.Connect(target.url, target.url.tls ? tls_.get() : nullptr));
    transport.SetReadTimeout(options_.timeout_seconds);
    std::string request = "GET " + target.path + " HTTP/1.1\r\nHost: " + HostPort(target.url) +
                          "\r\nUser-Agent: fulcrum\r\nAccept: " + accept +
                          "\r\nConnection: close\r\n";
    if (!authorization.empty()) request += "Authorization: " + authorization + "\r\n";
    request += "\r\n";
    RETURN_IF_ERROR(transport.WriteAll(request));
    Status sink_status;
    client::ResponseParser* parser_ptr = nullptr;
    client::ResponseParser parser([&](std::string_view bytes) {
      int status = parser_ptr->response().status;
      if (fd >= 0 && status >= 200 && status < 300) {
        while (!bytes.empty() && sink_status.ok()) {
          ssize_t w = ::write(fd, bytes.data(), bytes.size());
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) {
            sink_status = base::Internal(std::string("writing a blob: ") + std::strerror(errno));
            break;
          }
          bytes.remove_prefix(static_cast<size_t>(w));
        }
      } else if (parser_ptr->response().body.size() + bytes.size() <= kMaxSmallBody) {
        parser_ptr->response().body.append(bytes);
      } else {
        sink_status = BadRequest("a response from " + target.url.host + " is too large");
      }
    });
    parser_ptr = &parser;
    char buf[64 * 1024];
    while (!parser.complete() && sink_status.ok()) {
      long n = transport.Read(buf, sizeof(buf));
      if (n == client::Transport::kWouldBlock) {
        return base::Unavailable("no data from " + target.url.host + " for " +
                                 std::to_string(options_.timeout_seconds) + " s");
      }
      if (n == client::Transport::kError) {
        return base::Unavailable("reading from " + target.url.host + " failed");
      }
      if (n == 0) {
        parser.FeedEof();
        if (!parser.complete()) {
          return base::Unavailable(target.url.host + " closed the connection mid-response");
        }
        break;
      }
      std::string_view data(buf, static_cast<size_t>(n));
      while (!data.empty() && !parser.complete()) {
        auto used = parser.Feed(data);
        if (!used.ok()) return BadRequest(target.url.host + ": " + used.status().message());
        data.remove_prefix(*used);
      }
    }
    RETURN_IF_ERROR(sink_status);
    *out = std::move(parser.response());
    return Status::Ok();
  }

  const RepositoryName name_;
  const bool insecure_;
  const std::shared_ptr<client::TlsContext> tls_;
  const RegistryOptions options_;
  const RegistryAuth auth_;
  std::string authorization_;  // once a challenge has been answered
};

}  // namespace

Result<RepositoryName> SplitReference(const std::string& ref) {
  size_t slash = ref.find('/');
  if (slash == std::string::npos) return base::Invalid("image reference " + ref + " has no registry");
  RepositoryName n;
  n.registry = ref.substr(0, slash);
  n.endpoint = n.registry == "docker.io" ? "registry-1.docker.io" : n.registry;
  std::string rest = ref.substr(slash + 1);
  if (size_t at = rest.find('@'); at != std::string::npos) rest.resize(at);
  if (size_t colon = rest.rfind(':');
      colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    rest.resize(colon);
  }
  n.repository = rest;
  return n;
}

RegistryAuth AuthFromDockerConfig(const Json& config, const std::string& registry) {
  const Json* auths = base::FindPath(config, {"auths"});
  if (auths == nullptr) auths = &config;  // the older .dockercfg: the map itself
  if (!auths->is_object()) return {};
  for (const auto& [key, entry] : auths->items()) {
    std::string host = key;
    if (size_t scheme = host.find("://"); scheme != std::string::npos) host = host.substr(scheme + 3);
    host = host.substr(0, host.find('/'));
    bool match = host == registry || (registry == "docker.io" &&
                                      (host == "index.docker.io" || host == "registry-1.docker.io"));
    if (!match || !entry.is_object()) continue;
    RegistryAuth a{base::StringAt(entry, {"username"}), base::StringAt(entry, {"password"})};
    std::string encoded = base::StringAt(entry, {"auth"}), decoded;
    size_t bad = 0;
    if (!encoded.empty() && base::Base64Decode(encoded, &decoded, &bad)) {
      size_t colon = decoded.find(':');
      a.username = decoded.substr(0, colon);
      a.password = colon == std::string::npos ? "" : decoded.substr(colon + 1);
    }
    return a;
  }
  return {};
}

Result<std::unique_ptr<ImageSource>> OpenRegistry(const std::string& normalised_ref,
                                                  const RegistryOptions& options,
                                                  RegistryAuth auth) {
  ASSIGN_OR_RETURN(RepositoryName name, SplitReference(normalised_ref));
  std::string host = name.endpoint.substr(0, name.endpoint.rfind(':'));
  if (name.endpoint.front() == '[') host = name.endpoint.substr(0, name.endpoint.find(']') + 1);
  bool insecure = host == "localhost" || host == "127.0.0.1" || host == "[::1]";
  for (const auto& r : options.insecure) insecure = insecure || r == name.endpoint || r == host;
  std::shared_ptr<client::TlsContext> tls;
  if (!insecure) {
    ASSIGN_OR_RETURN(tls, client::TlsContext::Create(options.ca_file));
  }
  return std::unique_ptr<ImageSource>(
      new RegistrySource(std::move(name), insecure, std::move(tls), options, std::move(auth)));
}

}  // namespace fulcrum::agent
