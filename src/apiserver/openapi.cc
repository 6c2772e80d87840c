// OpenAPI Specification 3.0.0, with the Kubernetes extension x-kubernetes-group-version-kind.
#include "apiserver/openapi.h"

#include <functional>
#include <set>

#include "base/json.h"

namespace fulcrum::apiserver {
namespace {

using base::Json;

std::string GroupVersionPath(const api::ResourceType& t) {
  return t.group.empty() ? "api/" + t.version : "apis/" + t.group + "/" + t.version;
}

Json QueryParameter(const char* name, const char* type) {
  return {{"name", name}, {"in", "query"}, {"schema", {{"type", type}, {"uniqueItems", true}}}};
}

Json Operation(const api::ResourceType& t, const std::string& action, const std::string& id,
               const std::vector<const char*>& params, bool body) {
  Json parameters = Json::array();
  for (const char* p : params) parameters.push_back(QueryParameter(p, "string"));
  std::string ref = "#/components/schemas/" + (t.group.empty() ? "core" : t.group) + "." +
                    t.version + "." + t.kind;
  Json op = {{"operationId", id},
             {"parameters", parameters},
             {"responses", {{"200", {{"description", "OK"},
                                     {"content", {{"application/json", {{"schema", {{"$ref", ref}}}}}}}}}}},
             {"x-kubernetes-action", action},
             {"x-kubernetes-group-version-kind",
              {{"group", t.group}, {"version", t.version}, {"kind", t.kind}}}};
  if (body) {
    op["requestBody"] = {{"content", {{"*/*", {{"schema", {{"$ref", ref}}}}}}}, {"required", true}};
  }
  return op;
}

std::string Hash(const std::string& s) {
  return std::to_string(std::hash<std::string>{}(s));
}

}  // namespace

std::string OpenApiV3GroupVersion(const api::Registry& registry, const std::string& gv) {
  Json paths = Json::object();
  Json schemas = Json::object();
  bool any = false;
  for (const auto& t : registry.types()) {
    if (GroupVersionPath(*t) != gv) continue;
    any = true;
    std::string base = "/" + gv + "/" + (t->namespaced ? "namespaces/{namespace}/" : "") + t->plural;
    std::vector<const char*> write = {"dryRun", "fieldManager", "fieldValidation", "pretty"};
    std::vector<const char*> read = {"pretty"};
    std::vector<const char*> list = {"allowWatchBookmarks", "continue", "fieldSelector",
                                     "labelSelector", "limit", "resourceVersion",
                                     "resourceVersionMatch", "sendInitialEvents",
                                     "timeoutSeconds", "watch"};
    std::vector<const char*> patch = {"dryRun", "fieldManager", "fieldValidation", "force",
                                      "pretty"};
    paths[base] = {{"get", Operation(*t, "list", "list" + t->kind, list, false)},
                   {"post", Operation(*t, "post", "create" + t->kind, write, true)},
                   {"delete", Operation(*t, "deletecollection", "deletecollection" + t->kind,
                                        {"dryRun", "labelSelector", "fieldSelector"}, false)}};
    paths[base + "/{name}"] = {{"get", Operation(*t, "get", "read" + t->kind, read, false)},
                               {"put", Operation(*t, "put", "replace" + t->kind, write, true)},
                               {"patch", Operation(*t, "patch", "patch" + t->kind, patch, true)},
                               {"delete", Operation(*t, "delete", "delete" + t->kind,
                                                    {"dryRun", "gracePeriodSeconds",
                                                     "propagationPolicy"},
                                                    false)}};
    if (t->has_status) {
      paths[base + "/{name}/status"] = {
          {"get", Operation(*t, "get", "read" + t->kind + "Status", read, false)},
          {"put", Operation(*t, "put", "replace" + t->kind + "Status", write, true)},
          {"patch", Operation(*t, "patch", "patch" + t->kind + "Status", patch, true)}};
    }
    std::string name = (t->group.empty() ? "core" : t->group) + "." + t->version + "." + t->kind;
    schemas[name] = {{"type", "object"},
                     {"description", t->kind + " (" + t->GroupVersion() + ")"},
                     {"x-kubernetes-preserve-unknown-fields", true},
                     {"x-kubernetes-group-version-kind",
                      Json::array({{{"group", t->group}, {"version", t->version}, {"kind", t->kind}}})}};
  }
  if (!any) return "";
  Json doc = {{"openapi", "3.0.0"},
              {"info", {{"title", "Kubernetes"}, {"version", "v1.30.0"}}},
              {"paths", paths},
              {"components", {{"schemas", schemas}}}};
  return base::DumpJson(doc);
}

std::string OpenApiV3Root(const api::Registry& registry) {
  Json paths = Json::object();
  std::set<std::string> seen;
  for (const auto& t : registry.types()) {
    std::string gv = GroupVersionPath(*t);
    if (!seen.insert(gv).second) continue;
    paths[gv] = {{"serverRelativeURL",
                  "/openapi/v3/" + gv + "?hash=" + Hash(OpenApiV3GroupVersion(registry, gv))}};
  }
  return base::DumpJson(Json{{"paths", paths}});
}

}  // namespace fulcrum::apiserver
