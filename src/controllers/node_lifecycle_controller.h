// Node lifecycle (pkg/controller/nodelifecycle): a node whose agent stopped renewing its Lease in
// kube-node-lease for the grace period has its Ready condition set to Unknown ("Kubelet stopped
// posting node status.") and is tainted node.kubernetes.io/unreachable with NoSchedule and
// NoExecute; once its agent is back and reports Ready, the taints go. Pods on a node tainted
// NoExecute that do not tolerate the taint are deleted after their tolerationSeconds (300 s by
// default, as Kubernetes' DefaultTolerationSeconds admission gives every pod), so that their
// controllers replace them elsewhere.
#pragma once

#include <atomic>
#include <condition_variable>
#include <thread>

#include "controllers/controller.h"

namespace fulcrum::controllers {

struct NodeLifecycleOptions {
  std::chrono::seconds grace{40};           // --node-monitor-grace-period
  std::chrono::seconds check_every{5};      // --node-monitor-period
  std::chrono::seconds default_toleration{300};
};

class NodeLifecycleController {
 public:
  // Subscribes to the informers (nodes, leases, pods); call before they start.
  NodeLifecycleController(client::ApiClient* api, base::Clock* clock, client::Informer* nodes,
                          client::Informer* leases, client::Informer* pods,
                          NodeLifecycleOptions options = {});
  ~NodeLifecycleController();
  void Start();
  void Stop();
  // One pass over every node: what the periodic loop runs (tests call it with a fake clock).
  void CheckNodes();

 private:
  base::Status CheckNode(const base::Json& node);
  void EvictPods(const std::string& node_name, base::WallTime tainted_at);

  client::ApiClient* api_;
  base::Clock* clock_;
  client::Informer* nodes_;
  client::Informer* leases_;
  client::Informer* pods_;
  NodeLifecycleOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace fulcrum::controllers
