#include "controllers/garbage_collector.h"

#include "base/log.h"

namespace fulcrum::controllers {
namespace {

using base::StringAt;
using base::Json;
using client::ObjectPtr;

struct OwnerKind {
  const char* kind;
  const char* group_version;
  const char* plural;
};
constexpr OwnerKind kOwnerKinds[] = {
    {"Deployment", "apps/v1", "deployments"},
    {"ReplicaSet", "apps/v1", "replicasets"},
    {"Job", "batch/v1", "jobs"},
};

}  // namespace

GarbageCollector::GarbageCollector(client::ApiClient* api, base::Clock* clock,
                                   SharedInformers informers)
    : Controller("garbage-collector", api, clock), informers_(informers) {
  auto watch_dependents = [this](client::Informer* informer, const char* prefix) {
    client::InformerHandlers h;
    std::string p = prefix;
    h.on_add = [this, p](const ObjectPtr& o) {
      if (base::FindPath(*o, {"metadata", "ownerReferences"}) != nullptr) Enqueue(p + client::ObjectKey(*o));
    };
    informer->AddHandlers(std::move(h));
  };
  watch_dependents(informers_.pods, "pods/");
  watch_dependents(informers_.replica_sets, "replicasets/");
  auto on_delete = [this](client::Informer* informer, const OwnerIndex* index, const char* prefix) {
    client::InformerHandlers h;
    h.on_delete = [this, index, prefix](const ObjectPtr& o) { OnOwnerDeleted(o, index, prefix); };
    informer->AddHandlers(std::move(h));
  };
  on_delete(informers_.deployments, informers_.replica_sets_by_owner, "replicasets/");
  on_delete(informers_.replica_sets, informers_.pods_by_owner, "pods/");
  on_delete(informers_.jobs, informers_.pods_by_owner, "pods/");
}

void GarbageCollector::OnOwnerDeleted(const ObjectPtr& owner, const OwnerIndex* index,
                                      const char* prefix) {
  for (const std::string& key : index->Dependents(StringAt(*owner, {"metadata", "uid"}))) {
    Enqueue(prefix + key);
  }
}

base::Result<bool> GarbageCollector::OwnerExists(const std::string& ns, const base::Json& ref) {
  std::string kind = ref.value("kind", "");
  std::string name = ref.value("name", "");
  std::string uid = ref.value("uid", "");
  for (const OwnerKind& k : kOwnerKinds) {
    if (kind != k.kind) continue;
    client::Informer* cache = kind == "Deployment"   ? informers_.deployments
                              : kind == "ReplicaSet" ? informers_.replica_sets
                                                     : informers_.jobs;
    if (auto cached = cache->Get(ns + "/" + name);
        cached != nullptr && StringAt(*cached, {"metadata", "uid"}) == uid) {
      return true;
    }
    // The cache may lag behind: only the API's answer is trusted before deleting.
    auto live = api_->Get(client::ResourcePath(k.group_version, k.plural, ns, name));
    if (live.status().IsNotFound()) return false;
    if (!live.ok()) return live.status();
    return StringAt(*live, {"metadata", "uid"}) == uid;
  }
  return true;  // an owner of a kind not tracked here is assumed to exist
}

base::Status GarbageCollector::Sync(const std::string& key) {
  auto slash = key.find('/');
  std::string resource = key.substr(0, slash);
  std::string object_key = key.substr(slash + 1);
  client::Informer* informer = resource == "pods" ? informers_.pods : informers_.replica_sets;
  ObjectPtr object = informer->Get(object_key);
  if (object == nullptr || !StringAt(*object, {"metadata", "deletionTimestamp"}).empty()) {
    return base::Status::Ok();
  }
  const Json* refs = base::FindPath(*object, {"metadata", "ownerReferences"});
  if (refs == nullptr || !refs->is_array() || refs->empty()) return base::Status::Ok();
  std::string ns = StringAt(*object, {"metadata", "namespace"});
  for (const Json& ref : *refs) {
    ASSIGN_OR_RETURN(bool exists, OwnerExists(ns, ref));
    if (exists) return base::Status::Ok();
  }
  std::string name = StringAt(*object, {"metadata", "name"});
  std::string group_version = resource == "pods" ? "v1" : "apps/v1";
  Json options = {{"kind", "DeleteOptions"},
                  {"apiVersion", "v1"},
                  {"propagationPolicy", "Background"},
                  {"preconditions", {{"uid", StringAt(*object, {"metadata", "uid"})}}}};
  auto r = api_->Delete(client::ResourcePath(group_version, resource, ns, name), options);
  if (!r.ok() && !r.status().IsNotFound() && !r.status().IsConflict()) return r.status();
  LOG_DEBUG << "garbage collector deleted " << key << ": its owners are gone";
  return base::Status::Ok();
}

}  // namespace fulcrum::controllers
