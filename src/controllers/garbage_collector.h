// Background cascading deletion: an object whose every ownerReference names an owner that no
// longer exists (by name and uid) is deleted, as the Kubernetes garbage collector does for
// `kubectl delete deployment` (propagationPolicy Background, kubectl's default).
#pragma once

#include "controllers/controller.h"

namespace fulcrum::controllers {

class GarbageCollector : public Controller {
 public:
  // Subscribes to the informers; call before they start. Dependents tracked: pods and
  // ReplicaSets; owners looked up: Deployments, ReplicaSets, Jobs (in the caches first, then
  // through the API before anything is deleted).
  GarbageCollector(client::ApiClient* api, base::Clock* clock, SharedInformers informers);

 protected:
  // Keys are "pods/ns/name" or "replicasets/ns/name".
  base::Status Sync(const std::string& key) override;

 private:
  void OnOwnerDeleted(const client::ObjectPtr& owner, const OwnerIndex* index, const char* prefix);
  // True when the owner named by `ref` (in namespace `ns`) exists with the ref's uid.
  base::Result<bool> OwnerExists(const std::string& ns, const base::Json& ref);

  SharedInformers informers_;
};

}  // namespace fulcrum::controllers
