// The scheduling loop of `fulcrum server`: pods with no node, taken highest priority first,
// placed by the framework (framework.h) under the configured policy, bound through pods/binding.
// Pods that fit nowhere get a FailedScheduling event that says why and a PodScheduled=False
// condition, and are retried when the cluster changes (a node appears or changes, a pod goes) and
// once a minute; a pod that would fit after evicting lower-priority pods has them evicted
// (preemption) and is nominated to that node.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/json.h"
#include "base/status.h"
#include "client/api_client.h"
#include "scheduler/framework.h"

namespace fulcrum::scheduler {

struct LiveSchedulerOptions {
  std::string policy = "requests";  // requests | load-aware | archimedes
  std::string scheduler_name = "default-scheduler";  // pods naming another scheduler are left alone
  int binders = 4;                                    // concurrent binding requests
  // Learnt application profiles are written back as AppProfile objects at most this often each
  // (a newly learnt one at once); usage_feed.h.
  std::chrono::seconds profile_write_interval{60};
};

class LiveScheduler {
 public:
  virtual ~LiveScheduler() = default;
  // Stops the loop, the binders and the informers. Idempotent.
  virtual void Stop() = 0;
};

// Starts informers on pods, nodes and NodeMetrics (the agents' usage reports: measured usage for
// the load-aware and archimedes policies, and application profiles, restored from the AppProfile
// objects at start and written back as they are learnt) and the loop. Errors: NotFound for an
// unknown policy.
// `api` and `clock` must outlive the scheduler.
base::Result<std::unique_ptr<LiveScheduler>> StartLiveScheduler(client::ApiClient* api,
                                                                base::Clock* clock,
                                                                LiveSchedulerOptions options);

// The scheduler's views of API objects (exposed for tests).
PodInfo PodInfoFromJson(const base::Json& pod);
// Node readiness is folded into taints: a node whose Ready condition is not True carries
// node.kubernetes.io/not-ready:NoSchedule, as the node lifecycle controller would add.
void UpdateNodeInfoFromJson(const base::Json& node, NodeInfo* info);

}  // namespace fulcrum::scheduler
