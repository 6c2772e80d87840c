#include "apiserver/api_server.h"

#include <openssl/crypto.h>

#include <atomic>
#include <deque>
#include <condition_variable>
#include <set>
#include <thread>

#include "apiserver/http_server.h"
#include "apiserver/metrics.h"
#include "apiserver/metrics_api.h"
#include "apiserver/objects.h"
#include "apiserver/openapi.h"
#include "apiserver/pki.h"
#include "apiserver/pod_proxy.h"
#include "apiserver/rest.h"
#include "apiserver/watch_cache.h"
#include "base/file.h"
#include "base/log.h"

namespace fulcrum::apiserver {
namespace {

using base::Json;

constexpr const char* kKubernetesVersion = "v1.30.0";

Json ResourceVerbs() {
  return Json::array(
      {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"});
}

HttpResponse JsonOk(const Json& j) {
  HttpResponse r;
  r.body = base::DumpJson(j);
  return r;
}

HttpResponse Raw(std::string json) {
  HttpResponse r;
  r.body = std::move(json);
  return r;
}

HttpResponse Text(int code, std::string body) {
  HttpResponse r;
  r.status = code;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

class Server : public ApiServer {
 public:
  explicit Server(const ApiServerOptions& options) : options_(options) {
    clock_ = options.clock != nullptr ? options.clock : base::RealClock();
  }

  ~Server() override { Stop(); }

  base::Status Init() {
    RETURN_IF_ERROR(base::MakeDirs(options_.data_dir, 0700));
    api::AddBuiltinTypes(&registry_);
    std::string uri = options_.store_uri.empty() ? "sqlite:" + options_.data_dir + "/state.db"
                                                 : options_.store_uri;
    ASSIGN_OR_RETURN(store_, store::OpenStore(uri));
    cache_ = std::make_unique<WatchCache>(&registry_, store_.get());
    RETURN_IF_ERROR(cache_->Start());
    objects_ = std::make_unique<Objects>(&registry_, store_.get(), cache_.get(), clock_);
    RETURN_IF_ERROR(objects_->EnsureSystemNamespaces());
    RETURN_IF_ERROR(objects_->EnsureSystemPriorityClasses());
    ASSIGN_OR_RETURN(pki_, EnsurePki(options_.data_dir, {options_.listen_host}));
    ASSIGN_OR_RETURN(pod_proxy_,
                     PodProxy::Create(objects_.get(), pki_.server_cert_file, pki_.server_key_file));
    HttpServerOptions http;
    http.host = options_.listen_host;
    http.port = options_.listen_port;
    http.cert_file = pki_.server_cert_file;
    http.key_file = pki_.server_key_file;
    ASSIGN_OR_RETURN(http_, StartHttpServer(http, [this](const HttpRequest& r) { return Handle(r); }));
    std::string host = options_.listen_host;
    if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
    if (host == "::") host = "::1";
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    std::string server_url = "https://" + host + ":" + std::to_string(http_->port());
    kubeconfig_ = options_.data_dir + "/kubeconfig";
    RETURN_IF_ERROR(base::WriteFileAtomic(
        kubeconfig_, RenderKubeconfig(server_url, pki_.ca_pem, pki_.admin_token), 0600));
    namespace_finalizer_ = std::thread([this] { FinalizeNamespaces(); });
    compactor_ = std::thread([this] { CompactHistory(); });
    LOG_INFO << "serving the API at " << server_url << "; kubeconfig: " << kubeconfig_;
    return base::Status::Ok();
  }

  uint16_t port() const override { return http_ ? http_->port() : 0; }
  std::string kubeconfig_path() const override { return kubeconfig_; }

  void Stop() override {
    {
      std::lock_guard lock(stop_mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    stop_cv_.notify_all();
    if (namespace_finalizer_.joinable()) namespace_finalizer_.join();
    if (compactor_.joinable()) compactor_.join();
    if (http_) http_->Stop();
    objects_.reset();
    cache_.reset();
    store_.reset();
  }

 private:
  bool Authenticated(const HttpRequest& request) const {
    std::string auth = request.Header("authorization");
    const std::string prefix = "Bearer ";
    if (auth.compare(0, prefix.size(), prefix) != 0) return false;
    std::string token = auth.substr(prefix.size());
    return token.size() == pki_.admin_token.size() &&
           CRYPTO_memcmp(token.data(), pki_.admin_token.data(), token.size()) == 0;
  }

  HttpResponse Handle(const HttpRequest& request) {
    auto start = std::chrono::steady_clock::now();
    const std::string& path = request.path;
    if (path == "/healthz" || path == "/livez" || path == "/readyz" ||
        path.rfind("/healthz/", 0) == 0 || path.rfind("/livez/", 0) == 0 ||
        path.rfind("/readyz/", 0) == 0) {
      return Text(200, "ok");
    }
    if (!Authenticated(request)) {
      HttpResponse r = StatusResponse(base::Status(base::Code::kUnauthorized, "Unauthorized"));
      return r;
    }
    RequestInfo info;
    HttpResponse response;
    std::string resource_label;
    if (auto metrics = ServeMetricsApi(request, registry_, *cache_, *clock_)) {
      response = std::move(*metrics);  // metrics.k8s.io, served from NodeMetric objects
      info.verb = request.method;
      resource_label = kMetricsGroup;
    } else if (ParseResourcePath(request, registry_, &info)) {
      response = IsPodProxyRequest(info) ? pod_proxy_->Serve(request, info)
                                         : ServeResource(*objects_, request, info);
      resource_label = info.resource + (info.subresource.empty() ? "" : "/" + info.subresource);
    } else {
      response = ServeNonResource(request);
      info.verb = request.method;
    }
    if (!response.stream) {
      metrics_.Observe(info.verb, resource_label, response.status,
                       std::chrono::steady_clock::now() - start);
    } else {
      metrics_.Observe("WATCH", resource_label, response.status, std::chrono::nanoseconds(0));
    }
    return response;
  }

  HttpResponse ServeNonResource(const HttpRequest& request) {
    const std::string& path = request.path;
    if (request.method != "GET" && request.method != "HEAD") {
      return StatusResponse(base::NotFound("the server could not find the requested resource"));
    }
    if (path == "/version" || path == "/version/") {
      return JsonOk({{"major", "1"},
                     {"minor", "30"},
                     {"gitVersion", std::string(kKubernetesVersion) + "+fulcrum"},
                     {"gitCommit", ""},
                     {"gitTreeState", "clean"},
                     {"buildDate", "2026-01-01T00:00:00Z"},
                     {"goVersion", "n/a (C++)"},
                     {"compiler", "gcc"},
                     {"platform", "linux/amd64"}});
    }
    if (path == "/metrics") {
      std::string out;
      metrics_.Render(&out);
      out += "# HELP apiserver_storage_objects Number of stored objects per resource.\n"
             "# TYPE apiserver_storage_objects gauge\n";
      for (const auto& t : registry_.types()) {
        out += "apiserver_storage_objects{resource=\"" + Objects::Qualified(*t) + "\"} " +
               std::to_string(cache_->Count(*t)) + "\n";
      }
      out += "# HELP fulcrum_watch_cache_revision The store revision the watch cache reflects.\n"
             "# TYPE fulcrum_watch_cache_revision gauge\nfulcrum_watch_cache_revision " +
             std::to_string(cache_->Revision()) + "\n";
      HttpResponse r = Text(200, std::move(out));
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      return r;
    }
    if (path == "/openapi/v2" || path == "/swagger-2.0.0.pb-v1") {
      // No schemas yet. An empty protobuf Document is a valid (empty) OpenAPI v2 document: kubectl
      // then skips client-side schema checks for kinds it does not find and relies on the server
      // (fieldValidation), which /openapi/v3 says every path supports.
      HttpResponse r;
      if (request.Header("accept").find("protobuf") != std::string::npos) {
        r.content_type = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
      } else {
        r.body = R"({"swagger":"2.0","info":{"title":"Kubernetes","version":"v1.30.0"},"paths":{}})";
      }
      return r;
    }
    if (path == "/openapi/v3" || path == "/openapi/v3/") return Raw(OpenApiV3Root(registry_));
    if (path.rfind("/openapi/v3/", 0) == 0) {
      std::string doc = OpenApiV3GroupVersion(registry_, path.substr(12));
      if (!doc.empty()) return Raw(std::move(doc));
    }
    if (path == "/api" || path == "/api/") {
      return JsonOk({{"kind", "APIVersions"},
                     {"versions", {"v1"}},
                     {"serverAddressByClientCIDRs",
                      {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", request.Header("host")}}}}});
    }
    if (path == "/apis" || path == "/apis/") return JsonOk(GroupList());
    if (path == "/api/v1" || path == "/api/v1/") return JsonOk(ResourceList("", "v1"));
    if (path.rfind("/apis/", 0) == 0) {
      std::string rest = path.substr(6);
      while (!rest.empty() && rest.back() == '/') rest.pop_back();
      auto slash = rest.find('/');
      if (slash == std::string::npos) {
        for (const auto& g : GroupList()["groups"]) {
          if (g["name"] == rest) {
            Json group = g;
            group["kind"] = "APIGroup";
            group["apiVersion"] = "v1";
            return JsonOk(group);
          }
        }
      } else {
        Json list = ResourceList(rest.substr(0, slash), rest.substr(slash + 1));
        if (!list["resources"].empty()) return JsonOk(list);
      }
    }
    return StatusResponse(base::NotFound("the server could not find the requested resource"));
  }

  Json GroupList() const {
    Json groups = Json::array();
    std::set<std::string> seen;
    for (const auto& t : registry_.types()) {
      if (t->group.empty() || !seen.insert(t->group).second) continue;
      Json gv = {{"groupVersion", t->GroupVersion()}, {"version", t->version}};
      groups.push_back({{"name", t->group},
                        {"versions", Json::array({gv})},
                        {"preferredVersion", gv}});
    }
    groups.push_back(MetricsApiGroup());
    return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
  }

  Json ResourceList(const std::string& group, const std::string& version) const {
    Json resources = Json::array();
    for (const auto& t : registry_.types()) {
      if (t->group != group || t->version != version) continue;
      Json r = {{"name", t->plural},         {"singularName", t->singular},
                {"namespaced", t->namespaced}, {"kind", t->kind},
                {"verbs", ResourceVerbs()}};
      if (!t->short_names.empty()) r["shortNames"] = t->short_names;
      if (!t->categories.empty()) r["categories"] = t->categories;
      resources.push_back(r);
      if (t->has_status) {
        resources.push_back({{"name", t->plural + "/status"},
                             {"singularName", ""},
                             {"namespaced", t->namespaced},
                             {"kind", t->kind},
                             {"verbs", {"get", "patch", "update"}}});
      }
      if (t->has_scale) {
        resources.push_back({{"name", t->plural + "/scale"},
                             {"singularName", ""},
                             {"namespaced", t->namespaced},
                             {"group", "autoscaling"},
                             {"version", "v1"},
                             {"kind", "Scale"},
                             {"verbs", {"get", "patch", "update"}}});
      }
      if (t->group.empty() && t->plural == "pods") {
        for (const char* sub : {"pods/log", "pods/exec", "pods/attach", "pods/portforward"}) {
          const std::string name = sub;
          resources.push_back({{"name", sub},
                               {"singularName", ""},
                               {"namespaced", true},
                               {"kind", name == "pods/log"      ? "Pod"
                                        : name == "pods/exec"   ? "PodExecOptions"
                                        : name == "pods/attach" ? "PodAttachOptions"
                                                                : "PodPortForwardOptions"},
                               {"verbs", name == "pods/log" ? Json::array({"get"})
                                                            : Json::array({"create", "get"})}});
        }
        resources.push_back({{"name", "pods/binding"},
                             {"singularName", ""},
                             {"namespaced", true},
                             {"kind", "Binding"},
                             {"verbs", {"create"}}});
      }
    }
    return {{"kind", "APIResourceList"},
            {"apiVersion", "v1"},
            {"groupVersion", group.empty() ? version : group + "/" + version},
            {"resources", resources}};
  }

  // Keeps the store's history bounded, as kube-apiserver does: every interval it compacts away
  // what was superseded before the revision it saw one retention period earlier.
  void CompactHistory() {
    constexpr auto kInterval = std::chrono::minutes(1);
    constexpr std::size_t kRetainedIntervals = 5;
    std::deque<int64_t> seen;
    for (;;) {
      {
        std::unique_lock lock(stop_mu_);
        if (stop_cv_.wait_for(lock, kInterval, [this] { return stopped_; })) return;
      }
      auto rev = store_->CurrentRevision();
      if (!rev.ok()) continue;
      seen.push_back(*rev);
      if (seen.size() <= kRetainedIntervals) continue;
      int64_t target = seen.front();
      seen.pop_front();
      if (target <= store_->CompactedRevision()) continue;
      if (auto s = store_->Compact(target); !s.ok()) {
        LOG_WARNING << "compacting the store at revision " << target << ": " << s.ToString();
      } else {
        LOG_DEBUG << "compacted the store at revision " << target;
      }
    }
  }

  // The namespace controller's one job here: empty a terminating namespace, then remove it.
  void FinalizeNamespaces() {
    const api::ResourceType* namespaces = registry_.Find("", "v1", "namespaces");
    const api::ResourceType* nodes = registry_.Find("", "v1", "nodes");
    for (;;) {
      {
        std::unique_lock lock(stop_mu_);
        if (stop_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stopped_; })) {
          return;
        }
      }
      for (const auto& ns : cache_->List(*namespaces, "", nullptr, "", 0).items) {
        if (ns->json.find("\"deletionTimestamp\"") == std::string::npos) continue;
        bool empty = true;
        for (const auto& t : registry_.types()) {
          if (!t->namespaced) continue;
          for (const auto& o : cache_->List(*t, ns->name, nullptr, "", 0).items) {
            empty = false;
            DeleteOptions options;
            // A pod whose node does not exist has no agent to finish its deletion.
            if (t->group.empty() && t->plural == "pods") {
              Json pod;
              if (base::ParseJson(o->json, &pod).ok()) {
                std::string node = base::StringAt(pod, {"spec", "nodeName"});
                if (node.empty() || !cache_->Get(*nodes, "", node)) {
                  options.grace_period_seconds = 0;
                }
              }
            }
            auto deleted = objects_->Delete(*t, ns->name, o->name, options);
            if (!deleted.ok() && !deleted.status().IsNotFound()) {
              LOG_WARNING << "namespace " << ns->name << ": deleting " << t->plural << "/"
                          << o->name << ": " << deleted.status().ToString();
            }
          }
        }
        if (empty) {
          auto purged = objects_->Purge(*namespaces, "", ns->name);
          if (!purged.ok() && !purged.status().IsNotFound()) {
            LOG_WARNING << "removing namespace " << ns->name << ": "
                        << purged.status().ToString();
          }
        }
      }
    }
  }

  ApiServerOptions options_;
  base::Clock* clock_;
  api::Registry registry_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<WatchCache> cache_;
  std::unique_ptr<Objects> objects_;
  Pki pki_;
  std::unique_ptr<PodProxy> pod_proxy_;
  std::unique_ptr<HttpServer> http_;
  RequestMetrics metrics_;
  std::string kubeconfig_;
  std::thread namespace_finalizer_;
  std::thread compactor_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;
};

}  // namespace

base::Result<std::unique_ptr<ApiServer>> StartApiServer(const ApiServerOptions& options) {
  auto server = std::make_unique<Server>(options);
  RETURN_IF_ERROR(server->Init());
  return std::unique_ptr<ApiServer>(std::move(server));
}

}  // namespace fulcrum::apiserver
