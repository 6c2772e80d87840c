// apps/v1 Deployment: one ReplicaSet per pod template revision; rolling updates within maxSurge
// and maxUnavailable, or Recreate; pause; revision history; status with the Available and
// Progressing conditions `kubectl rollout status` reads (pkg/controller/deployment).
#pragma once

#include "controllers/controller.h"

namespace fulcrum::controllers {

class DeploymentController : public Controller {
 public:
  // Subscribes to the informers; call before they start.
  DeploymentController(client::ApiClient* api, base::Clock* clock, SharedInformers informers);

 protected:
  base::Status Sync(const std::string& key) override;

 private:
  SharedInformers informers_;
};

// The plan of one rolling-update step, pure so that it is tested on its own: the new spec.replicas
// of the new ReplicaSet and of each old one (oldest first, as given).
struct ReplicaSetCounts {
  int64_t spec = 0;       // spec.replicas
  int64_t available = 0;  // status.availableReplicas
};
struct RolloutStep {
  int64_t new_replicas = 0;
  std::vector<int64_t> old_replicas;
};
RolloutStep PlanRollingUpdate(int64_t replicas, int64_t max_surge, int64_t max_unavailable,
                              const ReplicaSetCounts& new_rs,
                              const std::vector<ReplicaSetCounts>& old_rs);

}  // namespace fulcrum::controllers
