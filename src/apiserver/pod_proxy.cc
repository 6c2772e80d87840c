// kube-apiserver's pod log and exec locations (pkg/registry/core/pod/strategy.go: LogLocation,
// ExecLocation) and its proxying to the node: the log body relayed as it comes, exec's upgraded
// connection (WebSocket) relayed byte for byte in both directions.
#include "apiserver/pod_proxy.h"

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "apiserver/objects.h"
#include "base/json.h"
#include "base/log.h"
#include "client/api_client.h"
#include "client/http_client.h"

namespace fulcrum::apiserver {
namespace {

using base::Json;
using base::Result;
using base::Status;

constexpr std::size_t kMaxHeadBytes = 64 * 1024;
constexpr std::size_t kMaxErrorBody = 64 * 1024;

HttpResponse Error(const Status& status, const RequestInfo& info) {
  return StatusResponse(status, &info);
}

// The names of the pod's containers of one kind, "[a b]" as Go prints a slice.
std::string Names(const Json& pod, const char* list) {
  std::string out;
  if (const Json* cs = base::FindPath(pod, {"spec", list}); cs && cs->is_array()) {
    for (const auto& c : *cs) out += (out.empty() ? "" : " ") + base::StringAt(c, {"name"});
  }
  return out;
}

bool HasContainer(const Json& pod, const std::string& name) {
  for (const char* list : {"containers", "initContainers", "ephemeralContainers"}) {
    if (const Json* cs = base::FindPath(pod, {"spec", list}); cs && cs->is_array()) {
      for (const auto& c : *cs) {
        if (base::StringAt(c, {"name"}) == name) return true;
      }
    }
  }
  return false;
}

// Where an agent's pod server is.
struct AgentAddress {
  std::string host;
  uint16_t port = 0;
};

// The pod, its container (the only one when not named) and its node's agent; `scheduled` false
// when the pod has no node yet.
struct PodTarget {
  Json pod;
  std::string container;
  bool scheduled = false;
  AgentAddress agent;
};

// `container` "" picks the only one; `pod_only` (port forwarding) skips containers.
Result<PodTarget> FindTarget(Objects& objects, const RequestInfo& info,
                             const std::string& container, bool pod_only = false) {
  const api::ResourceType* pods = objects.registry().Find("", "v1", "pods");
  const api::ResourceType* nodes = objects.registry().Find("", "v1", "nodes");
  ObjectPtr object = objects.cache().Get(*pods, info.namespace_, info.name);
  if (!object) return base::NotFound("pods \"" + info.name + "\" not found");
  PodTarget t;
  RETURN_IF_ERROR(base::ParseJson(object->json, &t.pod));
  t.container = container;
  if (pod_only) {
    // No container to check.
  } else if (t.container.empty()) {
    const Json* cs = base::FindPath(t.pod, {"spec", "containers"});
    std::size_t n = cs && cs->is_array() ? cs->size() : 0;
    if (n == 1) {
      t.container = base::StringAt((*cs)[0], {"name"});
    } else if (n == 0) {
      return base::BadRequest("a container name must be specified for pod " + info.name);
    } else {
      std::string message = "a container name must be specified for pod " + info.name +
                            ", choose one of: [" + Names(t.pod, "containers") + "]";
      std::string init = Names(t.pod, "initContainers");
      if (!init.empty()) message += " or one of the init containers: [" + init + "]";
      return base::BadRequest(message);
    }
  } else if (!HasContainer(t.pod, t.container)) {
    return base::BadRequest("container " + t.container + " is not valid for pod " + info.name);
  }
  std::string node_name = base::StringAt(t.pod, {"spec", "nodeName"});
  if (node_name.empty()) return t;
  t.scheduled = true;
  ObjectPtr node_object = objects.cache().Get(*nodes, "", node_name);
  if (!node_object) return base::NotFound("nodes \"" + node_name + "\" not found");
  Json node;
  RETURN_IF_ERROR(base::ParseJson(node_object->json, &node));
  const Json* port = base::FindPath(node, {"status", "daemonEndpoints", "kubeletEndpoint", "Port"});
  if (port == nullptr || !port->is_number_integer() || port->get<int64_t>() <= 0 ||
      port->get<int64_t>() > 65535) {
    return base::Unavailable("node \"" + node_name +
                             "\" publishes no agent port (status.daemonEndpoints."
                             "kubeletEndpoint.Port): is its agent running with a pod server?");
  }
  t.agent.port = static_cast<uint16_t>(port->get<int64_t>());
  // InternalIP first (kube-apiserver puts Hostname first, which need not resolve here).
  for (const char* type : {"InternalIP", "Hostname", "InternalDNS", "ExternalIP", "ExternalDNS"}) {
    if (!t.agent.host.empty()) break;
    if (const Json* as = base::FindPath(node, {"status", "addresses"}); as && as->is_array()) {
      for (const auto& a : *as) {
        if (base::StringAt(a, {"type"}) == type && !base::StringAt(a, {"address"}).empty()) {
          t.agent.host = base::StringAt(a, {"address"});
          break;
        }
      }
    }
  }
  if (t.agent.host.empty()) {
    return base::Unavailable("node \"" + node_name + "\" has no address");
  }
  return t;
}

// A connection to an agent's pod server. Reads and writes may come from two threads: every
// OpenSSL call is made under one lock, and waits for the socket happen outside it.
class AgentConnection {
 public:
  Status Connect(const AgentAddress& agent, const client::TlsContext* tls) {
    client::Url url{true, agent.host, agent.port};
    Status s = transport_.Connect(url, tls);
    if (!s.ok()) {
      return base::Unavailable("error dialing the agent at " + agent.host + ":" +
                               std::to_string(agent.port) + ": " + s.message());
    }
    transport_.SetReadTimeout(30);
    return Status::Ok();
  }

  // Blocking, before the connection is shared.
  Status WriteAll(std::string_view data) { return transport_.WriteAll(data); }

  // Reads the response head (blocking); body bytes that came with it stay in *rest.
  Status ReadHead(std::string* head, std::string* rest) {
    std::string buf;
    for (;;) {
      auto end = buf.find("\r\n\r\n");
      if (end != std::string::npos) {
        *head = buf.substr(0, end + 4);
        *rest = buf.substr(end + 4);
        return Status::Ok();
      }
      if (buf.size() > kMaxHeadBytes) return base::Internal("the agent's response head is too large");
      char chunk[8192];
      long n = transport_.Read(chunk, sizeof chunk);
      if (n <= 0) return base::Unavailable("the agent closed the connection without a response");
      buf.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Afterwards, Read and Write may be used from two threads.
  void Share() { transport_.SetNonBlocking(); }

  // Bytes (> 0), 0 at the end or on failure, -1 when nothing came within `timeout_ms`.
  long Read(char* buf, std::size_t n, int timeout_ms) {
    for (bool waited = false;; waited = true) {
      {
        std::lock_guard lock(mu_);
        long r = transport_.Read(buf, n);
        if (r > 0) return r;
        if (r != client::Transport::kWouldBlock) return 0;
        if (transport_.HasPending()) continue;
      }
      if (waited || stopped_) return stopped_ ? 0 : -1;
      pollfd p{transport_.fd(), POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) == 0) return -1;
    }
  }

  bool Write(std::string_view data) {
    while (!data.empty()) {
      long n;
      {
        std::lock_guard lock(mu_);
        n = transport_.Write(data.data(), data.size());
      }
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n != client::Transport::kWouldBlock || stopped_) return false;
      pollfd p{transport_.fd(), POLLOUT | POLLIN, 0};
      ::poll(&p, 1, 200);
    }
    return true;
  }

  // Wakes a Read under way on another thread; later calls fail.
  void Stop() {
    stopped_ = true;
    ::shutdown(transport_.fd(), SHUT_RDWR);
  }

 private:
  client::Transport transport_;
  std::mutex mu_;
  std::atomic<bool> stopped_{false};
};

int StatusCode(const std::string& head) {
  return head.size() > 12 ? std::atoi(head.c_str() + 9) : 0;
}

std::string HeaderValue(const std::string& head, const std::string& lower_name) {
  std::size_t at = 0;
  while ((at = head.find("\r\n", at)) != std::string::npos) {
    at += 2;
    std::size_t colon = head.find(':', at);
    std::size_t eol = head.find("\r\n", at);
    if (colon == std::string::npos || eol == std::string::npos || colon > eol) continue;
    std::string name = head.substr(at, colon - at);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name != lower_name) continue;
    std::string value = head.substr(colon + 1, eol - colon - 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    return value;
  }
  return "";
}

// The rest of a non-streamed error body (Content-Length, else up to the close), bounded.
std::string ReadErrorBody(AgentConnection& agent, const std::string& head, std::string body) {
  std::string length = HeaderValue(head, "content-length");
  std::size_t want =
      length.empty() ? kMaxErrorBody
                     : std::min<std::size_t>(std::strtoul(length.c_str(), nullptr, 10), kMaxErrorBody);
  agent.Share();
  while (body.size() < want) {
    char buf[8192];
    long n = agent.Read(buf, sizeof buf, 5000);
    if (n <= 0) break;
    body.append(buf, static_cast<std::size_t>(n));
  }
  if (body.size() > want) body.resize(want);
  return body;
}

std::string AgentQuery(const HttpRequest& request, std::initializer_list<const char*> names) {
  std::string query;
  for (const char* name : names) {
    for (auto [it, end] = request.query.equal_range(name); it != end; ++it) {
      query += (query.empty() ? "?" : "&") + std::string(name) + "=" +
               client::QueryEscape(it->second);
    }
  }
  return query;
}

std::string PathOf(const RequestInfo& info, const std::string& what, const std::string& container) {
  return "/" + what + "/" + client::QueryEscape(info.namespace_) + "/" +
         client::QueryEscape(info.name) + "/" + client::QueryEscape(container);
}

}  // namespace

bool IsPodProxyRequest(const RequestInfo& info) {
  return info.group.empty() && info.resource == "pods" && !info.name.empty() &&
         (info.subresource == "log" || info.subresource == "exec" ||
          info.subresource == "attach" || info.subresource == "portforward");
}

Result<std::unique_ptr<PodProxy>> PodProxy::Create(Objects* objects,
                                                   const std::string& client_cert_file,
                                                   const std::string& client_key_file) {
  ASSIGN_OR_RETURN(auto tls, client::TlsContext::CreateWithClientCertificate(client_cert_file,
                                                                             client_key_file));
  return std::unique_ptr<PodProxy>(new PodProxy(objects, std::move(tls)));
}

HttpResponse PodProxy::Serve(const HttpRequest& request, const RequestInfo& info) {
  if (info.subresource == "log") {
    if (request.method != "GET") {
      return Error(Status(base::Code::kMethodNotAllowed, "pods/log supports GET only"), info);
    }
    return Log(request, info);
  }
  return Exec(request, info);  // exec, attach, portforward: upgrades
}

HttpResponse PodProxy::Log(const HttpRequest& request, const RequestInfo& info) {
  auto target = FindTarget(*objects_, info, request.Query("container"));
  if (!target.ok()) return Error(target.status(), info);
  if (!target->scheduled) {
    // kube-apiserver: no location, so an empty log.
    HttpResponse empty;
    empty.content_type = "text/plain";
    return empty;
  }
  auto agent = std::make_shared<AgentConnection>();
  if (Status s = agent->Connect(target->agent, tls_.get()); !s.ok()) return Error(s, info);
  std::string query = AgentQuery(request, {"follow", "previous", "timestamps", "sinceSeconds",
                                           "sinceTime", "tailLines", "limitBytes"});
  std::string head, rest;
  Status sent = agent->WriteAll("GET " + PathOf(info, "containerLogs", target->container) + query +
                                " HTTP/1.1\r\nHost: " + target->agent.host +
                                "\r\nConnection: close\r\n\r\n");
  if (sent.ok()) sent = agent->ReadHead(&head, &rest);
  if (!sent.ok()) return Error(base::Unavailable(sent.message()), info);
  int code = StatusCode(head);
  if (code != 200) {
    // kube-apiserver's GenericHttpResponseChecker: the kubelet's text becomes the message.
    std::string body = ReadErrorBody(*agent, head, std::move(rest));
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    if (code == 400) return Error(base::BadRequest(body), info);
    if (code == 404) return Error(base::NotFound(body), info);
    return Error(base::Internal("the agent answered " + std::to_string(code) + ": " + body), info);
  }
  HttpResponse response;
  response.takeover = [agent, rest = std::move(rest)](TakenConnection& conn) {
    if (!conn.Write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")) {
      return;
    }
    agent->Share();
    bool open = true;
    client::ResponseParser parser([&](std::string_view data) {
      if (open && !data.empty()) open = conn.Write(HttpChunk(data));
    });
    // The parser starts after the head, at the body.
    (void)parser.Feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    if (!rest.empty() && !parser.Feed(rest).ok()) return;
    while (open && !parser.complete()) {
      char buf[16 * 1024];
      long n = agent->Read(buf, sizeof buf, 200);
      if (n == 0) break;
      if (n > 0 && !parser.Feed(std::string_view(buf, static_cast<std::size_t>(n))).ok()) break;
      char discard[256];
      if (conn.Read(discard, sizeof discard, std::chrono::milliseconds(0)) == 0) return;
    }
    if (open) conn.Write("0\r\n\r\n");
  };
  return response;
}

HttpResponse PodProxy::Exec(const HttpRequest& request, const RequestInfo& info) {
  const bool forward = info.subresource == "portforward";
  auto target = FindTarget(*objects_, info, request.Query("container"), forward);
  if (!target.ok()) return Error(target.status(), info);
  if (!target->scheduled) {
    return Error(base::BadRequest("pod " + info.name + " does not have a host assigned"), info);
  }
  auto agent = std::make_shared<AgentConnection>();
  if (Status s = agent->Connect(target->agent, tls_.get()); !s.ok()) return Error(s, info);
  // The kubelet's paths: /exec/NS/POD/CONTAINER, /attach/…, /portForward/NS/POD.
  std::string path = forward ? "/portForward/" + client::QueryEscape(info.namespace_) + "/" +
                                   client::QueryEscape(info.name)
                             : PathOf(info, info.subresource, target->container);
  std::string upstream = request.method + " " + path +
                         AgentQuery(request, {"command", "stdin", "stdout", "stderr", "tty"}) +
                         " HTTP/1.1\r\nHost: " + target->agent.host + "\r\n";
  for (const char* name : {"connection", "upgrade", "sec-websocket-key", "sec-websocket-version",
                           "sec-websocket-protocol", "x-stream-protocol-version"}) {
    std::string value = request.Header(name);
    if (!value.empty()) upstream += std::string(name) + ": " + value + "\r\n";
  }
  upstream += "Content-Length: 0\r\n\r\n";
  std::string head, rest;
  Status sent = agent->WriteAll(upstream);
  if (sent.ok()) sent = agent->ReadHead(&head, &rest);
  if (!sent.ok()) return Error(base::Unavailable(sent.message()), info);
  if (StatusCode(head) != 101) {
    HttpResponse response;
    response.status = StatusCode(head);
    response.content_type = HeaderValue(head, "content-type");
    response.body = ReadErrorBody(*agent, head, std::move(rest));
    return response;
  }
  HttpResponse response;
  response.takeover = [agent, head = std::move(head), rest = std::move(rest)](TakenConnection& conn) {
    if (!conn.Write(head) || (!rest.empty() && !conn.Write(rest))) return;
    agent->Share();
    std::thread down([&] {
      char buf[32 * 1024];
      for (;;) {
        long n = agent->Read(buf, sizeof buf, 500);
        if (n == 0) break;
        if (n > 0 && !conn.Write(std::string_view(buf, static_cast<std::size_t>(n)))) break;
      }
      conn.Close();
    });
    char buf[32 * 1024];
    for (;;) {
      long n = conn.Read(buf, sizeof buf, std::chrono::seconds(1));
      if (n == 0) break;
      if (n > 0 && !agent->Write(std::string_view(buf, static_cast<std::size_t>(n)))) break;
    }
    agent->Stop();
    down.join();
  };
  return response;
}

}  // namespace fulcrum::apiserver
