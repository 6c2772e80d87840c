// Runs the cluster's controllers (ReplicaSet, Deployment, Job, garbage collector) on shared
// informers, as kube-controller-manager does, talking to the API server through `api`.
#pragma once

#include <memory>

#include "base/clock.h"
#include "base/status.h"
#include "client/api_client.h"

namespace fulcrum::controllers {

class ControllerManager {
 public:
  virtual ~ControllerManager() = default;
  // Stops every controller and informer. Idempotent.
  virtual void Stop() = 0;
};

// Starts the informers and controllers; returns once the informers have synced (or after a
// bounded wait, logging which have not). `api` and `clock` must outlive the manager.
base::Result<std::unique_ptr<ControllerManager>> StartControllerManager(client::ApiClient* api,
                                                                        base::Clock* clock);

}  // namespace fulcrum::controllers
