#include "apiserver/metrics_api.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "api/selector.h"
#include "apiserver/rest.h"

namespace fulcrum::apiserver {
namespace {

using base::Json;

constexpr char kVersion[] = "v1beta1";
constexpr char kGroupVersion[] = "metrics.k8s.io/v1beta1";
constexpr auto kMinStaleness = std::chrono::seconds(60);

HttpResponse JsonResponse(const Json& j) {
  HttpResponse r;
  r.body = base::DumpJson(j);
  return r;
}

Json LabelsJson(const Labels& labels) {
  Json out = Json::object();
  for (const auto& [k, v] : labels) out[k] = v;
  return out;
}

struct Query {
  api::LabelSelector labels;
  api::FieldSelector fields;
};

base::Result<Query> ParseSelectors(const HttpRequest& request) {
  Query q;
  if (std::string text = request.Query("labelSelector"); !text.empty()) {
    ASSIGN_OR_RETURN(q.labels, api::LabelSelector::Parse(text));
  }
  if (std::string text = request.Query("fieldSelector"); !text.empty()) {
    ASSIGN_OR_RETURN(q.fields, api::FieldSelector::Parse(text));
    RETURN_IF_ERROR(q.fields.Validate([](std::string_view f) {
      return f == "metadata.name" || f == "metadata.namespace";
    }));
  }
  return q;
}

bool FieldsMatch(const api::FieldSelector& fields, const std::string& ns, const std::string& name) {
  return fields.Matches([&](std::string_view field, std::string* value) {
    if (field == "metadata.name") {
      *value = name;
    } else if (field == "metadata.namespace") {
      *value = ns;
    } else {
      return false;
    }
    return true;
  });
}

// One fresh NodeMetric, parsed.
struct Report {
  std::string node;
  std::string timestamp;
  std::string window;
  Json status;
};

// The NodeMetrics that are fresh by `clock`, by node name.
std::map<std::string, Report> FreshReports(const api::Registry& registry, const WatchCache& cache,
                                           const base::Clock& clock) {
  std::map<std::string, Report> out;
  const api::ResourceType* type = registry.Find("scheduling.fulcrum.dev", "v1alpha1", "nodemetrics");
  if (type == nullptr) return out;
  base::WallTime now = clock.Now();
  for (const ObjectPtr& o : cache.List(*type, "", nullptr, "", 0).items) {
    Json metric;
    if (!base::ParseJson(o->json, &metric).ok()) continue;
    const Json* status = base::FindPath(metric, {"status"});
    base::WallTime updated;
    if (status == nullptr || !status->is_object() ||
        !base::ParseRfc3339(base::StringAt(*status, {"updateTime"}), &updated)) {
      continue;
    }
    const Json* interval = base::FindPath(metric, {"spec", "reportIntervalSeconds"});
    auto stale_after = std::max<std::chrono::seconds>(
        kMinStaleness, std::chrono::seconds(5 * (interval != nullptr && interval->is_number_integer()
                                                     ? interval->get<int64_t>()
                                                     : 15)));
    if (now - updated > stale_after) continue;
    const Json* window = base::FindPath(*status, {"windowSeconds"});
    int64_t seconds = window != nullptr && window->is_number_integer() ? window->get<int64_t>() : 1;
    out[o->name] = Report{o->name, base::StringAt(*status, {"updateTime"}),
                          std::to_string(std::max<int64_t>(1, seconds)) + "s", *status};
  }
  return out;
}

Json Usage(const Json& owner) {
  const Json* usage = base::FindPath(owner, {"usage"});
  Json out = {{"cpu", "0"}, {"memory", "0"}};
  if (usage != nullptr && usage->is_object()) {
    for (const char* r : {"cpu", "memory"}) {
      if (usage->contains(r) && (*usage)[r].is_string()) out[r] = (*usage)[r];
    }
  }
  return out;
}

Json ListOf(const char* kind, Json items) {
  return {{"kind", kind}, {"apiVersion", kGroupVersion}, {"metadata", Json::object()},
          {"items", std::move(items)}};
}

HttpResponse ServeNodes(const HttpRequest& request, const std::string& name,
                        const api::Registry& registry, const WatchCache& cache,
                        const base::Clock& clock) {
  auto query = ParseSelectors(request);
  if (!query.ok()) return StatusResponse(query.status());
  const api::ResourceType* nodes = registry.Find("", "v1", "nodes");
  Json items = Json::array();
  for (const auto& [node_name, report] : FreshReports(registry, cache, clock)) {
    if (!name.empty() && node_name != name) continue;
    ObjectPtr node = nodes != nullptr ? cache.Get(*nodes, "", node_name) : nullptr;
    if (node == nullptr) continue;
    if (!query->labels.Matches(node->labels) || !FieldsMatch(query->fields, "", node_name)) continue;
    items.push_back({{"kind", "NodeMetrics"},
                     {"apiVersion", kGroupVersion},
                     {"metadata",
                      {{"name", node_name},
                       {"creationTimestamp", report.timestamp},
                       {"labels", LabelsJson(node->labels)}}},
                     {"timestamp", report.timestamp},
                     {"window", report.window},
                     {"usage", Usage(base::FindPath(report.status, {"nodeMetric"}) != nullptr
                                         ? report.status["nodeMetric"]
                                         : Json::object())}});
  }
  if (name.empty()) return JsonResponse(ListOf("NodeMetricsList", std::move(items)));
  if (items.empty()) {
    return StatusResponse(base::NotFound("nodemetrics.metrics.k8s.io \"" + name + "\" not found"));
  }
  return JsonResponse(items[0]);
}

HttpResponse ServePods(const HttpRequest& request, const std::string& ns, const std::string& name,
                       const api::Registry& registry, const WatchCache& cache,
                       const base::Clock& clock) {
  auto query = ParseSelectors(request);
  if (!query.ok()) return StatusResponse(query.status());
  const api::ResourceType* pods = registry.Find("", "v1", "pods");
  std::vector<std::pair<std::string, Json>> found;  // by "ns/name", for a stable order
  for (const auto& [node_name, report] : FreshReports(registry, cache, clock)) {
    const Json* list = base::FindPath(report.status, {"podsMetric"});
    if (list == nullptr || !list->is_array()) continue;
    for (const Json& entry : *list) {
      std::string pod_ns = base::StringAt(entry, {"namespace"});
      std::string pod_name = base::StringAt(entry, {"name"});
      if ((!ns.empty() && pod_ns != ns) || (!name.empty() && pod_name != name)) continue;
      ObjectPtr pod = pods != nullptr ? cache.Get(*pods, pod_ns, pod_name) : nullptr;
      // The pod is gone, or a new pod of the same name has not been reported yet.
      if (pod == nullptr) continue;
      std::string uid = base::StringAt(entry, {"uid"});
      if (!uid.empty() && uid != pod->uid) continue;
      if (!query->labels.Matches(pod->labels) || !FieldsMatch(query->fields, pod_ns, pod_name)) {
        continue;
      }
      Json containers = Json::array();
      if (const Json* cs = base::FindPath(entry, {"containers"}); cs != nullptr && cs->is_array()) {
        for (const Json& c : *cs) {
          containers.push_back({{"name", base::StringAt(c, {"name"})}, {"usage", Usage(c)}});
        }
      }
      found.emplace_back(pod_ns + "/" + pod_name,
                         Json{{"kind", "PodMetrics"},
                              {"apiVersion", kGroupVersion},
                              {"metadata",
                               {{"name", pod_name},
                                {"namespace", pod_ns},
                                {"creationTimestamp", report.timestamp},
                                {"labels", LabelsJson(pod->labels)}}},
                              {"timestamp", report.timestamp},
                              {"window", report.window},
                              {"containers", std::move(containers)}});
    }
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  if (name.empty()) {
    Json items = Json::array();
    for (auto& [key, item] : found) items.push_back(std::move(item));
    return JsonResponse(ListOf("PodMetricsList", std::move(items)));
  }
  if (found.empty()) {
    return StatusResponse(base::NotFound("podmetrics.metrics.k8s.io \"" + name + "\" not found"));
  }
  return JsonResponse(found[0].second);
}

Json ResourceList() {
  auto resource = [](const char* name, const char* kind, bool namespaced) {
    return Json{{"name", name},
                {"singularName", ""},
                {"namespaced", namespaced},
                {"kind", kind},
                {"verbs", {"get", "list"}}};
  };
  return {{"kind", "APIResourceList"},
          {"apiVersion", "v1"},
          {"groupVersion", kGroupVersion},
          {"resources", {resource("nodes", "NodeMetrics", false), resource("pods", "PodMetrics", true)}}};
}

std::vector<std::string> Segments(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

Json MetricsApiGroup() {
  Json gv = {{"groupVersion", kGroupVersion}, {"version", kVersion}};
  return {{"name", kMetricsGroup}, {"versions", Json::array({gv})}, {"preferredVersion", gv}};
}

std::optional<HttpResponse> ServeMetricsApi(const HttpRequest& request,
                                            const api::Registry& registry, const WatchCache& cache,
                                            const base::Clock& clock) {
  std::vector<std::string> s = Segments(request.path);
  if (s.size() < 2 || s[0] != "apis" || s[1] != kMetricsGroup) return std::nullopt;
  if (request.method != "GET" && request.method != "HEAD") {
    return StatusResponse(base::Status(base::Code::kMethodNotAllowed,
                                       "the server does not allow this method on the requested resource"));
  }
  if (s.size() == 2) {
    Json group = MetricsApiGroup();
    group["kind"] = "APIGroup";
    group["apiVersion"] = "v1";
    return JsonResponse(group);
  }
  if (s[2] != kVersion) return std::nullopt;
  if (s.size() == 3) return JsonResponse(ResourceList());
  // nodes[/NAME], pods[/NAME], namespaces/NS/pods[/NAME]
  if (s[3] == "nodes" && s.size() <= 5) {
    return ServeNodes(request, s.size() == 5 ? s[4] : "", registry, cache, clock);
  }
  if (s[3] == "pods" && s.size() <= 5) {
    return ServePods(request, "", s.size() == 5 ? s[4] : "", registry, cache, clock);
  }
  if (s[3] == "namespaces" && s.size() >= 6 && s.size() <= 7 && s[5] == "pods") {
    return ServePods(request, s[4], s.size() == 7 ? s[6] : "", registry, cache, clock);
  }
  return StatusResponse(base::NotFound("the server could not find the requested resource"));
}

}  // namespace fulcrum::apiserver
