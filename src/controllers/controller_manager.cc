#include "controllers/controller_manager.h"

#include "base/log.h"
#include "controllers/deployment_controller.h"
#include "controllers/garbage_collector.h"
#include "controllers/job_controller.h"
#include "controllers/node_lifecycle_controller.h"
#include "controllers/replicaset_controller.h"

namespace fulcrum::controllers {
namespace {

class ControllerManagerImpl : public ControllerManager {
 public:
  ControllerManagerImpl(client::ApiClient* api, base::Clock* clock)
      : pods_(api, "/api/v1/pods", ""),
        replica_sets_(api, "/apis/apps/v1/replicasets", ""),
        deployments_(api, "/apis/apps/v1/deployments", ""),
        jobs_(api, "/apis/batch/v1/jobs", ""),
        nodes_(api, "/api/v1/nodes", ""),
        leases_(api, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", ""),
        node_lifecycle_(api, clock, &nodes_, &leases_, &pods_) {
    pods_by_owner_.Attach(&pods_);
    replica_sets_by_owner_.Attach(&replica_sets_);
    SharedInformers shared{&pods_, &replica_sets_, &deployments_, &jobs_, &pods_by_owner_,
                           &replica_sets_by_owner_};
    controllers_.push_back(std::make_unique<ReplicaSetController>(api, clock, shared));
    controllers_.push_back(std::make_unique<DeploymentController>(api, clock, shared));
    controllers_.push_back(std::make_unique<JobController>(api, clock, shared));
    controllers_.push_back(std::make_unique<GarbageCollector>(api, clock, shared));
  }
  ~ControllerManagerImpl() override { Stop(); }

  void Start() {
    for (client::Informer* i : informers()) i->Start();
    for (client::Informer* i : informers()) {
      if (!i->WaitForSync(std::chrono::seconds(30))) {
        LOG_WARNING << "an informer has not synced yet";
      }
    }
    for (auto& c : controllers_) c->Start(2);
    node_lifecycle_.Start();
  }

  void Stop() override {
    node_lifecycle_.Stop();
    for (auto& c : controllers_) c->Stop();
    for (client::Informer* i : informers()) i->Stop();
  }

 private:
  std::vector<client::Informer*> informers() {
    return {&pods_, &replica_sets_, &deployments_, &jobs_, &nodes_, &leases_};
  }

  client::Informer pods_, replica_sets_, deployments_, jobs_, nodes_, leases_;
  NodeLifecycleController node_lifecycle_;
  OwnerIndex pods_by_owner_, replica_sets_by_owner_;
  std::vector<std::unique_ptr<Controller>> controllers_;
};

}  // namespace

base::Result<std::unique_ptr<ControllerManager>> StartControllerManager(client::ApiClient* api,
                                                                        base::Clock* clock) {
  auto manager = std::make_unique<ControllerManagerImpl>(api, clock);
  manager->Start();
  return std::unique_ptr<ControllerManager>(std::move(manager));
}

}  // namespace fulcrum::controllers
