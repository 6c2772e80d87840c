#include "agent/probe.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace fulcrum::agent {
namespace {

using base::Json;
using Clock = std::chrono::steady_clock;

base::Result<int> IntField(const Json& j, const char* key, int fallback, int min,
                           const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) return base::Invalid(where + "." + key + ": must be an integer");
  int64_t v = it->get<int64_t>();
  if (v < min || v > 1 << 30) {
    return base::Invalid(where + "." + key + ": Invalid value: " + std::to_string(v) +
                         ": must be at least " + std::to_string(min));
  }
  return static_cast<int>(v);
}

// An IntOrString port: a number, or the name of one of the container's ports.
base::Result<int> ResolvePort(const Json* port, const Json& container, const std::string& where) {
  if (port == nullptr || port->is_null()) return base::Invalid(where + ": Required value");
  int value = 0;
  if (port->is_number_integer()) {
    value = port->get<int>();
  } else if (port->is_string()) {
    std::string name = port->get<std::string>();
    bool digits = !name.empty() && std::all_of(name.begin(), name.end(), ::isdigit);
    if (digits && name.size() <= 5) {
      value = std::stoi(name);
    } else {
      const Json* ports = base::FindPath(container, {"ports"});
      if (ports && ports->is_array()) {
        for (const Json& p : *ports) {
          if (base::StringAt(p, {"name"}) == name && p.contains("containerPort") &&
              p["containerPort"].is_number_integer()) {
            value = p["containerPort"].get<int>();
          }
        }
      }
      if (value == 0) {
        return base::Invalid(where + ": Invalid value: \"" + name + "\": no container port named \"" +
                             name + "\"");
      }
    }
  } else {
    return base::Invalid(where + ": must be an integer or a port name");
  }
  if (value < 1 || value > 65535) {
    return base::Invalid(where + ": Invalid value: " + std::to_string(value) +
                         ": must be between 1 and 65535");
  }
  return value;
}

// A connected TCP socket to host:port, within `deadline`; -1 with `why` set otherwise.
int Connect(const std::string& host, int port, Clock::time_point deadline, std::string* why) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    *why = "cannot resolve " + host + ": " + ::gai_strerror(rc);
    return -1;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(res);
    *why = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  rc = ::connect(fd, res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  std::string target = host + ":" + std::to_string(port);
  if (rc != 0 && errno != EINPROGRESS) {
    *why = "dial tcp " + target + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    int left = static_cast<int>(
        std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                 deadline - Clock::now()).count()));
    int n;
    do {
      n = ::poll(&p, 1, left);
    } while (n < 0 && errno == EINTR);
    int err = 0;
    socklen_t len = sizeof err;
    if (n == 0) {
      *why = "dial tcp " + target + ": i/o timeout";
      ::close(fd);
      return -1;
    }
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (n < 0 || err != 0) {
      *why = "dial tcp " + target + ": " + std::strerror(n < 0 ? errno : err);
      ::close(fd);
      return -1;
    }
  }
  return fd;
}

class SystemProber : public Prober {
 public:
  explicit SystemProber(ContainerRuntime* runtime) : runtime_(runtime) {}

  // Prober
  ProbeOutcome Probe(const ProbeSpec& spec, const ProbeTarget& target) override {
    auto timeout = std::chrono::seconds(spec.timeout_seconds);
    switch (spec.handler) {
      case ProbeSpec::Handler::kExec: return Exec(spec, target, timeout);
      case ProbeSpec::Handler::kTcpSocket: {
        std::string why;
        int fd = Connect(Host(spec, target), spec.port, Clock::now() + timeout, &why);
        if (fd < 0) return {false, why};
        ::close(fd);
        return {true, ""};
      }
      case ProbeSpec::Handler::kHttpGet: return HttpGet(spec, target, Clock::now() + timeout);
    }
    return {false, "unknown probe handler"};
  }

 private:
  static std::string Host(const ProbeSpec& spec, const ProbeTarget& target) {
    return spec.host.empty() ? target.pod_ip : spec.host;
  }

  ProbeOutcome Exec(const ProbeSpec& spec, const ProbeTarget& target,
                    std::chrono::milliseconds timeout) {
    auto r = runtime_->Exec(target.container_id, spec.command, timeout);
    if (!r.ok()) {
      if (r.status().code() == base::Code::kTimeout) {
        return {false, "command timed out after " + std::to_string(spec.timeout_seconds) + "s"};
      }
      return {false, r.status().message()};
    }
    if (r->exit_code == 0) return {true, ""};
    std::string out = r->output.size() > 1024 ? r->output.substr(0, 1024) : r->output;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return {false, "command exited with " + std::to_string(r->exit_code) +
                       (out.empty() ? "" : ": " + out)};
  }

  static ProbeOutcome HttpGet(const ProbeSpec& spec, const ProbeTarget& target,
                              Clock::time_point deadline) {
    if (spec.scheme != "HTTP") return {false, "scheme " + spec.scheme + " is not supported"};
    std::string host = Host(spec, target);
    std::string url = "http://" + host + ":" + std::to_string(spec.port) + spec.path;
    std::string why;
    int fd = Connect(host, spec.port, deadline, &why);
    if (fd < 0) return {false, "Get \"" + url + "\": " + why};
    std::string host_header = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    host_header += ":" + std::to_string(spec.port);
    std::string user_agent = "kube-probe/1.30";
    std::string extra;
    for (const auto& [name, value] : spec.headers) {
      if (name.find_first_of("\r\n:") != std::string::npos ||
          value.find_first_of("\r\n") != std::string::npos) {
        continue;
      }
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      if (lower == "host") host_header = value;
      else if (lower == "user-agent") user_agent = value;
      else extra += name + ": " + value + "\r\n";
    }
    std::string request = "GET " + spec.path + " HTTP/1.1\r\nHost: " + host_header +
                          "\r\nUser-Agent: " + user_agent +
                          "\r\nAccept: */*\r\nConnection: close\r\n" + extra + "\r\n";
    std::string response;
    size_t sent = 0;
    bool timed_out = false;
    while (!timed_out) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      pollfd p{fd, static_cast<short>(sent < request.size() ? POLLOUT : POLLIN), 0};
      int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        timed_out = n == 0;
        if (n < 0) break;
        continue;
      }
      if (sent < request.size()) {
        ssize_t w = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (w <= 0 && errno != EAGAIN && errno != EINTR) break;
        if (w > 0) sent += static_cast<size_t>(w);
        continue;
      }
      char buf[4096];
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) break;
      response.append(buf, static_cast<size_t>(r));
      if (response.find("\r\n") != std::string::npos || response.size() > 16384) break;
    }
    ::close(fd);
    size_t eol = response.find("\r\n");
    if (eol == std::string::npos) {
      return {false, "Get \"" + url + "\": " +
                         (timed_out ? "context deadline exceeded (Client.Timeout exceeded while "
                                      "awaiting headers)"
                                    : "connection closed before a status line")};
    }
    // "HTTP/1.1 200 OK"
    std::string line = response.substr(0, eol);
    int code = 0;
    if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12 ||
        std::sscanf(line.c_str() + 9, "%3d", &code) != 1) {
      return {false, "Get \"" + url + "\": malformed HTTP status line"};
    }
    if (code >= 200 && code < 400) return {true, ""};
    return {false, "HTTP probe failed with statuscode: " + std::to_string(code)};
  }

  ContainerRuntime* const runtime_;
};

}  // namespace

const char* ProbeKindName(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::kStartup: return "Startup";
    case ProbeKind::kLiveness: return "Liveness";
    case ProbeKind::kReadiness: return "Readiness";
  }
  return "Unknown";
}

base::Result<ProbeSpec> ParseProbe(const Json& probe, const Json& container, ProbeKind kind,
                                   const std::string& where) {
  if (!probe.is_object()) return base::Invalid(where + ": must be an object");
  ProbeSpec spec;
  int handlers = 0;
  for (const char* h : {"exec", "httpGet", "tcpSocket", "grpc"}) {
    if (probe.contains(h) && !probe[h].is_null()) ++handlers;
  }
  if (handlers == 0) return base::Invalid(where + ": Required value: must specify a handler type");
  if (handlers > 1) return base::Invalid(where + ": Forbidden: may not specify more than 1 handler type");
  if (probe.contains("grpc") && !probe["grpc"].is_null()) {
    return base::Invalid(where + ".grpc: Unsupported value: grpc probes are not supported by this node");
  }
  if (const Json* exec = base::FindPath(probe, {"exec"}); exec && !exec->is_null()) {
    spec.handler = ProbeSpec::Handler::kExec;
    const Json* cmd = base::FindPath(*exec, {"command"});
    if (cmd && cmd->is_array()) {
      for (const Json& a : *cmd) {
        if (!a.is_string()) return base::Invalid(where + ".exec.command: must be strings");
        spec.command.push_back(a.get<std::string>());
      }
    }
    if (spec.command.empty()) return base::Invalid(where + ".exec.command: Required value");
  } else if (const Json* http = base::FindPath(probe, {"httpGet"}); http && !http->is_null()) {
    spec.handler = ProbeSpec::Handler::kHttpGet;
    ASSIGN_OR_RETURN(spec.port, ResolvePort(base::FindPath(*http, {"port"}), container,
                                            where + ".httpGet.port"));
    spec.host = base::StringAt(*http, {"host"});
    spec.path = base::StringAt(*http, {"path"});
    if (spec.path.empty() || spec.path[0] != '/') spec.path = "/" + spec.path;
    if (spec.path.find_first_of(" \r\n") != std::string::npos) {
      return base::Invalid(where + ".httpGet.path: Invalid value: \"" + spec.path + "\"");
    }
    std::string scheme = base::StringAt(*http, {"scheme"});
    spec.scheme = scheme.empty() ? "HTTP" : scheme;
    if (spec.scheme != "HTTP" && spec.scheme != "HTTPS") {
      return base::Invalid(where + ".httpGet.scheme: Unsupported value: \"" + spec.scheme + "\"");
    }
    if (const Json* hs = base::FindPath(*http, {"httpHeaders"}); hs && hs->is_array()) {
      for (const Json& h : *hs) {
        spec.headers.emplace_back(base::StringAt(h, {"name"}), base::StringAt(h, {"value"}));
      }
    }
  } else {
    spec.handler = ProbeSpec::Handler::kTcpSocket;
    const Json& tcp = probe["tcpSocket"];
    ASSIGN_OR_RETURN(spec.port, ResolvePort(base::FindPath(tcp, {"port"}), container,
                                            where + ".tcpSocket.port"));
    spec.host = base::StringAt(tcp, {"host"});
  }
  ASSIGN_OR_RETURN(spec.initial_delay_seconds, IntField(probe, "initialDelaySeconds", 0, 0, where));
  ASSIGN_OR_RETURN(spec.period_seconds, IntField(probe, "periodSeconds", 10, 1, where));
  ASSIGN_OR_RETURN(spec.timeout_seconds, IntField(probe, "timeoutSeconds", 1, 1, where));
  ASSIGN_OR_RETURN(spec.success_threshold, IntField(probe, "successThreshold", 1, 1, where));
  ASSIGN_OR_RETURN(spec.failure_threshold, IntField(probe, "failureThreshold", 3, 1, where));
  if (kind != ProbeKind::kReadiness && spec.success_threshold != 1) {
    return base::Invalid(where + ".successThreshold: Invalid value: " +
                         std::to_string(spec.success_threshold) + ": must be 1");
  }
  return spec;
}

std::unique_ptr<Prober> NewProber(ContainerRuntime* runtime) {
  return std::make_unique<SystemProber>(runtime);
}

ContainerProbes::ContainerProbes(std::optional<ProbeSpec> startup,
                                 std::optional<ProbeSpec> liveness,
                                 std::optional<ProbeSpec> readiness, base::WallTime started_at)
    : started_(!startup.has_value()) {
  auto add = [&](ProbeKind kind, std::optional<ProbeSpec>& spec) {
    if (!spec) return;
    Worker w{kind, *spec, kind != ProbeKind::kReadiness};
    w.due = started_at + std::chrono::seconds(spec->initial_delay_seconds);
    workers_.push_back(std::move(w));
  };
  add(ProbeKind::kStartup, startup);
  add(ProbeKind::kLiveness, liveness);
  add(ProbeKind::kReadiness, readiness);
}

void ContainerProbes::Run(Prober& prober, const ProbeTarget& target, base::WallTime now) {
  for (Worker& w : workers_) {
    if (restart_kind_) return;
    if (w.kind == ProbeKind::kStartup ? started_ : !started_) continue;
    if (now < w.due) continue;
    RunWorker(w, prober, target, now);
    w.due = now + std::chrono::seconds(w.spec.period_seconds);
  }
}

void ContainerProbes::RunWorker(Worker& w, Prober& prober, const ProbeTarget& target,
                                base::WallTime now) {
  ProbeOutcome outcome = prober.Probe(w.spec, target);
  if (w.run > 0 && w.last == outcome.success) {
    ++w.run;
  } else {
    w.last = outcome.success;
    w.run = 1;
  }
  if (!outcome.success) {
    last_failure_ = std::string(ProbeKindName(w.kind)) + " probe failed: " + outcome.message;
  }
  // A result changes only after threshold outcomes in a row.
  int threshold = outcome.success ? w.spec.success_threshold : w.spec.failure_threshold;
  if (w.run < threshold) return;
  w.result = outcome.success;
  if (w.kind == ProbeKind::kStartup && outcome.success) started_ = true;
  if (!outcome.success && w.kind != ProbeKind::kReadiness) restart_kind_ = w.kind;
}

std::optional<base::WallTime> ContainerProbes::NextDue() const {
  if (restart_kind_) return std::nullopt;
  std::optional<base::WallTime> next;
  for (const Worker& w : workers_) {
    if (w.kind == ProbeKind::kStartup ? started_ : !started_) continue;
    if (!next || w.due < *next) next = w.due;
  }
  return next;
}

bool ContainerProbes::Ready() const {
  if (!started_) return false;
  for (const Worker& w : workers_) {
    if (w.kind == ProbeKind::kReadiness) return w.result;
  }
  return true;
}

}  // namespace fulcrum::agent
