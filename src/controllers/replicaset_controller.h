// apps/v1 ReplicaSet: keeps spec.replicas active pods stamped from spec.template, and reports
// replicas, readyReplicas and availableReplicas (pkg/controller/replicaset).
#pragma once

#include "controllers/controller.h"

namespace fulcrum::controllers {

class ReplicaSetController : public Controller {
 public:
  // Subscribes to the informers; call before they start.
  ReplicaSetController(client::ApiClient* api, base::Clock* clock, SharedInformers informers);

 protected:
  base::Status Sync(const std::string& key) override;

 private:
  SharedInformers informers_;
  Expectations expectations_;
};

}  // namespace fulcrum::controllers
